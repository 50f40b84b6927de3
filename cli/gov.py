"""`imi gov`: Trustee governance transactions (k-of-n)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Trustee governance transactions (k-of-n).", no_args_is_help=True)
