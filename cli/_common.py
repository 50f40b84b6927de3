"""Helpers shared by CLI commands: uniform failure, JSON output, and files.

``fail`` prints a one-line reason to stderr and exits 1 (rejected or invalid);
with ``--json`` it prints ``{"ok": false, "reason": ..., "detail": ...}`` on stdout
instead. ``usage`` is a usage error (exit 2), as typer/click give for a bad option.
Long-running servers given ``--json`` log one JSON object per line
(:class:`JsonLogFormatter`).

File helpers: every bad input file ends in one line and exit 1, never a traceback;
every private file (key, recovery kit) is written by :func:`write_private`, through
:func:`ledger.files.write_atomic` (mode 0600, file and directory fsynced).

Command modules import helpers (this module, :mod:`cli._ledger_client`,
:mod:`cli._consortium`), never each other.
"""

from __future__ import annotations

import copy
import enum
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import typer

from ledger.errors import ImiError, KeyError_
from ledger.files import write_atomic
from ledger.keys import PublicKey, SigningKey

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


def usage(message: str) -> NoReturn:
    """A usage error: one line on stderr, exit 2."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(EXIT_USAGE)


def parse_predicates(items: list[str]) -> dict[str, list[int]]:
    """``--predicate NAME=T1,T2`` options (e.g. ``age_equal_or_over=18,21``) as a map; a
    malformed one is a usage error."""
    predicates: dict[str, list[int]] = {}
    for item in items:
        name, _, thresholds = item.partition("=")
        try:
            predicates[name] = [int(t) for t in thresholds.split(",")]
        except ValueError:
            usage(f"--predicate must be NAME=INT[,INT...], got {item!r}")
    return predicates


def refuse(exc: ImiError, as_json: bool) -> NoReturn:
    """Exit 1 with an error's own ``reason`` (a library or node refusal)."""
    fail(str(exc), reason=exc.reason, as_json=as_json)


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


# --- files ------------------------------------------------------------------------------------
FILE_BYTES_MAX = 1024 * 1024  # no input file we read is legitimately larger


class Alg(str, enum.Enum):
    EdDSA = "EdDSA"
    ES256 = "ES256"


def read_text_file(path: Path, what: str) -> str:
    """UTF-8 text of ``path`` (≤ FILE_BYTES_MAX), or exit 1 naming ``what``."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(FILE_BYTES_MAX + 1)
    except OSError as exc:
        fail(f"cannot read {what} {str(path)!r}: {exc.strerror or exc}", reason="bad-file")
    if len(data) > FILE_BYTES_MAX:
        fail(f"{what} {str(path)!r} is larger than {FILE_BYTES_MAX} bytes", reason="bad-file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        fail(f"{what} {str(path)!r} is not UTF-8 text", reason="bad-file")


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path``, or exit 1."""
    try:
        value = json.loads(read_text_file(path, what))
    except (ValueError, RecursionError):
        fail(f"{what} {str(path)!r} is not valid JSON", reason="bad-file")
    if not isinstance(value, dict):
        fail(f"{what} {str(path)!r} must hold a JSON object", reason="bad-file")
    return value


def read_signing_key(path: Path, what: str = "private key") -> SigningKey:
    try:
        return SigningKey.from_private_jwk(read_json_object(path, what))
    except (KeyError_, ValueError, TypeError) as exc:
        fail(f"{what} {str(path)!r} is not a usable private JWK: {exc}", reason="bad-key")


def read_public_key(path: Path, what: str = "public key") -> PublicKey:
    """A public key from a JWK file (a private JWK's public part is accepted)."""
    try:
        return PublicKey.from_jwk(read_json_object(path, what))
    except (KeyError_, ValueError, TypeError) as exc:
        fail(f"{what} {str(path)!r} is not a usable JWK: {exc}", reason="bad-key")


def write_private(path: Path, text: str, *, force: bool, what: str, exists_hint: str = "",
                  as_json: bool | None = None) -> None:
    """Write ``text`` owner-only (0600), atomically and durably; never over an existing file
    unless ``force``. Exit 1 (``file-exists`` or ``bad-file``) if it cannot."""
    try:
        write_atomic(path, text, exclusive=not force)
    except FileExistsError:
        fail(f"{what} {str(path)!r} exists{exists_hint}", reason="file-exists", as_json=as_json)
    except OSError as exc:
        fail(f"cannot write {what} {str(path)!r}: {exc.strerror or exc}", reason="bad-file", as_json=as_json)


def write_private_key(path: Path, key: SigningKey, *, what: str, as_json: bool | None = None) -> None:
    """A new private JWK file (never replaces one: a key file is never overwritten by accident)."""
    write_private(path, json.dumps(key.to_private_jwk(), indent=2) + "\n", force=False, what=what,
                  as_json=as_json)


def load_or_create_key(path: Path, what: str) -> SigningKey:
    """Read a private JWK, or create one (mode 0600) if the file does not exist yet."""
    if path.exists():
        return read_signing_key(path, what)
    key = SigningKey.generate()
    write_private_key(path, key, what=what)
    return key


def serve_app(app: Any, *, host: str, port: int, banner: str, as_json: bool, logger: str) -> None:
    """Serve an ASGI ``app`` with uvicorn until stopped: the banner on stderr, or with ``as_json``
    one JSON log line per event (stderr). Proxy headers are off: uvicorn would otherwise take
    the client address from ``X-Forwarded-For``, which the services must not trust."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    log_config: dict[str, Any] = LOGGING_CONFIG
    if as_json:
        configure_json_logging()
        log_config = uvicorn_json_log_config()
        logging.getLogger(logger).info("%s", banner)
    else:
        print(banner, file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning", log_config=log_config, proxy_headers=False)
