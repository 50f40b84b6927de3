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
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from ledger.buckets import TokenBuckets
from node.api.constants import API_CLIENTS_TRACKED_MAX, PROBLEM_CONTENT_TYPE
from node.api.problems import problem_bytes

UNCOUNTED_PATHS = frozenset({"/health", "/ready", "/metrics"})


class ClientRateLimit:
    """ASGI middleware applying :class:`~ledger.buckets.TokenBuckets` to every HTTP request but monitoring."""

    def __init__(self, app: ASGIApp, rate_per_s: float, burst: int,
                 clock_s: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.buckets = TokenBuckets(rate_per_s, burst, clients_max=API_CLIENTS_TRACKED_MAX)
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
