"""StateTree against a plain dict oracle: reads, proofs and old versions."""

from __future__ import annotations

import os
import random
import sys
import threading
import tracemalloc
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.constants import STATE_KEY_BYTES_MAX, STATE_VALUE_BYTES_MAX
from ledger.encoding import encode
from ledger.errors import LedgerError, StorageError
from ledger.hashing import HashTag, tagged_hash
from ledger.kv import MemoryKV, WriteBatch
from ledger.state import (
    _CACHE_ENTRY_BYTES,
    EMPTY_STATE_ROOT,
    StateTree,
    _BranchCache,
    branch_preimage,
    key_path,
    leaf_hash,
    leaf_preimage,
    verify_state_proof,
)

KEYS = [bytes([i]) * (1 + i % 3) for i in range(1, 41)]
updates_st = st.dictionaries(st.sampled_from(KEYS), st.none() | st.binary(max_size=8), max_size=12)


def _tree() -> tuple[MemoryKV, StateTree]:
    kv = MemoryKV()
    return kv, StateTree(kv, node_prefix=b"n", root_prefix=b"r")


def _commit(kv: MemoryKV, tree: StateTree, updates: Mapping[bytes, bytes | None], version: int) -> bytes:
    batch = WriteBatch()
    root = tree.apply(updates, version, batch)
    kv.write(batch)
    return root


def _fresh_root(entries: dict[bytes, bytes]) -> bytes:
    """Root of a tree built in one batch from scratch (the oracle for history independence)."""
    kv, tree = _tree()
    return _commit(kv, tree, dict(entries), 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(updates_st, min_size=1, max_size=8))
def test_every_version_matches_the_dict_oracle_and_proves(history: list[dict[bytes, bytes | None]]) -> None:
    kv, tree = _tree()
    snapshots: list[tuple[bytes, dict[bytes, bytes]]] = []
    state: dict[bytes, bytes] = {}
    for version, updates in enumerate(history):
        root = _commit(kv, tree, updates, version)
        for key, value in updates.items():
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
        snapshots.append((root, dict(state)))
    # Old versions stay readable and provable after later updates.
    for version, (root, expected) in enumerate(snapshots):
        assert tree.root_at(version) == root
        assert root == _fresh_root(expected)
        for key in KEYS[:20]:
            assert tree.get(key, version) == expected.get(key)
            verify_state_proof(root, key, expected.get(key), tree.prove(key, version))


def test_root_does_not_depend_on_update_order_or_batching() -> None:
    rng = random.Random(7)
    entries = {rng.randbytes(rng.randint(1, 20)): rng.randbytes(rng.randint(0, 30)) for _ in range(300)}
    kv, tree = _tree()
    items = list(entries.items())
    rng.shuffle(items)
    version = 0
    for start in range(0, len(items), 37):
        _commit(kv, tree, dict(items[start:start + 37]), version)
        version += 1
    # Add and then remove some noise keys.
    noise = {rng.randbytes(8): b"x" for _ in range(50)}
    _commit(kv, tree, noise, version)
    final = _commit(kv, tree, {key: None for key in noise}, version + 1)
    assert final == _fresh_root(entries)


def test_deleting_everything_gives_the_empty_root() -> None:
    kv, tree = _tree()
    _commit(kv, tree, {b"a": b"1", b"b": b"2", b"c": b"3"}, 1)
    assert _commit(kv, tree, {b"a": None, b"b": None, b"c": None}, 2) == EMPTY_STATE_ROOT
    assert tree.get(b"a") is None
    assert tree.get(b"a", 1) == b"1"


def test_deleting_an_absent_key_changes_nothing() -> None:
    kv, tree = _tree()
    root = _commit(kv, tree, {b"a": b"1", b"b": b"2"}, 1)
    assert _commit(kv, tree, {b"zz": None}, 2) == root


