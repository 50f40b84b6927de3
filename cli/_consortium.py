"""Helpers that make a consortium's files: validator directories, genesis, free ports.

One validator directory is written by :func:`write_node_dir` — for ``imi node init``
(an operator on its own host) and for ``imi genesis new`` / ``imi devnet up`` (every
validator of a devnet) alike::

    node.json                   config (name, listen, api, genesis, certs, data)
    consensus_key.jwk           Ed25519 private JWK (signs votes and proposals), mode 0600
    tls_key.pem, tls_cert.pem   P-256 TLS identity (key mode 0600), pinned by SPKI digest
    certs/<name>.pem            its own certificate among the trust anchors

Private files go through :func:`ledger.files.write_atomic`. Names and addresses are
checked first (:func:`check_name`, :func:`check_address`): a name becomes a file
name, so it is a safe word, never a path.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from ledger.constants import VALIDATOR_NAME_CHARS_MAX
from ledger.encoding import Value
from ledger.errors import BlockError
from ledger.files import PUBLIC_FILE_MODE, fsync_directory, write_atomic
from ledger.genesis import DEFAULT_POLICY, Genesis
from ledger.keys import SigningKey
from ledger.validators import Validator, ValidatorSet
from node import tls

LOOPBACK: Final = "127.0.0.1"
PORT_MAX: Final = 65_535
# Free ports are picked below the kernel's ephemeral range (where connect() takes its source
# ports), so no outgoing connection can take a picked port before its server binds it.
PICKED_PORT_LOW: Final = 10_000
EPHEMERAL_RANGE_FILE: Final = "/proc/sys/net/ipv4/ip_local_port_range"
PICK_ATTEMPTS_MAX: Final = 2_000
HOST_CHARS_MAX: Final = 253  # a DNS name's longest text form
# A validator name: a letter or digit, then letters, digits, '.', '_' or '-' (no '/', no '..').
_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{VALIDATOR_NAME_CHARS_MAX - 1}}}")
_HOST = re.compile(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]")


def check_name(name: str) -> str:
    """``name`` if it is a safe validator name, else ValueError saying what is allowed."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"validator name {name!r} must be 1-{VALIDATOR_NAME_CHARS_MAX} letters, digits, "
                         "'.', '_' or '-', starting with a letter or digit (it names files)")
    return name


def check_address(address: str, option: str) -> str:
    """``address`` if it is ``host:port`` with a port in 1..PORT_MAX, else ValueError naming ``option``."""
    host, _, port = address.rpartition(":")
    if not (0 < len(host) <= HOST_CHARS_MAX and _HOST.fullmatch(host)):
        raise ValueError(f"{option} {address!r} must be host:port (host: a name, an IPv4 address or "
                         "[IPv6])")
    if not (port.isascii() and port.isdigit() and 0 < int(port) <= PORT_MAX):
        raise ValueError(f"{option} {address!r}: the port must be 1-{PORT_MAX}")
    return address


