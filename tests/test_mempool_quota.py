"""Per-sender quotas and a fair proposal order in the mempool: one sender's flood fills
its own share, never the pool, and never pushes others' transactions out of a block."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from cli.loadgen import note_transaction
from ledger.execution import DEVNET_HANDLERS, Executor
from ledger.keys import SigningKey
from ledger.kv import MemoryKV
from ledger.tx import Transaction
from node.api.app import create_app
from node.api.problems import problem_for
from node.constants import MEMPOOL_SENDER_TXS_MAX, MEMPOOL_TXS_MAX
from node.errors import MempoolFull, SenderQuotaFull
from node.mempool import Mempool
from tests.test_node_api_support import InProcessNode

CHAIN = "quota-chain"


def _note(key: SigningKey, n: int, *, expires_in_ms: int = 60_000) -> Transaction:
    return Transaction.create(chain_id=CHAIN, type="test.note", sender=key.key_id,
                              payload={"data": n.to_bytes(4, "big")},
                              expires_at_ms=int(time.time() * 1000) + expires_in_ms).sign(key)


def _pool(*, capacity: int = MEMPOOL_TXS_MAX, quota: int = MEMPOOL_SENDER_TXS_MAX,
          now_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> Mempool:
    kv = MemoryKV()
    return Mempool(Executor(CHAIN, DEVNET_HANDLERS), state=lambda: kv, next_height=lambda: 1,
                   is_committed=lambda _: False, now_ms=now_ms, capacity=capacity, sender_quota=quota)


def test_a_flooding_sender_fills_only_its_share_and_others_still_get_in() -> None:
    pool = _pool(capacity=40, quota=8)
    flooder = SigningKey.generate()
    admitted = 0
    refusals: list[Exception] = []
    for n in range(40):  # as many as the whole pool holds
        try:
            pool.add(_note(flooder, n))
            admitted += 1
        except (SenderQuotaFull, MempoolFull) as exc:
            refusals.append(exc)
    assert admitted == 8 and pool.sender_pending(flooder.key_id) == 8
    assert all(isinstance(exc, SenderQuotaFull) and exc.reason == "sender-quota" for exc in refusals)
    others = [SigningKey.generate() for _ in range(4)]
    for i, key in enumerate(others):
        assert pool.add(_note(key, i)) is True
    assert len(pool) == 12


def test_the_quota_frees_up_as_the_senders_transactions_leave() -> None:
    pool = _pool(quota=2)
    key = SigningKey.generate()
    first, second = _note(key, 1), _note(key, 2)
    pool.add(first)
    pool.add(second)
    with pytest.raises(SenderQuotaFull):
        pool.add(_note(key, 3))
    pool.remove([first.tx_id])  # committed
    assert pool.add(_note(key, 4)) is True
    frozen = int(time.time() * 1000)  # the pool's clock stands still: no luck on a loaded machine
    short = _pool(quota=1, now_ms=lambda: frozen)
    short.add(_note(key, 5, expires_in_ms=1_000))
    assert short.evict_expired(frozen + 60_000) == 1
    assert short.add(_note(key, 6)) is True


def test_a_proposal_takes_senders_round_robin() -> None:
    pool = _pool()
    flooder, alice, bob = (SigningKey.generate() for _ in range(3))
    flood = [_note(flooder, n) for n in range(50)]
    for tx in flood:
        pool.add(tx)
    late = [_note(alice, 1), _note(bob, 1), _note(alice, 2)]
    for tx in late:
        pool.add(tx)
    batch = pool.batch(5)
    # one of each sender first (in order of first arrival), then the second of each
    assert batch == [flood[0], late[0], late[1], flood[1], late[2]]
    assert pool.batch(1000) == [flood[0], late[0], late[1], flood[1], late[2], *flood[2:]]
    assert pool.batch(0) == []


def test_sender_queues_stay_in_step_with_the_pool() -> None:
    rng = random.Random(19)
    pool = _pool(quota=5)
    keys = [SigningKey.generate() for _ in range(4)]
    pending: dict[bytes, Transaction] = {}
    for step in range(300):
        if pending and rng.random() < 0.4:
            gone = rng.sample(sorted(pending), k=min(len(pending), rng.randint(1, 3)))
            pool.remove(gone)
            for tx_id in gone:
                del pending[tx_id]
        else:
            tx = _note(rng.choice(keys), step)
            try:
                pool.add(tx)
                pending[tx.tx_id] = tx
            except SenderQuotaFull:
                assert sum(t.sender == tx.sender for t in pending.values()) == 5
        batch = pool.batch(len(pending) + 1)
        assert {tx.tx_id for tx in batch} == set(pending) and len(batch) == len(pending)
        for key in keys:
            held = [t for t in batch if t.sender == key.key_id]
            assert pool.sender_pending(key.key_id) == len(held) <= 5
            # each sender's own transactions keep their arrival order
            assert held == [t for t in pending.values() if t.sender == key.key_id]


def test_a_full_quota_is_a_429_with_retry_after() -> None:
    problem = problem_for(SenderQuotaFull("full"))
    assert problem.status == 429 and problem.reason == "sender-quota"

    class QuotaNode(InProcessNode):
        async def submit(self, tx: Transaction) -> None:
            raise SenderQuotaFull("this sender holds its share")

    node = QuotaNode()
    client = TestClient(create_app(node), raise_server_exceptions=False)
    key = SigningKey.generate()
    tx = note_transaction(key, node.genesis.chain_id, int(time.time() * 1000))
    answer = client.post("/v1/transactions", json={"tx": tx.to_b64()})
    assert answer.status_code == 429, answer.text
    assert answer.json()["reason"] == "sender-quota" and answer.headers["retry-after"] == "1"
