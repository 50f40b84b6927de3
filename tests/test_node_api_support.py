"""An in-process NodeView for API tests: a real LedgerStore, real execution, real certificates.

No consensus and no network: :meth:`InProcessNode.commit` executes the pending
transactions with the devnet executor, builds the header the store previews,
certifies it with every test validator's key and appends it. With
``auto_commit`` a ``wait_committed`` call commits the pool at once, so
``?wait=commit`` answers deterministically.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from ledger.block import Block, BlockHeader, CommitCertificate, merkle_root
from ledger.genesis import Genesis
from ledger.merkle import leaf_hash, verify_consistency, verify_inclusion
from ledger.storage import KV, LedgerStore, MemoryKV
from ledger.tx import Transaction
from node.execution import DEVNET_HANDLERS, BlockContext, Executor, genesis_state
from tests.factories import Consortium, certify, consortium


class InProcessNode:
    """A single-process NodeView; test code drives commits."""

    def __init__(
        self,
        kv: KV | None = None,
        *,
        members: Consortium | None = None,
        auto_commit: bool = True,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.consortium = members or consortium()
        self._genesis: Genesis = self.consortium.genesis
        self._store = LedgerStore(kv if kv is not None else MemoryKV())
        if self._store.genesis() is None:
            self._store.initialize(self._genesis, genesis_state(self._genesis))
        self.executor = Executor(self._genesis.chain_id, DEVNET_HANDLERS)
        self.mempool: dict[bytes, Transaction] = {}
        self.auto_commit = auto_commit
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.submitted = 0

    # --- NodeView --------------------------------------------------------------
    @property
    def name(self) -> str:
        return "v0"

    @property
    def genesis(self) -> Genesis:
        return self._genesis

    @property
    def store(self) -> LedgerStore:
        return self._store

    async def submit(self, tx: Transaction) -> None:
        if tx.tx_id in self.mempool:
            return  # idempotent, as node.mempool.Mempool.add
        self.executor.check_tx(tx, self._store.state_reader(), self._next_context(),
                               lambda i: self._store.tx(i) is not None)
        self.mempool[tx.tx_id] = tx
        self.submitted += 1

    async def wait_committed(self, tx_id: bytes, timeout_s: float) -> int | None:
        if self.auto_commit and tx_id in self.mempool:
            self.commit()
        record = self._store.tx(tx_id)
        return None if record is None else record.height

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "height": self._store.height(), "mempool": len(self.mempool)}

    def is_pending(self, tx_id: bytes) -> bool:
        return tx_id in self.mempool

    # --- driving -----------------------------------------------------------------
    def _next_context(self) -> BlockContext:
        head = self._store.head()
        height = 1 if head is None else head.height + 1
        floor = self._genesis.time_ms if head is None else head.time_ms + 1
        proposer = self.consortium.validators.proposer(height, 0).key_id
        return BlockContext(self._genesis.chain_id, height, max(floor, self.clock_ms()), proposer)

    def commit(self) -> Block:
        """Execute and commit every pending transaction as the next block (possibly empty)."""
        ctx = self._next_context()
        head = self._store.head()
        prev_hash = self._genesis.hash if head is None else head.hash
        execution = self.executor.execute_block(
            self._store.state_reader(), list(self.mempool.values()), ctx,
            lambda i: self._store.tx(i) is not None, strict=False)
        preview = self._store.preview([t.tx_id for t in execution.txs], execution.updates)

        header = BlockHeader(
            chain_id=ctx.chain_id, height=ctx.height, round=0, prev_hash=prev_hash, time_ms=ctx.time_ms,
            tx_root=merkle_root([t.tx_id for t in execution.txs]), tx_count=len(execution.txs),
            log_root=preview.log_root, log_size=preview.log_size, state_root=preview.state_root,
            validator_set_hash=self.consortium.validators.hash,
            next_validator_set_hash=execution.next_validators.hash, proposer=ctx.proposer,
        )
        block = Block(header, execution.txs)
        certificate: CommitCertificate = certify(self.consortium, header)
        self._store.append_block(block, certificate, execution.updates)
        self.mempool.clear()
        return block


def check_inclusion(body: dict[str, Any]) -> None:
    """Verify an API inclusion proof against the header it came with."""
    proof = body["inclusion_proof"]
    assert proof["root"] == body["header"]["log_root"]
    assert proof["tree_size"] == body["header"]["log_size"]
    verify_inclusion(proof["leaf_index"], proof["tree_size"], leaf_hash(bytes.fromhex(proof["leaf"])),
                     [bytes.fromhex(h) for h in proof["hashes"]], bytes.fromhex(proof["root"]))


def check_consistency(body: dict[str, Any]) -> None:
    verify_consistency(body["from_size"], body["to_size"], bytes.fromhex(body["from_header"]["log_root"]),
                       bytes.fromhex(body["to_header"]["log_root"]), [bytes.fromhex(h) for h in body["hashes"]])


__all__ = ["InProcessNode", "check_consistency", "check_inclusion"]
