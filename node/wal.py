"""Write-ahead log of the consensus core's ``Ready.persist`` records.

File format: a sequence of records ``length (4 bytes, big-endian) || crc32 (4
bytes) || canonical CBOR``. :meth:`Wal.append` writes a whole Ready's records
and fsyncs before returning; :meth:`Wal.write` + :meth:`Wal.sync` let the
driver group several Readies into one fsync. Either way the driver sends a
vote only after the fact that it signed it is on disk. After a crash (kill -9) a torn last record
(short, bad checksum or not canonical) is cut off on :meth:`Wal.open`: its
append never returned, so nothing it recorded was sent.

Compaction (:meth:`Wal.rewrite`) writes the kept records to a temporary file,
fsyncs it and renames it over the log (atomic on POSIX), then fsyncs the
directory.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable
from pathlib import Path

from ledger.encoding import Value, decode, encode
from ledger.errors import EncodingError
from node.constants import WAL_RECORD_BYTES_MAX
from node.errors import WalError

_HEADER_BYTES = 8


def _frame(value: Value) -> bytes:
    body = encode(value)
    if len(body) > WAL_RECORD_BYTES_MAX:
        raise WalError(f"WAL record of {len(body)} bytes exceeds {WAL_RECORD_BYTES_MAX}", reason="record-too-large")
    return len(body).to_bytes(4, "big") + zlib.crc32(body).to_bytes(4, "big") + body


def _parse(data: bytes) -> tuple[list[Value], int]:
    """Records in ``data`` and the offset where the intact prefix ends."""
    records: list[Value] = []
    offset = 0
    while offset + _HEADER_BYTES <= len(data):
        size = int.from_bytes(data[offset:offset + 4], "big")
        crc = int.from_bytes(data[offset + 4:offset + 8], "big")
        end = offset + _HEADER_BYTES + size
        if size > WAL_RECORD_BYTES_MAX or end > len(data):
            break
        body = data[offset + _HEADER_BYTES:end]
        if zlib.crc32(body) != crc:
            break
        try:
            records.append(decode(body))
        except EncodingError:
            break
        offset = end
    return records, offset


class Wal:
    """An append-only, fsynced record log. Open with :meth:`open`; not thread-safe."""

    __slots__ = ("_dirty", "_fd", "path", "records_count")

    def __init__(self, path: Path, fd: int, records_count: int) -> None:
        self.path = path
        self._fd = fd
        self.records_count = records_count
        self._dirty = False

    @classmethod
    def open(cls, path: Path) -> tuple[Wal, list[Value]]:
        """Open (or create) the log and return it with the records it holds, in order."""
        path.parent.mkdir(parents=True, exist_ok=True)
        data = path.read_bytes() if path.exists() else b""
        records, intact = _parse(data)
        if intact < len(data):
            # A torn tail: the last append was cut by a crash before its fsync returned,
            # so nothing in it was ever sent. Cut it off.
            with open(path, "r+b") as handle:
                handle.truncate(intact)
                handle.flush()
                os.fsync(handle.fileno())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        _fsync_dir(path.parent)
        return cls(path, fd, len(records)), records

    def append(self, records: Iterable[Value]) -> None:
        """Append ``records`` and fsync; returns only once they are durable."""
        if self.write(records):
            self.sync()

    def write(self, records: Iterable[Value]) -> int:
        """Append ``records`` without fsync (group commit: call :meth:`sync` before acting
        on them). Returns how many were written."""
        frames = [_frame(r) for r in records]
        if not frames:
            return 0
        blob = b"".join(frames)
        written = 0
        while written < len(blob):
            written += os.write(self._fd, blob[written:])
        self.records_count += len(frames)
        self._dirty = True
        return len(frames)

    def sync(self) -> bool:
        """Make every record written so far durable (one fsync, if any was written since
        the last); True if it synced."""
        if not self._dirty:
            return False
        os.fsync(self._fd)
        self._dirty = False
        return True

    def rewrite(self, records: Iterable[Value]) -> None:
        """Atomically replace the log's content with ``records`` (compaction)."""
        self.sync()
        kept = list(records)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            handle.write(b"".join(_frame(r) for r in kept))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND, 0o600)
        self.records_count = len(kept)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["Wal"]
