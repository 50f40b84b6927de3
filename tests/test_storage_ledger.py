"""LedgerStore: one batch per block, reads, proofs, rejections, integrity on reopen."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ledger import merkle
from ledger.block import Block, BlockHeader
from ledger.errors import BlockError, ProofError, StorageError
from ledger.kv import LevelKV, MemoryKV, WriteBatch
from ledger.state import verify_state_proof
from ledger.storage import PREFIX_CERT, PREFIX_HEADER, PREFIX_STATE_ROOT, LedgerStore
from tests import factories
from tests.test_storage_support import (
    GENESIS_STATE,
    Chain,
    check_nothing_beyond_head,
    grow,
    new_chain,
    next_block,
)


class CountingKV(MemoryKV):
    """MemoryKV that counts committed batches."""

    __slots__ = ("writes",)

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, batch: WriteBatch) -> None:
        self.writes += 1
        super().write(batch)


def _rebuilt_header(header: BlockHeader, **changes: object) -> BlockHeader:
    fields = {name: getattr(header, name) for name in (
        "chain_id", "height", "round", "prev_hash", "time_ms", "tx_root", "tx_count", "log_root",
        "log_size", "state_root", "validator_set_hash", "next_validator_set_hash", "proposer")}
    fields.update(changes)
    return BlockHeader(**fields)  # type: ignore[arg-type]


def test_each_block_is_exactly_one_write() -> None:
    kv = CountingKV()
    chain = new_chain(kv)
    before = kv.writes
    grow(chain, random.Random(2), 5)
    assert kv.writes - before == 5


def test_blocks_txs_and_certificates_read_back() -> None:
    chain = new_chain()
    txs = (factories.note_tx(data=b"a"), factories.note_tx(data=b"b"))
    block, cert = next_block(chain, txs, {b"k": b"v"})
    chain.store.append_block(block, cert, {b"k": b"v"})
    assert chain.store.head() == block.header and chain.store.height() == 1
    assert chain.store.block(1) == block
    assert chain.store.certificate(1) == cert
    assert chain.store.height_of(block.hash) == 1
    record = chain.store.tx(txs[1].tx_id)
    assert record is not None and (record.tx, record.height, record.index, record.log_index) == (txs[1], 1, 1, 1)
    assert chain.store.tx(b"\x00" * 32) is None and chain.store.block(2) is None
    assert chain.store.has_tx(txs[0].tx_id) and not chain.store.has_tx(b"\x00" * 32)


def test_state_reads_and_proofs_at_every_height() -> None:
    chain = new_chain()
    rng = random.Random(3)
    expected: list[dict[bytes, bytes]] = [dict(GENESIS_STATE)]
    for _ in range(8):
        height = chain.store.height() + 1
        updates = {b"counter": str(height).encode(), b"note/" + str(rng.randrange(4)).encode(): None,
                   b"note/" + str(rng.randrange(4)).encode(): b"x" * height}
        block, cert = next_block(chain, (), updates)
        chain.store.append_block(block, cert, updates)
        state = dict(expected[-1])
        for key, value in updates.items():
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
        expected.append(state)
    for height, state in enumerate(expected):
        root = chain.store.state.root_at(height)
        if height:
            header = chain.store.header(height)
            assert header is not None and header.state_root == root
        for key in [b"counter", b"gov/policy", b"absent"] + [b"note/" + str(i).encode() for i in range(4)]:
            value, proof = chain.store.state_prove(key, height)
            assert value == state.get(key) == chain.store.state_get(key, height)
            verify_state_proof(root, key, value, proof)


def test_tx_inclusion_and_log_consistency_proofs_verify_against_headers() -> None:
    chain = new_chain()
    grow(chain, random.Random(4), 10, txs_max=5)
    store = chain.store
    for height in range(1, 11):
        block = store.block(height)
        assert block is not None
        for tx in block.txs:
            for at in (height, 10):
                index, size, proof = store.tx_inclusion_proof(tx.tx_id, at)
                header = store.header(at)
                assert header is not None and size == header.log_size
                merkle.verify_inclusion(index, size, merkle.leaf_hash(tx.tx_id), proof, header.log_root)
    for old in range(1, 11):
        old_size, new_size, proof = store.consistency_proof(old, 10)
        old_header, new_header = store.header(old), store.head()
        assert old_header is not None and new_header is not None
        merkle.verify_consistency(old_size, new_size, old_header.log_root, new_header.log_root, proof)


def test_tx_not_yet_committed_at_a_height_has_no_proof() -> None:
    chain = new_chain()
    grow(chain, random.Random(5), 2)
    tx = factories.note_tx(data=b"late")
    block, cert = next_block(chain, (tx,), {})
    chain.store.append_block(block, cert, {})
    with pytest.raises(ProofError):
        chain.store.tx_inclusion_proof(tx.tx_id, 2)
    with pytest.raises(ProofError):
        chain.store.tx_inclusion_proof(b"\x01" * 32)


@pytest.mark.parametrize("change", [
    "height", "prev_hash", "log_root", "log_size", "state_root", "tx_count", "certificate", "state_updates",
])
def test_inconsistent_block_is_rejected_and_nothing_is_written(change: str) -> None:
    chain = new_chain()
    grow(chain, random.Random(6), 2)
    txs = (factories.note_tx(data=b"z"),)
    updates: dict[bytes, bytes | None] = {b"k": b"v"}
    block, cert = next_block(chain, txs, updates)
    if change == "certificate":
        other, _ = next_block(chain, (), {})
        cert = factories.certify(chain.consortium, other.header)
    elif change == "state_updates":
        updates = {b"k": b"w"}
    elif change == "tx_count":
        block = Block(block.header, ())
    else:
        value = {"height": 5, "prev_hash": b"\x00" * 32, "log_root": b"\x00" * 32,
                 "log_size": block.header.log_size + 1, "state_root": b"\x00" * 32}[change]
        header = _rebuilt_header(block.header, **{change: value})
        block, cert = Block(header, txs), factories.certify(chain.consortium, header)
    entries_before = len(chain.store.kv)  # type: ignore[arg-type]
    with pytest.raises(BlockError):
        chain.store.append_block(block, cert, updates)
    assert len(chain.store.kv) == entries_before  # type: ignore[arg-type]
    assert chain.store.height() == 2
    check_nothing_beyond_head(chain.store)


def test_replayed_transaction_is_rejected() -> None:
    chain = new_chain()
    tx = factories.note_tx(data=b"once")
    block, cert = next_block(chain, (tx,), {})
    assert not chain.store.has_tx(tx.tx_id)
    chain.store.append_block(block, cert, {})
    assert chain.store.has_tx(tx.tx_id)
    block, cert = next_block(chain, (tx,), {})
    with pytest.raises(BlockError) as info:
        chain.store.append_block(block, cert, {})
    assert info.value.reason == "replayed-transaction"


def test_store_needs_a_genesis_before_blocks_and_only_one() -> None:
    store = LedgerStore(MemoryKV())
    c = factories.consortium()
    block = factories.block(c, 1, c.genesis.hash)
    with pytest.raises(StorageError):
        store.append_block(block, factories.certify(c, block.header), {})
    store.initialize(c.genesis, {})
    assert store.genesis() == c.genesis
    with pytest.raises(StorageError):
        store.initialize(c.genesis, {})


def test_reopening_a_leveldb_store_keeps_the_chain(tmp_path: Path) -> None:
    chain = new_chain(LevelKV(tmp_path / "db"))
    grow(chain, random.Random(7), 4)
    head = chain.store.head()
    chain.store.kv.close()
    reopened = LedgerStore(LevelKV(tmp_path / "db"))
    assert reopened.head() == head and reopened.genesis() == chain.consortium.genesis
    reopened.kv.close()


@pytest.mark.parametrize("damage", ["header", "certificate", "state_root", "log_size", "swap_header"])
def test_reopening_a_damaged_store_raises_storage_error(damage: str) -> None:
    chain = new_chain()
    grow(chain, random.Random(8), 3)
    kv = chain.store.kv
    batch = WriteBatch()
    top = (3).to_bytes(8, "big")
    if damage == "header":
        batch.delete(PREFIX_HEADER + top)
    elif damage == "certificate":
        batch.delete(PREFIX_CERT + top)
    elif damage == "state_root":
        batch.delete(PREFIX_STATE_ROOT + top)
    elif damage == "log_size":
        batch.put(b"m\xff", (1).to_bytes(8, "big"))
    else:
        second = kv.get(PREFIX_HEADER + (2).to_bytes(8, "big"))
        assert second is not None
        batch.put(PREFIX_HEADER + top, second)
    kv.write(batch)
    with pytest.raises(StorageError):
        LedgerStore(kv)


def test_preview_writes_nothing_and_matches_the_append() -> None:
    chain: Chain = new_chain()
    grow(chain, random.Random(9), 2)
    entries = len(chain.store.kv)  # type: ignore[arg-type]
    tx = factories.note_tx(data=b"p")
    preview = chain.store.preview([tx.tx_id], {b"a": b"1"})
    assert len(chain.store.kv) == entries  # type: ignore[arg-type]
    block, _ = next_block(chain, (tx,), {b"a": b"1"})
    assert (block.header.log_size, block.header.log_root, block.header.state_root) == (
        preview.log_size, preview.log_root, preview.state_root)


def test_append_with_the_preview_writes_what_a_fresh_apply_writes() -> None:
    from tests.test_storage_support import new_chain, next_block, random_updates

    rng_a, rng_b = random.Random(5), random.Random(5)
    fresh, reused = new_chain(), new_chain()
    for height in range(1, 6):
        txs = (factories.note_tx(data=bytes([height])),)
        updates_a, updates_b = random_updates(rng_a, height), random_updates(rng_b, height)
        block, cert = next_block(fresh, txs, updates_a)
        fresh.store.append_block(block, cert, updates_a)
        prepared = reused.store.preview([tx.tx_id for tx in txs], updates_b)
        reused.store.append_block(block, cert, updates_b, prepared)
    assert list(fresh.store.kv.iterate(b"")) == list(reused.store.kv.iterate(b""))


def test_a_preview_made_on_another_head_is_not_reused() -> None:
    from tests.test_storage_support import new_chain, next_block

    chain = new_chain()
    stale = chain.store.preview([], {b"note/x": b"stale"})  # made on head 0
    block, cert = next_block(chain, (), {b"note/x": b"1"})
    chain.store.append_block(block, cert, {b"note/x": b"1"})
    block2, cert2 = next_block(chain, (), {b"note/x": b"2"})
    chain.store.append_block(block2, cert2, {b"note/x": b"2"}, stale)  # ignored: built on head 0
    assert chain.store.state_get(b"note/x", 2) == b"2"
