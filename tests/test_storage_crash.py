"""Kill -9 a process appending blocks to LevelDB; every reopen must find a whole chain.

A child process (tests/test_storage_support.py run as a module) appends
certified blocks with sync writes and reports each committed height. The
parent SIGKILLs it at a random moment, reopens the store and checks: the
integrity check passes, the head is a complete block, the chain verifies from
genesis with ledger.chain's verifier, nothing of a later block is visible, and
every height the child reported as committed survived.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger.chain import verify_chain
from ledger.kv import LevelKV
from ledger.storage import LedgerStore
from tests import factories
from tests.test_storage_support import (
    GENESIS_STATE,
    check_nothing_beyond_head,
    stored_chain,
)

KILLS = 24
REPO = Path(__file__).resolve().parent.parent


def _run_until_killed(directory: Path, seed: int, delay_s: float) -> int:
    """Start the child, SIGKILL it ``delay_s`` after it opened the store; return the
    highest height it reported as committed (0 if none)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.test_storage_support", str(directory), str(seed)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    assert child.stdout is not None
    acknowledged = 0
    buffer = b""
    deadline: float | None = None
    try:
        while True:
            timeout = 5.0 if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([child.stdout], [], [], timeout)
            if deadline is not None and time.monotonic() >= deadline:
                break
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
    # Lines written before the kill but not yet read still count as acknowledged.
    for line in buffer.split(b"\n"):
        if line.startswith(b"committed "):
            acknowledged = max(acknowledged, int(line.split()[1]))
    return acknowledged


@pytest.mark.slow
def test_sigkill_during_appends_never_leaves_a_partial_block(tmp_path: Path) -> None:
    directory = tmp_path / "ledger"
    consortium = factories.consortium()
    store = LedgerStore(LevelKV(directory))
    store.initialize(consortium.genesis, GENESIS_STATE)
    store.kv.close()
    rng = random.Random(20261126)
    heights = []
    for round_ in range(KILLS):
        acknowledged = _run_until_killed(directory, seed=round_, delay_s=rng.uniform(0.0, 0.25))
        reopened = LedgerStore(LevelKV(directory))  # runs the integrity check
        try:
            head = reopened.head()
            height = 0 if head is None else head.height
            assert height >= acknowledged, f"round {round_}: acknowledged block {acknowledged} lost"
            verifier = verify_chain(consortium.genesis, stored_chain(reopened))
            assert verifier.height == height
            if head is not None:
                assert verifier.head_hash == head.hash
                assert reopened.state.root_at(height) == head.state_root
            check_nothing_beyond_head(reopened)
        finally:
            reopened.kv.close()
        heights.append(height)
    assert heights[-1] > 0 and len(set(heights)) > KILLS // 2, f"kills did not interleave with appends: {heights}"
