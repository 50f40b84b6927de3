"""The mempool: admitted transactions waiting for a block.

Admission (:meth:`Mempool.add`) runs, in order: duplicate check (already pending:
accepted again, idempotently, without re-checking), committed check (replay),
capacity (``MEMPOOL_TXS_MAX``), the sender's quota (``MEMPOOL_SENDER_TXS_MAX``,
:class:`node.errors.SenderQuotaFull`), then ``Executor.check_tx`` against the latest
committed state — which covers the stateless checks (shape, chain, signatures),
expiry at the local clock and the handler's own rules. Rejections raise the
ledger's typed errors with a stable ``reason``; a full pool raises
:class:`node.errors.MempoolFull` (the API answers 503, retry later).

Proposals take transactions round-robin over senders, each sender's in arrival
order (:class:`node.senders.SenderQueues`). Transactions leave the pool
when committed (:meth:`remove`), when a proposer's execution rejected them, or
when they expire (:meth:`evict_expired`). Newly admitted local transactions are
queued for gossip (:meth:`take_gossip`); transactions received by gossip are
not re-gossiped, since the validator mesh is complete.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator

from ledger.execution import BlockContext, Executor, StateReader
from ledger.tx import Transaction, refuse_replay
from node.constants import MEMPOOL_GOSSIP_BATCH_MAX, MEMPOOL_SENDER_TXS_MAX, MEMPOOL_TXS_MAX
from node.errors import MempoolFull, SenderQuotaFull
from node.senders import SenderQueues


class Mempool:
    """Bounded, deduplicated pool of admissible transactions. Single-threaded (asyncio)."""

    __slots__ = (
        "_by_bytes",
        "_executor",
        "_expiry_floor",
        "_gossip",
        "_is_committed",
        "_next_height",
        "_now_ms",
        "_pending",
        "_senders",
        "_state",
        "admitted_total",
        "capacity",
        "rejected_total",
        "sender_quota",
    )

    def __init__(
        self,
        executor: Executor,
        *,
        state: Callable[[], StateReader],
        next_height: Callable[[], int],
        is_committed: Callable[[bytes], bool],
        now_ms: Callable[[], int],
        capacity: int = MEMPOOL_TXS_MAX,
        sender_quota: int = MEMPOOL_SENDER_TXS_MAX,
    ) -> None:
        self._executor = executor
        self._state = state
        self._next_height = next_height
        self._is_committed = is_committed
        self._now_ms = now_ms
        self._pending: OrderedDict[bytes, Transaction] = OrderedDict()
        self._by_bytes: dict[bytes, Transaction] = {}  # the same transactions by canonical bytes
        self._gossip: list[Transaction] = []
        # No pending transaction expires before this (a lower bound: removals leave it
        # low), so evict_expired scans the pool only when one may have expired.
        self._expiry_floor: int | None = None
        self.capacity = capacity
        self.sender_quota = sender_quota
        self._senders = SenderQueues()
        self.admitted_total = 0
        self.rejected_total = 0

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, tx_id: bytes) -> bool:
        return tx_id in self._pending

    def __iter__(self) -> Iterator[bytes]:
        """Ids of the pending transactions, oldest first."""
        return iter(list(self._pending))

    def add(self, tx: Transaction, *, gossip: bool = True) -> bool:
        """Admit ``tx``; True if new, False if already pending. Raises a ledger
        TransactionError / ReplayError / SignatureError if it is not admissible."""
        if tx.tx_id in self._pending:
            return False
        try:
            refuse_replay(tx.tx_id, self._is_committed)
            if len(self._pending) >= self.capacity:
                raise MempoolFull(f"mempool holds {self.capacity} transactions; retry later")
            self._check_quota(tx)
            ctx = BlockContext(self._executor.chain_id, self._next_height(), self._now_ms(), "")
            self._executor.check_tx(tx, self._state(), ctx, self._is_committed)
        except Exception:
            self.rejected_total += 1
            raise
        self._pending[tx.tx_id] = tx
        self._by_bytes[tx.to_bytes()] = tx
        self._senders.add(tx)
        if self._expiry_floor is None or tx.expires_at_ms < self._expiry_floor:
            self._expiry_floor = tx.expires_at_ms
        self.admitted_total += 1
        if gossip:
            self._gossip.append(tx)
        return True

    def _check_quota(self, tx: Transaction) -> None:
        if self._senders.count(tx.sender) >= self.sender_quota:
            raise SenderQuotaFull(f"sender {tx.sender[:80]} already has {self.sender_quota} pending "
                                  "transactions; retry once some commit")

    def sender_pending(self, sender: str) -> int:
        """Pending transactions of ``sender`` (at most ``sender_quota``)."""
        return self._senders.count(sender)

    def get(self, tx_id: bytes) -> Transaction | None:
        """The pending transaction with ``tx_id`` (the very object admitted), or None."""
        return self._pending.get(tx_id)

    def by_bytes(self, data: bytes) -> Transaction | None:
        """The pending transaction whose canonical encoding is ``data``, or None: a proposal
        carries transaction bytes, and those this validator admitted need no second parse
        (:class:`ledger.block.KnownTxs`)."""
        return self._by_bytes.get(data)

    def batch(self, count_max: int) -> list[Transaction]:
        """Up to ``count_max`` pending transactions, round-robin over senders, each sender's
        oldest first (they stay pending)."""
        return self._senders.round_robin(count_max)

    def remove(self, tx_ids: Iterable[bytes]) -> None:
        """Drop transactions (committed, or rejected by a proposer's execution)."""
        for tx_id in tx_ids:
            tx = self._pending.pop(tx_id, None)
            if tx is not None:
                self._by_bytes.pop(tx.to_bytes(), None)
                self._senders.discard(tx)

    def evict_expired(self, now_ms: int) -> int:
        """Drop pending transactions that expired at ``now_ms``; returns how many.

        Called before every proposal: it costs a scan of the pool only when the
        earliest expiry admitted since the last scan has passed.
        """
        if self._expiry_floor is None or now_ms < self._expiry_floor:
            return 0
        expired = [k for k, tx in self._pending.items() if tx.expires_at_ms <= now_ms]
        self.remove(expired)
        self._expiry_floor = min((tx.expires_at_ms for tx in self._pending.values()), default=None)
        return len(expired)

    def take_gossip(self) -> list[Transaction]:
        """Up to ``MEMPOOL_GOSSIP_BATCH_MAX`` locally admitted transactions not yet gossiped."""
        out = self._gossip[:MEMPOOL_GOSSIP_BATCH_MAX]
        del self._gossip[:MEMPOOL_GOSSIP_BATCH_MAX]
        return [tx for tx in out if tx.tx_id in self._pending]

    def has_gossip(self) -> bool:
        return bool(self._gossip)


__all__ = ["Mempool"]
