"""`imi did`: did:imi identifiers — create, resolve, update, rotate, deactivate, recover.

Writes go to a node as transactions (``POST /v1/transactions?wait=commit``); reads go
through the light client, so ``resolve`` prints only what a commit certificate of the
genesis' validators (followed through certified changes) vouches for.

Exit codes: 0 ok, 1 rejected / does not verify (one line with the reason), 2 usage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cli._common import (
    load_or_create_key,
    print_json,
    read_public_key,
    read_signing_key,
    refuse,
    usage,
)
from cli._ledger_client import (
    GENESIS_OPTION,
    JSON_OPTION,
    NODE_OPTION,
    check_did_arg,
    now_ms,
    submit,
    verified_client,
)
from identity import did as didmod
from identity.errors import IdentityError
from identity.ledger_constants import FRESHNESS_MS_DEFAULT
from ledger.encoding import Value
from ledger.keys import SigningKey

app = typer.Typer(help="did:imi identifiers: create, resolve, rotate, recover.", no_args_is_help=True)


def jwk_of(key: SigningKey) -> dict[str, Value]:
    return dict(key.public_key.to_jwk())


def commitment_of(key: SigningKey) -> bytes:
    return didmod.key_commitment(key.public_key.to_jwk())


def parse_service(text: str) -> dict[str, Value]:
    parts = text.split(",", 2)
    if len(parts) != 3:
        usage(f"--service must be ID,TYPE,ENDPOINT, got {text!r}")
    return {"id": parts[0], "type": parts[1], "endpoint": parts[2]}


def _done(as_json: bool, result: dict[str, Any], last_line: str) -> None:
    if as_json:
        print_json(result)
    else:
        print(last_line)


# --- commands ---------------------------------------------------------------------------------------
@app.command()
def create(
    key: Path = typer.Option(..., "--key", help="Inception private JWK file (becomes the controller key)."),
    next_key: Path | None = typer.Option(None, "--next-key",
                                            help="Next (pre-rotation) private JWK; created if missing. "
                                                 "Default: KEY.next"),
    service: list[str] = typer.Option([], "--service", help="ID,TYPE,ENDPOINT (repeatable)."),
    registrar: str | None = typer.Option(None, "--registrar", help="Registrar issuer DID (when "
                                            "self-registration is disabled)."),
    registrar_key: Path | None = typer.Option(None, "--registrar-key", help="Registrar private JWK."),
    node: str = NODE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Register a DID for KEY; waits for commit and prints the DID on its last line."""
    if (registrar is None) != (registrar_key is None):
        usage("--registrar and --registrar-key go together")
    inception = read_signing_key(key, "key")
    nxt = load_or_create_key(next_key or Path(str(key) + ".next"), "next key")
    commitment = commitment_of(nxt)
    did = didmod.derive_did(inception.public_key.to_jwk(), commitment)
    payload: dict[str, Value] = {"jwk": jwk_of(inception), "next_key_commitment": commitment}
    if service:
        payload["services"] = [parse_service(s) for s in service]
    keys = [inception]
    if registrar is not None and registrar_key is not None:
        payload["registrar"] = check_did_arg(registrar)
        keys.append(read_signing_key(registrar_key, "registrar key"))
    answer = submit(node, "did.create", did, payload, keys, as_json)
    _done(as_json, {"ok": True, "did": did, "height": answer.get("height")}, did)


