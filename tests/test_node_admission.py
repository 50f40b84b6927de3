"""Real processes: an agency joins a running 4-validator consortium without any restart.

The steps are those of docs/deploy.md § "Adding an agency": `imi node init` for the
new validator; its certificate is put into each running validator's certs/ (they
load it while running); it starts with the genesis and the others' certificates;
two trustees sign `imi gov validator-add`. Then it must catch up, have the same
blocks as the others, and sign: with 5 validators the quorum is 4, so once one of
the old four is killed, the chain advances only if the new validator votes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cli._consortium import free_ports
from cli.devnet import Devnet
from ledger.keys import PublicKey

pytestmark = pytest.mark.xdist_group("devnet")

HEARTBEAT_MS = 300
WAIT_S = 90.0


def _imi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], check=False, capture_output=True,
                          text=True, timeout=120, cwd=str(Path(__file__).resolve().parent.parent))


def _health(client: httpx.Client, api: str) -> dict[str, object] | None:
    try:
        response = client.get(f"{api}/health")
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def _wait(what: str, predicate, net: Devnet, timeout_s: float = WAIT_S) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    logs = {n.name: n.log_file.read_text()[-3000:] for n in net.nodes() if n.log_file.exists()}
    raise AssertionError(f"timed out waiting for {what}; log tails: {json.dumps(logs, indent=1)}")


def test_an_agency_joins_without_restarting_the_others(tmp_path: Path) -> None:
    net = Devnet(tmp_path / "devnet")
    net.up(4, heartbeat_ms=HEARTBEAT_MS)
    try:
        old = net.nodes()
        pids_before = dict(net.pids())
        listen_port, api_port = free_ports(2)
        new_dir = net.dir / "validators" / "v4"
        init = _imi("node", "init", "--dir", str(new_dir), "--name", "v4", "--json",
                    "--listen", f"127.0.0.1:{listen_port}", "--api", f"127.0.0.1:{api_port}")
        assert init.returncode == 0, init.stderr
        entry = json.loads(init.stdout)
        shutil.copy(net.dir / "genesis.json", new_dir / "genesis.json")
        for cert in (net.dir / "certs").glob("*.pem"):
            shutil.copy(cert, new_dir / "certs" / cert.name)
        for node in old:  # the running validators get the new certificate: no restart
            shutil.copy(new_dir / "tls_cert.pem", node.node_dir / "certs" / "v4.pem")
        net.start("v4")
        net.wait_healthy(["v4"])
        (tmp_path / "v4.pub.jwk").write_text(json.dumps(entry["jwk"]))

        added = _imi("gov", "validator-add", "--node", old[0].api, "--name", "v4",
                     "--jwk", str(tmp_path / "v4.pub.jwk"), "--address", entry["address"],
                     "--tls-spki-sha256", entry["tls_spki_sha256"],
                     "--trustee-key", str(net.dir / "trustees" / "trustee-0.jwk"),
                     "--trustee-key", str(net.dir / "trustees" / "trustee-1.jwk"), "--json")
        assert added.returncode == 0, added.stderr
        assert json.loads(added.stdout)["ok"] is True

        with httpx.Client(timeout=5.0) as client:
            def in_the_set() -> bool:
                answer = client.get(f"{old[0].api}/v1/validators").json()
                return "v4" in {v["name"] for v in answer["validators"]}

            _wait("v4 in the validator set", in_the_set, net)
            admitted_at = int(client.get(f"{old[0].api}/v1/validators").json()["height"])

            def caught_up() -> bool:
                mine = _health(client, net.node("v4").api)
                return mine is not None and int(str(mine["height"])) >= admitted_at + 2

            _wait("v4 to catch up past its admission", caught_up, net)
            # Nobody was restarted to let it in.
            assert {n: p for n, p in net.pids().items() if n != "v4"} == pids_before

            # 5 validators, quorum 4: without v1 the chain advances only with v4's votes.
            net.kill("v1")
            start = int(str(_health(client, old[0].api)["height"]))  # type: ignore[index]

            def advanced() -> bool:
                return all((h := _health(client, n.api)) is not None and int(str(h["height"])) >= start + 3
                           for n in (old[0], old[2], old[3], net.node("v4")))

            _wait("the chain to advance with v1 down", advanced, net)
            height = min(int(str(_health(client, n.api)["height"]))  # type: ignore[index]
                         for n in (old[0], old[2], old[3], net.node("v4")))
            hashes = {client.get(f"{n.api}/v1/blocks/{height}").json()["hash"]
                      for n in (old[0], old[2], old[3], net.node("v4"))}
            assert len(hashes) == 1
            # Decided after v1 died: the quorum of 4 out of the 4 live validators includes v4.
            certificate = client.get(f"{old[0].api}/v1/blocks/{height}").json()["certificate"]
            signers = {signature["validator"] for signature in certificate["signatures"]}
            assert PublicKey.from_jwk(entry["jwk"]).key_id in signers
    finally:
        net.down()
