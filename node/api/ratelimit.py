"""Per-client request rate limit (ASGI): a token bucket per client address.

Each client address (the TCP peer: behind a reverse proxy that is the proxy, so
rate-limit there per end client) may make ``client_rate_per_s`` requests a second on
average and ``client_burst`` at once; beyond that it is answered ``429
rate-limited`` with ``Retry-After``, before any parsing. Monitoring paths are
not counted. At most ``API_CLIENTS_TRACKED_MAX`` buckets are kept, the least
recently seen dropped first (a dropped client starts again with a full bucket).
Time is a monotonic clock passed in, so tests control it.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from node.api.constants import API_CLIENTS_TRACKED_MAX, PROBLEM_CONTENT_TYPE
from node.api.problems import problem_bytes

UNCOUNTED_PATHS = frozenset({"/health", "/ready", "/metrics"})


class TokenBuckets:
    """Token buckets by client key; ``take`` answers 0 (allowed) or seconds to wait."""

    __slots__ = ("_buckets", "_clients_max", "burst", "rate_per_s")

    def __init__(self, rate_per_s: float, burst: int, clients_max: int = API_CLIENTS_TRACKED_MAX) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clients_max = clients_max
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, client: str, now_s: float) -> float:
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

    def __len__(self) -> int:
        return len(self._buckets)


class ClientRateLimit:
    """ASGI middleware applying :class:`TokenBuckets` to every HTTP request but monitoring."""

    def __init__(self, app: ASGIApp, rate_per_s: float, burst: int,
                 clock_s: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.buckets = TokenBuckets(rate_per_s, burst)
        self.clock_s = clock_s
        self.limited_total = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNCOUNTED_PATHS:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait_s = self.buckets.take(client[0] if client else "", self.clock_s())
        if wait_s <= 0:
            await self.app(scope, receive, send)
            return
        self.limited_total += 1
        body = problem_bytes(429, "rate-limited",
                             f"over {self.buckets.rate_per_s:g} requests/s from this client; retry later")
        await send({"type": "http.response.start", "status": 429, "headers": [
            (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(max(1, math.ceil(wait_s))).encode()),
        ]})
        await send({"type": "http.response.body", "body": body})


__all__ = ["UNCOUNTED_PATHS", "ClientRateLimit", "TokenBuckets"]
