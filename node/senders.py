"""Per-sender view of the mempool: quotas and a fair order for proposals.

One sender (a DID, ``gov``, or on a devnet a bare key id) may hold at most
``MEMPOOL_SENDER_TXS_MAX`` pending transactions, so a flood from one sender fills
its own share and never the pool: everyone else still gets in. Proposals take
transactions round-robin over senders (each sender's own in arrival order), so a
sender with a thousand pending does not delay one that sent a single transaction.
"""

from __future__ import annotations

from collections.abc import Iterator

from ledger.tx import Transaction


class SenderQueues:
    """Pending transactions grouped by sender, senders in order of first arrival.

    Holds the same transaction objects as the pool; the pool keeps both in step
    (:meth:`add` after admission, :meth:`discard` on removal). Single-threaded.
    """

    __slots__ = ("_queues",)

    def __init__(self) -> None:
        self._queues: dict[str, dict[bytes, Transaction]] = {}

    def count(self, sender: str) -> int:
        """Pending transactions of ``sender``."""
        queue = self._queues.get(sender)
        return 0 if queue is None else len(queue)

    def senders(self) -> int:
        return len(self._queues)

    def add(self, tx: Transaction) -> None:
        self._queues.setdefault(tx.sender, {})[tx.tx_id] = tx

    def discard(self, tx: Transaction) -> None:
        queue = self._queues.get(tx.sender)
        if queue is None:
            return
        queue.pop(tx.tx_id, None)
        if not queue:
            del self._queues[tx.sender]

    def round_robin(self, count_max: int) -> list[Transaction]:
        """Up to ``count_max`` transactions: the oldest of each sender, then the second of
        each, and so on. Costs O(count_max + senders visited), not O(pool)."""
        out: list[Transaction] = []
        if count_max <= 0:
            return out
        iterators: list[Iterator[Transaction]] = []
        for queue in self._queues.values():  # first round, opening iterators lazily
            iterator = iter(queue.values())
            out.append(next(iterator))  # queues are never empty
            iterators.append(iterator)
            if len(out) >= count_max:
                return out
        while iterators:
            still: list[Iterator[Transaction]] = []
            for iterator in iterators:
                tx = next(iterator, None)
                if tx is None:
                    continue
                out.append(tx)
                if len(out) >= count_max:
                    return out
                still.append(iterator)
            iterators = still
        return out


__all__ = ["SenderQueues"]