@app.command()
def resolve(
    did: str = typer.Argument(..., help="The did:imi to resolve."),
    node: str = NODE_OPTION,
    genesis: Path | None = GENESIS_OPTION,
    version: int | None = typer.Option(None, "--version", min=1, help="A past version of the document."),
    height: int | None = typer.Option(None, "--height", min=1, help="State at a past height."),
    freshness_ms: int = typer.Option(FRESHNESS_MS_DEFAULT, "--freshness-ms",
                                     help="Reject answers whose header is older than this."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Print the light-client-verified DID document; exit 1 with a reason if it does not verify."""
    check_did_arg(did)
    client = verified_client(node, genesis, freshness_ms)
    try:
        result = client.resolve_did(did, now_ms(), version=version, height=height)
    except IdentityError as exc:
        refuse(exc, as_json)
    print_json(result if as_json else result["didDocument"])


@app.command()
def update(
    did: str = typer.Argument(...),
    key: Path = typer.Option(..., "--key", help="Current controller private JWK."),
    service: list[str] = typer.Option([], "--service", help="ID,TYPE,ENDPOINT (repeatable); replaces all."),
    clear_services: bool = typer.Option(False, "--clear-services", help="Remove every service."),
    assertion_key: list[Path] = typer.Option([], "--assertion-key",
                                             help="Extra assertion-method public JWK (repeatable); replaces "
                                                  "extra keys."),
    node: str = NODE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Replace the services and/or extra keys of a DID (signed by its current key)."""
    check_did_arg(did)
    payload: dict[str, Value] = {}
    if service or clear_services:
        payload["services"] = [parse_service(s) for s in service]
    if assertion_key:
        payload["keys"] = [{"jwk": dict(read_public_key(p, "assertion key").to_jwk()),
                            "purposes": ["assertionMethod"]} for p in assertion_key]
    if not payload:
        usage("nothing to update (--service, --clear-services, --assertion-key)")
    answer = submit(node, "did.update", did, payload, [read_signing_key(key, "key")], as_json)
    _done(as_json, {"ok": True, "did": did, "height": answer.get("height")}, did)


@app.command()
def rotate(
    did: str = typer.Argument(...),
    next_key: Path = typer.Option(..., "--next-key", help="The committed next private JWK (becomes current)."),
    new_next_key: Path = typer.Option(..., "--new-next-key", help="New next private JWK; created if missing."),
    node: str = NODE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Pre-rotation: reveal the committed next key (it signs) and commit to a new one."""
    check_did_arg(did)
    nxt = read_signing_key(next_key, "next key")
    new_next = load_or_create_key(new_next_key, "new next key")
    payload: dict[str, Value] = {"jwk": jwk_of(nxt), "next_key_commitment": commitment_of(new_next)}
    answer = submit(node, "did.rotate", did, payload, [nxt], as_json)
    _done(as_json, {"ok": True, "did": did, "height": answer.get("height")}, did)


@app.command()
def deactivate(
    did: str = typer.Argument(...),
    next_key: Path = typer.Option(..., "--next-key", help="The committed next (pre-rotation) private JWK: "
                                  "as for a rotation, the current key alone cannot deactivate."),
    node: str = NODE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Deactivate a DID for good (signed by its pre-rotated next key)."""
    check_did_arg(did)
    nxt = read_signing_key(next_key, "next key")
    answer = submit(node, "did.deactivate", did, {"jwk": jwk_of(nxt)}, [nxt], as_json)
    _done(as_json, {"ok": True, "did": did, "height": answer.get("height")}, did)


@app.command()
def recover(
    did: str = typer.Argument(...),
    new_key: Path = typer.Option(..., "--new-key", help="Holder's new private JWK; created if missing."),
    new_next_key: Path = typer.Option(..., "--new-next-key", help="New next private JWK; created if missing."),
    issuer: str = typer.Option(..., "--issuer", help="DID of the issuer accredited for recovery."),
    issuer_key: Path = typer.Option(..., "--issuer-key", help="Issuer's assertion private JWK."),
    node: str = NODE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Re-bind a DID whose keys are all lost: the holder's new key and a recovery issuer co-sign."""
    check_did_arg(did)
    check_did_arg(issuer)
    new = load_or_create_key(new_key, "new key")
    new_next = load_or_create_key(new_next_key, "new next key")
    payload: dict[str, Value] = {"jwk": jwk_of(new), "next_key_commitment": commitment_of(new_next),
                                 "issuer": issuer}
    answer = submit(node, "did.recover", did, payload, [new, read_signing_key(issuer_key, "issuer key")],
                    as_json)
    _done(as_json, {"ok": True, "did": did, "height": answer.get("height")}, did)
