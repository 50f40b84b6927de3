"""`imi did`: did:imi identifiers: create, resolve, rotate, recover."""

from __future__ import annotations

import typer

app = typer.Typer(help="did:imi identifiers: create, resolve, rotate, recover.", no_args_is_help=True)
