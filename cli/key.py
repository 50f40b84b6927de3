"""`imi key`: Keys as JWK files (EdDSA, ES256)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Keys as JWK files (EdDSA, ES256).", no_args_is_help=True)
