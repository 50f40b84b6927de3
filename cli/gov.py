"""`imi gov`: trustee governance transactions, signed k-of-n.

Every command takes the trustee private keys that sign (``--trustee-key``, repeated
at least ``threshold`` times), submits with sender ``gov`` and waits for commit.
Validator-set changes take effect two blocks after they commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cli._common import print_json, read_public_key, read_signing_key, read_text_file, usage
from cli._ledger_client import JSON_OPTION, NODE_OPTION, check_did_arg, submit
from identity.ledger_constants import GOV_SENDER
from ledger.encoding import Value
from ledger.errors import KeyError_
from ledger.keys import SigningKey, b64url_decode

app = typer.Typer(help="Trustee governance transactions (k-of-n).", no_args_is_help=True)

TRUSTEE_KEYS = typer.Option(..., "--trustee-key", help="Trustee private JWK (repeat for k of n).")


def _trustees(paths: list[Path]) -> list[SigningKey]:
    if not paths:
        usage("at least one --trustee-key is required")
    return [read_signing_key(p, "trustee key") for p in paths]


def _gov(type_: str, payload: dict[str, Value], trustee_key: list[Path], node: str, as_json: bool) -> None:
    answer = submit(node, type_, GOV_SENDER, payload, _trustees(trustee_key), as_json)
    if as_json:
        print_json({"ok": True, "type": type_, "height": answer.get("height")})
    else:
        print(f"{type_} committed at height {answer.get('height')}")


@app.command()
def accredit(
    did: str = typer.Argument(..., help="Issuer DID (must exist and be active)."),
    name: str = typer.Option(..., "--name", help="Issuer's display name."),
    vct: list[str] = typer.Option(..., "--vct", help="Credential type it may issue (repeatable)."),
    trustee_key: list[Path] = TRUSTEE_KEYS, node: str = NODE_OPTION, as_json: bool = JSON_OPTION,
) -> None:
    """Accredit an issuer DID for a list of vct (or amend an accredited issuer's list)."""
    _gov("gov.issuer_accredit", {"did": check_did_arg(did), "name": name, "vcts": list(vct)},
         trustee_key, node, as_json)


def _move(action: str) -> None:
    def command(
        did: str = typer.Argument(..., help="Issuer DID."),
        trustee_key: list[Path] = TRUSTEE_KEYS, node: str = NODE_OPTION, as_json: bool = JSON_OPTION,
    ) -> None:
        _gov(f"gov.issuer_{action}", {"did": check_did_arg(did)}, trustee_key, node, as_json)
    command.__doc__ = {"suspend": "Suspend an accredited issuer (it can still revoke).",
                       "reinstate": "Reinstate a suspended issuer.",
                       "remove": "Remove an issuer for good."}[action]
    app.command(name=action)(command)


for _action in ("suspend", "reinstate", "remove"):
    _move(_action)


@app.command("service-register")
def service_register(
    did: str = typer.Argument(..., help="The service's DID (must exist and be active)."),
    name_en: str = typer.Option(..., "--name-en", help="Its name in English."),
    name_zh: str = typer.Option(..., "--name-zh", help="Its name in Chinese (zh-CN)."),
    purpose_en: str = typer.Option(..., "--purpose-en", help="Why it asks, in English."),
    purpose_zh: str = typer.Option(..., "--purpose-zh", help="Why it asks, in Chinese (zh-CN)."),
    queries: Path = typer.Option(..., "--queries", help='JSON file: [{"vct": …, "claims": [[claims path], …]}, …]'),
    trustee_key: list[Path] = TRUSTEE_KEYS, node: str = NODE_OPTION, as_json: bool = JSON_OPTION,
) -> None:
    """Register a service (relying party) and what it may ask, or amend a registration."""
    text = read_text_file(queries, "queries file")
    try:
        listed = json.loads(text)
    except ValueError as exc:
        usage(f"queries file is not JSON: {exc}")
    _gov("gov.service_register", {"did": check_did_arg(did), "name": {"en": name_en, "zh-CN": name_zh},
                                  "purpose": {"en": purpose_en, "zh-CN": purpose_zh}, "queries": listed},
         trustee_key, node, as_json)


def _service_move(action: str) -> None:
    def command(
        did: str = typer.Argument(..., help="Service DID."),
        trustee_key: list[Path] = TRUSTEE_KEYS, node: str = NODE_OPTION, as_json: bool = JSON_OPTION,
    ) -> None:
        _gov(f"gov.service_{action}", {"did": check_did_arg(did)}, trustee_key, node, as_json)
    command.__doc__ = {"suspend": "Suspend a registered service (wallets refuse its requests).",
                       "reinstate": "Reinstate a suspended service.",
                       "remove": "Remove a service for good."}[action]
    app.command(name=f"service-{action}")(command)


for _action in ("suspend", "reinstate", "remove"):
    _service_move(_action)


@app.command("policy-set")
def policy_set(
    self_register: bool | None = typer.Option(None, "--self-register/--no-self-register",
                                                 help="May citizens create their own DIDs?"),
    issuer_recovery: bool | None = typer.Option(None, "--issuer-recovery/--no-issuer-recovery",
                                                   help="May a recovery issuer re-bind a DID?"),
    recovery_vct: str | None = typer.Option(None, "--recovery-vct", help="vct required for recovery."),
    heartbeat_ms: int | None = typer.Option(None, "--heartbeat-ms", help="Empty-block interval."),
    trustee_key: list[Path] = TRUSTEE_KEYS, node: str = NODE_OPTION, as_json: bool = JSON_OPTION,
) -> None:
    """Change policy keys (only those given)."""
    policy: dict[str, Value] = {k: v for k, v in {
        "self_register_dids": self_register, "issuer_recovery": issuer_recovery,
        "recovery_vct": recovery_vct, "heartbeat_ms": heartbeat_ms}.items() if v is not None}
    if not policy:
        usage("give at least one policy option")
    _gov("gov.policy_set", {"policy": policy}, trustee_key, node, as_json)


def spki_digest(text: str) -> bytes | None:
    """A 32-byte SPKI digest given as 64 hex digits or as base64url (the genesis form)."""
    try:
        raw = bytes.fromhex(text) if len(text) == 64 else b64url_decode(text)
    except (ValueError, KeyError_):
        return None
    return raw if len(raw) == 32 else None


@app.command("validator-add")
def validator_add(
    name: str = typer.Option(..., "--name"),
    jwk: Path = typer.Option(..., "--jwk", help="Validator's Ed25519 public JWK file."),
    address: str = typer.Option(..., "--address", help="host:port of its validator transport."),
    tls_spki_sha256: str = typer.Option(..., "--tls-spki-sha256",
                                        help="SHA-256 of its TLS SPKI: 64 hex, or base64url as "
                                             "`imi node init` prints it."),
    power: int = typer.Option(1, "--power", min=1),
    trustee_key: list[Path] = TRUSTEE_KEYS, node: str = NODE_OPTION, as_json: bool = JSON_OPTION,
) -> None:
    """Schedule a validator's admission (effective two blocks after commit)."""
    spki = spki_digest(tls_spki_sha256)
    if spki is None:
        usage("--tls-spki-sha256 must be 32 bytes as 64 hex or as base64url (what `imi node init` prints)")
    validator: dict[str, Value] = {"name": name, "jwk": dict(read_public_key(jwk, "validator JWK").to_jwk()),
                                   "power": power, "address": address, "tls_spki_sha256": spki}
    _gov("gov.validator_add", {"validator": validator}, trustee_key, node, as_json)


@app.command("validator-remove")
def validator_remove(
    key_id: str = typer.Argument(..., help="Validator key id (JWK thumbprint)."),
    trustee_key: list[Path] = TRUSTEE_KEYS, node: str = NODE_OPTION, as_json: bool = JSON_OPTION,
) -> None:
    """Schedule a validator's removal (effective two blocks after commit)."""
    _gov("gov.validator_remove", {"key_id": key_id}, trustee_key, node, as_json)


@app.command("trustees-set")
def trustees_set(
    trustee_jwk: list[Path] = typer.Option(..., "--trustee-jwk", help="New trustee public JWK (repeatable)."),
    threshold: int = typer.Option(..., "--threshold", min=1),
    trustee_key: list[Path] = TRUSTEE_KEYS, node: str = NODE_OPTION, as_json: bool = JSON_OPTION,
) -> None:
    """Replace the trustees and their threshold (signed by the current trustees)."""
    keys: list[Value] = [dict(read_public_key(p, "trustee JWK").to_jwk()) for p in trustee_jwk]
    _gov("gov.trustees_set", {"keys": keys, "threshold": threshold}, trustee_key, node, as_json)
