"""Kill -9 a process appending blocks to LevelDB; every reopen must find a whole chain.

A child process (tests/test_storage_support.py run as a module) appends
certified blocks with sync writes and reports each committed height. The
parent SIGKILLs it at a random moment, reopens the store and checks: the
integrity check passes, the head is a complete block, the chain verifies from
genesis with ledger.chain's verifier, nothing of a later block is visible, and
every height the child reported as committed survived.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ledger.chain import verify_chain
from ledger.kv import LevelKV
from ledger.storage import LedgerStore
from tests.test_storage_support import (
    check_nothing_beyond_head,
    initialized_ledger,
    run_until_killed,
    stored_chain,
)

KILLS = 24


@pytest.mark.slow
def test_sigkill_during_appends_never_leaves_a_partial_block(tmp_path: Path) -> None:
    directory = tmp_path / "ledger"
    genesis = initialized_ledger(directory)
    rng = random.Random(20261126)
    heights = []
    for round_ in range(KILLS):
        acknowledged = run_until_killed("tests.test_storage_support", directory, seed=round_, delay_s=rng.uniform(0.0, 0.25))
        reopened = LedgerStore(LevelKV(directory))  # runs the integrity check
        try:
            head = reopened.head()
            height = 0 if head is None else head.height
            assert height >= acknowledged, f"round {round_}: acknowledged block {acknowledged} lost"
            verifier = verify_chain(genesis, stored_chain(reopened))
            assert verifier.height == height
            if head is not None:
                assert verifier.head_hash == head.hash
                assert reopened.state.root_at(height) == head.state_root
            check_nothing_beyond_head(reopened)
        finally:
            reopened.kv.close()
        heights.append(height)
    assert heights[-1] > 0 and len(set(heights)) > KILLS // 2, f"kills did not interleave with appends: {heights}"
