"""One bounded least-recently-used map, for every cache of ours.

A cache is bounded by a named ``*_MAX`` constant of its package (entries), and
optionally also by a total weight (``weigh(key, value)``, e.g. bytes) with its own
named maximum. Once over either bound, the least recently used entries leave
first; ``get`` and ``put`` make an entry the most recent, ``peek`` does not. A
memo on a hot path whose hits need not be marked reads with ``peek`` (then the
oldest entry leaves first), which costs one dict lookup and no Python call.

Safe to share between threads without a lock where there is no weight: every
step is one operation of the ordered dict (atomic under the GIL), never an
iteration, and a step that loses a race (the entry just left) costs only a later
miss. With a weight, writes take a lock so the running total stays exact.
A cache keeps values it was given; callers cache only what is immutable or is
copied on the way out, and never a failure.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedLRU(Generic[K, V]):
    """At most ``entries_max`` entries (and, with ``weigh``, at most ``weight_max`` in total).

    Requires ``entries_max >= 1``; ``weigh`` and ``weight_max`` come together. Values
    are never None (None means "not cached"; a set-like cache stores True). An entry
    heavier than ``weight_max`` alone is not kept.
    """

    __slots__ = ("_entries", "_lock", "_weigh", "_weight", "entries_max", "peek", "weight_max")

    def __init__(self, entries_max: int, *, weigh: Callable[[K, V], int] | None = None,
                 weight_max: int | None = None) -> None:
        if entries_max < 1:
            raise ValueError("entries_max must be at least 1")
        if (weigh is None) != (weight_max is None):
            raise ValueError("weigh and weight_max come together")
        self.entries_max = entries_max
        self.weight_max = weight_max
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._weigh = weigh
        self._weight = 0
        self._lock = threading.Lock() if weigh is not None else None
        # The value of a key without making it recent, or None: the dict's own
        # lookup, bound once, so a reader on a hot path pays no Python call.
        self.peek: Callable[[K], V | None] = self._entries.get

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is cached (without making it recent)."""
        return key in self._entries

    def __iter__(self) -> Iterator[K]:
        """The keys, least recent first (a snapshot: safe while others write)."""
        return iter(list(self._entries))

    @property
    def weight(self) -> int:
        """Total weight of the entries (0 without ``weigh``)."""
        return self._weight

    def get(self, key: K) -> V | None:
        """The value of ``key`` (now the most recent), or None."""
        entries = self._entries
        value = entries.get(key)
        if value is not None:
            try:
                entries.move_to_end(key)
            except KeyError:  # another thread evicted it meanwhile
                pass
        return value

    def put(self, key: K, value: V) -> None:
        """Keep ``value`` (not None) as the most recent entry of ``key``; evict beyond the bounds."""
        if self._lock is None:
            entries = self._entries
            entries[key] = value
            entries.move_to_end(key)
            while len(entries) > self.entries_max:
                try:
                    entries.popitem(last=False)
                except KeyError:  # emptied by another thread meanwhile
                    break
            return
        with self._lock:
            self._put_weighed(key, value)

    def pop(self, key: K) -> V | None:
        """Remove ``key``; its value, or None if it was not cached."""
        if self._lock is None:
            return self._entries.pop(key, None)
        with self._lock:
            value = self._entries.pop(key, None)
            if value is not None:
                self._weight -= self._weigh_entry(key, value)
            return value

    def discard(self, key: K) -> None:
        """Remove ``key`` if cached."""
        self.pop(key)

    def clear(self) -> None:
        if self._lock is None:
            self._entries.clear()
            return
        with self._lock:
            self._entries.clear()
            self._weight = 0

    def _weigh_entry(self, key: K, value: V) -> int:
        assert self._weigh is not None
        return self._weigh(key, value)

    def _put_weighed(self, key: K, value: V) -> None:
        assert self.weight_max is not None
        entries = self._entries
        weight = self._weigh_entry(key, value)
        old = entries.pop(key, None)
        if old is not None:
            self._weight -= self._weigh_entry(key, old)
        if weight > self.weight_max:
            return
        entries[key] = value
        self._weight += weight
        while len(entries) > self.entries_max or self._weight > self.weight_max:
            old_key, old_value = entries.popitem(last=False)
            self._weight -= self._weigh_entry(old_key, old_value)


__all__ = ["BoundedLRU"]
