"""`imi sdjwt`: Offline SD-JWT VC: issue, present, verify."""

from __future__ import annotations

import typer

app = typer.Typer(help="Offline SD-JWT VC: issue, present, verify.", no_args_is_help=True)
