"""Where a validator's commit latency goes: fixed-bucket histograms of its consensus path.

Kept by the driver (:attr:`node.driver.Driver.timings`), read at each scrape through
the node's status and exported at ``/metrics`` (:class:`node.api.metrics.NodeStatusCollector`):

=====================================  =====================================================
histogram                              from → to (this validator's clock and view)
=====================================  =====================================================
``height``                             entering a height → its block stored here
``proposal_to_commit``                 the height's first proposal sent or received → stored
``block_interval``                     one block stored → the next
``wal_sync``                           one fsync of the consensus WAL (before votes leave)
``block_store``                        verifying a decided block's certificate and storing
                                       it (one synced LevelDB batch)
=====================================  =====================================================

A height decided in a later round counts its rounds in ``height``. Blocks applied by
catch-up (not through consensus) are not counted. Plain Python (no IO, no clock of its
own): the driver passes the times in.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from node.constants import CONSENSUS_SECONDS_BUCKETS, FSYNC_SECONDS_BUCKETS


class LatencyHistogram:
    """Counts of observations per upper bound (Prometheus ``le``, inclusive), sum and count."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError("bucket bounds must be distinct and increasing")
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def snapshot(self) -> dict[str, Any]:
        """``{"buckets": [[le, cumulative count], ...], "sum", "count"}`` for the finite
        bounds (plain JSON: the +Inf bucket is ``count``)."""
        cumulative = 0
        buckets: list[list[float]] = []
        for bound, number in zip(self.bounds, self.counts, strict=False):
            cumulative += number
            buckets.append([bound, cumulative])
        return {"buckets": buckets, "sum": self.sum, "count": self.count}


# The histograms by name, with their bucket bounds (the names /metrics and the devnet
# bench read).
HISTOGRAM_BUCKETS: dict[str, tuple[float, ...]] = {
    "height": CONSENSUS_SECONDS_BUCKETS,
    "proposal_to_commit": CONSENSUS_SECONDS_BUCKETS,
    "block_interval": CONSENSUS_SECONDS_BUCKETS,
    "wal_sync": FSYNC_SECONDS_BUCKETS,
    "block_store": FSYNC_SECONDS_BUCKETS,
}


class ConsensusTimings:
    """The five histograms above, and the milestones of the current height."""

    def __init__(self) -> None:
        self.histograms = {name: LatencyHistogram(bounds) for name, bounds in HISTOGRAM_BUCKETS.items()}
        self._height: int | None = None
        self._entered_s: float | None = None
        # First proposal seen for the current height, and for the next one (a proposal can
        # arrive while this validator is still storing the block before it).
        self._proposal_s: dict[int, float] = {}
        self._stored_s: float | None = None

    def entered(self, height: int, now_s: float) -> None:
        """Consensus moved to ``height`` (from a lower one, or at start)."""
        self._height, self._entered_s = height, now_s
        self._proposal_s = {h: t for h, t in self._proposal_s.items() if h == height}

    def proposal(self, height: int, now_s: float) -> None:
        """A proposal for ``height`` was sent or received; the first one of the height counts."""
        current = self._height if self._height is not None else height
        if current <= height <= current + 1 and height not in self._proposal_s:
            self._proposal_s[height] = now_s

    def stored(self, height: int, now_s: float, store_s: float) -> None:
        """Block ``height``, decided here, was stored at ``now_s``; the store took ``store_s``."""
        self.histograms["block_store"].observe(store_s)
        if self._stored_s is not None:
            self.histograms["block_interval"].observe(now_s - self._stored_s)
        self._stored_s = now_s
        if height == self._height and self._entered_s is not None:
            self.histograms["height"].observe(now_s - self._entered_s)
            self._entered_s = None
        proposed = self._proposal_s.pop(height, None)
        if proposed is not None:
            self.histograms["proposal_to_commit"].observe(now_s - proposed)

    def wal_synced(self, seconds: float) -> None:
        self.histograms["wal_sync"].observe(seconds)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {name: histogram.snapshot() for name, histogram in self.histograms.items()}


__all__ = ["HISTOGRAM_BUCKETS", "ConsensusTimings", "LatencyHistogram"]
