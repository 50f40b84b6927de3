"""Real processes: `imi devnet up` → a few transactions and a validator removal by the
trustees → `imi ledger audit` exits 0 (following the set change) → `imi devnet down`."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from cli.devnet import Devnet
from cli.loadgen import note_transaction
from cli.main import app as cli_app
from ledger.genesis import Genesis
from ledger.keys import SigningKey

pytestmark = pytest.mark.xdist_group("devnet")

TXS = 5


def _imi(*args: str) -> Result:
    """Run `imi` in-process (the validators it starts are still separate processes)."""
    return CliRunner().invoke(cli_app, list(args))


def _kill_leftovers(net: Devnet) -> None:
    """Whatever `devnet down` left running (it should leave nothing)."""
    if not net.pids_file.exists():
        return
    for pid in net.pids().values():
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _wait_height(api: str, height: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            if int(client.get(f"{api}/health").json()["height"]) >= height:
                return
            time.sleep(0.2)
    raise AssertionError(f"{api} did not reach height {height}")


def test_devnet_up_transactions_then_audit_passes(tmp_path: Path) -> None:
    directory = tmp_path / "devnet"
    net = Devnet(directory)
    try:
        up = _imi("devnet", "up", "--dir", str(directory), "--validators", "4", "--heartbeat-ms", "300")
        assert up.exit_code == 0, up.output
        genesis = Genesis.loads((directory / "genesis.json").read_text())
        # The validator the trustees remove below stops getting blocks once it is out of
        # the set (nobody dials it any more), so the test reads from two that stay.
        leaving = genesis.validators.validators[-1]
        staying = [n.api for n in net.nodes() if n.name != leaving.name]
        api = staying[0]
        key = SigningKey.generate()
        with httpx.Client(timeout=30) as client:
            for _ in range(TXS):
                tx = note_transaction(key, genesis.chain_id, int(time.time() * 1000))
                answer = client.post(f"{api}/v1/transactions", params={"wait": "commit"}, json={"tx": tx.to_b64()})
                assert answer.status_code == 200, answer.text
        # a governance change of the validator set: the audit must follow it by height
        removed = leaving.key_id
        trustees = [f"--trustee-key={p}" for p in sorted((directory / "trustees").glob("*.jwk"))[:2]]
        gov = _imi("gov", "validator-remove", removed, *trustees, "--node", api, "--json")
        assert gov.exit_code == 0, gov.output
        changed_at = int(json.loads(gov.stdout)["height"])
        _wait_height(api, changed_at + 3)
        audit = _imi("ledger", "audit", "--node", api, "--genesis", str(directory / "genesis.json"), "--json")
        assert audit.exit_code == 0, audit.output
        summary = json.loads(audit.stdout)
        assert summary["ok"] is True and summary["txs"] >= TXS + 1 and summary["consistency"] == "verified"
        assert summary["validator_set_changes"] == 1
        other = staying[1]  # another validator's copy verifies from the same genesis
        assert _imi("ledger", "audit", "--node", other, "--genesis", str(directory / "genesis.json"),
                    "--json").exit_code == 0
    finally:
        down = _imi("devnet", "down", "--dir", str(directory))
        _kill_leftovers(net)
    assert down.exit_code == 0, down.output
