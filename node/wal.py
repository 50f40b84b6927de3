"""Write-ahead log of the consensus core's ``Ready.persist`` records.

File format: a sequence of records ``length (4 bytes, big-endian) || crc32 (4
bytes) || canonical CBOR``. :meth:`Wal.append` writes a whole Ready's records
and fsyncs before returning; :meth:`Wal.write` + :meth:`Wal.sync` let the
driver group several Readies into one fsync. Either way the driver sends a
vote only after the fact that it signed it is on disk.

Damage is judged on :meth:`Wal.open` (:func:`scan`):

* a **torn tail** — the bytes after the last intact record hold no intact record
  (a short frame, a bad checksum, zeros): the last append was cut by a crash
  before its fsync returned, so nothing it recorded was sent. It is cut off and
  logged.
* a **corrupt record in the middle** — intact records follow the damage. Those
  records were durable, and one of them may say that this validator signed a
  vote: dropping them silently could make it sign a conflicting one (amnesia).
  :meth:`Wal.open` refuses with :class:`WalError` (``wal-corrupt``) naming the file
  and the offset; the operator decides, and ``imi node wal-repair --dir D
  --truncate`` (:func:`repair`) cuts the log at the damage, saying what it drops.

Compaction (:meth:`Wal.rewrite`) writes the kept records to a temporary file,
fsyncs it and renames it over the log (atomic on POSIX), then fsyncs the
directory.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ledger.encoding import Value, decode, encode
from ledger.errors import EncodingError
from node.constants import WAL_RECORD_BYTES_MAX
from node.errors import WalError

_HEADER_BYTES = 8
log = logging.getLogger(__name__)


def _frame(value: Value) -> bytes:
    body = encode(value)
    if len(body) > WAL_RECORD_BYTES_MAX:
        raise WalError(f"WAL record of {len(body)} bytes exceeds {WAL_RECORD_BYTES_MAX}", reason="record-too-large")
    return len(body).to_bytes(4, "big") + zlib.crc32(body).to_bytes(4, "big") + body


def _record_at(data: bytes, offset: int) -> tuple[Value, int] | None:
    """The intact record starting at ``offset`` and the offset after it, or None."""
    if offset + _HEADER_BYTES > len(data):
        return None
    size = int.from_bytes(data[offset:offset + 4], "big")
    end = offset + _HEADER_BYTES + size
    if size > WAL_RECORD_BYTES_MAX or end > len(data):
        return None
    body = data[offset + _HEADER_BYTES:end]
    if zlib.crc32(body) != int.from_bytes(data[offset + 4:offset + 8], "big"):
        return None
    try:
        return decode(body), end
    except EncodingError:
        return None


def _parse(data: bytes, offset: int = 0) -> tuple[list[Value], int]:
    """Records in ``data`` from ``offset`` and the offset where that intact run ends."""
    records: list[Value] = []
    while (found := _record_at(data, offset)) is not None:
        records.append(found[0])
        offset = found[1]
    return records, offset


@dataclass(frozen=True, slots=True)
class WalScan:
    """What a log holds: the intact prefix, and what (if anything) is intact after damage.

    ``intact`` is the offset where the intact prefix ends (== ``size`` if undamaged);
    ``resumes_at`` the offset of the first intact record after the damage, None for a
    torn tail; ``later`` the intact records from there on (what a repair drops)."""

    records: list[Value]
    intact: int
    size: int
    resumes_at: int | None
    later: list[Value]

    @property
    def damaged(self) -> bool:
        return self.intact < self.size

    @property
    def torn_tail(self) -> bool:
        return self.damaged and self.resumes_at is None


def scan(data: bytes) -> WalScan:
    """Judge a log's bytes. Precondition: none. Cost: one pass, plus a search for an
    intact record at every offset after the damage (the damaged part only)."""
    records, intact = _parse(data)
    for offset in range(intact + 1, len(data) - _HEADER_BYTES + 1):
        if _record_at(data, offset) is not None:
            later, _ = _parse(data, offset)
            return WalScan(records, intact, len(data), offset, later)
    return WalScan(records, intact, len(data), None, [])


def _heights(records: list[Value]) -> list[int]:
    return [r["h"] for r in records if isinstance(r, dict) and type(r.get("h")) is int]  # type: ignore[misc]


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(size)
        handle.flush()
        os.fsync(handle.fileno())


@dataclass(frozen=True, slots=True)
class WalRepair:
    """What :func:`repair` found (and, if ``applied``, did): the log cut at ``offset``,
    ``kept`` records before it, ``dropped_bytes`` after it, of which ``dropped_records``
    intact records naming heights up to ``dropped_height_max`` (None if none)."""

    path: Path
    damaged: bool
    offset: int
    kept: int
    dropped_bytes: int
    dropped_records: int
    dropped_height_max: int | None
    applied: bool


def repair(path: Path, *, truncate: bool) -> WalRepair:
    """Diagnose the log at ``path``; with ``truncate``, cut it at the first damage (fsynced).
    Only for an operator's explicit decision: it drops every record after the damage."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WalError(f"cannot read {path}: {exc.strerror or exc}", reason="wal-unreadable") from exc
    found = scan(data)
    heights = _heights(found.later)
    report = WalRepair(path, found.damaged, found.intact, len(found.records), found.size - found.intact,
                       len(found.later), max(heights) if heights else None, truncate and found.damaged)
    if report.applied:
        _truncate(path, found.intact)
        _fsync_dir(path.parent)
    return report


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
        found = scan(data)
        if found.damaged and not found.torn_tail:
            raise WalError(
                f"{path}: the record at byte offset {found.intact} is corrupt and {len(found.later)} intact "
                f"record(s) follow it (from offset {found.resumes_at}); refusing to start, since dropping "
                f"them could make this validator forget a vote it signed. Inspect, then run "
                f"`imi node wal-repair --dir NODE_DIR --truncate` to cut the log at offset {found.intact}",
                reason="wal-corrupt")
        if found.torn_tail:
            # The last append was cut by a crash before its fsync returned, so nothing in
            # it was ever sent. Cut it off.
            log.warning("%s: torn tail of %d bytes at offset %d cut off", path, found.size - found.intact,
                        found.intact)
            _truncate(path, found.intact)
        records = found.records
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


__all__ = ["Wal", "WalRepair", "WalScan", "repair", "scan"]
