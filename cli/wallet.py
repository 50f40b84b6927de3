"""`imi wallet`: The citizen's encrypted wallet."""

from __future__ import annotations

import typer

app = typer.Typer(help="The citizen's encrypted wallet.", no_args_is_help=True)
