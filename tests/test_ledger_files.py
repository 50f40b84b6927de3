"""ledger.files.write_atomic: mode 0600, durable (file and directory fsynced), and a
failure at any point leaves the old file intact and no temporary file behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ledger import files
from ledger.files import write_atomic


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_new_file_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_atomic(tmp_path / "key.jwk", "secret")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "key.jwk").stat().st_mode) == 0o600
    assert (tmp_path / "key.jwk").read_text() == "secret"
    assert _leftovers(tmp_path) == []


def test_replacing_a_readable_file_makes_it_owner_only(tmp_path: Path) -> None:
    target = tmp_path / "wallet.imi"
    target.write_text("old")
    target.chmod(0o644)
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_public_mode_is_honoured(tmp_path: Path) -> None:
    write_atomic(tmp_path / "cert.pem", "cert", mode=files.PUBLIC_FILE_MODE)
    assert stat.S_IMODE((tmp_path / "cert.pem").stat().st_mode) == 0o644


def test_file_and_directory_are_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        mode = os.fstat(fd).st_mode
        synced.append("dir" if stat.S_ISDIR(mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    write_atomic(tmp_path / "records.json", "{}")
    assert synced == ["file", "dir"]  # the data before the rename, the rename after it


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_a_crash_mid_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              failing: str) -> None:
    target = tmp_path / "consensus_key.jwk"
    write_atomic(target, "old key")

    def crash(*_args: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, failing, crash)
    with pytest.raises(OSError):
        write_atomic(target, "new key")
    monkeypatch.undo()
    assert target.read_text() == "old key"
    assert _leftovers(tmp_path) == []


def test_exclusive_never_replaces(tmp_path: Path) -> None:
    target = tmp_path / "recovery-kit.jwk"
    write_atomic(target, "first", exclusive=True)
    with pytest.raises(FileExistsError):
        write_atomic(target, "second", exclusive=True)
    assert target.read_text() == "first"
    assert _leftovers(tmp_path) == []
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_wallet_save_that_fails_keeps_the_old_wallet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from identity.errors import WalletError
    from identity.wallet import KdfParams, Wallet

    path = tmp_path / "wallet.imi"
    wallet = Wallet.create(path, "pw", kdf=KdfParams.fastest())
    first = wallet.new_key("EdDSA")
    wallet.save()
    wallet.new_key("EdDSA")
    monkeypatch.setattr(os, "replace", lambda *_a: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(WalletError) as caught:
        wallet.save()
    monkeypatch.undo()
    assert caught.value.reason == "io-error"
    assert Wallet.open(path, "pw").key_ids() == [first]
    assert _leftovers(tmp_path) == [] and stat.S_IMODE(path.stat().st_mode) == 0o600


def _record_directory_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    synced_dirs: list[int] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            synced_dirs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    return synced_dirs


def test_a_wallet_save_fsyncs_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from identity.wallet import KdfParams, Wallet

    synced_dirs = _record_directory_fsyncs(monkeypatch)
    Wallet.create(tmp_path / "wallet.imi", "pw", kdf=KdfParams.fastest()).save()
    assert synced_dirs, "the directory was not fsynced after the rename"


def test_issuer_records_are_written_owner_only_and_durably(tmp_path: Path) -> None:
    """The issuer's records live in SQLite (identity/issuer_store.py; a committed transaction
    is durable, WAL with synchronous=FULL), owner-only; a reopened store sees them."""
    from identity.issuer_store import IssuerStore

    store = IssuerStore(tmp_path / "issuer.sqlite")
    store.add({"list_id": "l", "idx": 3, "vct": "v", "subject": "s", "holder_kind": "jwk", "holder": "t",
               "iat": 1, "anchor": "a", "salt": "b"})
    store.close()
    assert stat.S_IMODE((tmp_path / "issuer.sqlite").stat().st_mode) == 0o600
    assert IssuerStore(tmp_path / "issuer.sqlite").used("l") == {3}


def _issued(idx: int, subject: str = "s") -> dict[str, object]:
    return {"list_id": "l", "idx": idx, "vct": "v", "subject": subject, "holder_kind": "jwk", "holder": "t",
            "iat": 1, "anchor": "a", "salt": "b"}


def test_issuer_store_choices_and_bounds_survive_a_reopen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Index choice and the *_MAX bounds work from memory kept in step with the database:
    a choice reserves nothing, never repeats a given-out index, and the row counts a
    reopened store reads back are the ones the bounds see (a re-enrolment adds no row)."""
    from identity import issuer_store
    from identity.errors import IssuanceError
    from identity.issuer_store import IssuerStore

    store = IssuerStore(tmp_path / "issuer.sqlite")
    store.add_many([_issued(i) for i in range(6)])
    picks = iter([7, 6, 9])
    assert store.choose_unused("l", 3, lambda taken: next(picks)) == [7, 6, 9]
    assert store.used("l") == set(range(6)) and store.used_count("l") == 6  # nothing reserved
    with pytest.raises(IssuanceError) as err:  # a chooser that returns a given-out index
        store.choose_unused("l", 2, lambda taken: 8 if 8 not in taken else 5)
    assert err.value.reason == "index-taken" and store.used("l") == set(range(6))  # 5 still given out
    store.enrol("a", "jwk", "t1", via="staff", at=1)
    store.enrol("a", "jwk", "t2", via="staff", at=2)  # re-enrolled: still one row
    store.close()

    monkeypatch.setattr(issuer_store, "ISSUED_RECORDS_MAX", 8)
    monkeypatch.setattr(issuer_store, "ENROLMENTS_MAX", 2)
    again = IssuerStore(tmp_path / "issuer.sqlite")
    assert again.used_count("l") == 6 and again.enrolment("a").holder == "t2"  # type: ignore[union-attr]
    again.add_many([_issued(6), _issued(7)])
    with pytest.raises(IssuanceError) as err:
        again.add(_issued(8))
    assert err.value.reason == "records-full"
    assert again.enrol_first("b", "jwk", "t", via="offer", at=3).holder == "t"
    again.enrol("a", "jwk", "t3", via="staff", at=4)  # replacing a binding is always possible
    assert again.enrol_first("b", "jwk", "other", via="offer", at=4).holder == "t"  # bound already
    for enrol in (again.enrol, again.enrol_first):
        with pytest.raises(IssuanceError) as err:
            enrol("c", "jwk", "t", via="staff", at=5)
        assert err.value.reason == "records-full"
