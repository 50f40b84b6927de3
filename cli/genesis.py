"""`imi genesis`: Create a consortium genesis."""

from __future__ import annotations

import typer

app = typer.Typer(help="Create a consortium genesis.", no_args_is_help=True)
