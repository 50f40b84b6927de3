"""The consortium of the story: four validators as OS processes, their trustees, a node's
answer checked against the genesis, and a validator that dies.

:func:`start_consortium` is ``imi devnet up`` (:class:`cli.devnet.Devnet`); the trustees'
keys come from the devnet directory. :func:`node_proof` reads a committed transaction
back from ONE validator and checks its commit certificate and RFC 9162 inclusion proof.
:func:`kill_validator` is ``kill -9`` of one validator; the other three keep committing.

Waiting (for commits, for a validator to catch up) goes through a ``wait`` callback that
returns a context manager, so a caller can show a spinner.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cli.demo.errors import ScenarioError
from cli.demo.issuer_process import ServiceProcess
from cli.demo.setup import Site
from cli.devnet import Devnet
from identity.ledger_client import NodeClient
from ledger.block import BlockHeader, CommitCertificate
from ledger.encoding import Value
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from ledger.merkle import leaf_hash, verify_inclusion
from ledger.tx import Transaction

Wait = Callable[[str], AbstractContextManager[object]]
Narrate = Callable[[str, object], None]

VALIDATORS = 4
HEARTBEAT_MS = 500
CATCH_UP_TIMEOUT_S = 30.0
# Who does what: transactions go to v0, the service's light client reads v1, the remote
# verdict comes from v2, and v3 is the validator that dies. After the crash the service
# also reads v2 and asks v0 for the remote verdict.
WRITER, SERVICE_READER, REMOTE_VERIFIER, KILLED = "v0", "v1", "v2", "v3"
ROLES = (WRITER, SERVICE_READER, REMOTE_VERIFIER, KILLED)


def no_wait(_label: str) -> AbstractContextManager[object]:
    return contextlib.nullcontext()


def silent(_event: str, _result: object) -> None:
    return None


@dataclass
class Consortium:
    """A running devnet and the trustees' keys (the devnet directory holds them)."""

    net: Devnet
    genesis: Genesis
    trustees: list[SigningKey]
    apis: dict[str, str]
    writer: str  # the validator transactions go to (never killed in the story)
    wait: Wait = no_wait
    services: list[ServiceProcess] = field(default_factory=list)  # issuer and verifier services
    _clients: dict[str, NodeClient] = field(default_factory=dict)

    @property
    def chain_id(self) -> str:
        return self.genesis.chain_id

    @property
    def site(self) -> Site:
        """Where the story's services run: under the devnet directory, over the writer."""
        return Site(self.net.dir, self.apis[self.writer], self.net.code_root)

    def client(self, name: str | None = None) -> NodeClient:
        name = name or self.writer
        if name not in self._clients:
            self._clients[name] = NodeClient(self.apis[name])
        return self._clients[name]

    def submit(self, type_: str, sender: str, payload: Mapping[str, Value], *keys: SigningKey) -> dict[str, Any]:
        """Build, sign, submit to the writer and wait for the commit; the node's answer."""
        node = self.client()
        with self.wait(f"{type_} → {self.writer}, waiting for commit"):
            return node.submit(node.build(type_, sender, payload, *keys, chain_id=self.chain_id))

    def gov(self, type_: str, payload: Mapping[str, Value]) -> dict[str, Any]:
        """A governance transaction signed by the first k trustees (k = the genesis threshold)."""
        return self.submit(type_, "gov", payload, *self.trustees[: self.genesis.trustee_threshold])

    def height(self, name: str) -> int:
        with httpx.Client(timeout=5.0) as http:
            return int(http.get(f"{self.apis[name]}/health").json()["height"])

    def wait_height(self, name: str, height: int, timeout_s: float = CATCH_UP_TIMEOUT_S) -> None:
        """Until validator ``name`` has committed ``height`` (reads there then see the write)."""
        deadline = time.monotonic() + timeout_s
        with self.wait(f"{name} catching up to height {height}"):
            while self.height(name) < height:
                if time.monotonic() > deadline:
                    raise ScenarioError("catch-up", f"{name} did not reach height {height} in {timeout_s} s")
                time.sleep(0.05)

    def close(self, *, keep_services: bool = False) -> None:
        """Stop the issuer and verifier services (unless ``keep_services``) and close the node
        clients (the validators keep running)."""
        if not keep_services:
            for service in self.services:
                service.stop()
            self.services.clear()
        for client in self._clients.values():
            client.close()
        self._clients.clear()


