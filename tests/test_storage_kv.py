"""The KV protocol: MemoryKV and LevelKV behave the same; batches are atomic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.errors import StorageError
from ledger.kv import KV, MISSING, LevelKV, MemoryKV, WriteBatch, read_through


@pytest.fixture(params=["memory", "leveldb"])
def kv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KV]:
    store: KV = MemoryKV() if request.param == "memory" else LevelKV(tmp_path / "db")
    yield store
    store.close()


def _fill(kv: KV, keys: list[bytes]) -> None:
    batch = WriteBatch()
    for key in keys:
        batch.put(key, b"v" + key)
    kv.write(batch)


def test_batch_puts_and_deletes_become_visible_together(kv: KV) -> None:
    _fill(kv, [b"a", b"b"])
    batch = WriteBatch()
    batch.put(b"c", b"3")
    batch.delete(b"a")
    assert kv.get(b"c") is None and kv.get(b"a") == b"va"
    kv.write(batch)
    assert kv.get(b"c") == b"3" and kv.get(b"a") is None and kv.get(b"b") == b"vb"


def test_last_operation_on_a_key_in_a_batch_wins(kv: KV) -> None:
    batch = WriteBatch()
    batch.put(b"k", b"1")
    batch.delete(b"k")
    batch.put(b"j", b"1")
    batch.put(b"j", b"2")
    kv.write(batch)
    assert kv.get(b"k") is None and kv.get(b"j") == b"2"


def test_prefix_iteration_is_ordered_and_bounded(kv: KV) -> None:
    _fill(kv, [b"a\xff", b"a1", b"b", b"a", b"a\xff\xff", b"a2", b"\x00"])
    assert [k for k, _ in kv.iterate(b"a")] == [b"a", b"a1", b"a2", b"a\xff", b"a\xff\xff"]
    assert [k for k, _ in kv.iterate(b"a\xff")] == [b"a\xff", b"a\xff\xff"]
    assert next(k for k, _ in kv.iterate(b"a", reverse=True)) == b"a\xff\xff"
    assert [k for k, _ in kv.iterate(b"a", start=b"a2")] == [b"a2", b"a\xff", b"a\xff\xff"]
    assert [k for k, _ in kv.iterate(b"a", start=b"a2", reverse=True)] == [b"a2", b"a1", b"a"]
    assert next(k for k, _ in kv.iterate(b"")) == b"\x00"
    assert list(kv.iterate(b"zz")) == []


def test_read_through_sees_pending_writes_and_deletes(kv: KV) -> None:
    _fill(kv, [b"a", b"b"])
    batch = WriteBatch()
    batch.put(b"a", b"new")
    batch.delete(b"b")
    assert batch.lookup(b"c") is MISSING
    assert read_through(kv, batch, b"a") == b"new"
    assert read_through(kv, batch, b"b") is None
    assert read_through(kv, batch, b"c") is None
    assert read_through(kv, None, b"a") == b"va"


def test_leveldb_data_survives_reopening(tmp_path: Path) -> None:
    first = LevelKV(tmp_path / "db")
    _fill(first, [b"x"])
    first.close()
    second = LevelKV(tmp_path / "db")
    assert second.get(b"x") == b"vx"
    second.close()


def test_leveldb_unavailable_path_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as info:
        LevelKV(tmp_path / "absent", create=False)
    assert info.value.reason == "store-unavailable"


def test_closed_memory_store_refuses_use() -> None:
    kv = MemoryKV()
    kv.close()
    with pytest.raises(StorageError):
        kv.get(b"a")
