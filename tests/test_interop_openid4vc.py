"""Interop: an independent OpenID4VCI client, the npm package ``@openid4vc/openid4vci``
(version pinned in tests/interop/package.json, lockfile committed), receives a credential
from our issuer service over real HTTP through a pre-authorized code with ``tx_code``; the
credential then verifies against the ledger and is bound to the Node client's key.

Needs Node 20+ and ``npm ci`` in tests/interop (``make test`` runs it when node_modules is
missing). Without them the test is skipped locally; with ``CI=true`` it fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from identity.fetcher import IdentityHttpFetcher
from identity.http.issuer_service import create_issuer_app
from identity.http.node_routes import ROUTERS
from identity.issuer_agent import IssuerAgent, Register
from identity.ledger_client import NodeClient
from identity.ledger_trust import LedgerIssuerKeys, LedgerStatusLists
from identity.light_client import LightClient
from identity.request import PresentationRequest
from identity.rules import IDENTITY_HANDLERS
from identity.verifier import CnfHolderKeys, check_presentation
from ledger.execution import DEVNET_HANDLERS
from node.api.app import create_app
from tests.serving import serve_in_thread
from tests.test_issuance_world import ADMIN_TOKEN, CITIZEN_CLAIMS, LIST_ID, VCT, setup_ledger
from tests.test_node_api_support import InProcessNode

INTEROP = Path(__file__).resolve().parent / "interop"
NODE_SCRIPT_TIMEOUT_S = 120


def _node_ready() -> str | None:
    """Why the Node client cannot run, or None."""
    if shutil.which("node") is None:
        return "node is not installed (Node 20+ is needed)"
    if not (INTEROP / "node_modules" / "@openid4vc" / "openid4vci").is_dir():
        return "tests/interop/node_modules is missing: run `npm ci` in tests/interop (make test does)"
    return None


@pytest.fixture()
def issuer() -> Iterator[tuple[str, IssuerAgent, LightClient]]:
    missing = _node_ready()
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    from cli._consortium import free_ports

    node = InProcessNode(handlers={**DEVNET_HANDLERS, **IDENTITY_HANDLERS})
    node.commit()
    with serve_in_thread(create_app(node, extra_routers=ROUTERS)) as node_port:
        node_url = f"http://127.0.0.1:{node_port}"
        issuer_port = free_ports(1)[0]
        issuer_url = f"http://127.0.0.1:{issuer_port}"
        key, did = setup_ledger(node, NodeClient(node_url), issuer_url)
        light = LightClient(node.genesis, IdentityHttpFetcher(node_url))
        agent = IssuerAgent(did, key, NodeClient(node_url), LightClient(node.genesis, IdentityHttpFetcher(node_url)),
                            LIST_ID, Register.from_json({"citizen-1": {"claims": CITIZEN_CLAIMS}}),
                            credential_issuer=issuer_url)
        with serve_in_thread(create_issuer_app(agent, admin_token=ADMIN_TOKEN), port=issuer_port):
            yield issuer_url, agent, light


def test_the_openid4vc_ts_client_receives_a_credential_with_a_pin(
        issuer: tuple[str, IssuerAgent, LightClient]) -> None:
    issuer_url, agent, light = issuer
    made = agent.create_offer("citizen-1", [VCT], int(time.time()))
    assert made.tx_code is not None
    from identity.oid4vci import offer_uri

    result = subprocess.run(["node", "receive.mjs", offer_uri(made.offer), made.tx_code], cwd=INTEROP,
                            capture_output=True, text=True, timeout=NODE_SCRIPT_TIMEOUT_S, check=False)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["credential_issuer"] == issuer_url and answer["configuration_id"] == VCT
    (credential,) = answer["credentials"]
    now = int(time.time())
    request = PresentationRequest(nonce="interop", aud=issuer_url, vct=frozenset({VCT}),
                                  trusted_issuers=frozenset({agent.did}), require_key_binding=False)
    claims = check_presentation(credential, request, issuer_keys=LedgerIssuerKeys(light), holder_keys=CnfHolderKeys(),
                                status=LedgerStatusLists(light), now=now)
    assert claims["cnf"] == {"jwk": answer["jwk"]} and claims["family_name"] == "Lovelace"
    enrolment = agent.records.enrolment("citizen-1")
    assert enrolment is not None and enrolment.kind == "jwk"


def test_the_openid4vc_ts_client_is_refused_with_a_wrong_pin(issuer: tuple[str, IssuerAgent, LightClient]) -> None:
    _, agent, _ = issuer
    made = agent.create_offer("citizen-1", [VCT], int(time.time()))
    wrong = "000000" if made.tx_code != "000000" else "111111"
    from identity.oid4vci import offer_uri

    result = subprocess.run(["node", "receive.mjs", offer_uri(made.offer), wrong], cwd=INTEROP,
                            capture_output=True, text=True, timeout=NODE_SCRIPT_TIMEOUT_S, check=False)
    assert result.returncode == 1 and "invalid_grant" in result.stderr, result.stderr
    assert agent.records.all() == []


ISSUER_START_S_MAX = 60
NODE_ISSUER_STATUS_IDX = 7


@pytest.fixture()
def node_issuer(tmp_path: Path) -> Iterator[tuple[str, str, str, LightClient]]:
    """A minimal issuer built with the package's Openid4vciIssuer, for an agency accredited on
    our ledger whose DID document names it: yields (offer URI, PIN, agency DID, light client)."""
    missing = _node_ready()
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    from cli._consortium import free_ports
    from identity.ledger_trust import status_uri

    node = InProcessNode(handlers={**DEVNET_HANDLERS, **IDENTITY_HANDLERS})
    node.commit()
    with serve_in_thread(create_app(node, extra_routers=ROUTERS)) as node_port:
        node_url = f"http://127.0.0.1:{node_port}"
        port = free_ports(1)[0]
        url = f"http://127.0.0.1:{port}"
        key, did = setup_ledger(node, NodeClient(node_url), url)
        pin = "271828"
        config = {"port": port, "credential_issuer": url, "did": did, "kid": f"{did}#{key.key_id}",
                  "issuer_jwk": key.to_private_jwk(), "vct": VCT, "claims": CITIZEN_CLAIMS, "tx_code": pin,
                  "status": {"idx": NODE_ISSUER_STATUS_IDX, "uri": status_uri(LIST_ID)}}
        (tmp_path / "issuer.json").write_text(json.dumps(config))
        proc = subprocess.Popen(["node", "issuer.mjs", str(tmp_path / "issuer.json")], cwd=INTEROP,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # printed once listening
            assert line, proc.stderr.read() if proc.stderr else "node issuer exited"
            yield json.loads(line)["offer_uri"], pin, did, LightClient(node.genesis, IdentityHttpFetcher(node_url))
        finally:
            proc.kill()
            proc.wait(timeout=ISSUER_START_S_MAX)


def test_our_wallet_receives_from_an_issuer_built_with_the_package(
        node_issuer: tuple[str, str, str, LightClient], tmp_path: Path) -> None:
    import httpx

    from identity.oid4vci_client import receive
    from identity.wallet import KdfParams, Wallet

    offer, pin, did, light = node_issuer
    wallet = Wallet.create(tmp_path / "w.json", "pw", kdf=KdfParams.fastest())
    with httpx.Client(timeout=60) as http:
        (cred_id,) = receive(wallet, offer, http=http, ledger=light, now=int(time.time()), tx_code=pin)
    shown = wallet.show(cred_id)
    assert shown["iss"] == did and shown["family_name"] == "Lovelace"
    assert shown["status"]["status_list"]["idx"] == NODE_ISSUER_STATUS_IDX
    (record,) = wallet.issuances()
    assert record["iss"] == did and record["credentials"] == [cred_id]
