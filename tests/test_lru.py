"""ledger.lru.BoundedLRU: eviction order, bounds, recency, weights, sharing between threads."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.lru import BoundedLRU


def _filled(entries_max: int, keys: str) -> BoundedLRU[str, int]:
    lru: BoundedLRU[str, int] = BoundedLRU(entries_max)
    for i, key in enumerate(keys):
        lru.put(key, i)
    return lru


def test_the_least_recently_used_entry_leaves_first() -> None:
    lru = _filled(3, "abcd")
    assert list(lru) == ["b", "c", "d"] and "a" not in lru and lru.get("a") is None


def test_get_refreshes_and_peek_does_not() -> None:
    lru = _filled(3, "abc")
    assert lru.get("a") == 0  # a is now the most recent: b leaves next
    lru.put("d", 3)
    assert list(lru) == ["c", "a", "d"]
    assert lru.peek("c") == 2  # peek leaves c the oldest
    lru.put("e", 4)
    assert list(lru) == ["a", "d", "e"]


def test_put_of_a_present_key_replaces_and_refreshes_it() -> None:
    lru = _filled(3, "abc")
    lru.put("a", 10)
    lru.put("d", 3)
    assert list(lru) == ["c", "a", "d"] and lru.peek("a") == 10


def test_pop_discard_clear() -> None:
    lru = _filled(3, "abc")
    assert lru.pop("b") == 1 and lru.pop("b") is None
    lru.discard("a")
    lru.discard("zz")
    assert list(lru) == ["c"]
    lru.clear()
    assert len(lru) == 0


@given(st.integers(1, 8), st.lists(st.sampled_from("abcdefghijkl"), max_size=60))
def test_it_never_holds_more_than_its_bound_and_keeps_the_most_recent(entries_max: int, keys: list[str]) -> None:
    lru: BoundedLRU[str, int] = BoundedLRU(entries_max)
    for i, key in enumerate(keys):
        lru.put(key, i)
        assert len(lru) <= entries_max
    recent: list[str] = []
    for key in reversed(keys):
        if key not in recent:
            recent.append(key)
    assert list(lru) == list(reversed(recent[:entries_max]))


def test_a_weight_bound_evicts_the_oldest_until_the_total_fits() -> None:
    lru: BoundedLRU[bytes, int] = BoundedLRU(10, weigh=lambda key, _v: len(key), weight_max=10)
    for i, key in enumerate((b"aaa", b"bbb", b"ccc")):
        lru.put(key, i)
    assert lru.weight == 9
    lru.put(b"dddd", 3)  # 13 > 10: the oldest (aaa) leaves
    assert list(lru) == [b"bbb", b"ccc", b"dddd"] and lru.weight == 10
    lru.put(b"x" * 11, 4)  # heavier than the whole bound alone: not kept, nothing evicted
    assert b"x" * 11 not in lru and lru.weight == 10
    lru.put(b"bbb", 5)  # a replacement is weighed once
    assert lru.weight == 10 and lru.pop(b"ccc") == 2 and lru.weight == 7
    lru.clear()
    assert lru.weight == 0


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        BoundedLRU(0)
    with pytest.raises(ValueError):
        BoundedLRU(3, weight_max=10)


def test_threads_sharing_one_cache_keep_it_bounded_and_never_raise() -> None:
    lru: BoundedLRU[int, int] = BoundedLRU(16)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(20_000):
                key = (i * 7 + offset) % 64
                if lru.get(key) is None:
                    lru.put(key, i + 1)
                if i % 5 == 0:
                    lru.discard((key + 1) % 64)
        except (KeyError, RuntimeError) as exc:  # a race must cost a miss, never these
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(lru) <= 16
