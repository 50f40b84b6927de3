"""State tree vectors (tests/vectors/state.json): roots, proofs and mutated negatives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ledger.errors import ProofError
from ledger.kv import MemoryKV, WriteBatch
from ledger.state import StateProof, StateTree, verify_state_proof
from tests.vectors import generate_state

VECTORS = json.loads(Path(__file__).with_name("vectors").joinpath("state.json").read_text("utf-8"))
TREES = VECTORS["trees"]


def _value(text: str | None) -> bytes | None:
    return None if text is None else bytes.fromhex(text)


@pytest.mark.parametrize("tree", TREES, ids=lambda t: t["name"])
def test_vector_root_is_rebuilt_from_its_entries(tree: dict[str, Any]) -> None:
    kv = MemoryKV()
    state = StateTree(kv, node_prefix=b"s", root_prefix=b"r")
    batch = WriteBatch()
    root = state.apply({bytes.fromhex(k): bytes.fromhex(v) for k, v in tree["entries"]}, 0, batch)
    assert root.hex() == tree["root"]


@pytest.mark.parametrize("tree", TREES, ids=lambda t: t["name"])
def test_vector_proofs_verify_and_mutations_are_rejected(tree: dict[str, Any]) -> None:
    root = bytes.fromhex(tree["root"])
    for case in tree["proofs"]:
        verify_state_proof(root, bytes.fromhex(case["key"]), _value(case["value"]),
                           StateProof.from_json(case["proof"]))
    for case in tree["invalid"]:
        with pytest.raises(ProofError):
            verify_state_proof(root, bytes.fromhex(case["key"]), _value(case["value"]),
                               StateProof.from_json(case["proof"]))


def test_vector_file_matches_its_generator() -> None:
    assert generate_state.build() == VECTORS
    assert sum(len(tree["invalid"]) for tree in TREES) > 100
