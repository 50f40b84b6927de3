"""A single-process NodeView: a real LedgerStore, mempool and application, real certificates.

No consensus and no network: :meth:`DevNode.commit` runs the path a validator's
decided block takes through :class:`node.application.LedgerApplication` —
``build_block`` (the proposer executes the pool on the head state),
``validate_block`` (the header is checked as every validator checks a proposal)
and ``apply_committed`` (the certificate verified against the set named for that
height, the block stored in one batch) — with a certificate signed by the
validator keys it holds (:func:`ledger.block.certify`). The validator set is the
state's, so governance that changes it takes effect as on a real chain. With
``auto_commit`` a ``wait_committed`` call commits the pool at once, so
``?wait=commit`` answers deterministically. For API tests, the API docs'
examples (:mod:`docs.generate_api`) and trying the API without a consortium;
never for a real validator.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ledger.block import Block, certify
from ledger.errors import BlockError
from ledger.execution import DEVNET_HANDLERS, Executor, Handler, genesis_state
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from ledger.kv import KV, MemoryKV
from ledger.storage import LedgerStore
from ledger.tx import Transaction
from node.application import LedgerApplication
from node.mempool import Mempool


def _wall_clock_ms() -> int:
    return int(time.time() * 1000)


class DevNode:
    """A single-process NodeView; its owner drives commits (:meth:`commit`)."""

    def __init__(
        self,
        genesis: Genesis,
        validator_keys: Sequence[SigningKey],
        kv: KV | None = None,
        *,
        handlers: Mapping[str, Handler] = DEVNET_HANDLERS,
        auto_commit: bool = True,
        clock_ms: Callable[[], int] | None = None,
        name: str = "dev0",
    ) -> None:
        """``validator_keys`` must hold a quorum of ``genesis.validators``: the members of the
        set certifying each block among them sign it."""
        if not genesis.validators.has_quorum(k.key_id for k in validator_keys):
            raise ValueError("validator_keys do not hold a quorum of the genesis validator set")
        self._genesis = genesis
        self._keys = {k.key_id: k for k in validator_keys}
        self._name = name
        self._store = LedgerStore(kv if kv is not None else MemoryKV())
        if self._store.genesis() is None:
            self._store.initialize(genesis, genesis_state(genesis))
        self._executor = Executor(genesis.chain_id, handlers)
        self.auto_commit = auto_commit
        self.clock_ms = clock_ms or _wall_clock_ms
        self.mempool = Mempool(self._executor, state=self._store.state_reader,
                               next_height=lambda: self._store.height() + 1,
                               is_committed=self._store.has_tx, now_ms=lambda: self.clock_ms())
        self.app = LedgerApplication(store=self._store, executor=self._executor, genesis=genesis,
                                     mempool=self.mempool, my_key_id="", now_ms=lambda: self.clock_ms())
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

    @property
    def executor(self) -> Executor:
        """The handlers are fixed at construction (``handlers``), as a validator's are."""
        return self._executor

    async def submit(self, tx: Transaction) -> None:
        if self.mempool.add(tx, gossip=False):
            self.submitted += 1

    async def wait_committed(self, tx_id: bytes, timeout_s: float) -> int | None:
        if self.auto_commit and tx_id in self.mempool:
            self.commit()
        position = self._store.tx_position(tx_id)
        return None if position is None else position[0]

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "height": self._store.height(), "mempool": len(self.mempool)}

    def is_pending(self, tx_id: bytes) -> bool:
        return tx_id in self.mempool

    # --- driving -----------------------------------------------------------------
    def add_validator_key(self, key: SigningKey) -> None:
        """Hold ``key`` too: it signs blocks while its validator is in the set in force."""
        self._keys[key.key_id] = key

    def commit(self) -> Block:
        """Commit the next block (possibly empty) with the pending transactions a proposer
        takes (up to ``PROPOSE_BATCH_TXS_MAX``; those that fail are dropped), proposed at
        round 0 by the validator whose turn it is."""
        height = self._store.height() + 1
        validators = self.app.validators_at(height)
        self.app.my_key_id = validators.proposer(height, 0, self.app.inactive_at(height)).key_id
        block = self.app.build_block(height, 0)
        if not self.app.validate_block(block):
            raise BlockError(f"the dev node's block {height} does not validate", reason="invalid-block")
        signers = [key for key_id, key in self._keys.items() if validators.get(key_id) is not None]
        self.app.apply_committed(block, certify(block.header, signers))
        return block


__all__ = ["DevNode"]
