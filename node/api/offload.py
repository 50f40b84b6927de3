"""CPU-heavy request work off the event loop: a thread pool with a bounded queue.

The validator's consensus, transport and API share one event loop; a request that
computes for tens of milliseconds (``POST /v1/verify``: signatures, SD-JWT
parsing, state proofs; proofs over a long log) would hold up votes and timers for
that long. :class:`CpuPool` runs such work on ``workers`` threads (the GIL is
released every few milliseconds, so the loop keeps its turns), admits at most
``workers + queue_max`` calls at once, and refuses more at once with
:class:`node.errors.Overloaded` (``503 overloaded``, ``Retry-After``) rather than
queueing without bound.

Work handed to the pool must be safe to run beside the loop: reads of committed
data at a pinned height (the store's caches are safe to share under the GIL).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from node.api.constants import API_CPU_QUEUE_MAX_DEFAULT, API_CPU_WORKERS_DEFAULT
from node.errors import Overloaded

T = TypeVar("T")


class CpuPool:
    """A bounded pool of worker threads (created on first use)."""

    __slots__ = ("_executor", "_lock", "_running", "queue_max", "refused_total", "workers")

    def __init__(self, workers: int = API_CPU_WORKERS_DEFAULT, queue_max: int = API_CPU_QUEUE_MAX_DEFAULT) -> None:
        self.workers = workers
        self.queue_max = queue_max
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._running = 0  # admitted calls not finished yet (running or queued)
        self.refused_total = 0

    @property
    def in_flight(self) -> int:
        return self._running

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` on a worker thread; raises :class:`Overloaded` if the pool is full.
        A cancelled caller does not free its slot before ``fn`` has really finished."""
        with self._lock:
            if self._running >= self.workers + self.queue_max:
                self.refused_total += 1
                raise Overloaded(f"{self._running} heavy requests in progress; retry later")
            self._running += 1
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="imi-api-cpu")
        try:
            future: Future[T] = self._executor.submit(fn)
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def _release(self, _: object) -> None:
        with self._lock:
            self._running -= 1

    def close(self) -> None:
        """Stop the threads; queued calls are cancelled, running ones finish on their own."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


__all__ = ["CpuPool"]
