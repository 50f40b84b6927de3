"""What the REST API needs from a running validator (implemented by node.service).

The API layer (:mod:`node.api.app`) only reads committed data from the store and
hands new transactions to the node; it never touches consensus. Keeping this
small protocol between them lets the API be unit-tested against an in-process
node and lets the service change without touching HTTP code.
"""

from __future__ import annotations

from typing import Any, Protocol

from ledger.genesis import Genesis
from ledger.storage import LedgerStore
from ledger.tx import Transaction


class NodeView(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def genesis(self) -> Genesis: ...

    @property
    def store(self) -> LedgerStore:
        """The node's store of committed blocks, transactions, state and proofs (read only)."""
        ...

    async def submit(self, tx: Transaction) -> None:
        """Admit ``tx`` to the mempool (and gossip it). Raises a ledger TransactionError
        (or SignatureError/ReplayError) with a stable ``reason`` if it is not admissible;
        a transaction committed already is a ReplayError (``replayed-transaction``)."""
        ...

    def is_pending(self, tx_id: bytes) -> bool:
        """True while ``tx_id`` waits in this node's mempool (GET /v1/transactions: "pending")."""
        ...

    async def wait_committed(self, tx_id: bytes, timeout_s: float) -> int | None:
        """Height at which ``tx_id`` committed, waiting up to ``timeout_s``; None on timeout."""
        ...

    def status(self) -> dict[str, Any]:
        """Name, key id, height, head hash, state root, peers connected (``peers_connected``,
        and their key ids ``peers_connected_ids``), mempool size, syncing flag."""
        ...


__all__ = ["NodeView"]
