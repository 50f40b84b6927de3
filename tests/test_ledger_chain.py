"""The chain verifier walks from genesis and names the first bad block."""

from __future__ import annotations

import dataclasses

import pytest

from ledger.block import Block, BlockHeader
from ledger.chain import verify_chain
from ledger.errors import BlockError
from tests.factories import build_chain, certify, consortium


def _rebuild(header: BlockHeader, **changes: object) -> BlockHeader:
    fields = {f: getattr(header, f) for f in (
        "chain_id", "height", "round", "prev_hash", "time_ms", "tx_root", "tx_count", "log_root",
        "log_size", "state_root", "validator_set_hash", "next_validator_set_hash", "proposer")}
    fields.update(changes)
    return BlockHeader(**fields)  # type: ignore[arg-type]


def test_a_valid_chain_verifies_to_its_head() -> None:
    c = consortium()
    chain = build_chain(c, 6)
    verifier = verify_chain(c.genesis, chain)
    assert verifier.height == 6 and verifier.head_hash == chain[-1][0].hash
    assert verifier.log.size == 12


@pytest.mark.parametrize("corruption, reason", [
    ("drop-tx", "tx-root-mismatch"),
    ("log-root", "log-root-mismatch"),
    ("prev-hash", "broken-link"),
    ("weak-certificate", "insufficient-quorum"),
    ("time-backwards", "bad-time"),
    ("wrong-proposer", "wrong-proposer"),
    ("skip-height", "bad-height"),
])
def test_each_corruption_is_reported_at_the_first_bad_height(corruption: str, reason: str) -> None:
    c = consortium()
    chain = build_chain(c, 5)
    block, cert = chain[2]
    h = block.header
    if corruption == "drop-tx":
        chain[2] = (Block(h, block.txs[:1]), cert)
    elif corruption == "log-root":
        bad = _rebuild(h, log_root=bytes(32))
        chain[2] = (Block(bad, block.txs), certify(c, bad))
    elif corruption == "prev-hash":
        bad = _rebuild(h, prev_hash=bytes(32))
        chain[2] = (Block(bad, block.txs), certify(c, bad))
    elif corruption == "weak-certificate":
        chain[2] = (block, certify(c, h, signers=2))
    elif corruption == "time-backwards":
        bad = _rebuild(h, time_ms=0)
        chain[2] = (Block(bad, block.txs), certify(c, bad))
    elif corruption == "wrong-proposer":
        other = next(v for v in c.validators.validators if v.key_id != h.proposer)
        bad = _rebuild(h, proposer=other.key_id)
        chain[2] = (Block(bad, block.txs), certify(c, bad))
    elif corruption == "skip-height":
        del chain[2]
    with pytest.raises(BlockError) as exc:
        verify_chain(c.genesis, chain)
    assert exc.value.reason == reason
    assert "3" in str(exc.value)


def test_a_chain_from_another_genesis_does_not_verify() -> None:
    c, other = consortium(), consortium(seed=7)
    with pytest.raises(BlockError):
        verify_chain(other.genesis, build_chain(c, 2))


def test_a_validator_set_change_needs_the_set_whose_hash_the_header_names() -> None:
    c = consortium()
    new = consortium(seed=3)
    chain = build_chain(c, 1)
    block, _ = chain[0]
    changed = _rebuild(block.header, next_validator_set_hash=new.validators.hash)
    chain = [(Block(changed, block.txs), certify(c, changed))]
    with pytest.raises(BlockError) as exc:
        verify_chain(c.genesis, chain)
    assert exc.value.reason == "unknown-validator-set"
    verifier = verify_chain(c.genesis, chain, {new.validators.hash: new.validators}.get)
    assert verifier.validators == new.validators
    wrong = dataclasses.replace(c.validators)
    with pytest.raises(BlockError):
        verify_chain(c.genesis, chain, lambda _h: wrong)
