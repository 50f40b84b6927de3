"""`imi genesis`: Create a consortium genesis and every key it needs (devnet / bootstrap).

``imi genesis new`` writes, under ``--dir``::

    genesis.json                    the genesis (hash included)
    certs/<name>.pem                every validator's TLS certificate (trust anchors)
    trustees/trustee-<i>.jwk        trustee private keys (k-of-n governance)
    validators/<name>/              one self-contained node directory per validator:
        node.json                   config (name, listen, api, data dir, ...)
        consensus_key.jwk           Ed25519 private JWK (signs votes and proposals)
        tls_key.pem, tls_cert.pem   P-256 TLS identity, pinned by SPKI digest in the genesis
        genesis.json, certs/        copies, so the directory can be moved to another host

Private files are written with mode 0600, atomically and durably (:mod:`cli._consortium`).
With ``--entry`` (public validator entries from ``imi node init --json``) and
``--trustee-jwk`` (public trustee keys) it writes only ``genesis.json``, from public
keys: the genesis ceremony of docs/deploy.md.

A chain is closed unless asked otherwise: the devnet-only transaction types need
``--devnet`` (``imi devnet up`` passes it; the ceremony refuses it), and
self-registered DIDs (policy ``self_register_dids``) are on for a devnet and off
otherwise, so a DID is created through an accredited registrar
(``--self-register-dids`` opens it explicitly).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from cli._common import fail, print_json
from cli._consortium import assemble_genesis, create_consortium, genesis_policy, write_trustee_keys
from ledger.errors import LedgerError
from ledger.files import PUBLIC_FILE_MODE, write_atomic
from ledger.genesis import Genesis
from ledger.keys import SigningKey

app = typer.Typer(help="Create a consortium genesis.", no_args_is_help=True)


@app.command("new")
def new(
    directory: Path = typer.Option(..., "--dir", help="Output directory (must not hold a genesis)."),
    validators: int = typer.Option(4, "--validators", min=1, max=100, help="Number of validators."),
    trustees: int = typer.Option(3, "--trustees", min=1, max=32, help="Number of trustee keys."),
    threshold: int = typer.Option(2, "--threshold", min=1, help="Trustee signatures required (k of n)."),
    chain_id: str = typer.Option("imi-devnet", "--chain-id", help="Chain identifier."),
    base_port: int | None = typer.Option(None, "--base-port", min=1024, max=65000,
                                         help="Validator i listens on base+2i, its API on base+2i+1 "
                                         "(default: free loopback ports)."),
    heartbeat_ms: int | None = typer.Option(None, "--heartbeat-ms", min=100,
                                            help="Empty-block interval when idle (policy)."),
    hosts: list[str] = typer.Option([], "--host", help="Transport host of validator i, as peers dial "
                                    "it (repeat once per validator; default 127.0.0.1)."),
    entries: list[Path] = typer.Option([], "--entry", help="Ceremony: a validator's public entry "
                                       "(imi node init --json); repeat per validator. Needs --trustee-jwk."),
    trustee_jwks: list[Path] = typer.Option([], "--trustee-jwk", help="Ceremony: a trustee's public "
                                            "JWK (imi key public); repeat per trustee. Needs --entry."),
    devnet: bool = typer.Option(False, "--devnet", help="Admit the devnet-only transaction types "
                                "(test.note: anyone with a key may write). Not with --entry."),
    self_register: bool | None = typer.Option(None, "--self-register-dids/--no-self-register-dids",
                                              help="Policy: citizens may create their own DID "
                                              "(default: only with --devnet; otherwise through a registrar)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Generate a genesis with validator, TLS and trustee keys, or (--entry, --trustee-jwk)
    assemble one from public keys only."""
    if bool(entries) != bool(trustee_jwks):
        fail("--entry and --trustee-jwk go together", reason="bad-arguments", as_json=as_json)
    if devnet and entries:
        fail("--devnet is for local test chains, not the genesis ceremony", reason="bad-arguments",
             as_json=as_json)
    if threshold > (len(trustee_jwks) or trustees):
        fail(f"threshold {threshold} exceeds {len(trustee_jwks) or trustees} trustees", reason="bad-threshold",
             as_json=as_json)
    try:
        if entries:
            genesis = assemble_genesis(directory, entries=entries, trustee_jwks=trustee_jwks,
                                       threshold=threshold, chain_id=chain_id, heartbeat_ms=heartbeat_ms,
                                       self_register_dids=bool(self_register))
        else:
            genesis = create_consortium(directory, validators=validators, trustees=trustees,
                                        threshold=threshold, chain_id=chain_id, base_port=base_port,
                                        heartbeat_ms=heartbeat_ms, hosts=hosts, devnet=devnet,
                                        self_register_dids=self_register)
    except (FileExistsError, ValueError) as exc:
        fail(str(exc), reason="bad-arguments", as_json=as_json)
    summary = {
        "ok": True,
        "dir": str(directory),
        "chain_id": genesis.chain_id,
        "genesis_hash": genesis.hash.hex(),
        "validators": [{"name": v.name, "address": v.address, "key_id": v.key_id}
                       for v in genesis.validators.validators],
    }
    if as_json:
        print_json(summary)
    else:
        print(f"genesis {genesis.hash.hex()} for chain {genesis.chain_id} in {directory}")
        for v in genesis.validators.validators:
            print(f"  {v.name}  {v.address}  {v.key_id}")


@app.command("assemble")
def assemble(
    entries: list[Path] = typer.Argument(..., help="Validator entries (JSON from `imi node init --json`)."),
    directory: Path = typer.Option(..., "--dir", help="Output directory (must not hold a genesis)."),
    trustees: int = typer.Option(3, "--trustees", min=1, max=32, help="Number of trustee keys to generate."),
    threshold: int = typer.Option(2, "--threshold", min=1, help="Trustee signatures required (k of n)."),
    chain_id: str = typer.Option("imi", "--chain-id", help="Chain identifier."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Build a genesis for a consortium across hosts from the operators' validator entries."""
    if threshold > trustees:
        fail(f"threshold {threshold} exceeds {trustees} trustees", reason="bad-threshold", as_json=as_json)
    if (directory / "genesis.json").exists():
        fail(f"{directory / 'genesis.json'} exists", reason="exists", as_json=as_json)
    try:
        members = [json.loads(p.read_text()) for p in entries]
        trustee_keys = [SigningKey.generate() for _ in range(trustees)]
        genesis = Genesis.from_json({
            "chain_id": chain_id, "time_ms": int(time.time() * 1000), "validators": members,
            "trustees": [k.public_key.to_jwk() for k in trustee_keys],
            "trustee_threshold": threshold,
            "policy": genesis_policy(heartbeat_ms=None, self_register_dids=False),
        })
        directory.mkdir(parents=True, exist_ok=True)
        write_trustee_keys(directory, trustee_keys)
        write_atomic(directory / "genesis.json", genesis.dumps(), mode=PUBLIC_FILE_MODE)
    except (OSError, ValueError, LedgerError) as exc:
        fail(f"cannot assemble the genesis: {exc}", reason="bad-genesis", as_json=as_json)
    summary = {"ok": True, "genesis_hash": genesis.hash.hex(), "validators": len(genesis.validators)}
    if as_json:
        print_json(summary)
    else:
        print(f"genesis {genesis.hash.hex()} with {len(genesis.validators)} validators in {directory}")
