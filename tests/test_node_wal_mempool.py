"""WAL durability rules and mempool admission."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from ledger.encoding import encode
from ledger.errors import ReplayError, SignatureError, TransactionError
from ledger.execution import DEVNET_HANDLERS, Executor
from ledger.keys import SigningKey
from ledger.kv import MemoryKV
from ledger.tx import Transaction
from node.errors import MempoolFull, WalError
from node.mempool import Mempool
from node.wal import Wal

CHAIN = "test-chain"


def test_wal_replays_records_in_order_and_cuts_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    wal, records = Wal.open(path)
    assert records == []
    wal.append([{"vote": 1}, {"vote": 2}])
    wal.append([[b"x", 3]])
    wal.close()
    good_size = path.stat().st_size
    with open(path, "ab") as handle:  # a crash in the middle of the next append
        handle.write(b"\x00\x00\x00\x10\x00\x00")
    wal, records = Wal.open(path)
    assert records == [{"vote": 1}, {"vote": 2}, [b"x", 3]]
    assert path.stat().st_size == good_size
    wal.append([{"vote": 4}])
    wal.rewrite([{"vote": 4}])
    wal.close()
    assert Wal.open(path)[1] == [{"vote": 4}]


def _damaged_in_the_middle(path: Path) -> tuple[bytes, int]:
    """A log of three appends whose second record has a flipped bit; (bytes, its offset)."""
    wal, _ = Wal.open(path)
    wal.append([{"t": "height", "h": 1}])
    wal.append([{"t": "vote", "h": 1, "r": 0}])
    wal.append([{"t": "height", "h": 2}, {"t": "vote", "h": 2, "r": 0}])
    wal.close()
    data = bytearray(path.read_bytes())
    second = 8 + len(encode({"t": "height", "h": 1}))
    data[second + 8 + 2] ^= 0x01  # inside the second record's body: its checksum fails
    path.write_bytes(bytes(data))
    return bytes(data), second


def test_wal_refuses_to_open_with_a_corrupt_record_in_the_middle(tmp_path: Path) -> None:
    """Records after the damage were durable (one may be a signed vote): never dropped silently."""
    path = tmp_path / "wal.log"
    data, offset = _damaged_in_the_middle(path)
    with pytest.raises(WalError) as refused:
        Wal.open(path)
    message = str(refused.value)
    assert refused.value.reason == "wal-corrupt"
    assert str(path) in message and f"offset {offset}" in message and "imi node wal-repair" in message
    assert path.read_bytes() == data  # nothing was cut


def test_wal_repair_says_what_it_drops_and_cuts_only_when_told(tmp_path: Path) -> None:
    from node.wal import repair

    path = tmp_path / "wal.log"
    data, offset = _damaged_in_the_middle(path)
    looked = repair(path, truncate=False)
    assert (looked.damaged, looked.offset, looked.kept, looked.applied) == (True, offset, 1, False)
    assert (looked.dropped_records, looked.dropped_height_max) == (2, 2)  # the third append, intact
    assert looked.dropped_bytes == len(data) - offset and path.read_bytes() == data
    cut = repair(path, truncate=True)
    assert cut.applied and path.stat().st_size == offset
    assert Wal.open(path)[1] == [{"t": "height", "h": 1}]
    assert not repair(path, truncate=True).damaged


def test_wal_cuts_a_zero_filled_torn_tail(tmp_path: Path) -> None:
    """A crash can leave the file longer than what was written (zeros): a torn tail, cut."""
    path = tmp_path / "wal.log"
    wal, _ = Wal.open(path)
    wal.append([{"vote": 1}])
    wal.close()
    size = path.stat().st_size
    with open(path, "ab") as handle:
        handle.write(bytes(4096))
    assert Wal.open(path)[1] == [{"vote": 1}] and path.stat().st_size == size


def _note(key: SigningKey, *, expires_in_ms: int = 60_000, chain: str = CHAIN) -> Transaction:
    return Transaction.create(chain_id=chain, type="test.note", sender=key.key_id,
                              payload={"data": b"hi"},
                              expires_at_ms=int(time.time() * 1000) + expires_in_ms).sign(key)


def _pool(committed: set[bytes], capacity: int = 10) -> Mempool:
    kv = MemoryKV()
    return Mempool(Executor(CHAIN, DEVNET_HANDLERS), state=lambda: kv, next_height=lambda: 1,
                   is_committed=committed.__contains__, now_ms=lambda: int(time.time() * 1000),
                   capacity=capacity)


def test_mempool_admits_dedups_and_batches_in_arrival_order() -> None:
    pool = _pool(set())
    key = SigningKey.generate()
    txs = [_note(key) for _ in range(3)]
    assert [pool.add(t) for t in txs] == [True, True, True]
    assert pool.add(txs[0]) is False
    assert len(pool) == 3
    assert pool.batch(2) == txs[:2]
    assert pool.take_gossip() == txs
    pool.remove([txs[0].tx_id])
    assert pool.batch(10) == txs[1:]


def test_mempool_rejects_with_typed_reasons() -> None:
    committed: set[bytes] = set()
    pool = _pool(committed, capacity=2)
    key = SigningKey.generate()
    done = _note(key)
    committed.add(done.tx_id)
    with pytest.raises(ReplayError):
        pool.add(done)
    with pytest.raises(ReplayError):
        pool.add(_note(key, expires_in_ms=-1))
    with pytest.raises(TransactionError) as wrong_chain:
        pool.add(_note(key, chain="other"))
    assert wrong_chain.value.reason == "wrong-chain"
    forged = _note(key)
    forged = Transaction(forged.chain_id, forged.type, forged.sender, {"data": b"changed"},
                         forged.nonce, forged.expires_at_ms, forged.signatures)
    with pytest.raises(SignatureError):
        pool.add(forged)
    pool.add(_note(key))
    pool.add(_note(key))
    with pytest.raises(MempoolFull):
        pool.add(_note(key))
    assert len(pool) == 2


def test_mempool_evicts_expired() -> None:
    pool = _pool(set())
    key = SigningKey.generate()
    tx = _note(key, expires_in_ms=1_000)
    pool.add(tx)
    assert pool.evict_expired(tx.expires_at_ms) == 1
    assert len(pool) == 0


def test_mempool_eviction_skips_scans_but_never_keeps_an_expired_tx() -> None:
    """evict_expired scans only once the earliest expiry has passed; against a plain
    model (every pending tx with expiry > now survives, every other one goes) over a
    random sequence of admissions, removals and evictions."""
    rng = random.Random(7)
    pool = _pool(set(), capacity=100)
    key = SigningKey.generate()
    base = int(time.time() * 1000)
    model: dict[bytes, int] = {}
    for step in range(150):
        action = rng.random()
        if action < 0.5:
            tx = _note(key, expires_in_ms=rng.randrange(10_000, 200_000))
            pool.add(tx)
            model[tx.tx_id] = tx.expires_at_ms
        elif action < 0.65 and model:
            gone = rng.choice(sorted(model))
            pool.remove([gone])
            del model[gone]
        else:
            now = base + rng.randrange(0, 250_000)
            expected = sum(1 for expiry in model.values() if expiry <= now)
            assert pool.evict_expired(now) == expected, step
            model = {tx_id: expiry for tx_id, expiry in model.items() if expiry > now}
        assert sorted(tx.tx_id for tx in pool.batch(1000)) == sorted(model)
