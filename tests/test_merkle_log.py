"""MerkleLog against the recursive RFC 9162 reference (tests/vectors/merkle_reference.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.constants import MERKLE_PROOF_HASHES_MAX
from ledger.errors import ProofError, StorageError
from ledger.kv import MemoryKV, WriteBatch
from tests.vectors import merkle_reference as ref


def _log_with(leaves: list[bytes], chunk: int = 7) -> tuple[MemoryKV, merkle.MerkleLog]:
    kv = MemoryKV()
    log = merkle.MerkleLog(kv, b"L")
    for start in range(0, len(leaves), chunk):
        batch = WriteBatch()
        log.append([merkle.leaf_hash(leaf) for leaf in leaves[start:start + chunk]], batch)
        kv.write(batch)
    return kv, log


def _inputs(n: int) -> list[bytes]:
    return [i.to_bytes(4, "big") for i in range(n)]


def test_roots_for_every_past_size_match_the_reference() -> None:
    leaves = _inputs(70)
    _, log = _log_with(leaves)
    assert log.size() == 70
    for size in range(71):
        assert log.root(size) == ref.mth(leaves[:size])


def test_inclusion_proofs_match_reference_and_verify_for_all_pairs_up_to_40() -> None:
    leaves = _inputs(40)
    _, log = _log_with(leaves, chunk=3)
    for size in range(1, 41):
        root = ref.mth(leaves[:size])
        for index in range(size):
            proof = log.inclusion_proof(index, size)
            assert proof == ref.path(index, leaves[:size])
            merkle.verify_inclusion(index, size, merkle.leaf_hash(leaves[index]), proof, root)


def test_consistency_proofs_match_reference_and_verify_for_all_pairs_up_to_40() -> None:
    leaves = _inputs(40)
    _, log = _log_with(leaves, chunk=5)
    for new in range(1, 41):
        for old in range(1, new + 1):
            proof = log.consistency_proof(old, new)
            assert proof == ([] if old == new else ref.proof(old, leaves[:new]))
            merkle.verify_consistency(old, new, ref.mth(leaves[:old]), ref.mth(leaves[:new]), proof)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=1, max_value=300),
    st.data(),
)
def test_random_proofs_verify_and_reject_a_flipped_bit(size: int, data: st.DataObject) -> None:
    leaves = _inputs(size)
    _, log = _log_with(leaves, chunk=data.draw(st.integers(1, 64)))
    index = data.draw(st.integers(0, size - 1))
    root = log.root(size)
    leaf = merkle.leaf_hash(leaves[index])
    proof = log.inclusion_proof(index, size)
    merkle.verify_inclusion(index, size, leaf, proof, root)
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        bad = list(proof)
        bad[position] = (int.from_bytes(bad[position], "big") ^ (1 << bit)).to_bytes(32, "big")
        with pytest.raises(ProofError):
            merkle.verify_inclusion(index, size, leaf, bad, root)
    old = data.draw(st.integers(1, size))
    cproof = log.consistency_proof(old, size)
    merkle.verify_consistency(old, size, log.root(old), root, cproof)


def test_append_returns_the_root_before_the_batch_is_committed() -> None:
    kv = MemoryKV()
    log = merkle.MerkleLog(kv, b"L")
    batch = WriteBatch()
    size, root = log.append([merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")], batch)
    assert (size, log.size()) == (2, 0)
    kv.write(batch)
    assert log.root() == root == ref.mth([b"a", b"b"])


def test_uncommitted_batch_leaves_the_log_unchanged() -> None:
    _, log = _log_with(_inputs(5))
    before = log.root()
    log.append([merkle.leaf_hash(b"x")], WriteBatch())
    assert (log.size(), log.root()) == (5, before)


def test_append_writes_about_two_nodes_per_leaf() -> None:
    kv, _ = _log_with(_inputs(1024), chunk=1024)
    # 2n - 1 tree nodes plus the size record.
    assert len(kv) == 2 * 1024 - 1 + 1


def test_requests_beyond_the_log_are_refused() -> None:
    _, log = _log_with(_inputs(4))
    with pytest.raises(ProofError):
        log.root(5)
    with pytest.raises(ProofError):
        log.inclusion_proof(4, 4)
    with pytest.raises(ProofError):
        log.consistency_proof(3, 5)
    with pytest.raises(ProofError):
        log.consistency_proof(3, 2)


def test_missing_node_is_reported_as_storage_corruption() -> None:
    kv, log = _log_with(_inputs(4))
    batch = WriteBatch()
    batch.delete(b"L" + bytes((2,)) + (0).to_bytes(8, "big"))
    kv.write(batch)
    with pytest.raises(StorageError):
        log.root(4)


def test_verifiers_refuse_oversized_or_malformed_proofs() -> None:
    leaf = merkle.leaf_hash(b"x")
    with pytest.raises(ProofError):
        merkle.verify_inclusion(0, 2**62, leaf, [leaf] * (MERKLE_PROOF_HASHES_MAX + 1), leaf)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(0, 2, leaf, [b"short"], leaf)
    with pytest.raises(ProofError):
        merkle.verify_consistency(1, 2, leaf, leaf, [leaf[:31]])
    with pytest.raises(ProofError):
        merkle.verify_consistency(0, 3, b"\x00" * 32, leaf, [])


def test_empty_log_has_the_rfc_empty_root() -> None:
    _, log = _log_with([])
    assert log.root() == merkle.EMPTY_ROOT == ref.mth([])
    merkle.verify_consistency(0, 0, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, [])
