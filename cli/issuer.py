"""`imi issuer`: Accredited issuer operations."""

from __future__ import annotations

import typer

app = typer.Typer(help="Accredited issuer operations.", no_args_is_help=True)
