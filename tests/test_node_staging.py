"""StagedKV: many blocks staged over a store, written with one atomic write.

The crash test runs this module as a child process (``python -m tests.test_node_staging
DIR SEED``): it stages ``BATCH_BLOCKS`` certified blocks at a time over the LevelDB
store in DIR, flushes them, and prints each flushed height. The parent SIGKILLs it at
random moments; every reopened store must pass the integrity check, verify from
genesis, hold every acknowledged height, and end exactly on a batch boundary (never
part of a batch).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from ledger.chain import verify_chain
from ledger.kv import LevelKV, MemoryKV, WriteBatch
from ledger.storage import LedgerStore
from node.staging import StagedKV
from tests import factories
from tests.test_storage_support import (
    GENESIS_STATE,
    Chain,
    check_nothing_beyond_head,
    initialized_ledger,
    next_block,
    random_updates,
    run_until_killed,
    stored_chain,
)

BATCH_BLOCKS = 5
KILLS = 12


def _kv(pairs: dict[bytes, bytes]) -> MemoryKV:
    kv = MemoryKV()
    batch = WriteBatch()
    for key, value in pairs.items():
        batch.put(key, value)
    kv.write(batch)
    return kv


def test_reads_see_staged_writes_first_and_the_base_sees_nothing_until_the_flush() -> None:
    base = _kv({b"a1": b"base", b"a3": b"base", b"a5": b"base", b"b1": b"other"})
    staged = StagedKV(base)
    batch = WriteBatch()
    batch.put(b"a2", b"new")
    batch.put(b"a3", b"changed")
    batch.delete(b"a5")
    batch.put(b"a9", b"new")
    staged.write(batch)
    assert staged.get(b"a3") == b"changed" and staged.get(b"a5") is None and staged.get(b"a1") == b"base"
    merged = [(b"a1", b"base"), (b"a2", b"new"), (b"a3", b"changed"), (b"a9", b"new")]
    assert list(staged.iterate(b"a")) == merged
    assert list(staged.iterate(b"a", reverse=True)) == merged[::-1]
    assert list(staged.iterate(b"a", start=b"a3")) == merged[2:]
    assert list(staged.iterate(b"a", start=b"a3", reverse=True)) == merged[2::-1]
    assert base.get(b"a2") is None and base.get(b"a5") == b"base"  # nothing written yet
    assert staged.staged_bytes > 0
    assert staged.flush() == 4
    assert list(base.iterate(b"a")) == merged and staged.staged_bytes == 0


def test_a_store_on_a_staged_kv_chains_blocks_that_one_flush_writes() -> None:
    chain = Chain(factories.consortium(), LedgerStore(MemoryKV()))
    chain.store.initialize(chain.consortium.genesis, GENESIS_STATE)
    main = chain.store
    staged = StagedKV(main.kv)
    chain.store = LedgerStore(staged)
    rng = random.Random(7)
    for height in range(1, 4):
        updates = random_updates(rng, height)
        block, cert = next_block(chain, (factories.note_tx(data=rng.randbytes(8)),), updates)
        chain.store.append_block(block, cert, updates)
    assert chain.store.height() == 3 and main.height() == 0
    staged.flush()
    main.reread_head()
    assert main.height() == 3 and main.head() == chain.store.head()
    verify_chain(chain.consortium.genesis, stored_chain(main))
    check_nothing_beyond_head(main)


def _child(directory: str, seed: int) -> None:
    rng = random.Random(seed)
    base = LedgerStore(LevelKV(directory))
    print("ready", flush=True)
    while True:
        staged = StagedKV(base.kv)
        chain = Chain(factories.consortium(), LedgerStore(staged))
        for _ in range(BATCH_BLOCKS):
            height = chain.store.height() + 1
            txs = tuple(factories.note_tx(data=rng.randbytes(64)) for _ in range(rng.randint(0, 20)))
            updates = random_updates(rng, height, value_bytes_max=20_000)
            block, cert = next_block(chain, txs, updates)
            chain.store.append_block(block, cert, updates)
        staged.flush()
        base.reread_head()
        print(f"committed {base.height()}", flush=True)


@pytest.mark.slow
def test_sigkill_during_batched_writes_leaves_the_store_at_a_batch_boundary(tmp_path: Path) -> None:
    directory = tmp_path / "ledger"
    genesis = initialized_ledger(directory)
    rng = random.Random(20261206)
    heights = []
    for round_ in range(KILLS):
        acknowledged = run_until_killed("tests.test_node_staging", directory, seed=round_, delay_s=rng.uniform(0.0, 0.4))
        reopened = LedgerStore(LevelKV(directory))  # runs the integrity check
        try:
            height = reopened.height()
            assert height >= acknowledged, f"round {round_}: flushed block {acknowledged} lost"
            assert height % BATCH_BLOCKS == 0, f"round {round_}: height {height} is inside a batch"
            verifier = verify_chain(genesis, stored_chain(reopened))
            assert verifier.height == height
            check_nothing_beyond_head(reopened)
        finally:
            reopened.kv.close()
        heights.append(height)
    assert heights[-1] > 0 and len(set(heights)) > KILLS // 2, f"kills did not interleave with writes: {heights}"


if __name__ == "__main__":
    _child(sys.argv[1], int(sys.argv[2]))
