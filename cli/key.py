"""`imi key`: keys as JWK files (EdDSA, ES256).

``imi key new --alg EdDSA|ES256 --out FILE`` writes a private JWK (mode 0600,
never over an existing file unless ``--force``); ``imi key public FILE`` prints
its public JWK. File helpers here are shared by the credential commands so
every bad file ends in one line on stderr and exit 1, never a traceback.
"""

from __future__ import annotations

import enum
import json
import os
from pathlib import Path
from typing import Any

import typer

from cli._common import fail, print_json
from ledger.errors import KeyError_
from ledger.keys import PublicKey, SigningKey

app = typer.Typer(help="Keys as JWK files (EdDSA, ES256).", no_args_is_help=True)

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


def write_private(path: Path, text: str, *, force: bool) -> None:
    """Write ``text`` readable by the owner only, atomically (temp file + rename)."""
    if path.exists() and not force:
        fail(f"{str(path)!r} exists; use --force to replace it", reason="file-exists")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        fail(f"cannot write {str(path)!r}: {exc.strerror or exc}", reason="bad-file")


@app.command("new")
def new(
    alg: Alg = typer.Option(..., "--alg", help="EdDSA (Ed25519) or ES256 (P-256)."),
    out: Path = typer.Option(..., "--out", help="File for the private JWK (mode 0600)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
    as_json: bool = typer.Option(False, "--json", help="Print {ok, path, kid, alg, public_jwk} on stdout."),
) -> None:
    """Generate a key pair and write the private JWK to --out."""
    key = SigningKey.generate(alg.value)
    write_private(out, json.dumps(key.to_private_jwk(), indent=2) + "\n", force=force)
    if as_json:
        print_json({"ok": True, "path": str(out), "kid": key.key_id, "alg": alg.value,
                    "public_jwk": key.public_key.to_jwk()})
    else:
        typer.echo(f"wrote {alg.value} key {key.key_id} to {out}", err=True)


@app.command("public")
def public(
    file: Path = typer.Argument(..., help="A JWK file (private or public)."),
    as_json: bool = typer.Option(False, "--json", help="Print {ok, kid, alg, public_jwk} instead of the bare JWK."),
) -> None:
    """Print the public JWK of a key file."""
    key = read_public_key(file, "key file")
    if as_json:
        print_json({"ok": True, "kid": key.key_id, "alg": key.alg, "public_jwk": key.to_jwk()})
    else:
        typer.echo(json.dumps(key.to_jwk(), indent=2))
