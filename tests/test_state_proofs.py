"""State proofs: membership, absence, soundness under mutation, serialisation."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import LedgerError, ProofError
from ledger.hashing import sha256
from ledger.kv import MemoryKV, WriteBatch
from ledger.state import (
    EMPTY_STATE_ROOT,
    ProofLeaf,
    ProofStep,
    StateProof,
    StateTree,
    key_path,
    root_from_state_proof,
    verify_state_proof,
)


def _tree_with(entries: dict[bytes, bytes]) -> tuple[StateTree, bytes]:
    kv = MemoryKV()
    tree = StateTree(kv, node_prefix=b"n", root_prefix=b"r")
    batch = WriteBatch()
    root = tree.apply(entries, 1, batch)
    kv.write(batch)
    return tree, root


def _flip(data: bytes, bit: int) -> bytes:
    raw = bytearray(data)
    raw[bit // 8] ^= 1 << (bit % 8)
    return bytes(raw)


def _rejects(root: bytes, key: bytes, value: bytes | None, proof_bytes: bytes) -> bool:
    try:
        verify_state_proof(root, key, value, StateProof.from_bytes(proof_bytes))
    except LedgerError:
        return True
    return False


entries_st = st.dictionaries(st.binary(min_size=1, max_size=6), st.binary(max_size=6), min_size=1, max_size=40)


@settings(max_examples=25, deadline=None)
@given(entries_st, st.data())
def test_every_single_bit_mutation_of_a_membership_proof_fails(
    entries: dict[bytes, bytes], data: st.DataObject
) -> None:
    tree, root = _tree_with(entries)
    key = data.draw(st.sampled_from(sorted(entries)))
    value = entries[key]
    raw = tree.prove(key).to_bytes()
    verify_state_proof(root, key, value, StateProof.from_bytes(raw))
    for bit in range(len(raw) * 8):
        assert _rejects(root, key, value, _flip(raw, bit)), f"proof bit {bit}"
    for bit in range(256):
        assert _rejects(_flip(root, bit), key, value, raw), f"root bit {bit}"
    for bit in range(len(key) * 8):
        assert _rejects(root, _flip(key, bit), value, raw), f"key bit {bit}"
    for bit in range(len(value) * 8):
        assert _rejects(root, key, _flip(value, bit), raw), f"value bit {bit}"
    assert _rejects(root, key, None, raw)
    assert _rejects(root, key, value + b"\x00", raw)


@settings(max_examples=25, deadline=None)
@given(entries_st, st.binary(min_size=1, max_size=6))
def test_absent_keys_have_sound_non_membership_proofs(entries: dict[bytes, bytes], probe: bytes) -> None:
    tree, root = _tree_with(entries)
    absent = probe if probe not in entries else probe + b"\xff" * 7
    raw = tree.prove(absent).to_bytes()
    verify_state_proof(root, absent, None, StateProof.from_bytes(raw))
    for bit in range(len(raw) * 8):
        assert _rejects(root, absent, None, _flip(raw, bit)), f"proof bit {bit}"
    # The absence proof cannot be read as a membership proof of any value.
    assert _rejects(root, absent, b"", raw)
    # And no proof of absence exists for a present key: each present key's own
    # proof and every other key's proof fail as absence proofs.
    for key in entries:
        assert _rejects(root, key, None, tree.prove(key).to_bytes())
        assert _rejects(root, key, None, raw)


def test_forged_absence_proof_from_a_neighbouring_leaf_is_rejected() -> None:
    entries = {bytes([i]): bytes([i]) for i in range(1, 64)}
    tree, root = _tree_with(entries)
    target = b"\x05"
    # Try every other key's membership proof, with its leaf, as "absence of target".
    for key in entries:
        if key == target:
            continue
        proof = tree.prove(key)
        with pytest.raises(ProofError):
            verify_state_proof(root, target, None, proof)
        # Truncating the walk to a branch shared with the target does not help either.
        for cut in range(len(proof.steps)):
            shorter = StateProof(proof.steps[:cut], proof.leaf)
            with pytest.raises(ProofError):
                verify_state_proof(root, target, None, shorter)


def test_empty_tree_proves_absence_with_an_empty_proof() -> None:
    tree, root = _tree_with({})
    assert root == EMPTY_STATE_ROOT
    proof = tree.prove(b"anything")
    assert proof == StateProof((), None)
    verify_state_proof(EMPTY_STATE_ROOT, b"anything", None, proof)
    with pytest.raises(ProofError):
        verify_state_proof(EMPTY_STATE_ROOT, b"anything", b"", proof)


def test_single_entry_tree_proves_membership_and_absence() -> None:
    tree, root = _tree_with({b"k": b"v"})
    verify_state_proof(root, b"k", b"v", tree.prove(b"k"))
    verify_state_proof(root, b"other", None, tree.prove(b"other"))
    assert tree.prove(b"k").steps == ()


def test_proof_depths_must_increase() -> None:
    entries = {bytes([i]): b"v" for i in range(1, 30)}
    tree, _ = _tree_with(entries)
    proof = tree.prove(b"\x07")
    assert len(proof.steps) >= 2
    swapped = StateProof((proof.steps[1], proof.steps[0], *proof.steps[2:]), proof.leaf)
    with pytest.raises(ProofError):
        root_from_state_proof(b"\x07", b"v", swapped)


def test_value_and_json_forms_round_trip() -> None:
    entries = {bytes([i]): bytes([i]) * i for i in range(1, 20)}
    tree, _ = _tree_with(entries)
    for key in (b"\x03", b"absent"):
        proof = tree.prove(key)
        assert StateProof.from_value(proof.to_value()) == proof
        assert StateProof.from_bytes(proof.to_bytes()) == proof
        text = json.dumps(proof.to_json())
        assert StateProof.from_json(json.loads(text)) == proof


@pytest.mark.parametrize("bad", [
    None, [], {"steps": []}, {"leaf": None, "steps": [], "extra": 1},
    {"leaf": None, "steps": [{"depth": 1}]},
    {"leaf": None, "steps": [{"depth": 256, "sibling": "00" * 32}]},
    {"leaf": None, "steps": [{"depth": True, "sibling": "00" * 32}]},
    {"leaf": None, "steps": [{"depth": 1, "sibling": "AA" * 32}]},
    {"leaf": None, "steps": [{"depth": 1, "sibling": "zz" * 32}]},
    {"leaf": {"path": "00" * 31, "value_digest": "00" * 32}, "steps": []},
    {"leaf": {"path": "00" * 32}, "steps": []},
    {"leaf": None, "steps": [{"depth": 1, "sibling": "00" * 32}] * 257},
])
def test_malformed_json_proofs_are_rejected_with_a_reason(bad: object) -> None:
    with pytest.raises(ProofError) as info:
        StateProof.from_json(bad)
    assert info.value.reason == "malformed-proof"


@pytest.mark.parametrize("bad", [
    {"leaf": [b"\x00" * 32], "steps": []},
    {"leaf": None, "steps": [[-1, b"\x00" * 32]]},
    {"leaf": None, "steps": [[3, b"\x00" * 31]]},
    {"leaf": None, "steps": [[3]]},
    {"leaf": None},
])
def test_malformed_value_proofs_are_rejected_with_a_reason(bad: object) -> None:
    with pytest.raises(ProofError) as info:
        StateProof.from_value(bad)
    assert info.value.reason == "malformed-proof"


def test_claims_outside_limits_are_proof_errors() -> None:
    proof = StateProof((), ProofLeaf(key_path(b"k"), sha256(b"v")))
    with pytest.raises(ProofError):
        verify_state_proof(b"\x00" * 32, b"", None, proof)
    with pytest.raises(ProofError):
        verify_state_proof(b"\x00" * 32, b"k", "v", proof)  # type: ignore[arg-type]
    assert ProofStep(0, b"\x00" * 32).depth == 0
