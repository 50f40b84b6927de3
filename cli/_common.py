"""Helpers shared by CLI commands: uniform failure and JSON output.

``fail`` prints a one-line reason to stderr and exits 1 (rejected or invalid);
with ``--json`` it prints ``{"ok": false, "reason": ..., "detail": ...}`` on stdout
instead. Usage errors are left to typer/click, which exit 2. Long-running servers
given ``--json`` log one JSON object per line (:class:`JsonLogFormatter`).
"""

from __future__ import annotations

import copy
import json
import logging
import sys
import time
from typing import Any, NoReturn

import typer

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


def json_requested() -> bool:
    """Whether the running command was given ``--json`` (a parameter named ``as_json``).

    Shared helpers (file and key readers) fail from deep inside a command; asking
    click's context lets them honour ``--json`` without threading the flag through.
    """
    try:  # recent typer vendors click as typer._click; older releases use click itself
        from typer._click.globals import get_current_context
    except ImportError:
        from click import get_current_context  # type: ignore[no-redef]
    ctx = get_current_context(silent=True)
    return bool(ctx is not None and ctx.params.get("as_json"))


def fail(message: str, *, reason: str | None = None, as_json: bool | None = None) -> NoReturn:
    """Report a rejection and exit with code 1 (as JSON when ``as_json``, or by default
    when the running command was given ``--json``)."""
    if as_json is None:
        as_json = json_requested()
    if as_json:
        print(json.dumps({"ok": False, "reason": reason or "invalid", "detail": message}))
    else:
        prefix = f"error [{reason}]: " if reason else "error: "
        print(prefix + message, file=sys.stderr)
    raise typer.Exit(EXIT_INVALID)


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (UTC, ms), ``level``, ``logger``, ``message``
    and ``exc`` when the record carries an exception."""

    def __init__(self, *args: Any, use_colors: bool | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # use_colors: uvicorn's dictConfig may pass it; no colours here

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry: dict[str, Any] = {"ts": f"{stamp}.{int(record.msecs):03d}Z", "level": record.levelname,
                                 "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_json_logging(level: str = "INFO") -> None:
    """Send every log record to stderr as one JSON object per line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))


def uvicorn_json_log_config() -> dict[str, Any]:
    """uvicorn's logging config with every formatter replaced by :class:`JsonLogFormatter`."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"] = {name: {"()": f"{__name__}.JsonLogFormatter"} for name in config["formatters"]}
    return config
