"""`imi node`: Run one validator."""

from __future__ import annotations

import typer

app = typer.Typer(help="Run one validator.", no_args_is_help=True)
