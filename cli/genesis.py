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

Private files are written with mode 0600. With ``--entry`` (public validator entries
from ``imi node init --json``) and ``--trustee-jwk`` (public trustee keys) it writes only
``genesis.json``, from public keys: the genesis ceremony of docs/deploy.md.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from cli._common import fail, print_json
from ledger.errors import BlockError, LedgerError
from ledger.genesis import DEFAULT_POLICY, Genesis
from ledger.keys import SigningKey
from ledger.validators import Validator, ValidatorSet
from node import tls

app = typer.Typer(help="Create a consortium genesis.", no_args_is_help=True)

LOOPBACK = "127.0.0.1"


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback TCP ports (held open together while picking)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((LOOPBACK, 0))
            sockets.append(s)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def create_consortium(
    directory: Path,
    *,
    validators: int,
    trustees: int,
    threshold: int,
    chain_id: str,
    base_port: int | None = None,
    heartbeat_ms: int | None = None,
    hosts: Sequence[str] = (),
) -> Genesis:
    """Generate keys, certificates, node directories and the genesis under ``directory``.

    ``hosts`` (one per validator, e.g. container names) replace the loopback host in
    each validator's transport address, as its peers dial it.
    """
    if validators < 1 or trustees < 1 or not 1 <= threshold <= trustees:
        raise ValueError("need validators >= 1, trustees >= 1 and 1 <= threshold <= trustees")
    if hosts and len(hosts) != validators:
        raise ValueError(f"give one --host per validator ({validators}), not {len(hosts)}")
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "genesis.json").exists():
        raise FileExistsError(f"{directory / 'genesis.json'} exists; pick an empty directory")
    if base_port is not None:
        ports = [base_port + i for i in range(2 * validators)]
    else:
        ports = free_ports(2 * validators)
    members: list[Validator] = []
    nodes: list[tuple[str, Path, dict[str, Any]]] = []
    for i in range(validators):
        name = f"v{i}"
        node_dir = directory / "validators" / name
        consensus = SigningKey.generate()
        key_pem, cert_pem = tls.generate_identity(name)
        write_private(node_dir / "consensus_key.jwk", json.dumps(consensus.to_private_jwk()).encode())
        write_private(node_dir / "tls_key.pem", key_pem)
        (node_dir / "tls_cert.pem").write_bytes(cert_pem)
        (directory / "certs").mkdir(exist_ok=True)
        (directory / "certs" / f"{name}.pem").write_bytes(cert_pem)
        listen = f"{hosts[i] if hosts else LOOPBACK}:{ports[2 * i]}"
        api = f"{LOOPBACK}:{ports[2 * i + 1]}"
        members.append(Validator(name, consensus.public_key, 1, listen, tls.spki_sha256_of_cert(cert_pem)))
        nodes.append((name, node_dir, {"name": name, "listen": listen, "api": api}))
    trustee_keys = [SigningKey.generate() for _ in range(trustees)]
    for i, key in enumerate(trustee_keys):
        write_private(directory / "trustees" / f"trustee-{i}.jwk", json.dumps(key.to_private_jwk()).encode())
    policy = dict(DEFAULT_POLICY)
    if heartbeat_ms is not None:
        policy["heartbeat_ms"] = heartbeat_ms
    genesis = Genesis(
        chain_id=chain_id,
        time_ms=int(time.time() * 1000),
        validators=ValidatorSet.of(members),
        trustees=tuple(k.public_key for k in trustee_keys),
        trustee_threshold=threshold,
        policy=policy,
    )
    (directory / "genesis.json").write_text(genesis.dumps())
    for _name, node_dir, config in nodes:
        shutil.copy(directory / "genesis.json", node_dir / "genesis.json")
        shutil.copytree(directory / "certs", node_dir / "certs", dirs_exist_ok=True)
        config.update({"genesis": "genesis.json", "certs": "certs", "data": "data"})
        (node_dir / "node.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    return genesis


def assemble_genesis(
    directory: Path,
    *,
    entries: Sequence[Path],
    trustee_jwks: Sequence[Path],
    threshold: int,
    chain_id: str,
    heartbeat_ms: int | None = None,
) -> Genesis:
    """Write ``directory/genesis.json`` from public validator entries (``imi node init --json``)
    and public trustee JWKs; no private key is generated or seen (the genesis ceremony).

    Raises ValueError (unreadable or invalid input) or FileExistsError.
    """
    if (directory / "genesis.json").exists():
        raise FileExistsError(f"{directory / 'genesis.json'} exists; pick an empty directory")
    try:
        validators = [json.loads(path.read_text()) for path in entries]
        trustee_keys = [json.loads(path.read_text()) for path in trustee_jwks]
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read an entry or trustee key: {exc}") from exc
    if any(isinstance(k, dict) and "d" in k for k in trustee_keys):
        raise ValueError("a trustee JWK holds a private key; pass public keys (imi key public)")
    policy = dict(DEFAULT_POLICY)
    if heartbeat_ms is not None:
        policy["heartbeat_ms"] = heartbeat_ms
    try:
        genesis = Genesis.from_json({
            "chain_id": chain_id, "time_ms": int(time.time() * 1000), "validators": validators,
            "trustees": trustee_keys, "trustee_threshold": threshold, "policy": policy,
        })
    except BlockError as exc:
        raise ValueError(str(exc)) from exc
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "genesis.json").write_text(genesis.dumps())
    return genesis


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
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Generate a genesis with validator, TLS and trustee keys, or (--entry, --trustee-jwk)
    assemble one from public keys only."""
    if bool(entries) != bool(trustee_jwks):
        fail("--entry and --trustee-jwk go together", reason="bad-arguments", as_json=as_json)
    if threshold > (len(trustee_jwks) or trustees):
        fail(f"threshold {threshold} exceeds {len(trustee_jwks) or trustees} trustees", reason="bad-threshold",
             as_json=as_json)
    try:
        if entries:
            genesis = assemble_genesis(directory, entries=entries, trustee_jwks=trustee_jwks,
                                       threshold=threshold, chain_id=chain_id, heartbeat_ms=heartbeat_ms)
        else:
            genesis = create_consortium(directory, validators=validators, trustees=trustees,
                                        threshold=threshold, chain_id=chain_id, base_port=base_port,
                                        heartbeat_ms=heartbeat_ms, hosts=hosts)
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
            "trustee_threshold": threshold, "policy": dict(DEFAULT_POLICY),
        })
    except (OSError, ValueError, LedgerError) as exc:
        fail(f"cannot assemble the genesis: {exc}", reason="bad-genesis", as_json=as_json)
    directory.mkdir(parents=True, exist_ok=True)
    for i, key in enumerate(trustee_keys):
        write_private(directory / "trustees" / f"trustee-{i}.jwk", json.dumps(key.to_private_jwk()).encode())
    (directory / "genesis.json").write_text(genesis.dumps())
    summary = {"ok": True, "genesis_hash": genesis.hash.hex(), "validators": len(genesis.validators)}
    if as_json:
        print_json(summary)
    else:
        print(f"genesis {genesis.hash.hex()} with {len(genesis.validators)} validators in {directory}")
