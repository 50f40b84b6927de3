"""A KV that holds its writes in memory over another KV and flushes them as ONE batch.

Catch-up applies many certified blocks in a row. Each block's execution reads the
state the previous one left, so blocks cannot simply share one
:class:`~ledger.kv.WriteBatch` of the real store. A :class:`LedgerStore` opened on a
:class:`StagedKV` sees its own staged blocks (reads go to the staged writes first,
then to the base KV) while the base KV — and every reader of it: the API, the
mempool — still holds only the blocks before the batch. :meth:`StagedKV.flush` then
writes every staged put and delete of all those blocks with ONE
:meth:`KV.write <ledger.kv.KV.write>` of the base: a LevelDB write batch, atomic and
synced. A process killed before or during it leaves the base at the previous head
(the head pointer is one of the keys of the batch), never part of a block.
"""

from __future__ import annotations

from collections.abc import Iterator

from ledger.kv import KV, WriteBatch, read_through


class StagedKV:
    """:class:`~ledger.kv.KV` over ``base``: writes are staged until :meth:`flush`.

    ``staged_bytes`` counts the bytes of staged keys and values, so a caller can bound
    the memory a batch holds. :meth:`close` does not close the base."""

    __slots__ = ("_base", "_staged", "staged_bytes")

    def __init__(self, base: KV) -> None:
        self._base = base
        self._staged = WriteBatch()
        self.staged_bytes = 0

    def get(self, key: bytes) -> bytes | None:
        return read_through(self._base, self._staged, key)

    def iterate(
        self, prefix: bytes, *, start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """The base's pairs under ``prefix`` merged with the staged ones (staged wins,
        a staged delete hides the key), in key order."""
        def wanted(key: bytes) -> bool:
            return key.startswith(prefix) and (start is None or (key <= start if reverse else key >= start))

        staged = sorted((k for k in self._staged.ops if wanted(k)), reverse=reverse)
        index = 0
        for key, value in self._base.iterate(prefix, start=start, reverse=reverse):
            while index < len(staged) and (staged[index] > key if reverse else staged[index] < key):
                yield from self._staged_pair(staged[index])
                index += 1
            if index < len(staged) and staged[index] == key:
                yield from self._staged_pair(key)
                index += 1
            else:
                yield key, value
        for key in staged[index:]:
            yield from self._staged_pair(key)

    def _staged_pair(self, key: bytes) -> Iterator[tuple[bytes, bytes]]:
        value = self._staged.ops[key]
        if value is not None:
            yield key, value

    def write(self, batch: WriteBatch) -> None:
        """Stage ``batch`` (the last write of a key wins, as in the base)."""
        for key, value in batch.ops.items():
            self._staged.ops[key] = value
            self.staged_bytes += len(key) + (0 if value is None else len(value))

    def flush(self) -> int:
        """Write everything staged to the base in one atomic write; returns the keys written."""
        staged, self._staged, self.staged_bytes = self._staged, WriteBatch(), 0
        if staged.ops:
            self._base.write(staged)
        return len(staged.ops)

    def close(self) -> None:
        """Drop what is staged (the base stays open: it belongs to its owner)."""
        self._staged, self.staged_bytes = WriteBatch(), 0


__all__ = ["StagedKV"]
