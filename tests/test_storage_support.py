"""Chain building for the storage tests, and the child process of the crash test.

``python -m tests.test_storage_support DIR SEED`` opens the LevelDB store in DIR
and appends certified blocks on top of its head until it is killed, printing
each committed height (flushed) so the parent knows what was acknowledged.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ledger.block import Block, BlockHeader, CommitCertificate, merkle_root
from ledger.chain import verify_chain
from ledger.genesis import Genesis
from ledger.kv import KV, LevelKV, MemoryKV
from ledger.storage import PREFIX_HEADER, PREFIX_TX, LedgerStore
from ledger.tx import Transaction
from tests import factories

GENESIS_STATE = {b"gov/policy": b"genesis policy", b"note/seed": b"0"}
REPO = Path(__file__).resolve().parent.parent
CHILD_START_S_MAX = 30.0  # a child must say "ready" within this (python start-up on a loaded machine)


def initialized_ledger(directory: Path) -> Genesis:
    """A LevelDB ledger store at ``directory`` holding the test consortium's genesis, closed;
    returns that genesis."""
    genesis = factories.consortium().genesis
    store = LedgerStore(LevelKV(directory))
    store.initialize(genesis, GENESIS_STATE)
    store.kv.close()
    return genesis


def run_until_killed(module: str, directory: Path, seed: int, delay_s: float) -> int:
    """Start ``python -m module DIR SEED`` (a child that opens a store, prints ``ready``, then
    ``committed H`` after each flushed height), SIGKILL it ``delay_s`` after ``ready``; return
    the highest height it reported (0 if none), lines read after the kill included."""
    child = subprocess.Popen([sys.executable, "-m", module, str(directory), str(seed)], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, "PYTHONHASHSEED": "0"})
    assert child.stdout is not None
    acknowledged, buffer = 0, b""
    deadline: float | None = None
    try:
        while deadline is None or time.monotonic() < deadline:
            timeout = CHILD_START_S_MAX if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([child.stdout], [], [], timeout)
            if not ready:
                assert deadline is not None, "child did not start"
                continue
            chunk = os.read(child.stdout.fileno(), 65536)
            if not chunk:
                _, err = child.communicate()
                raise AssertionError(f"child exited early: {err.decode(errors='replace')}")
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line == b"ready" and deadline is None:
                    deadline = time.monotonic() + delay_s
                elif line.startswith(b"committed "):
                    acknowledged = int(line.split()[1])
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        if child.stderr is not None:
            child.stderr.close()
    for line in buffer.split(b"\n"):  # written before the kill, not yet read: acknowledged too
        if line.startswith(b"committed "):
            acknowledged = max(acknowledged, int(line.split()[1]))
    return acknowledged


@dataclass
class Chain:
    consortium: factories.Consortium
    store: LedgerStore


def new_chain(kv: KV | None = None) -> Chain:
    """A store on ``kv`` (default: memory) initialised with the test consortium's genesis."""
    consortium = factories.consortium()
    store = LedgerStore(kv if kv is not None else MemoryKV())
    store.initialize(consortium.genesis, GENESIS_STATE)
    return Chain(consortium, store)


def random_updates(rng: random.Random, height: int, value_bytes_max: int = 64) -> dict[bytes, bytes | None]:
    """Inserts, overwrites and deletions over a small key space, so that all three happen."""
    updates: dict[bytes, bytes | None] = {}
    for _ in range(rng.randint(0, 12)):
        key = b"note/" + str(rng.randrange(60)).encode()
        updates[key] = None if rng.random() < 0.25 else rng.randbytes(rng.randint(0, value_bytes_max))
    updates[b"height"] = str(height).encode()
    return updates


def next_block(
    chain: Chain, txs: tuple[Transaction, ...], updates: dict[bytes, bytes | None]
) -> tuple[Block, CommitCertificate]:
    """A certified block on top of the store's head with correct tx, log and state roots."""
    store, c = chain.store, chain.consortium
    height = store.height() + 1
    prev = store.head()
    prev_hash = c.genesis.hash if prev is None else prev.hash
    preview = store.preview([tx.tx_id for tx in txs], updates)
    header = BlockHeader(
        chain_id=factories.CHAIN_ID, height=height, round=0, prev_hash=prev_hash,
        time_ms=c.genesis.time_ms + height * 1000, tx_root=merkle_root([t.tx_id for t in txs]),
        tx_count=len(txs), log_root=preview.log_root, log_size=preview.log_size,
        state_root=preview.state_root, validator_set_hash=c.validators.hash,
        next_validator_set_hash=c.validators.hash,
        proposer=c.validators.proposer(height, 0).key_id,
    )
    return Block(header, txs), factories.certify(c, header, signers=3)


def grow(chain: Chain, rng: random.Random, blocks: int, txs_max: int = 4) -> None:
    for _ in range(blocks):
        height = chain.store.height() + 1
        txs = tuple(factories.note_tx(data=rng.randbytes(8)) for _ in range(rng.randint(0, txs_max)))
        updates = random_updates(rng, height)
        block, cert = next_block(chain, txs, updates)
        chain.store.append_block(block, cert, updates)


def stored_chain(store: LedgerStore) -> list[tuple[Block, CommitCertificate]]:
    out = []
    for height in range(1, store.height() + 1):
        block, cert = store.block(height), store.certificate(height)
        assert block is not None and cert is not None, f"block {height} is incomplete"
        out.append((block, cert))
    return out


def check_nothing_beyond_head(store: LedgerStore) -> None:
    """No header, tx index entry, state version or log leaf above the head."""
    head = store.head()
    height = 0 if head is None else head.height
    heights = [int.from_bytes(key[1:], "big") for key, _ in store.kv.iterate(PREFIX_HEADER)]
    assert heights == list(range(1, height + 1))
    for key, _ in store.kv.iterate(PREFIX_TX):
        record = store.tx(key[1:])
        assert record is not None and record.height <= height
    assert store.state.latest_version() == height
    assert store.log.size() == (0 if head is None else head.log_size)


def test_grown_chain_verifies_from_genesis_with_the_lead_verifier() -> None:
    chain = new_chain()
    grow(chain, random.Random(1), 12)
    verifier = verify_chain(chain.consortium.genesis, stored_chain(chain.store))
    head = chain.store.head()
    assert head is not None and verifier.head_hash == head.hash and verifier.height == 12
    check_nothing_beyond_head(chain.store)


def _child(directory: str, seed: int) -> None:
    rng = random.Random(seed)
    chain = Chain(factories.consortium(), LedgerStore(LevelKV(directory)))
    print("ready", flush=True)
    while True:
        height = chain.store.height() + 1
        # Large values make batches big enough that a kill often lands mid-write.
        txs = tuple(factories.note_tx(data=rng.randbytes(64)) for _ in range(rng.randint(0, 20)))
        updates = random_updates(rng, height, value_bytes_max=20_000)
        block, cert = next_block(chain, txs, updates)
        chain.store.append_block(block, cert, updates)
        print(f"committed {height}", flush=True)


if __name__ == "__main__":
    _child(sys.argv[1], int(sys.argv[2]))