def _ephemeral_low() -> int | None:
    """The first port of the kernel's ephemeral range; None where it cannot be read."""
    try:
        with open(EPHEMERAL_RANGE_FILE) as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback TCP ports (held open together while picking).

    Where the kernel's ephemeral range is known (Linux), they are picked at random below it
    (from :data:`PICKED_PORT_LOW`): the ports a devnet's validators and services bind seconds
    later cannot meanwhile become the source port of some outgoing connection, which any
    port the kernel hands out for ``bind(0)`` can. Elsewhere, the kernel picks."""
    low, high = PICKED_PORT_LOW, _ephemeral_low()
    sockets: list[socket.socket] = []
    try:
        if high is not None and high - low >= 4 * count:
            for port in random.sample(range(low, high), min(high - low, PICK_ATTEMPTS_MAX)):
                if len(sockets) == count:
                    break
                s = socket.socket()
                try:
                    s.bind((LOOPBACK, port))
                except OSError:
                    s.close()
                    continue
                sockets.append(s)
        while len(sockets) < count:
            s = socket.socket()
            s.bind((LOOPBACK, 0))
            sockets.append(s)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def write_node_dir(node_dir: Path, *, name: str, listen: str, api: str) -> Validator:
    """Generate one validator's keys and write its directory (layout above); returns its
    public genesis entry. ``node_dir`` is created if needed; its parent must exist."""
    key = SigningKey.generate()
    key_pem, cert_pem = tls.generate_identity(check_name(name))
    (node_dir / "certs").mkdir(parents=True, exist_ok=True)
    write_atomic(node_dir / "consensus_key.jwk", json.dumps(key.to_private_jwk()))
    write_atomic(node_dir / "tls_key.pem", key_pem)
    write_atomic(node_dir / "tls_cert.pem", cert_pem, mode=PUBLIC_FILE_MODE)
    write_atomic(node_dir / "certs" / f"{name}.pem", cert_pem, mode=PUBLIC_FILE_MODE)
    config = {"name": name, "listen": listen, "api": api, "genesis": "genesis.json", "certs": "certs",
              "data": "data"}
    write_atomic(node_dir / "node.json", json.dumps(config, indent=2, sort_keys=True), mode=PUBLIC_FILE_MODE)
    return Validator(name, key.public_key, 1, listen, tls.spki_sha256_of_cert(cert_pem))


def write_trustee_keys(directory: Path, keys: Sequence[SigningKey]) -> None:
    """Each trustee key to ``directory/trustees/trustee-<i>.jwk`` (0600)."""
    (directory / "trustees").mkdir(parents=True, exist_ok=True)
    for i, key in enumerate(keys):
        write_atomic(directory / "trustees" / f"trustee-{i}.jwk", json.dumps(key.to_private_jwk()))


def genesis_policy(*, heartbeat_ms: int | None, self_register_dids: bool) -> dict[str, Value]:
    """The initial policy: the defaults, the idle block interval, and whether citizens may
    create their own DID (false: only through an accredited registrar)."""
    policy = dict(DEFAULT_POLICY)
    policy["self_register_dids"] = self_register_dids
    if heartbeat_ms is not None:
        policy["heartbeat_ms"] = heartbeat_ms
    return policy


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
    devnet: bool = False,
    self_register_dids: bool | None = None,
) -> Genesis:
    """Generate keys, certificates, node directories and the genesis under ``directory``.

    ``hosts`` (one per validator, e.g. container names) replace the loopback host in
    each validator's transport address, as its peers dial it. ``devnet`` admits the
    devnet-only transaction types; ``self_register_dids`` defaults to ``devnet``.
    """
    if validators < 1 or trustees < 1 or not 1 <= threshold <= trustees:
        raise ValueError("need validators >= 1, trustees >= 1 and 1 <= threshold <= trustees")
    if hosts and len(hosts) != validators:
        raise ValueError(f"give one --host per validator ({validators}), not {len(hosts)}")
    ports = [base_port + i for i in range(2 * validators)] if base_port is not None else free_ports(2 * validators)
    listens = [check_address(f"{hosts[i] if hosts else LOOPBACK}:{ports[2 * i]}", "--host")
               for i in range(validators)]  # every input checked before the first file is written
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "genesis.json").exists():
        raise FileExistsError(f"{directory / 'genesis.json'} exists; pick an empty directory")
    (directory / "validators").mkdir(exist_ok=True)
    (directory / "certs").mkdir(exist_ok=True)
    members: list[Validator] = []
    for i in range(validators):
        name = f"v{i}"
        member = write_node_dir(directory / "validators" / name, name=name, listen=listens[i],
                                api=f"{LOOPBACK}:{ports[2 * i + 1]}")
        shutil.copy(directory / "validators" / name / "tls_cert.pem", directory / "certs" / f"{name}.pem")
        members.append(member)
    trustee_keys = [SigningKey.generate() for _ in range(trustees)]
    write_trustee_keys(directory, trustee_keys)
    genesis = Genesis(
        chain_id=chain_id,
        time_ms=int(time.time() * 1000),
        validators=ValidatorSet.of(members),
        trustees=tuple(k.public_key for k in trustee_keys),
        trustee_threshold=threshold,
        policy=genesis_policy(heartbeat_ms=heartbeat_ms,
                              self_register_dids=devnet if self_register_dids is None else self_register_dids),
        devnet=devnet,
    )
    write_atomic(directory / "genesis.json", genesis.dumps(), mode=PUBLIC_FILE_MODE)
    for member in members:
        node_dir = directory / "validators" / member.name
        shutil.copy(directory / "genesis.json", node_dir / "genesis.json")
        shutil.copytree(directory / "certs", node_dir / "certs", dirs_exist_ok=True)
    return genesis


def assemble_genesis(
    directory: Path,
    *,
    entries: Sequence[Path],
    trustee_jwks: Sequence[Path],
    threshold: int,
    chain_id: str,
    heartbeat_ms: int | None = None,
    self_register_dids: bool = False,
) -> Genesis:
    """Write ``directory/genesis.json`` from public validator entries (``imi node init --json``)
    and public trustee JWKs; no private key is generated or seen (the genesis ceremony).
    The chain is closed: no devnet-only transaction types, and DIDs only through an
    accredited registrar unless ``self_register_dids``.

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
    try:
        genesis = Genesis.from_json({
            "chain_id": chain_id, "time_ms": int(time.time() * 1000), "validators": validators,
            "trustees": trustee_keys, "trustee_threshold": threshold,
            "policy": genesis_policy(heartbeat_ms=heartbeat_ms, self_register_dids=self_register_dids),
        })
    except BlockError as exc:
        raise ValueError(str(exc)) from exc
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / "genesis.json", genesis.dumps(), mode=PUBLIC_FILE_MODE)
    return genesis


def _first_missing(path: Path) -> Path | None:
    """The highest ancestor-or-self of ``path`` that does not exist yet (None if it exists)."""
    missing = None
    while not path.exists():
        missing, path = path, path.parent
    return missing


def _move_entries(source: Path, target: Path) -> None:
    """Move every entry of ``source`` into the empty directory ``target``, then remove
    ``source``; on failure, the entries already moved are removed again."""
    moved: list[Path] = []
    try:
        for entry in sorted(source.iterdir()):
            entry.rename(target / entry.name)
            moved.append(target / entry.name)
        fsync_directory(target)
    except BaseException:
        for path in moved:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise
    source.rmdir()


def init_node_dir(directory: Path, *, name: str, listen: str, api: str) -> Validator:
    """A new validator directory, all or nothing: built in a temporary sibling and renamed onto
    ``directory`` (which must not exist, or be an empty directory: then the entries move into
    it). Raises ValueError (a bad
    name or address), FileExistsError (``directory`` holds something) or OSError; on any
    failure nothing this call created is left behind."""
    check_name(name)
    check_address(listen, "--listen")
    check_address(api, "--api")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise FileExistsError(f"{directory} exists and is not an empty directory")
    created = _first_missing(directory.parent)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".init", dir=directory.parent))
    try:
        member = write_node_dir(tmp, name=name, listen=listen, api=api)
        if directory.exists():
            _move_entries(tmp, directory)  # an empty directory, maybe a mount point: keep it
        else:
            tmp.rename(directory)
        fsync_directory(directory.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    return member


__all__ = [
    "LOOPBACK",
    "assemble_genesis",
    "check_address",
    "check_name",
    "create_consortium",
    "free_ports",
    "genesis_policy",
    "init_node_dir",
    "write_node_dir",
    "write_trustee_keys",
]