def start_consortium(directory: Path, *, wait: Wait = no_wait, heartbeat_ms: int = HEARTBEAT_MS) -> Consortium:
    """``imi devnet up`` with 4 validators in ``directory``; returns once all are healthy."""
    net = Devnet(directory)
    with wait(f"starting {VALIDATORS} validators (LevelDB, mutual TLS between them)"):
        net.up(VALIDATORS, heartbeat_ms=heartbeat_ms)
    try:
        genesis = Genesis.loads((directory / "genesis.json").read_text())
        trustees = [SigningKey.from_private_jwk(json.loads(p.read_text()))
                    for p in sorted((directory / "trustees").glob("*.jwk"))]
        apis = {info.name: info.api for info in net.nodes()}
        if sorted(apis) != sorted(ROLES) or len(trustees) < genesis.trustee_threshold:
            raise ScenarioError("consortium", f"{directory} is not a {VALIDATORS}-validator devnet with its "
                                              "trustee keys")
    except BaseException:
        net.down()
        raise
    return Consortium(net, genesis, trustees, apis, writer=WRITER, wait=wait)


def consortium_status(c: Consortium) -> list[dict[str, Any]]:
    """Per validator: name, pid, api, up, height (``imi devnet status``)."""
    return list(c.net.status()["nodes"])


# --- step 0: one node's answer, checked against the genesis ------------------------------------
@dataclass(frozen=True, slots=True)
class NodeProof:
    tx_id: str
    tx_type: str
    reader: str
    height: int
    signers: int
    validators: int
    leaf_index: int
    tree_size: int
    log_root: str


def certified_header(body: Mapping[str, Any], genesis: Genesis) -> tuple[BlockHeader, CommitCertificate]:
    """Header + certificate from a node's answer, verified against the genesis validator set."""
    header = BlockHeader.from_json(body["header"])
    certificate = CommitCertificate.from_json(body["certificate"])
    certificate.verify(header, genesis.validators)
    return header, certificate


def node_proof(c: Consortium, tx_id: str, reader: str) -> NodeProof:
    """Read transaction ``tx_id`` from validator ``reader`` only; verify certificate and inclusion."""
    with httpx.Client(timeout=10.0) as http:
        answer = http.get(f"{c.apis[reader]}/v1/transactions/{tx_id}").json()
    header, certificate = certified_header(answer, c.genesis)
    proof = answer["inclusion_proof"]
    verify_inclusion(proof["leaf_index"], proof["tree_size"], leaf_hash(bytes.fromhex(tx_id)),
                     [bytes.fromhex(h) for h in proof["hashes"]], header.log_root)
    tx = Transaction.from_b64(answer["tx"]["b64"])
    if tx.tx_id.hex() != tx_id:
        raise ScenarioError("node proof", f"{reader} returned another transaction than {tx_id}")
    return NodeProof(tx_id, tx.type, reader, header.height, len(certificate.signatures),
                     len(c.genesis.validators.validators), proof["leaf_index"], proof["tree_size"],
                     header.log_root.hex())



# --- step 4: a validator dies -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Crash:
    killed: str
    pid: int | None
    alive: list[str]
    height_before: int
    height_after: int  # a block committed by the remaining 3 (did.update of nothing: a heartbeat)


def kill_validator(c: Consortium, name: str) -> Crash:
    """``kill -9`` validator ``name``; then wait for the 3 others to commit a new block."""
    if name == c.writer:
        raise ScenarioError("kill", "the story keeps the writer alive; kill another validator")
    pid = c.net.pids().get(name)
    before = c.height(c.writer)
    c.net.kill(name)
    alive = [entry["name"] for entry in consortium_status(c) if entry["up"]]
    c.wait_height(c.writer, before + 2)
    return Crash(name, pid, alive, before, c.height(c.writer))



__all__ = [
    "KILLED",
    "REMOTE_VERIFIER",
    "SERVICE_READER",
    "WRITER",
    "Consortium",
    "Crash",
    "Narrate",
    "NodeProof",
    "Wait",
    "certified_header",
    "consortium_status",
    "kill_validator",
    "no_wait",
    "node_proof",
    "silent",
    "start_consortium",
]
