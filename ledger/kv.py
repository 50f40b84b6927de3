"""Key-value storage: the KV protocol, an in-memory and a LevelDB implementation.

Everything the ledger persists goes through :class:`KV`. Writes are collected
in a :class:`WriteBatch` and applied by :meth:`KV.write` atomically: either
every put and delete of the batch is visible afterwards, or none is (LevelDB
write batches give this; ``sync=True`` makes it durable before returning).

A batch can be read back before it is committed (:meth:`WriteBatch.lookup`),
so that several components (Merkle log, state tree, block store) can build one
block's changes step by step and still commit them as one unit. This module is
the ground floor of :mod:`ledger`: it imports only constants and errors.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ledger.constants import LEVELDB_BLOOM_BITS, LEVELDB_CACHE_BYTES, LEVELDB_COMPRESSION
from ledger.errors import StorageError


class _Missing:
    """Marker for "the batch says nothing about this key"."""

    __slots__ = ()


MISSING = _Missing()


@dataclass(slots=True)
class WriteBatch:
    """Pending puts and deletes; the last operation on a key wins.

    Keys and values are ``bytes``. A batch is applied only by :meth:`KV.write`.
    """

    ops: dict[bytes, bytes | None] = field(default_factory=dict)

    def put(self, key: bytes, value: bytes) -> None:
        self.ops[bytes(key)] = bytes(value)

    def delete(self, key: bytes) -> None:
        self.ops[bytes(key)] = None

    def lookup(self, key: bytes) -> bytes | None | _Missing:
        """The pending value of ``key``: bytes, ``None`` (deleted here) or :data:`MISSING`."""
        return self.ops.get(key, MISSING)

    def __len__(self) -> int:
        return len(self.ops)


class KV(Protocol):
    """Ordered byte-key store with atomic batched writes."""

    def get(self, key: bytes) -> bytes | None:
        """The committed value of ``key``, or ``None``."""
        ...

    def iterate(
        self, prefix: bytes, *, start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Committed (key, value) pairs whose key starts with ``prefix``, in key order.

        ``start`` (a full key, >= prefix) skips keys below it (or above it when
        ``reverse``).
        """
        ...

    def write(self, batch: WriteBatch) -> None:
        """Apply ``batch`` atomically (all or nothing), durably for disk stores."""
        ...

    def close(self) -> None: ...


def read_through(kv: KV, batch: WriteBatch | None, key: bytes) -> bytes | None:
    """Value of ``key`` as it will be once ``batch`` is committed."""
    if batch is not None:
        pending = batch.lookup(key)
        if not isinstance(pending, _Missing):
            return pending
    return kv.get(key)


class MemoryKV:
    """In-memory :class:`KV` for tests and simulation (sorted key list + dict)."""

    __slots__ = ("_closed", "_data", "_keys")

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []
        self._closed = False

    def get(self, key: bytes) -> bytes | None:
        self._check_open()
        return self._data.get(key)

    def iterate(
        self, prefix: bytes, *, start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        self._check_open()
        # Snapshot the matching keys so that writes during iteration do not disturb it.
        lo = bisect.bisect_left(self._keys, prefix)
        matching: list[bytes] = []
        for key in self._keys[lo:]:
            if not key.startswith(prefix):
                break
            matching.append(key)
        if reverse:
            matching.reverse()
        for key in matching:
            if start is not None and (key > start if reverse else key < start):
                continue
            value = self._data.get(key)
            if value is not None:
                yield key, value

    def write(self, batch: WriteBatch) -> None:
        self._check_open()
        for key, value in batch.ops.items():
            if value is None:
                if self._data.pop(key, None) is not None:
                    del self._keys[bisect.bisect_left(self._keys, key)]
            else:
                if key not in self._data:
                    bisect.insort(self._keys, key)
                self._data[key] = value

    def close(self) -> None:
        self._closed = True

    def __len__(self) -> int:
        return len(self._data)

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("store is closed", reason="store-closed")


def _prefix_end(prefix: bytes) -> bytes | None:
    """Smallest key greater than every key starting with ``prefix`` (None: no bound)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes((trimmed[-1] + 1,))


class LevelKV:
    """LevelDB-backed :class:`KV` (plyvel). Writes are synced to disk by default."""

    __slots__ = ("_db", "_sync")

    def __init__(self, path: str | Path, *, sync: bool = True, create: bool = True) -> None:
        import plyvel  # imported here so that pure-memory users need no LevelDB

        try:
            self._db = plyvel.DB(str(path), create_if_missing=create,
                                 lru_cache_size=LEVELDB_CACHE_BYTES, bloom_filter_bits=LEVELDB_BLOOM_BITS,
                                 compression=LEVELDB_COMPRESSION)
        except plyvel.Error as exc:
            raise StorageError(f"cannot open LevelDB at {path}: {exc}", reason="store-unavailable") from exc
        self._sync = sync

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._db.get(key)
        return value

    def iterate(
        self, prefix: bytes, *, start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        lower, upper = prefix, _prefix_end(prefix)
        if start is not None and reverse:
            # plyvel's stop is exclusive; start itself must be included.
            upper = start + b"\x00" if upper is None else min(upper, start + b"\x00")
        elif start is not None:
            lower = max(lower, start)
        iterator = self._db.iterator(start=lower, stop=upper, reverse=reverse)
        with iterator as items:
            yield from items

    def write(self, batch: WriteBatch) -> None:
        with self._db.write_batch(transaction=True, sync=self._sync) as wb:
            for key, value in batch.ops.items():
                if value is None:
                    wb.delete(key)
                else:
                    wb.put(key, value)

    def close(self) -> None:
        self._db.close()


__all__ = ["KV", "MISSING", "LevelKV", "MemoryKV", "WriteBatch", "read_through"]