def test_tree_depth_grows_logarithmically() -> None:
    kv, tree = _tree()
    _commit(kv, tree, {i.to_bytes(4, "big"): b"v" for i in range(4096)}, 0)
    depths = [len(tree.prove(i.to_bytes(4, "big")).steps) for i in range(0, 4096, 97)]
    assert max(depths) <= 2 * 12 + 4
    assert sum(depths) / len(depths) <= 12 + 3


def test_apply_writes_only_into_the_batch_until_committed() -> None:
    kv, tree = _tree()
    _commit(kv, tree, {b"a": b"1"}, 1)
    before = len(kv)
    batch = WriteBatch()
    root = tree.apply({b"b": b"2"}, 2, batch)
    assert len(kv) == before and tree.latest_version() == 1
    assert root != tree.root_at(1)
    kv.write(batch)
    assert tree.latest_version() == 2 and tree.get(b"b") == b"2"


def test_apply_on_an_explicit_base_version_branches_from_it() -> None:
    kv, tree = _tree()
    _commit(kv, tree, {b"a": b"1"}, 1)
    _commit(kv, tree, {b"a": b"2"}, 2)
    batch = WriteBatch()
    root = tree.apply({b"b": b"3"}, 5, batch, base_version=1)
    assert root == _fresh_root({b"a": b"1", b"b": b"3"})


def test_version_must_follow_the_base() -> None:
    kv, tree = _tree()
    _commit(kv, tree, {b"a": b"1"}, 3)
    with pytest.raises(StorageError) as info:
        tree.apply({b"a": b"2"}, 3, WriteBatch())
    assert info.value.reason == "bad-version"
    with pytest.raises(StorageError) as info:
        tree.root_at(9)
    assert info.value.reason == "unknown-version"


def test_key_and_value_limits_are_enforced() -> None:
    kv, tree = _tree()
    for bad in ({b"": b"v"}, {b"k" * (STATE_KEY_BYTES_MAX + 1): b"v"},
                {b"k": b"v" * (STATE_VALUE_BYTES_MAX + 1)}, {"k": b"v"}):
        with pytest.raises(LedgerError):
            tree.apply(bad, 1, WriteBatch())  # type: ignore[arg-type]
    _commit(kv, tree, {b"k" * STATE_KEY_BYTES_MAX: b"v" * STATE_VALUE_BYTES_MAX}, 1)
    assert tree.get(b"k" * STATE_KEY_BYTES_MAX) == b"v" * STATE_VALUE_BYTES_MAX


def test_missing_node_is_reported_as_storage_corruption() -> None:
    kv, tree = _tree()
    root = _commit(kv, tree, {b"a": b"1", b"b": b"2"}, 1)
    batch = WriteBatch()
    batch.delete(b"n" + root)
    kv.write(batch)
    reopened = StateTree(kv, node_prefix=b"n", root_prefix=b"r")  # no cached nodes
    with pytest.raises(StorageError):
        reopened.get(b"a")



@pytest.mark.parametrize("record", [b"", b"X" * 98, b"B" * 97, b"L" + bytes(33), b"L" + bytes(32) + b"\x00\x05key"])
def test_a_malformed_node_record_is_reported_as_storage_corruption(record: bytes) -> None:
    kv, tree = _tree()
    root = _commit(kv, tree, {b"a": b"1", b"b": b"2"}, 1)
    batch = WriteBatch()
    batch.put(b"n" + root, record)
    kv.write(batch)
    reopened = StateTree(kv, node_prefix=b"n", root_prefix=b"r")  # no cached nodes
    with pytest.raises(StorageError):
        reopened.get(b"a")

@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32),
       st.integers(0, 255), st.binary(min_size=32, max_size=32))
def test_fast_preimages_equal_the_canonical_encoding(a: bytes, b: bytes, depth: int, c: bytes) -> None:
    assert leaf_preimage(a, b) == encode([a, b])
    assert branch_preimage(depth, a, c) == encode([depth, a, c])


