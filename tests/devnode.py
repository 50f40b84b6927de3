"""A single-process NodeView: a real LedgerStore, real execution, real certificates.

No consensus and no network: :meth:`DevNode.commit` executes the pending
transactions with the devnet executor, builds the header the store previews,
certifies it with the validator keys it was given and appends it. With
``auto_commit`` a ``wait_committed`` call commits the pool at once, so
``?wait=commit`` answers deterministically. For API tests, the API docs'
examples (:mod:`docs.generate_api`) and trying the API without a consortium; never
for a real validator.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from ledger.block import Block, BlockHeader, CommitCertificate, merkle_root
from ledger.execution import DEVNET_HANDLERS, BlockContext, Executor, genesis_state
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from ledger.kv import KV, MemoryKV
from ledger.storage import LedgerStore
from ledger.tx import Transaction


class DevNode:
    """A single-process NodeView; its owner drives commits (:meth:`commit`)."""

    def __init__(
        self,
        genesis: Genesis,
        validator_keys: Sequence[SigningKey],
        kv: KV | None = None,
        *,
        auto_commit: bool = True,
        clock_ms: Callable[[], int] | None = None,
        name: str = "dev0",
    ) -> None:
        """``validator_keys`` must hold a quorum of ``genesis.validators`` (they sign every block)."""
        self._genesis = genesis
        self._keys = {k.key_id: k for k in validator_keys if genesis.validators.get(k.key_id) is not None}
        if not genesis.validators.has_quorum(self._keys):
            raise ValueError("validator_keys do not hold a quorum of the genesis validator set")
        self._name = name
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
        return self._name

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
        proposer = self._genesis.validators.proposer(height, 0).key_id
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
            validator_set_hash=self._genesis.validators.hash,
            next_validator_set_hash=execution.next_validators.hash, proposer=ctx.proposer,
        )
        block = Block(header, execution.txs)
        certificate = self._certify(header)
        self._store.append_block(block, certificate, execution.updates, preview)
        self.mempool.clear()
        return block

    def _certify(self, header: BlockHeader) -> CommitCertificate:
        unsigned = CommitCertificate(header.chain_id, header.height, header.round, header.hash, ())
        signatures = tuple(
            (key_id, key.sign(unsigned.precommit(key_id).signing_bytes()))
            for key_id, key in sorted(self._keys.items())
        )
        return CommitCertificate(header.chain_id, header.height, header.round, header.hash, signatures)


__all__ = ["DevNode"]
