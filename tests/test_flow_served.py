"""Real processes on loopback: a DevNode's API served by uvicorn, and `imi issue serve` as its
own OS process for an issuer directory. Staff make an offer, a wallet receives over real
HTTP (OpenID4VCI, the issuer checked on the ledger), `imi verify --node` checks the
credential, and a staff call suspends it. Then `kill -9` of the issuer service: no issued
record is lost and no status index is handed out twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli._consortium import free_ports
from cli.demo.issuer_process import wait_for_health
from cli.main import app
from identity.fetcher import IdentityHttpFetcher
from identity.issuer_store import IssuerStore
from identity.ledger_client import NodeClient
from identity.light_client import LightClient
from identity.oid4vci_client import receive
from identity.presentation import HeldCredential
from identity.request import PresentationRequest
from identity.wallet import KdfParams, Wallet
from tests.serving import served_identity_node
from tests.test_issuance_world import ADMIN_TOKEN, CITIZEN_CLAIMS, VCT, issuer_dir, setup_ledger
from tests.test_node_api_support import InProcessNode

pytestmark = pytest.mark.xdist_group("devnet")
REPO = Path(__file__).resolve().parent.parent
START_S_MAX = 60
ROUNDS_BEFORE_KILL = 4  # batches issued before the kill -9
BATCH = 3


@pytest.fixture()
def node_url() -> Iterator[tuple[str, InProcessNode]]:
    with served_identity_node() as served:
        yield served


class Served:
    """An issuer directory, its genesis and `imi issue serve` started on demand."""

    def __init__(self, url: str, node: InProcessNode, tmp: Path) -> None:
        self.node_url, self.tmp = url, tmp
        self.port = free_ports(1)[0]
        self.issuer_url = f"http://127.0.0.1:{self.port}"
        key, self.did = setup_ledger(node, NodeClient(url), self.issuer_url)
        subjects = {f"citizen-{i}": {"claims": CITIZEN_CLAIMS} for i in range(1, 8)}
        self.directory = issuer_dir(key, self.did, tmp / "issuer", subjects)
        (tmp / "admin.token").write_text(ADMIN_TOKEN + "\n")
        self.genesis = tmp / "genesis.json"
        self.genesis.write_text(node.genesis.dumps())
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "IMI_ISSUER_ADMIN_TOKEN"}
        log = open(self.tmp / "serve.log", "ab")  # noqa: SIM115 - kept open for the child's life
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "issue", "serve", "--issuer-dir", str(self.directory),
             "--node", self.node_url, "--genesis", str(self.genesis), "--port", str(self.port),
             "--admin-token-file", str(self.tmp / "admin.token")],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for_health(self.issuer_url, self.proc, timeout_s=START_S_MAX, what="imi issue serve")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)

    def offer(self, subject: str, batch: int = 1) -> tuple[str, str | None]:
        answer = httpx.post(self.issuer_url + "/v1/admin/offers", json={"subject": subject, "vcts": [VCT],
                                                                          "batch": batch},
                            headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["offer_uri"]), answer.json()["tx_code"]

    def receive(self, wallet: Wallet, subject: str, batch: int = 1) -> list[str]:
        offer_uri, pin = self.offer(subject, batch)
        ledger = LightClient(_genesis(self.genesis), IdentityHttpFetcher(self.node_url))
        with httpx.Client(timeout=60) as http:
            return receive(wallet, offer_uri, http=http, ledger=ledger, now=int(time.time()), tx_code=pin,
                           batch=batch)


def _genesis(path: Path):  # type: ignore[no-untyped-def]
    from ledger.genesis import Genesis

    return Genesis.loads(path.read_text())


@pytest.fixture()
def served(node_url: tuple[str, InProcessNode], tmp_path: Path) -> Iterator[Served]:
    url, node = node_url
    service = Served(url, node, tmp_path)
    try:
        yield service
    finally:
        service.stop(signal.SIGKILL)


def test_issue_serve_process_issues_over_openid4vci_and_suspends(served: Served, tmp_path: Path) -> None:
    served.start()
    wallet = Wallet.create(tmp_path / "wallet.json", "pw", kdf=KdfParams.fastest())
    (cred_id,) = served.receive(wallet, "citizen-1")
    request = PresentationRequest(nonce="n-1", aud="https://rp.example", vct=frozenset({VCT}),
                                  predicates=("age_equal_or_over.18",))
    (tmp_path / "request.json").write_text(json.dumps(request.to_json()))
    (tmp_path / "p.txt").write_text(wallet.answer(request, now=int(time.time()), credential=cred_id))

    def verdict() -> tuple[int, dict[str, object]]:
        result = CliRunner().invoke(app, ["verify", "--presentation", str(tmp_path / "p.txt"), "--request",
                                          str(tmp_path / "request.json"), "--node", served.node_url,
                                          "--genesis", str(served.genesis), "--json"])
        return result.exit_code, json.loads(result.stdout)

    code, answer = verdict()
    assert code == 0 and answer["valid"] is True, answer
    records = IssuerStore(served.directory / "issuer.sqlite").all()
    assert len(records) == 1 and "Lovelace" not in json.dumps(records)
    idx = records[0]["idx"]
    # staff calls need the token, also from loopback
    refused = httpx.post(served.issuer_url + "/v1/issuance/suspend", json={"idx": idx}, timeout=60)
    assert refused.status_code == 401
    suspended = httpx.post(served.issuer_url + "/v1/issuance/suspend", json={"idx": idx},
                           headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60)
    assert suspended.status_code == 200, suspended.text
    code, answer = verdict()
    assert code == 1 and answer["reason"] == "suspended"


def test_kill_9_loses_no_issued_record_and_never_reuses_a_status_index(served: Served, tmp_path: Path) -> None:
    served.start()
    wallet = Wallet.create(tmp_path / "wallet.json", "pw", kdf=KdfParams.fastest())
    handed_out: list[int] = []
    for i in range(ROUNDS_BEFORE_KILL):
        ids = served.receive(wallet, f"citizen-{i + 1}", batch=BATCH)
        assert len(ids) == BATCH
        handed_out += [wallet.show(c)["status"]["status_list"]["idx"] for c in ids]
    served.stop(signal.SIGKILL)  # no shutdown hook runs
    assert served.proc is not None and served.proc.returncode == -signal.SIGKILL
    recorded = {r["idx"] for r in IssuerStore(served.directory / "issuer.sqlite").all()}
    assert set(handed_out) <= recorded, "a credential was handed out without its record"
    served.start()
    # the enrolments survived: citizen-1's wallet key is still the one the agency accepts
    more = served.receive(wallet, "citizen-1", batch=BATCH)
    fresh = [wallet.show(c)["status"]["status_list"]["idx"] for c in more]
    assert not set(fresh) & set(handed_out), "a status index was handed out twice"
    assert len(set(handed_out + fresh)) == len(handed_out) + len(fresh)
    payloads = [HeldCredential.parse(wallet._held(c)[1]["compact"]).payload for c in more]
    assert all(p["iss"] == served.did for p in payloads)
