"""The API answers about committed data, each answer checkable against its certificate."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cli.loadgen import note_transaction
from ledger import statekeys
from ledger.block import BlockHeader, CommitCertificate
from ledger.encoding import decode
from ledger.keys import SigningKey, b64url_decode
from ledger.kv import LevelKV
from ledger.state import StateProof, verify_state_proof
from ledger.validators import ValidatorSet
from node.api.app import create_app
from node.api.models import SubmitCommitted
from tests.test_node_api_support import InProcessNode, check_consistency, check_inclusion


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


@pytest.fixture()
def node() -> InProcessNode:
    return InProcessNode()


@pytest.fixture()
def client(node: InProcessNode) -> TestClient:
    return TestClient(create_app(node), raise_server_exceptions=False)


def _submit(client: TestClient, node: InProcessNode, key: SigningKey | None = None, wait: bool = True) -> dict:
    tx = note_transaction(key or SigningKey.generate(), node.genesis.chain_id, _now_ms())
    params = {"wait": "commit"} if wait else {}
    response = client.post("/v1/transactions", params=params, json={"tx": tx.to_b64()})
    assert response.status_code == (200 if wait else 202), response.text
    return response.json()


def _check_certified(header_json: dict, cert_json: dict, validators: ValidatorSet) -> BlockHeader:
    header = BlockHeader.from_json(header_json)
    CommitCertificate.from_json(cert_json).verify(header, validators)
    return header


def test_submit_and_wait_commit_returns_verifiable_inclusion(client: TestClient, node: InProcessNode) -> None:
    body = _submit(client, node)
    assert body["status"] == "committed" and body["height"] == 1 and body["index"] == 0
    # The answer is built without the model: it must be exactly the documented SubmitCommitted.
    assert SubmitCommitted.model_validate(body).model_dump() == body
    check_inclusion(body)
    _check_certified(body["header"], body["certificate"], node.genesis.validators)


def test_submit_without_wait_is_accepted_then_pending_then_committed(client: TestClient, node: InProcessNode) -> None:
    body = _submit(client, node, wait=False)
    tx_id = body["id"]
    assert client.get(f"/v1/transactions/{tx_id}").json() == {"id": tx_id, "status": "pending"}
    node.commit()
    got = client.get(f"/v1/transactions/{tx_id}")
    assert got.status_code == 200
    data = got.json()
    assert data["status"] == "committed" and data["tx"]["view"]["id"] == tx_id
    assert b64url_decode(data["tx"]["b64"])  # the canonical bytes, round-tripped
    check_inclusion(data)


def test_inclusion_proofs_hold_for_every_tx_across_blocks(client: TestClient, node: InProcessNode) -> None:
    ids = []
    for _ in range(3):
        for _ in range(3):
            ids.append(_submit(client, node, wait=False)["id"])
        node.commit()
    for tx_id in ids:
        check_inclusion(client.get(f"/v1/transactions/{tx_id}").json())


def test_blocks_latest_and_by_height(client: TestClient, node: InProcessNode) -> None:
    assert client.get("/v1/blocks/latest").json()["reason"] == "no-blocks"
    first = _submit(client, node)
    node.commit()  # an empty block on top
    latest = client.get("/v1/blocks/latest").json()
    assert latest["header"]["height"] == 2 and latest["txs"] == []
    one = client.get("/v1/blocks/1").json()
    assert one["txs"] == [first["id"]] and one["hash"] == one["header"]["hash"]
    header = _check_certified(one["header"], one["certificate"], node.genesis.validators)
    assert latest["header"]["prev_hash"] == header.hash.hex()


def test_state_membership_and_absence_proofs(client: TestClient, node: InProcessNode) -> None:
    key = SigningKey.generate()
    _submit(client, node, key)
    path = statekeys.note_key(key.key_id).decode()
    present = client.get(f"/v1/state/{path}").json()
    header = _check_certified(present["header"], present["certificate"], node.genesis.validators)
    value = b64url_decode(present["value"])
    verify_state_proof(header.state_root, path.encode(), value, StateProof.from_json(present["proof"]))
    absent = client.get("/v1/state/note%2Fnobody", params={"height": 1}).json()
    assert absent["value"] is None and absent["key"] == "note/nobody"
    verify_state_proof(header.state_root, b"note/nobody", None, StateProof.from_json(absent["proof"]))


def test_state_at_an_older_height_uses_that_header(client: TestClient, node: InProcessNode) -> None:
    key = SigningKey.generate()
    _submit(client, node, key)
    _submit(client, node, key)
    path = statekeys.note_key(key.key_id).decode()
    old = client.get(f"/v1/state/{path}", params={"height": 1}).json()
    new = client.get(f"/v1/state/{path}").json()
    assert old["height"] == 1 and new["height"] == 2 and old["value"] != new["value"]
    old_root = bytes.fromhex(old["header"]["state_root"])
    verify_state_proof(old_root, path.encode(), b64url_decode(old["value"]), StateProof.from_json(old["proof"]))


def test_consistency_proof_between_heights(client: TestClient, node: InProcessNode) -> None:
    for _ in range(5):
        _submit(client, node)
    for lo, hi in ((1, 5), (2, 3), (4, 4), (3, 5)):
        body = client.get("/v1/proofs/consistency", params={"from": lo, "to": hi}).json()
        check_consistency(body)
        _check_certified(body["to_header"], body["to_certificate"], node.genesis.validators)
    assert client.get("/v1/proofs/consistency", params={"from": 2}).json()["to_height"] == 5


def test_validators_with_state_proof(client: TestClient, node: InProcessNode) -> None:
    genesis_set = client.get("/v1/validators", params={"height": 1}).json()
    assert genesis_set["proof"] is None and genesis_set["proof_height"] == 0
    assert genesis_set["validator_set_hash"] == node.genesis.validators.hash.hex()
    _submit(client, node)
    body = client.get("/v1/validators").json()
    assert body["height"] == 2 and body["proof_height"] == 1
    header = _check_certified(body["header"], body["certificate"], node.genesis.validators)
    raw = b64url_decode(body["value"])
    verify_state_proof(header.state_root, statekeys.VALSET_CURRENT, raw, StateProof.from_json(body["proof"]))
    assert ValidatorSet.from_value(decode(raw)).hash.hex() == body["validator_set_hash"]
    assert header.next_validator_set_hash.hex() == body["validator_set_hash"]
    assert len(body["validators"]) == 4


def test_health_metrics_and_openapi(client: TestClient, node: InProcessNode) -> None:
    _submit(client, node)
    health = client.get("/health").json()
    assert health == {"status": "ok", "name": "v0", "chain_id": node.genesis.chain_id, "height": 1}
    client.get("/v1/blocks/99")
    text = client.get("/metrics").text
    assert "imi_height 1.0" in text
    assert 'imi_api_requests_total{method="GET",route="/v1/blocks/{height}",status="404"} 1.0' in text
    assert "imi_api_tx_submitted_total 1.0" in text
    spec = client.get("/openapi.json").json()
    for path in ("/v1/transactions", "/v1/transactions/{tx_id}", "/v1/blocks/latest", "/v1/blocks/{height}",
                 "/v1/state/{key}", "/v1/proofs/consistency", "/v1/validators", "/health", "/metrics"):
        assert path in spec["paths"], path
    assert client.get("/docs").status_code == 200


def test_two_apps_keep_separate_metrics(node: InProcessNode) -> None:
    a = TestClient(create_app(node))
    b = TestClient(create_app(InProcessNode()))
    a.get("/health")
    a.get("/health")
    assert 'route="/health",status="200"} 2.0' in a.get("/metrics").text
    assert 'route="/health"' not in b.get("/metrics").text


def test_reads_from_a_leveldb_store(tmp_path: Path) -> None:
    kv = LevelKV(tmp_path / "db")
    node = InProcessNode(kv)
    client = TestClient(create_app(node))
    body = _submit(client, node)
    check_inclusion(client.get(f"/v1/transactions/{body['id']}").json())
    kv.close()
    reopened = InProcessNode(LevelKV(tmp_path / "db"))
    again = TestClient(create_app(reopened)).get(f"/v1/transactions/{body['id']}").json()
    assert again["height"] == 1
    check_inclusion(again)


def test_identity_routers_plug_in_as_routers_or_factories(node: InProcessNode) -> None:
    from fastapi import APIRouter

    from ledger.errors import TransactionError
    from node.api.context import ApiContext
    from node.api.problems import ApiProblem

    plain = APIRouter(prefix="/v1/dids")

    @plain.get("/{did}")
    async def did(did: str) -> dict:
        raise ApiProblem("not-found", f"no DID {did}")

    def factory(ctx: ApiContext) -> APIRouter:
        router = APIRouter(prefix="/v1/issuers")

        @router.get("/{did}")
        async def issuer(did: str) -> dict:
            if did == "bad":
                raise TransactionError("not an issuer", reason="not-accredited")
            return {"did": did, "height": ctx.reader.head_height()}

        return router

    client = TestClient(create_app(node, extra_routers=[plain, factory]))
    assert client.get("/v1/issuers/x").json() == {"did": "x", "height": 0}
    missing = client.get("/v1/dids/did:imi:x")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    refused = client.get("/v1/issuers/bad").json()
    assert refused["reason"] == "not-accredited" and refused["status"] == 422


def test_fastapi_native_opentelemetry_is_off(node: InProcessNode) -> None:
    """Our observability is /metrics; FastAPI's own OTel hook (>= 0.165) would ask the global
    providers on every request. The app switches it off."""
    app = create_app(node)
    settings = app._telemetry
    assert (settings["tracing"], settings["metrics"], settings["logs"]) == (False, False, False)
    assert not app._native_telemetry.enabled()


def test_metrics_export_what_the_node_reports_of_itself(node: InProcessNode) -> None:
    """Mempool, peers, round, catch-up and equivocation evidence come from NodeView.status()
    at each scrape; a field the node does not report is simply absent."""
    reported = {"mempool_size": 7, "peers_connected": 3, "round": 1, "syncing": False, "evidence": 2,
                "frames_received": 40, "frames_sent": 30, "frames_dropped": 4, "bad_frames": 1,
                "peer_refusals": 5, "name": "v0", "chain_id": "ignored"}
    node.status = lambda: reported  # type: ignore[method-assign]
    text = TestClient(create_app(node)).get("/metrics").text
    for line in ("imi_mempool_txs 7.0", "imi_peers_connected 3.0", "imi_consensus_round 1.0",
                 "imi_syncing 0.0", "imi_consensus_evidence_total 2.0",
                 "imi_peer_frames_received_total 40.0", "imi_peer_frames_sent_total 30.0",
                 "imi_peer_frames_dropped_total 4.0", "imi_peer_bad_frames_total 1.0",
                 "imi_peer_refusals_total 5.0"):
        assert line in text.splitlines(), line
    reported["evidence"] = 3
    del reported["peers_connected"]
    text = TestClient(create_app(node)).get("/metrics").text
    assert "imi_consensus_evidence_total 3.0" in text.splitlines()
    assert "imi_peers_connected" not in text
