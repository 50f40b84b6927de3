"""Remote enrolment with real processes on loopback: a DevNode's API and the public security
bureau's issuer served by uvicorn, the civil affairs bureau's `imi issue serve
--remote-enrolment FILE` as its own OS process, and `imi wallet enrol` over real HTTP."""

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
from identity.http.issuer_service import create_issuer_app
from identity.issuer_agent import IssuerAgent, Register
from identity.issuer_store import IssuerStore
from identity.ledger_client import NodeClient
from identity.light_client import LightClient
from identity.oid4vci_client import receive
from identity.remote_enrolment import RemoteEnrolmentConfig
from identity.wallet import KdfParams, Wallet
from tests.serving import serve_in_thread, served_identity_node
from tests.test_node_api_support import InProcessNode
from tests.test_remote_enrolment import ID_CLAIMS, ID_VCT, RES_VCT, TOKEN, _agency, national_id

pytestmark = pytest.mark.xdist_group("devnet")
REPO = Path(__file__).resolve().parent.parent
START_S_MAX = 60


@pytest.fixture()
def node() -> Iterator[tuple[str, InProcessNode]]:
    with served_identity_node() as served:
        yield served


def test_a_citizen_enrols_at_an_issue_serve_process_without_a_visit(node: tuple[str, InProcessNode],
                                                                     tmp_path: Path) -> None:
    node_url, devnode = node
    nc = NodeClient(node_url)
    psb_port, civil_port = free_ports(2)
    psb_url, civil_url = f"http://127.0.0.1:{psb_port}", f"http://127.0.0.1:{civil_port}"
    psb = _agency(nc, devnode, psb_url, "Foshan Public Security Bureau", ID_VCT, ID_CLAIMS, "psb-1")
    civil = _agency(nc, devnode, civil_url, "Foshan Civil Affairs Bureau", RES_VCT, ["family_name", "locality"],
                    "civ-1")
    remote = {"accept": [{"issuer": psb.did, "vct": ID_VCT, "match": {"national_id": "national_id"}}],
              "offer": [RES_VCT], "batch": 2}
    queries = RemoteEnrolmentConfig.from_json(remote).registration_queries()
    nc.submit(nc.build("gov.service_register", "gov", {
        "did": civil.did, "name": {"en": "Civil Affairs", "zh-CN": "民政局"},
        "purpose": {"en": "Enrolment without a visit", "zh-CN": "免到场登记"}, "queries": queries},
        *devnode.consortium.trustee_keys[:2]))
    # the civil affairs bureau's directory and its remote enrolment policy, for `imi issue serve`
    directory = tmp_path / "civil"
    directory.mkdir()
    (directory / "issuer.jwk").write_text(json.dumps(civil.key.to_private_jwk()))
    # the record holds the number remote enrolment matches on; the residence type gets only its claims
    (directory / "register.json").write_text(json.dumps({"civ-3": {"claims": {
        "national_id": national_id(3), "family_name": "Li", "locality": "Chancheng"},
        "by_vct": {RES_VCT: {"family_name": "Li", "locality": "Chancheng"}}}}))
    (directory / "issuer.json").write_text(json.dumps({"did": civil.did, "key": "issuer.jwk", "list_id": "civ-1",
                                                       "register": "register.json"}))
    (tmp_path / "remote.json").write_text(json.dumps(remote))
    (tmp_path / "token").write_text(TOKEN + "\n")
    genesis = tmp_path / "genesis.json"
    genesis.write_text(devnode.genesis.dumps())
    log = tmp_path / "civil.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "issue", "serve", "--issuer-dir", str(directory), "--node", node_url,
             "--genesis", str(genesis), "--port", str(civil_port), "--admin-token-file", str(tmp_path / "token"),
             "--remote-enrolment", str(tmp_path / "remote.json")],
            cwd=REPO, env={k: v for k, v in os.environ.items() if k != "IMI_ISSUER_ADMIN_TOKEN"},
            stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_health(civil_url, proc, log_file=log, timeout_s=START_S_MAX, what="imi issue serve")
        psb.agent = IssuerAgent(psb.did, psb.key, nc, LightClient(devnode.genesis, IdentityHttpFetcher(node_url)),
                                "psb-1", Register.from_json({"psb-3": {"claims": {
                                    "national_id": national_id(3), "family_name": "Li", "given_name": "Mei",
                                    "birthdate": "1990-06-15"}}}), credential_issuer=psb_url)
        with serve_in_thread(create_issuer_app(psb.agent, admin_token=TOKEN), psb_port):
            # the one visit, at the public security bureau's counter
            made = httpx.post(psb_url + "/v1/admin/offers", json={"subject": "psb-3", "vcts": [ID_VCT]},
                              headers={"authorization": f"Bearer {TOKEN}"}, timeout=60).json()
            wallet = Wallet.create(tmp_path / "wallet.json", "pw", kdf=KdfParams.fastest())
            with httpx.Client(timeout=60) as http:
                (psb_id,) = receive(wallet, made["offer_uri"], http=http, now=int(time.time()),
                                    ledger=LightClient(devnode.genesis, IdentityHttpFetcher(node_url)),
                                    tx_code=made["tx_code"])
            presenting_key = next(s.holder_key for s in wallet.credentials() if s.id == psb_id)
            wallet.save()
        # zero visit: the wallet starts the enrolment at the civil affairs bureau and enrols itself
        started = httpx.post(civil_url + "/remote-enrolment", timeout=60)
        assert started.status_code == 200, started.text
        result = CliRunner().invoke(app, ["wallet", "enrol", started.json()["request_uri"], "--yes", "--json",
                                          "--batch", "2", "--wallet", str(wallet.path), "--node", node_url,
                                          "--genesis", str(genesis)], env={"IMI_WALLET_PASSWORD": "pw"})
        assert result.exit_code == 0, result.output
        ids = json.loads(result.stdout)["ids"]
        held = Wallet.open(wallet.path, "pw")
        assert len(ids) == 2 and {held.show(i)["vct"] for i in ids} == {RES_VCT}
        assert held.show(ids[0])["cnf"] == {"jwk": dict(held.public_key(presenting_key).to_jwk())}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
    # what the service kept: the enrolment record and the issued records, none of the presented claims
    store = IssuerStore(directory / "issuer.sqlite")
    enrolment = store.enrolment("civ-3")
    assert enrolment is not None and (enrolment.kind, enrolment.holder) == ("jwk", presenting_key)
    assert enrolment.via == f"remote:{psb.did}"
    store.close()
    kept = b"".join(p.read_bytes() for p in directory.glob("issuer.sqlite*"))
    assert kept and national_id(3).encode() not in kept and b"Mei" not in kept
