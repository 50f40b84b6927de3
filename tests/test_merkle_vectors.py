"""RFC 9162 / RFC 6962 vectors (tests/vectors/merkle_rfc6962.json) against ledger.merkle."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import block, merkle
from ledger.errors import ProofError
from ledger.hashing import HashTag, tagged_hash
from ledger.kv import MemoryKV, WriteBatch
from tests.vectors import generate_merkle

VECTORS = json.loads(Path(__file__).with_name("vectors").joinpath("merkle_rfc6962.json").read_text("utf-8"))
LEAVES = [bytes.fromhex(text) for text in VECTORS["leaf_inputs"]]


def _unhex(case: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in case.items():
        if isinstance(value, str) and key != "mutation":
            out[key] = bytes.fromhex(value)
        elif isinstance(value, list):
            out[key] = [bytes.fromhex(item) for item in value]
        else:
            out[key] = value
    return out


def _negative(kind: str, case: dict[str, Any]) -> dict[str, Any]:
    base = _unhex(VECTORS[kind][case["of"]])
    return {**base, **_unhex({k: v for k, v in case.items() if k != "of"})}


def test_published_size_8_root_is_reproduced() -> None:
    kv = MemoryKV()
    log = merkle.MerkleLog(kv, b"m")
    batch = WriteBatch()
    size, root = log.append([merkle.leaf_hash(leaf) for leaf in LEAVES], batch)
    kv.write(batch)
    assert size == 8
    assert root.hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    assert [log.root(n).hex() for n in range(9)] == VECTORS["roots"]


def test_vector_file_matches_its_generator_and_published_proofs() -> None:
    assert json.loads(generate_merkle.render(generate_merkle.build())) == VECTORS
    assert sum(case["published"] for case in VECTORS["inclusion"]) == 4
    assert sum(case["published"] for case in VECTORS["consistency"]) == 4


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: f"{c['index']}of{c['size']}")
def test_inclusion_vector_verifies_and_is_generated_by_the_log(case: dict[str, Any]) -> None:
    c = _unhex(case)
    assert merkle.root_from_inclusion_proof(c["index"], c["size"], c["leaf_hash"], c["proof"]) == c["root"]
    merkle.verify_inclusion(c["index"], c["size"], c["leaf_hash"], c["proof"], c["root"])
    kv = MemoryKV()
    log = merkle.MerkleLog(kv, b"m")
    batch = WriteBatch()
    log.append([merkle.leaf_hash(leaf) for leaf in LEAVES], batch)
    kv.write(batch)
    assert log.inclusion_proof(c["index"], c["size"]) == c["proof"]


@pytest.mark.parametrize("case", VECTORS["consistency"], ids=lambda c: f"{c['old_size']}to{c['new_size']}")
def test_consistency_vector_verifies_and_is_generated_by_the_log(case: dict[str, Any]) -> None:
    c = _unhex(case)
    merkle.verify_consistency(c["old_size"], c["new_size"], c["old_root"], c["new_root"], c["proof"])
    kv = MemoryKV()
    log = merkle.MerkleLog(kv, b"m")
    batch = WriteBatch()
    log.append([merkle.leaf_hash(leaf) for leaf in LEAVES], batch)
    kv.write(batch)
    assert log.consistency_proof(c["old_size"], c["new_size"]) == c["proof"]


def test_every_mutated_inclusion_proof_is_rejected() -> None:
    assert len(VECTORS["inclusion_invalid"]) > 500
    for case in VECTORS["inclusion_invalid"]:
        c = _negative("inclusion", case)
        with pytest.raises(ProofError):
            merkle.verify_inclusion(c["index"], c["size"], c["leaf_hash"], c["proof"], c["root"])


def test_every_mutated_consistency_proof_is_rejected() -> None:
    assert len(VECTORS["consistency_invalid"]) > 500
    for case in VECTORS["consistency_invalid"]:
        c = _negative("consistency", case)
        with pytest.raises(ProofError):
            merkle.verify_consistency(c["old_size"], c["new_size"], c["old_root"], c["new_root"], c["proof"])


def test_negative_vectors_cover_each_mutation_kind() -> None:
    kinds = {case["mutation"].split(" ")[0] for case in VECTORS["inclusion_invalid"]}
    assert {"index", "size", "wrong", "extra", "short", "last", "first", "empty-tree"} <= kinds
    swaps = [case for case in VECTORS["inclusion_invalid"] if "swapped" in case["mutation"]]
    flips = [case for case in VECTORS["consistency_invalid"] if "flipped" in case["mutation"]]
    assert swaps and flips


def test_block_merkle_root_reproduces_the_published_roots() -> None:
    # ledger.block.merkle_root (a block's tx_root) is computed level by level, not by
    # the log's storage: it must give the same RFC 9162 roots for every size.
    assert [block.merkle_root(LEAVES[:n]).hex() for n in range(9)] == VECTORS["roots"]


def _recursive_mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 § 2.1.1 as written: split at the largest power of two below n."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    return hashlib.sha256(b"\x01" + _recursive_mth(leaves[:split]) + _recursive_mth(leaves[split:])).digest()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=40), max_size=300))
def test_block_merkle_root_equals_the_recursive_definition(leaves: list[bytes]) -> None:
    assert block.merkle_root(leaves) == _recursive_mth(leaves)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64), st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_inlined_merkle_hashes_equal_the_tagged_hashes(data: bytes, left: bytes, right: bytes) -> None:
    assert merkle.leaf_hash(data) == tagged_hash(HashTag.MERKLE_LEAF, data)
    assert merkle.node_hash(left, right) == tagged_hash(HashTag.MERKLE_NODE, left + right)
