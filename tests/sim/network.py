"""A simulated network: drop, delay (hence reorder), duplicate, replay, partitions.

Links are directed, so a partition can be asymmetric (a hears b, b does not hear
a). Every decision is drawn from the run's ``random.Random``, so a seed fixes the
whole history.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

REPLAY_POOL_MAX = 256  # old messages kept for replay attacks
QUEUE_MAX = 200_000  # in-flight messages; more means the simulation itself is broken


@dataclass
class LinkFaults:
    drop: float = 0.0  # probability a message is lost
    duplicate: float = 0.0  # probability it is delivered twice
    replay: float = 0.0  # probability (per send) that an old message is re-delivered too
    delay_min: int = 1  # ticks
    delay_max: int = 3


class Network:
    def __init__(self, rng: random.Random, nodes: int) -> None:
        self.rng = rng
        self.nodes = nodes
        self.faults = LinkFaults()
        self.blocked: set[tuple[int, int]] = set()  # (src, dst) links that lose everything
        self.slow: dict[int, int] = {}  # src -> extra ticks of delay on everything it sends
        self._queue: list[tuple[int, int, int, int, object]] = []  # (tick, seq, src, dst, message)
        self._seq = 0
        self._replay_pool: list[object] = []
        self.sent = 0
        self.delivered = 0
        self.dropped = 0

    def partition(self, groups: list[list[int]], *, asymmetric: bool) -> None:
        """Cut every link between different groups (only group i -> group j, i < j, if asymmetric)."""
        self.blocked = set()
        where = {n: i for i, group in enumerate(groups) for n in group}
        for a in range(self.nodes):
            for b in range(self.nodes):
                ga, gb = where.get(a, -1), where.get(b, -1)
                if ga != gb and (not asymmetric or ga < gb):
                    self.blocked.add((a, b))

    def isolate(self, node: int, groups_with: list[int]) -> None:
        """Cut ``node`` from everyone except ``groups_with`` (both directions)."""
        for other in range(self.nodes):
            if other != node and other not in groups_with:
                self.blocked.add((node, other))
                self.blocked.add((other, node))

    def heal(self) -> None:
        self.blocked = set()

    def send(self, now: int, src: int, dst: int, message: object) -> None:
        self.sent += 1
        f = self.faults
        if (src, dst) in self.blocked or (f.drop and self.rng.random() < f.drop):
            self.dropped += 1
            return
        self._push(now + self.slow.get(src, 0) + self.rng.randint(f.delay_min, f.delay_max), src, dst, message)
        if f.duplicate and self.rng.random() < f.duplicate:
            self._push(now + self.rng.randint(f.delay_min, f.delay_max * 2), src, dst, message)
        if f.replay and self._replay_pool and self.rng.random() < f.replay:
            old = self._replay_pool[self.rng.randrange(len(self._replay_pool))]
            self._push(now + self.rng.randint(f.delay_min, f.delay_max), src, dst, old)
        if len(self._replay_pool) < REPLAY_POOL_MAX:
            self._replay_pool.append(message)
        elif self.rng.random() < 0.05:
            self._replay_pool[self.rng.randrange(REPLAY_POOL_MAX)] = message

    def _push(self, tick: int, src: int, dst: int, message: object) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (tick, self._seq, src, dst, message))
        assert len(self._queue) <= QUEUE_MAX, "simulated network queue overflow"

    def due(self, now: int) -> list[tuple[int, int, object]]:
        """Messages whose delivery tick has come, in (tick, send order)."""
        out: list[tuple[int, int, object]] = []
        queue = self._queue
        while queue and queue[0][0] <= now:
            _, _, src, dst, message = heapq.heappop(queue)
            out.append((src, dst, message))
        self.delivered += len(out)
        return out


__all__ = ["LinkFaults", "Network"]
