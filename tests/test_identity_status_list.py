"""Token Status List: the draft's vectors, mutated negatives, lifecycle, round trips."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from identity import status_list as sl
from identity.errors import StatusListError

VECTORS = json.loads((Path(__file__).parent / "vectors" / "status_list.json").read_text())


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["name"])
def test_draft_vector_decodes_to_its_statuses(case: dict) -> None:
    lst = sl.decode_lst(case["lst"])
    assert lst.hex() == case["bytes_hex"]
    assert sl.unpack(lst, case["bits"])[: len(case["statuses"])] == case["statuses"]


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["name"])
def test_draft_vector_is_reproduced_by_packing_and_encoding(case: dict) -> None:
    lst = sl.pack(case["statuses"], case["bits"])
    assert sl.encode_lst(lst) == case["lst"]
    assert sl.to_json(lst, case["bits"]) == {"bits": case["bits"], "lst": case["lst"]}


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["name"])
def test_mutated_lst_is_rejected(case: dict) -> None:
    with pytest.raises(StatusListError) as err:
        sl.decode_lst(case["lst"])
    assert err.value.reason == "bad-lst"


def test_index_zero_is_least_significant_bit_of_byte_zero() -> None:
    assert sl.set_status(bytes(2), 1, 0, 1) == b"\x01\x00"
    assert sl.set_status(bytes(2), 1, 8, 1) == b"\x00\x01"
    assert sl.set_status(bytes(1), 2, 3, 2) == bytes([0b10000000])


def test_decompression_bomb_is_refused() -> None:
    with pytest.raises(StatusListError):
        sl.decode_lst(sl.encode_lst(bytes(1 << 16)), max_bytes=1024)


def test_unsupported_bits_are_refused() -> None:
    for bits in (0, 3, 4, 8, True):
        with pytest.raises(StatusListError):
            sl.new_list(8, bits)


def test_index_out_of_range_is_refused() -> None:
    with pytest.raises(StatusListError) as err:
        sl.get_status(bytes(1), 1, 8)
    assert err.value.reason == "index-out-of-range"


@pytest.mark.parametrize(("old", "new"), sorted(sl.STATUS_TRANSITIONS))
def test_allowed_status_transition(old: int, new: int) -> None:
    lst = sl.set_status(bytes(2), 2, 5, old)
    assert sl.get_status(sl.apply_updates(lst, 2, [(5, new)]), 2, 5) == new


@pytest.mark.parametrize(("old", "new"), [(1, 0), (1, 2), (0, 0), (2, 2), (1, 1)])
def test_forbidden_status_transition_revocation_is_final(old: int, new: int) -> None:
    lst = sl.set_status(bytes(2), 2, 5, old)
    with pytest.raises(StatusListError):
        sl.apply_updates(lst, 2, [(5, new)])


def test_one_bit_list_cannot_suspend() -> None:
    with pytest.raises(StatusListError) as err:
        sl.apply_updates(bytes(1), 1, [(0, 2)])
    assert err.value.reason == "bad-status"


def test_allocate_index_is_random_unused_and_fills_the_list() -> None:
    rng = random.Random(7)
    lst, used = sl.new_list(64, 1), set()
    for _ in range(64):
        index = sl.allocate_index(lst, 1, used, rng)
        assert index not in used
        used.add(index)
    assert used == set(range(64))
    with pytest.raises(StatusListError) as err:
        sl.allocate_index(lst, 1, used, rng)
    assert err.value.reason == "list-full"


def test_allocate_index_draws_until_nearly_full_and_only_then_scans() -> None:
    """A half-full list (an enrolment day's ordinary state) is served by random draws over
    the whole list, not by listing its free entries on every call (O(size) each)."""
    from identity.ledger_constants import STATUS_ALLOCATE_DRAWS_MAX

    bounds: list[int] = []

    class Counting(random.Random):
        def randrange(self, *args: int, **kwargs: int) -> int:  # type: ignore[override]
            bounds.append(args[0])
            return super().randrange(*args, **kwargs)

    size = 8 * STATUS_ALLOCATE_DRAWS_MAX
    lst, rng = sl.new_list(size, 1), Counting(3)
    used = set(range(size - 8))  # exactly 1/STATUS_ALLOCATE_DRAWS_MAX of it free
    assert sl.allocate_index(lst, 1, used, rng) >= size - 8
    assert set(bounds) == {size}  # draws over the whole list
    used.add(size - 8)
    bounds.clear()
    assert sl.allocate_index(lst, 1, used, rng) >= size - 7
    assert bounds == [7]  # fewer free: one draw among the free entries


def test_allocate_index_is_not_sequential() -> None:
    rng = random.Random(1)
    lst, used = sl.new_list(1024, 1), set()
    picks = [sl.allocate_index(lst, 1, used, rng) for _ in range(8)]
    assert picks != sorted(picks)


@settings(max_examples=60, deadline=None)
@given(bits=st.sampled_from([1, 2]), data=st.data())
def test_pack_encode_decode_unpack_round_trips(bits: int, data: st.DataObject) -> None:
    statuses = data.draw(st.lists(st.integers(0, (1 << bits) - 1), max_size=300))
    lst = sl.pack(statuses, bits)
    back = sl.unpack(sl.decode_lst(sl.encode_lst(lst)), bits)
    assert back[: len(statuses)] == statuses
    assert not any(back[len(statuses):])


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_set_then_get_touches_only_that_entry(data: st.DataObject) -> None:
    bits = data.draw(st.sampled_from([1, 2]))
    lst = data.draw(st.binary(min_size=1, max_size=32))
    index = data.draw(st.integers(0, len(lst) * 8 // bits - 1))
    status = data.draw(st.integers(0, (1 << bits) - 1))
    out = sl.set_status(lst, bits, index, status)
    before, after = sl.unpack(lst, bits), sl.unpack(out, bits)
    assert after[index] == status
    assert [s for i, s in enumerate(after) if i != index] == [
        s for i, s in enumerate(before) if i != index]
