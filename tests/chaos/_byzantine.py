"""A Byzantine validator for the chaos scenarios (test-only; the shipped node has no such mode).

It is a separate process that holds one devnet validator's identity — its TLS
key and certificate, its consensus key, from that validator's node directory —
while the real validator of that name is stopped, and speaks the validator
transport (:class:`node.transport.Transport`) to the others::

    python -m tests.chaos._byzantine --dir DEVNET/validators/v3 --mode lying-height --seconds 20

Modes:

``lying-height``
    Every ``LIE_INTERVAL_MS`` it announces heights nobody reached: a bare
    number, a real certified head (taken from an honest peer's status) under
    another height, that header re-numbered with the real certificate, and a
    header "certified" by its own signature alone. It never answers a catch-up
    request and sends no consensus messages.
``junk-proposals``
    Every ``JUNK_INTERVAL_MS`` it sends each peer ``JUNK_PROPOSALS`` proposals
    for the next ``FUTURE_HEIGHTS_MAX`` heights, signed with its real consensus
    key, each carrying ~3.9 MiB of distinct, well-formed transactions; a few
    naming another validator as proposer (bad signature); and one frame whose
    length prefix is past ``FRAME_BYTES_MAX``.

It learns the current height and a real certified head from the honest
validators' status frames. It prints one line when it stops: what it sent.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import time
from pathlib import Path

from ledger.block import Block, BlockHeader, CommitCertificate
from ledger.encoding import Value
from ledger.errors import LedgerError
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from ledger.tx import Transaction
from node import tls
from node.consensus.limits import FUTURE_HEIGHTS_MAX
from node.consensus.messages import Proposal, message_to_value
from node.constants import FRAME_BYTES_MAX, FRAME_HEADER_BYTES
from node.transport import Transport, parse_address

LIE_INTERVAL_MS = 100
JUNK_INTERVAL_MS = 3_000
JUNK_PROPOSALS = 25  # per peer and burst: past any one signer's byte share several times over
JUNK_TXS_PER_BLOCK = 64
JUNK_TX_PAYLOAD_BYTES = 60_000  # 64 of these: ~3.9 MiB, under one 4 MiB frame
JUNK_TX_POOL = 4 * JUNK_TXS_PER_BLOCK  # distinct transactions, mixed into blocks (more than a parse memo holds)
JUNK_FORGED_PER_BURST = 4
LIED_HEIGHT_JUMP = 50
DRAIN_WAIT_S_MAX = 1.0  # per junk frame: how long to wait for the send queues to empty


def height_lies(chain_id: str, key: SigningKey, height: int, head: list[Value] | None) -> list[Value]:
    """Status frames claiming heights nobody reached, given the highest ``height`` an honest
    peer announced and its ``head`` (``[header, certificate]``, or None before one is heard):
    a bare number; the real certified head under another height; that header re-numbered,
    with the real certificate; and re-numbered, "certified" by ``key`` alone.

    The re-numbered header drops ``last_commit`` (the certificate of the block before),
    which names the real previous height: with it the header would not even parse, and
    the lie would test the node's parser, not its certificate check. Every frame is built
    whatever the head holds; a head that is not a header and a certificate yields the bare
    lie only (an impostor that dies on its first lie attacks nobody)."""
    frames: list[Value] = [{"t": "status", "height": height + 10**6}]
    if head is None:
        return frames
    far = height + LIED_HEIGHT_JUMP
    try:
        header_value, cert_value = head
        header = BlockHeader.from_value(header_value)
        CommitCertificate.from_value(cert_value)
    except (LedgerError, ValueError, TypeError):
        return frames
    renumbered = dataclasses.replace(header, height=far, last_commit=None).to_value()
    frames += [
        {"t": "status", "height": far, "head": head},
        {"t": "status", "height": far, "head": [renumbered, cert_value]},
        {"t": "status", "height": far, "head": [renumbered, _self_certified(key, renumbered)]},
    ]
    return frames


def _self_certified(key: SigningKey, header_value: Value) -> Value:
    """A "certificate" of ``header_value`` carrying ``key``'s precommit alone (below quorum)."""
    header = BlockHeader.from_value(header_value)
    unsigned = CommitCertificate(header.chain_id, header.height, 0, header.hash, ())
    signature = key.sign(unsigned.precommit(key.key_id).signing_bytes())
    return dataclasses.replace(unsigned, signatures=((key.key_id, signature),)).to_value()


