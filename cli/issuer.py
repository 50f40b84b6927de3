"""`imi issuer`: accredited issuer operations — credential types, anchors, status lists —
and light-client-verified reads of issuers, types and lists.

Writes are signed by an assertion key of the issuer's DID (``--did``, ``--key``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from cli._common import (
    parse_predicates,
    print_json,
    read_signing_key,
    read_text_file,
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
from identity.anchors import anchor_digest, new_salt
from identity.errors import IdentityError
from identity.ledger_constants import FRESHNESS_MS_DEFAULT
from identity.status_list import STATUS_NAMES
from ledger.encoding import Value
from ledger.errors import LedgerError

app = typer.Typer(help="Accredited issuer operations.", no_args_is_help=True)

DID_OPTION = typer.Option(..., "--did", help="The issuer's DID.")
KEY_OPTION = typer.Option(..., "--key", help="An assertion private JWK of the issuer's DID.")
FRESH_OPTION = typer.Option(FRESHNESS_MS_DEFAULT, "--freshness-ms", help="Maximum header age.")
_STATUS_BY_NAME = {name: code for code, name in STATUS_NAMES.items()}


def _issue(type_: str, did: str, key: Path, payload: dict[str, Value], node: str, as_json: bool,
           extra: dict[str, object] | None = None) -> None:
    answer = submit(node, type_, check_did_arg(did), payload, [read_signing_key(key, "issuer key")], as_json)
    result = {"ok": True, "type": type_, "height": answer.get("height"), **(extra or {})}
    if as_json:
        print_json(result)
    else:
        print(f"{type_} committed at height {answer.get('height')}")
        for name, value in (extra or {}).items():
            print(f"{name}: {value}")


@app.command("vct-publish")
def vct_publish(
    vct: str = typer.Option(..., "--vct"),
    name: str = typer.Option(..., "--name"),
    claim: list[str] = typer.Option(..., "--claim", help="Claim name (repeatable)."),
    sd: list[str] | None = typer.Option(None, "--sd", help="Selectively disclosable claim (repeatable; "
                                           "default: every claim SD-JWT VC allows)."),
    predicate: list[str] = typer.Option([], "--predicate", help="NAME=T1,T2 e.g. age_equal_or_over=18,65."),
    did: str = DID_OPTION, key: Path = KEY_OPTION, node: str = NODE_OPTION, as_json: bool = JSON_OPTION,
) -> None:
    """Publish (or version) a credential type the issuer is accredited for."""
    payload: dict[str, Value] = {"vct": vct, "name": name, "claims": list(claim)}
    if sd:
        payload["selectively_disclosable"] = list(sd)
    predicates = parse_predicates(predicate)
    if predicates:
        payload["predicates"] = predicates  # type: ignore[assignment]
    _issue("vct.publish", did, key, payload, node, as_json)


@app.command()
def anchor(
    credential: Path = typer.Option(..., "--credential", help="File with the issued SD-JWT."),
    salt_hex: str | None = typer.Option(None, "--salt-hex", help="Anchor salt (hex); random if omitted."),
    did: str = DID_OPTION, key: Path = KEY_OPTION, node: str = NODE_OPTION, as_json: bool = JSON_OPTION,
) -> None:
    """Record a salted digest of an issued credential (no personal data); prints digest and salt."""
    text = read_text_file(credential, "credential").strip()
    try:
        salt = bytes.fromhex(salt_hex) if salt_hex is not None else new_salt()
        digest = anchor_digest(text, salt)
    except ValueError:
        usage("--salt-hex must be hex")
    except LedgerError as exc:  # a salt shorter than the minimum
        usage(str(exc))
    _issue("anchor.put", did, key, {"digests": [digest]}, node, as_json,
           {"digest": digest.hex(), "salt": salt.hex()})


@app.command("status-create")
def status_create(
    list_id: str = typer.Option(..., "--list-id"),
    bits: int = typer.Option(2, "--bits", help="1 (valid/invalid) or 2 (also suspended)."),
    size: int = typer.Option(1 << 16, "--size", help="Entries (multiple of 8)."),
    did: str = DID_OPTION, key: Path = KEY_OPTION, node: str = NODE_OPTION, as_json: bool = JSON_OPTION,
) -> None:
    """Create a Token Status List owned by the issuer."""
    _issue("status.create_list", did, key, {"list_id": list_id, "bits": bits, "size": size}, node, as_json)


@app.command("status-set")
def status_set(
    list_id: str = typer.Option(..., "--list-id"),
    entry: list[str] = typer.Option(..., "--set", help="INDEX=valid|invalid|suspended (repeatable)."),
    did: str = DID_OPTION, key: Path = KEY_OPTION, node: str = NODE_OPTION, as_json: bool = JSON_OPTION,
) -> None:
    """Suspend, reinstate or revoke entries (revocation is final)."""
    updates: list[Value] = []
    for item in entry:
        index, _, status = item.partition("=")
        if not index.isdigit() or status not in _STATUS_BY_NAME:
            usage(f"--set must be INDEX=valid|invalid|suspended, got {item!r}")
        updates.append([int(index), _STATUS_BY_NAME[status]])
    _issue("status.set", did, key, {"list_id": list_id, "updates": updates}, node, as_json)


@app.command()
def show(
    did: str = typer.Argument(..., help="Issuer DID."),
    node: str = NODE_OPTION, genesis: Path | None = GENESIS_OPTION, freshness_ms: int = FRESH_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print {ok, did, issuer: record}; failures as JSON."),
) -> None:
    """Print the verified accreditation record of an issuer."""
    client = verified_client(node, genesis, freshness_ms)
    try:
        record = client.issuer(check_did_arg(did), now_ms())
    except IdentityError as exc:
        refuse(exc, as_json)
    print_json({"ok": True, "did": did, "issuer": record} if as_json else record)


@app.command("vct-show")
def vct_show(
    vct: str = typer.Argument(..., help="Credential type (vct)."),
    node: str = NODE_OPTION, genesis: Path | None = GENESIS_OPTION, freshness_ms: int = FRESH_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print {ok, vct, type: definition}; failures as JSON."),
) -> None:
    """Print the verified definition of a credential type."""
    client = verified_client(node, genesis, freshness_ms)
    try:
        record = client.credential_type(vct, now_ms())
    except IdentityError as exc:
        refuse(exc, as_json)
    print_json({"ok": True, "vct": vct, "type": record} if as_json else record)


@app.command("status-get")
def status_get(
    list_id: str = typer.Argument(..., help="Status list id."),
    index: int | None = typer.Option(None, "--index", min=0, help="Print only this entry's status."),
    node: str = NODE_OPTION, genesis: Path | None = GENESIS_OPTION, freshness_ms: int = FRESH_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print {ok, list_id, ...}: the list, or with --index "
                                 "{index, status, code}; failures as JSON."),
) -> None:
    """Print a verified status list as the draft's {bits, lst} (or one entry's status)."""
    client = verified_client(node, genesis, freshness_ms)
    try:
        if index is not None:
            code = client.status(list_id, index, now_ms())
            name = STATUS_NAMES.get(code, "application-specific")
            if as_json:
                print_json({"ok": True, "list_id": list_id, "index": index, "status": name, "code": code})
            else:
                print(name)
            return
        record = client.status_list(list_id, now_ms())
    except IdentityError as exc:
        refuse(exc, as_json)
    answer = {"list_id": list_id, "issuer": record["issuer"], "version": record["version"],
              "status_list": record["status_list"]}
    print_json({"ok": True, **answer} if as_json else answer)
