"""An issuer's own records, in SQLite: enrolments and issued credentials.

Why SQLite (docs/dependencies.md): it is in the standard library, one issuance is one
small transaction (a few inserted rows, one fsync in WAL mode with ``synchronous=FULL``)
instead of a rewrite of every record, and a committed transaction survives ``kill -9``
of the service. A status index is reserved here (``PRIMARY KEY (list_id, idx)``) and
committed *before* the credential is signed, so a restarted service never hands out the
same index twice.

Tables::

    enrolments(subject PRIMARY KEY, holder_kind 'did'|'jwk', holder, via, at)
    issued(list_id, idx, vct, subject, holder_kind, holder, iat, anchor, salt,
           PRIMARY KEY (list_id, idx))

``path=None`` keeps everything in memory (tests, the demo). Thread-safe: one connection
behind a lock. Nothing on the issuing path grows with the number of records: the
indices given out per list and the row counts (for the ``*_MAX`` bounds) are read from
the database once and then kept in memory, updated after each committed write.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from identity.errors import IssuanceError

ISSUED_RECORDS_MAX: Final = 10_000_000
ENROLMENTS_MAX: Final = 10_000_000
_SCHEMA: Final = (
    ("CREATE TABLE IF NOT EXISTS enrolments (subject TEXT PRIMARY KEY, holder_kind TEXT NOT NULL, "
    "holder TEXT NOT NULL, via TEXT NOT NULL, at INTEGER NOT NULL)"),
    ("CREATE TABLE IF NOT EXISTS issued (list_id TEXT NOT NULL, idx INTEGER NOT NULL, vct TEXT NOT NULL, "
    "subject TEXT NOT NULL, holder_kind TEXT NOT NULL, holder TEXT NOT NULL, iat INTEGER NOT NULL, "
    "anchor TEXT NOT NULL, salt TEXT NOT NULL, PRIMARY KEY (list_id, idx))"),
    "CREATE INDEX IF NOT EXISTS issued_subject ON issued (subject)",
)
_ISSUED_COLUMNS: Final = ("list_id", "idx", "vct", "subject", "holder_kind", "holder", "iat", "anchor", "salt")


STORE_FILE_MODE: Final = 0o600  # the store and its -wal/-shm: readable by the service's user only


def _create_private(path: Path) -> None:
    """Create the database file owner-only *before* SQLite opens it (an existing one is made
    0600 too), so no record is ever readable by others, not even between create and chmod.
    SQLite creates its ``-wal`` and ``-shm`` side files with the database file's permission
    bits (the umask can only take bits away), so they are 0600 as well. Raises OSError."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, STORE_FILE_MODE)
    try:
        os.fchmod(fd, STORE_FILE_MODE)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A subject bound to a holder: ``kind`` ``did`` (a did:imi) or ``jwk`` (a key thumbprint)."""

    subject: str
    kind: str
    holder: str
    via: str
    at: int


class IssuerStore:
    """Enrolments and issued-credential records (see module doc)."""

    __slots__ = ("_counts", "_db", "_lock", "_used", "path")

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        try:
            if path is not None:
                _create_private(path)
            self._db = sqlite3.connect(":memory:" if path is None else str(path), check_same_thread=False,
                                       isolation_level=None)
            if path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            for statement in _SCHEMA:
                self._db.execute(statement)
        except (sqlite3.Error, OSError) as exc:
            raise ValueError(f"issuer store {str(path)!r} is unusable: {exc}") from exc
        self._lock = threading.Lock()
        self._used: dict[str, set[int]] = {}
        self._counts: dict[str, int] = {}  # table -> rows, read once

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- enrolments ---------------------------------------------------------------------
    def enrol(self, subject: str, kind: str, holder: str, *, via: str, at: int) -> Enrolment:
        """Bind ``subject`` to a holder (replacing an earlier binding: staff re-enrolled the person)."""
        if kind not in ("did", "jwk"):
            raise ValueError("holder kind is did or jwk")
        with self._lock:
            new = self._db.execute("SELECT 1 FROM enrolments WHERE subject = ?", (subject,)).fetchone() is None
            if new and self._count_locked("enrolments") >= ENROLMENTS_MAX:
                raise IssuanceError("enrolments are full", reason="records-full")
            self._write("INSERT OR REPLACE INTO enrolments VALUES (?, ?, ?, ?, ?)", [(subject, kind, holder, via, at)])
            self._counts["enrolments"] += new
        return Enrolment(subject, kind, holder, via, at)

    def enrol_first(self, subject: str, kind: str, holder: str, *, via: str, at: int) -> Enrolment:
        """Bind ``subject`` to a holder unless it is bound already; returns the binding in
        force (the caller compares it with what it asked). Check and write are one step."""
        if kind not in ("did", "jwk"):
            raise ValueError("holder kind is did or jwk")
        with self._lock:
            row = self._db.execute("SELECT subject, holder_kind, holder, via, at FROM enrolments WHERE subject = ?",
                                   (subject,)).fetchone()
            if row is not None:
                return Enrolment(*row)
            if self._count_locked("enrolments") >= ENROLMENTS_MAX:
                raise IssuanceError("enrolments are full", reason="records-full")
            self._write("INSERT INTO enrolments VALUES (?, ?, ?, ?, ?)", [(subject, kind, holder, via, at)])
            self._counts["enrolments"] += 1
        return Enrolment(subject, kind, holder, via, at)

    def enrolment(self, subject: str) -> Enrolment | None:
        with self._lock:
            row = self._db.execute("SELECT subject, holder_kind, holder, via, at FROM enrolments WHERE subject = ?",
                                   (subject,)).fetchone()
        return Enrolment(*row) if row is not None else None

    # --- issued credentials ---------------------------------------------------------------
    def used(self, list_id: str) -> set[int]:
        """Indices of ``list_id`` already given out (a copy)."""
        with self._lock:
            return set(self._used_locked(list_id))

    def used_count(self, list_id: str) -> int:
        """How many indices of ``list_id`` were given out."""
        with self._lock:
            return len(self._used_locked(list_id))

    def choose_unused(self, list_id: str, count: int, choose: Callable[[set[int]], int]) -> list[int]:
        """``count`` distinct indices of ``list_id`` not given out, each ``choose(taken)`` (which
        must return an index not in ``taken``, or raise; a taken one raises IssuanceError
        ``index-taken``). Nothing is reserved: the caller records them with :meth:`add_many`,
        which refuses an index taken meanwhile. Costs O(count), not O(indices given out)."""
        chosen: list[int] = []
        with self._lock:
            taken = self._used_locked(list_id)
            try:
                for _ in range(count):
                    index = choose(taken)
                    if index in taken:  # never by allocate_index; undoing it below would free it
                        raise IssuanceError(f"index {index} is already given out", reason="index-taken")
                    taken.add(index)  # so the next choice differs; undone below
                    chosen.append(index)
            finally:
                taken.difference_update(chosen)
        return chosen

    def _count_locked(self, table: str) -> int:
        if table not in self._counts:
            self._counts[table] = int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        return self._counts[table]

    def _used_locked(self, list_id: str) -> set[int]:
        if list_id not in self._used:
            rows = self._db.execute("SELECT idx FROM issued WHERE list_id = ?", (list_id,)).fetchall()
            self._used[list_id] = {int(r[0]) for r in rows}
        return self._used[list_id]

    def add_many(self, records: list[dict[str, Any]]) -> None:
        """Record issued credentials in one durable transaction; an index already taken or a
        write failure raises IssuanceError and records nothing (the caller hands out nothing)."""
        with self._lock:
            if self._count_locked("issued") + len(records) > ISSUED_RECORDS_MAX:
                raise IssuanceError("issuer records are full", reason="records-full")
            self._write(f"INSERT INTO issued VALUES ({', '.join('?' * len(_ISSUED_COLUMNS))})",
                        [tuple(r[c] for c in _ISSUED_COLUMNS) for r in records])
            self._counts["issued"] += len(records)
            for r in records:
                self._used_locked(str(r["list_id"])).add(int(r["idx"]))

    def add(self, record: dict[str, Any]) -> None:
        self.add_many([record])

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_ISSUED_COLUMNS)} FROM issued ORDER BY rowid").fetchall()
        return [dict(zip(_ISSUED_COLUMNS, row, strict=True)) for row in rows]

    def for_subject(self, subject: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_ISSUED_COLUMNS)} FROM issued WHERE subject = ? "
                                    "ORDER BY rowid", (subject,)).fetchall()
        return [dict(zip(_ISSUED_COLUMNS, row, strict=True)) for row in rows]

    def _write(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        """One transaction; precondition: the lock is held."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(statement, rows)
            self._db.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            self._db.execute("ROLLBACK")
            raise IssuanceError(f"record conflicts with an existing one: {exc}", reason="index-taken") from exc
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise IssuanceError(f"cannot write issuer records: {exc}", reason="records-io-error") from exc


__all__ = ["ENROLMENTS_MAX", "ISSUED_RECORDS_MAX", "STORE_FILE_MODE", "Enrolment", "IssuerStore"]