class Impostor:
    """One validator's identity, speaking the transport to the rest of its devnet."""

    def __init__(self, node_dir: Path) -> None:
        config = json.loads((node_dir / "node.json").read_text())
        self.genesis = Genesis.loads((node_dir / str(config.get("genesis", "genesis.json"))).read_text())
        self.key = SigningKey.from_private_jwk(json.loads((node_dir / "consensus_key.jwk").read_text()))
        trust = tls.load_trust_dir(node_dir / str(config.get("certs", "certs")))
        key_file, cert_file = node_dir / "tls_key.pem", node_dir / "tls_cert.pem"
        self.transport = Transport(
            my_key_id=self.key.key_id, listen=parse_address(config["listen"]),
            server_ctx=tls.server_context(key_file, cert_file, trust),
            client_ctx=tls.client_context(key_file, cert_file, trust),
            validators=lambda: self.genesis.validators, on_frame=self._on_frame)
        self.height = 0  # the highest height an honest peer announced
        self.head: list[Value] | None = None  # that peer's [header, certificate]
        self.sent = {"lies": 0, "junk": 0, "forged": 0, "oversized": 0}
        self._pool: list[Transaction] = []

    def _on_frame(self, peer: str, value: Value) -> None:
        if isinstance(value, dict) and value.get("t") == "status":
            height, head = value.get("height"), value.get("head")
            if type(height) is int and height >= self.height:
                self.height = height
                if isinstance(head, list):
                    self.head = head
        # Everything else (sync requests included) goes unanswered.

    # --- lying about the height -------------------------------------------------------------
    def lies(self) -> list[Value]:
        """Status frames claiming heights nobody reached (see :func:`height_lies`)."""
        return height_lies(self.genesis.chain_id, self.key, self.height, self.head)

    async def lie_about_height(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for frame in self.lies():
                self.transport.broadcast(frame)
                self.sent["lies"] += 1
            await asyncio.sleep(LIE_INTERVAL_MS / 1000)

    # --- junk proposals ---------------------------------------------------------------------
    def _junk_block(self, height: int) -> Block:
        if not self._pool:
            self._pool = [
                Transaction.create(chain_id=self.genesis.chain_id, type="test.note", sender=self.key.key_id,
                                   payload={"data": os.urandom(JUNK_TX_PAYLOAD_BYTES)},
                                   expires_at_ms=int(time.time() * 1000) + 600_000).sign(self.key)
                for _ in range(JUNK_TX_POOL)]
        start = self.sent["junk"] * 7 + height
        txs = tuple(self._pool[(start + i * 3) % len(self._pool)] for i in range(JUNK_TXS_PER_BLOCK))
        vset = self.genesis.validators.hash
        header = BlockHeader(self.genesis.chain_id, height, 0, os.urandom(32), int(time.time() * 1000),
                             os.urandom(32), len(txs), os.urandom(32), len(txs), os.urandom(32), vset, vset,
                             self.key.key_id)
        return Block(header, txs)

    async def junk_burst(self) -> None:
        """One burst to every peer: signed junk, forged junk, then an oversized frame. Each
        frame waits for the send queues to drain (they are bounded: a burst queued at once
        would mostly be dropped here, not delivered)."""
        others = [v.key_id for v in self.genesis.validators.validators if v.key_id != self.key.key_id]
        for number in range(JUNK_PROPOSALS + JUNK_FORGED_PER_BURST):
            height = self.height + 1 + number % FUTURE_HEIGHTS_MAX
            block = self._junk_block(height)
            forged = number >= JUNK_PROPOSALS
            proposer = others[number % len(others)] if forged else self.key.key_id
            proposal = Proposal(self.genesis.chain_id, height, number, block, -1, proposer).signed(self.key)
            self.transport.broadcast({"t": "c", "m": message_to_value(proposal)})
            self.sent["forged" if forged else "junk"] += 1
            await self._drained(others)
        oversized = (FRAME_BYTES_MAX + 1).to_bytes(FRAME_HEADER_BYTES, "big") + bytes(64)
        for peer in others:
            self.transport._enqueue(peer, oversized)  # the receiver must drop the connection
            self.sent["oversized"] += 1

    async def _drained(self, peers: list[str]) -> None:
        deadline = time.monotonic() + DRAIN_WAIT_S_MAX
        while time.monotonic() < deadline and any(self.transport.queued(p)[0] for p in peers):
            await asyncio.sleep(0.01)

    async def send_junk(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                await self.junk_burst()
            except LedgerError as exc:
                print(f"byzantine: could not build junk: {exc}", flush=True)
            print(f"byzantine: sent {self.sent}", flush=True)
            await asyncio.sleep(JUNK_INTERVAL_MS / 1000)


async def _run(node_dir: Path, mode: str, seconds: float) -> dict[str, int]:
    impostor = Impostor(node_dir)
    await impostor.transport.start()
    try:
        for _ in range(100):  # learn the height (and a certified head) first
            if impostor.height > 0:
                break
            await asyncio.sleep(0.1)
        if mode == "lying-height":
            await impostor.lie_about_height(seconds)
        else:
            await impostor.send_junk(seconds)
    finally:
        await impostor.transport.stop()
    return impostor.sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos._byzantine", description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, required=True, help="the impersonated validator's node directory")
    parser.add_argument("--mode", choices=("lying-height", "junk-proposals"), required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args(argv)
    sent = asyncio.run(_run(args.dir, args.mode, args.seconds))
    print(f"byzantine {args.mode}: sent {sent}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
