"""Execute-then-vote: a block built by one validator is re-executed and checked by another."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from ledger.block import Block, certify
from ledger.constants import BLOCK_TIME_DRIFT_MS_MAX
from ledger.errors import CertificateError
from ledger.execution import DEVNET_HANDLERS, Executor, genesis_state
from ledger.genesis import DEFAULT_POLICY, Genesis
from ledger.keys import SigningKey
from ledger.kv import MemoryKV
from ledger.storage import LedgerStore
from ledger.tx import Transaction
from ledger.validators import Validator, ValidatorSet
from node.application import LedgerApplication
from node.mempool import Mempool

CHAIN = "app-test"


def _now() -> int:
    return int(time.time() * 1000)


@pytest.fixture()
def keys() -> list[SigningKey]:
    return [SigningKey.generate() for _ in range(4)]


def _genesis(keys: list[SigningKey]) -> Genesis:
    members = [Validator(f"v{i}", k.public_key, 1, f"127.0.0.1:{9000 + i}", bytes(32))
               for i, k in enumerate(keys)]
    return Genesis(CHAIN, _now() - 1000, ValidatorSet.of(members), (keys[0].public_key,), 1,
                   dict(DEFAULT_POLICY))


def _app(genesis: Genesis, me: SigningKey, *, now_ms=_now) -> LedgerApplication:  # type: ignore[no-untyped-def]
    store = LedgerStore(MemoryKV())
    store.initialize(genesis, genesis_state(genesis))
    executor = Executor(CHAIN, DEVNET_HANDLERS)
    pool = Mempool(executor, state=lambda: store.state_reader(), next_height=lambda: store.height() + 1,
                   is_committed=store.has_tx, now_ms=now_ms)
    return LedgerApplication(store=store, executor=executor, genesis=genesis, mempool=pool,
                             my_key_id=me.key_id, now_ms=now_ms)


def _note() -> Transaction:
    key = SigningKey.generate()
    return Transaction.create(chain_id=CHAIN, type="test.note", sender=key.key_id,
                              payload={"data": b"x"}, expires_at_ms=_now() + 60_000).sign(key)




def _proposer_and_other(keys: list[SigningKey], genesis: Genesis) -> tuple[SigningKey, SigningKey]:
    proposer_id = genesis.validators.proposer(1, 0).key_id
    proposer = next(k for k in keys if k.key_id == proposer_id)
    other = next(k for k in keys if k.key_id != proposer_id)
    return proposer, other


def test_block_built_by_the_proposer_validates_and_commits_elsewhere(keys: list[SigningKey]) -> None:
    genesis = _genesis(keys)
    proposer_key, other_key = _proposer_and_other(keys, genesis)
    proposer, other = _app(genesis, proposer_key), _app(genesis, other_key)
    txs = [_note() for _ in range(5)]
    for tx in txs:
        assert proposer.mempool is not None
        proposer.mempool.add(tx)
    block = proposer.build_block(1, 0)
    assert [t.tx_id for t in block.txs] == [t.tx_id for t in txs]
    assert other.validate_block(block)
    certificate = certify(block.header, keys[:3])
    for app in (proposer, other):
        assert app.apply_committed(block, certificate) is True
        assert app.apply_committed(block, certificate) is False  # idempotent
        assert app.store.head() == block.header
    assert proposer.mempool is not None and len(proposer.mempool) == 0
    assert other.committed_block(1) == (block, certificate)


def test_tampered_or_ill_timed_blocks_are_rejected(keys: list[SigningKey]) -> None:
    genesis = _genesis(keys)
    proposer_key, other_key = _proposer_and_other(keys, genesis)
    proposer, other = _app(genesis, proposer_key), _app(genesis, other_key)
    assert proposer.mempool is not None
    proposer.mempool.add(_note())
    block = proposer.build_block(1, 0)
    bad_root = Block(replace(block.header, state_root=bytes(32)), block.txs)
    assert not other.validate_block(bad_root)
    wrong_round = Block(replace(block.header, round=1), block.txs)  # another proposer's turn
    assert not other.validate_block(wrong_round)
    dropped_tx = Block(replace(block.header, tx_count=0), ())
    assert not other.validate_block(dropped_tx)
    future = _app(genesis, proposer_key, now_ms=lambda: _now() + 2 * BLOCK_TIME_DRIFT_MS_MAX)
    assert future.mempool is not None
    late_block = future.build_block(1, 0)
    assert not other.validate_block(late_block)
    assert other.validate_block(block)


def test_commit_needs_a_quorum_certificate(keys: list[SigningKey]) -> None:
    genesis = _genesis(keys)
    proposer_key, other_key = _proposer_and_other(keys, genesis)
    proposer, other = _app(genesis, proposer_key), _app(genesis, other_key)
    block = proposer.build_block(1, 0)
    with pytest.raises(CertificateError):
        other.apply_committed(block, certify(block.header, keys[:2]))
    outsider = certify(block.header, [*keys[:2], SigningKey.generate()])
    with pytest.raises(CertificateError):
        other.apply_committed(block, outsider)
    assert other.store.height() == 0


def test_the_proposer_does_not_execute_its_own_block_twice(keys: list[SigningKey],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """build_block executed it; validating that very object only re-checks the header and
    body. A copy of it (same hash, another object) is still executed in full."""
    genesis = _genesis(keys)
    proposer_key, other_key = _proposer_and_other(keys, genesis)
    proposer, other = _app(genesis, proposer_key), _app(genesis, other_key)
    assert proposer.mempool is not None
    for _ in range(3):
        proposer.mempool.add(_note())
    block = proposer.build_block(1, 0)
    executions = []
    real = Executor.execute_block

    def counting(self: Executor, *args: Any, **kwargs: Any) -> Any:
        executions.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Executor, "execute_block", counting)
    assert proposer.validate_block(block)
    assert executions == []
    copy = Block.from_value(block.to_value())
    assert copy is not block and copy.hash == block.hash
    assert proposer.validate_block(copy)
    assert executions == [1]
    assert other.validate_block(block)
    tampered = Block(replace(block.header, state_root=bytes(32)), block.txs)
    assert not proposer.validate_block(tampered)