def test_reader_view_serves_one_fixed_version() -> None:
    kv, tree = _tree()
    _commit(kv, tree, {b"a": b"1"}, 1)
    view = tree.reader(1)
    _commit(kv, tree, {b"a": b"2"}, 2)
    assert view.get(b"a") == b"1" and tree.reader().get(b"a") == b"2"


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=64), st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_fast_hashes_equal_the_tagged_hashes(key: bytes, path: bytes, digest: bytes) -> None:
    assert key_path(key) == tagged_hash(HashTag.STATE_KEY, key)
    assert leaf_hash(path, digest) == tagged_hash(HashTag.STATE_LEAF, encode([path, digest]))


def test_a_cache_entry_costs_at_most_its_budgeted_bytes() -> None:
    cache = _BranchCache(1 << 20)
    records = [bytes((66, 0)) + os.urandom(96) for _ in range(1000)]
    hashes = [os.urandom(32) for _ in records]  # made before tracing: the cache owns only its tables
    tracemalloc.start()
    try:
        for node_hash, record in zip(hashes, records, strict=True):
            cache.put(node_hash, record)
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Keys and records are shared with the caller here, so count them in as the tree creates them.
    per_entry = used / len(records) + sys.getsizeof(hashes[0]) + sys.getsizeof(records[0])
    assert len(cache) == len(records) and per_entry <= _CACHE_ENTRY_BYTES


def test_the_branch_cache_keeps_only_the_top_levels_within_its_budget() -> None:
    budget = 64 * 1024
    kv = MemoryKV()
    tree = StateTree(kv, node_prefix=b"n", root_prefix=b"r", cache_bytes=budget)
    rng = random.Random(5)
    for version in range(30):
        _commit(kv, tree, {rng.randbytes(6): rng.randbytes(4) for _ in range(200)}, version)
        cache = tree._cache
        assert len(cache) * _CACHE_ENTRY_BYTES <= budget
        assert all(record[1] < cache.depth_max for record in cache._entries.values())
    assert 2**cache.depth_max * _CACHE_ENTRY_BYTES <= budget < 2**(cache.depth_max + 1) * _CACHE_ENTRY_BYTES


def test_cache_size_changes_no_root_read_or_proof() -> None:
    rng = random.Random(6)
    history = [{rng.randbytes(rng.randint(1, 3)): rng.choice([None, rng.randbytes(3)]) for _ in range(60)}
               for _ in range(12)]
    results = []
    for cache_bytes in (0, 4096, 1 << 20):
        kv = MemoryKV()
        tree = StateTree(kv, node_prefix=b"n", root_prefix=b"r", cache_bytes=cache_bytes)
        roots = [_commit(kv, tree, updates, version) for version, updates in enumerate(history)]
        reads = [(tree.get(key, version), tree.prove(key, version).to_bytes())
                 for version in range(len(history)) for key in history[version]]
        results.append((roots, reads))
    assert results[0] == results[1] == results[2]


def test_readers_in_other_threads_see_consistent_versions_while_blocks_evict() -> None:
    kv = MemoryKV()
    tree = StateTree(kv, node_prefix=b"n", root_prefix=b"r", cache_bytes=16 * 1024)
    fixed = {f"k{i}".encode(): f"v{i}".encode() for i in range(300)}
    _commit(kv, tree, fixed, 0)
    done = threading.Event()

    def read(seed: int) -> int:
        rng, reads = random.Random(seed), 0
        while not done.is_set():
            key = f"k{rng.randrange(300)}".encode()
            value = tree.get(key, 0)
            verify_state_proof(tree.root_at(0), key, value, tree.prove(key, 0))
            assert value == fixed[key]
            reads += 1
        return reads

    with ThreadPoolExecutor(3) as pool:
        readers = [pool.submit(read, seed) for seed in range(3)]
        try:
            rng = random.Random(8)
            for version in range(1, 40):
                _commit(kv, tree, {rng.randbytes(5): rng.randbytes(3) for _ in range(100)}, version)
        finally:
            done.set()
        assert all(reader.result() > 0 for reader in readers)  # re-raises a reader's failure
