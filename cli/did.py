"""`imi did`: did:imi identifiers — create, resolve, update, rotate, deactivate, recover.

Writes go to a node as transactions (``POST /v1/transactions?wait=commit``); reads go
through the light client, so ``resolve`` prints only what a commit certificate of the
genesis' validators (followed through certified changes) vouches for.

Exit codes: 0 ok, 1 rejected / does not verify (one line with the reason), 2 usage.
The helpers here (``submit``, ``verified_client``) are shared by ``imi gov`` and
``imi issuer``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import typer

from cli._common import fail, print_json
from cli.key import read_signing_key, read_text_file
from identity import did as didmod
from identity.errors import IdentityError
from identity.ledger_client import NodeClient
from identity.ledger_constants import FRESHNESS_MS_DEFAULT
from identity.light_client import HttpFetcher, LightClient
from ledger.encoding import Value
from ledger.errors import LedgerError
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from ledger.tx import Transaction

app = typer.Typer(help="did:imi identifiers: create, resolve, rotate, recover.", no_args_is_help=True)

NODE_OPTION = typer.Option(..., "--node", envvar="IMI_NODE", help="Node API base URL.")
GENESIS_OPTION = typer.Option(None, "--genesis", envvar="IMI_GENESIS",
                              help="Trusted genesis.json (the light client's root of trust).")
JSON_OPTION = typer.Option(False, "--json", help="Machine-readable output.")


# --- shared plumbing (also used by cli.gov and cli.issuer) ----------------------------------
def http_client() -> Any:
    """The HTTP client for node calls (tests replace this with a mock transport)."""
    import httpx

    return httpx.Client(timeout=40.0)


def node_client(node: str) -> NodeClient:
    return NodeClient(node, client=http_client())


def usage(message: str) -> NoReturn:
    """A usage error: one line on stderr, exit 2."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(2)


def refuse(exc: Exception, as_json: bool) -> NoReturn:
    fail(str(exc), reason=getattr(exc, "reason", "invalid"), as_json=as_json)


def submit(node: str, type_: str, sender: str, payload: dict[str, Value], keys: list[SigningKey],
           as_json: bool, *, build: Callable[[Transaction], Transaction] | None = None) -> dict[str, Any]:
    """Build, sign, submit and wait for commit; exit 1 with the node's reason if refused."""
    client = node_client(node)
    try:
        tx = client.build(type_, sender, payload, *keys)
        answer = client.submit(build(tx) if build else tx)
    except (IdentityError, LedgerError) as exc:
        refuse(exc, as_json)
    finally:
        client.close()
    return answer


def read_genesis(path: Path | None) -> Genesis:
    if path is None:
        usage("--genesis FILE (or IMI_GENESIS) is required: it is the root of trust")
    try:
        return Genesis.loads(read_text_file(path, "genesis"))
    except LedgerError as exc:
        fail(f"genesis {str(path)!r}: {exc}", reason=exc.reason)


def verified_client(node: str, genesis: Path | None, freshness_ms: int) -> LightClient:
    if freshness_ms <= 0:
        usage("--freshness-ms must be positive")
    return LightClient(read_genesis(genesis), HttpFetcher(node, client=http_client()), freshness_ms)


def now_ms() -> int:
    return int(time.time() * 1000)


def jwk_of(key: SigningKey) -> dict[str, Value]:
    return dict(key.public_key.to_jwk())


def commitment_of(key: SigningKey) -> bytes:
    return didmod.key_commitment(key.public_key.to_jwk())


def load_or_create_key(path: Path, what: str) -> SigningKey:
    """Read a private JWK, or create one (mode 0600) if the file does not exist yet."""
    if path.exists():
        return read_signing_key(path, what)
    key = SigningKey.generate()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(key.to_private_jwk(), handle)
    except OSError as exc:
        fail(f"cannot write {what} {str(path)!r}: {exc.strerror or exc}", reason="bad-file")
    return key


def parse_service(text: str) -> dict[str, Value]:
    parts = text.split(",", 2)
    if len(parts) != 3:
        usage(f"--service must be ID,TYPE,ENDPOINT, got {text!r}")
    return {"id": parts[0], "type": parts[1], "endpoint": parts[2]}


def check_did_arg(did: str) -> str:
    if not didmod.is_did(did):
        usage(f"{did!r} is not a did:imi identifier")
    return did


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
    from cli.key import read_public_key

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
    key: Path = typer.Option(..., "--key", help="Current controller private JWK."),
    node: str = NODE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Deactivate a DID for good."""
    check_did_arg(did)
    answer = submit(node, "did.deactivate", did, {}, [read_signing_key(key, "key")], as_json)
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
