"""Helpers shared by CLI commands: uniform failure and JSON output.

``fail`` prints a one-line reason to stderr and exits 1 (rejected or invalid);
usage errors are left to typer/click, which exit 2.
"""

from __future__ import annotations

import json
import sys
from typing import NoReturn

import typer

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


def fail(message: str, *, reason: str | None = None, as_json: bool = False) -> NoReturn:
    """Report a rejection and exit with code 1."""
    if as_json:
        print(json.dumps({"ok": False, "reason": reason or "invalid", "detail": message}))
    else:
        prefix = f"error [{reason}]: " if reason else "error: "
        print(prefix + message, file=sys.stderr)
    raise typer.Exit(EXIT_INVALID)


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))
