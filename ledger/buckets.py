"""Token buckets by client key, with a bounded client table: the one rate limiter.

Each client may take ``rate_per_s`` tokens a second on average and ``burst`` at once;
:meth:`TokenBuckets.take` answers 0 (allowed, a token spent) or the seconds until a
token is back. At most ``clients_max`` buckets are kept, the least recently seen dropped
first (a dropped client starts again with a full bucket), so a flood of new client keys
costs bounded memory and locks nobody out. Thread-safe; time is passed in (float
seconds), so tests control it. Used by the node's API (:mod:`node.api.ratelimit`) and
the identity services (token endpoint, remote enrolment starts).
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class TokenBuckets:
    """A token bucket per client key (module doc)."""

    __slots__ = ("_buckets", "_clients_max", "_lock", "burst", "rate_per_s")

    def __init__(self, rate_per_s: float, burst: int, *, clients_max: int) -> None:
        if rate_per_s <= 0 or burst < 1 or clients_max < 1:
            raise ValueError("a token bucket needs rate_per_s > 0, burst >= 1 and clients_max >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clients_max = clients_max
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, client: str, now_s: float) -> float:
        """Spend a token of ``client``'s bucket: 0.0, or the seconds to wait (nothing spent)."""
        with self._lock:
            tokens, at = self._buckets.pop(client, (float(self.burst), now_s))
            tokens = min(float(self.burst), tokens + (now_s - at) * self.rate_per_s)
            wait_s = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait_s = (1.0 - tokens) / self.rate_per_s
            self._buckets[client] = (tokens, now_s)  # most recently seen last
            while len(self._buckets) > self._clients_max:
                self._buckets.popitem(last=False)
            return wait_s

    def allow(self, client: str, now_s: float) -> bool:
        """:meth:`take`, as yes or no."""
        return self.take(client, now_s) == 0.0

    def __len__(self) -> int:
        return len(self._buckets)


__all__ = ["TokenBuckets"]
