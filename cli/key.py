"""`imi key`: keys as JWK files (EdDSA, ES256).

``imi key new --alg EdDSA|ES256 --out FILE`` writes a private JWK (mode 0600,
never over an existing file unless ``--force``); ``imi key public FILE`` prints
its public JWK.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cli._common import Alg, print_json, read_public_key, write_private
from ledger.keys import SigningKey

app = typer.Typer(help="Keys as JWK files (EdDSA, ES256).", no_args_is_help=True)


@app.command("new")
def new(
    alg: Alg = typer.Option(..., "--alg", help="EdDSA (Ed25519) or ES256 (P-256)."),
    out: Path = typer.Option(..., "--out", help="File for the private JWK (mode 0600)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
    as_json: bool = typer.Option(False, "--json", help="Print {ok, path, kid, alg, public_jwk} on stdout."),
) -> None:
    """Generate a key pair and write the private JWK to --out."""
    key = SigningKey.generate(alg.value)
    write_private(out, json.dumps(key.to_private_jwk(), indent=2) + "\n", force=force, what="key file",
                  exists_hint="; use --force to replace it")
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
