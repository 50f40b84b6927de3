"""`imi ledger`: Inspect and audit the ledger."""

from __future__ import annotations

import typer

app = typer.Typer(help="Inspect and audit the ledger.", no_args_is_help=True)
