"""`imi devnet`: A local consortium of validators as OS processes."""

from __future__ import annotations

import typer

app = typer.Typer(help="A local consortium of validators as OS processes.", no_args_is_help=True)
