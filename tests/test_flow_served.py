"""Real processes on loopback: a DevNode's API served by uvicorn, and `imi issue serve` as its
own OS process for an issuer directory. A wallet gets a credential over real HTTP, `imi
verify --node` checks it with the light client, and a loopback admin call suspends it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli._consortium import free_ports
from cli.main import app
from identity.holder import request_credential
from identity.http.node_routes import ROUTERS
from identity.ledger_client import NodeClient
from identity.request import PresentationRequest
from identity.rules import IDENTITY_HANDLERS
from identity.wallet import KdfParams, Wallet
from ledger.execution import DEVNET_HANDLERS
from node.api.app import create_app
from tests.serving import serve_in_thread
from tests.test_issuance_world import CITIZEN_CLAIMS, VCT, issuer_dir, setup_ledger
from tests.test_node_api_support import InProcessNode

pytestmark = pytest.mark.xdist_group("devnet")
REPO = Path(__file__).resolve().parent.parent
START_S_MAX = 30


@pytest.fixture()
def node_url() -> Iterator[tuple[str, InProcessNode]]:
    node = InProcessNode(handlers={**DEVNET_HANDLERS, **IDENTITY_HANDLERS})
    node.commit()
    with serve_in_thread(create_app(node, extra_routers=ROUTERS)) as port:
        yield f"http://127.0.0.1:{port}", node


def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_S_MAX
    while time.monotonic() < deadline:
        assert proc.poll() is None, "imi issue serve exited early"
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("issuer service did not come up")


def test_issue_serve_process_issues_and_suspends_on_loopback(node_url: tuple[str, InProcessNode],
                                                             tmp_path: Path) -> None:
    url, node = node_url
    key, did = setup_ledger(node, NodeClient(url))
    directory = issuer_dir(key, did, tmp_path / "issuer", {"citizen-1": {"claims": CITIZEN_CLAIMS}})
    genesis = tmp_path / "genesis.json"
    genesis.write_text(node.genesis.dumps())
    port = free_ports(1)[0]
    issuer_url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "IMI_ISSUER_ADMIN_TOKEN"}
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "issue", "serve", "--issuer-dir", str(directory), "--node", url,
             "--genesis", str(genesis), "--port", str(port)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(issuer_url, proc)
            wallet = Wallet.create(tmp_path / "wallet.json", "pw", kdf=KdfParams.fastest())
            wallet.new_key("ES256")
            cred_id = request_credential(wallet, issuer_url, VCT, now=int(time.time()), subject="citizen-1")
            request = PresentationRequest(nonce="n-1", aud="https://rp.example", vct=frozenset({VCT}),
                                          predicates=("age_equal_or_over.18",))
            (tmp_path / "request.json").write_text(json.dumps(request.to_json()))
            (tmp_path / "p.txt").write_text(wallet.answer(request, now=int(time.time()), credential=cred_id))

            def verdict() -> tuple[int, dict[str, object]]:
                result = CliRunner().invoke(app, ["verify", "--presentation", str(tmp_path / "p.txt"), "--request",
                                                  str(tmp_path / "request.json"), "--node", url,
                                                  "--genesis", str(genesis), "--json"])
                return result.exit_code, json.loads(result.stdout)

            code, answer = verdict()
            assert code == 0 and answer["valid"] is True, answer
            records = json.loads((directory / "issued.json").read_text())["issued"]
            assert len(records) == 1 and "Lovelace" not in json.dumps(records)
            # no token configured: a loopback client may change status
            suspended = httpx.post(issuer_url + "/v1/issuance/suspend", json={"idx": records[0]["idx"]}, timeout=30)
            assert suspended.status_code == 200, suspended.text
            code, answer = verdict()
            assert code == 1 and answer["reason"] == "suspended"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
