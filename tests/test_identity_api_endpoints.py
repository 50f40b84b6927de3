"""The identity endpoints (identity.http.node_routes) on an in-process DevNode: answers carry proofs the
light client verifies, absence is proven, bad input is a 4xx problem, and POST /v1/verify
gives verdicts from the node's certified state."""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from identity import did as didmod
from identity import status_list as sl
from identity.errors import NotFoundError
from identity.fetcher import IdentityHttpFetcher
from identity.http.node_routes import ROUTERS, identity_router, verify_router
from identity.light_client import LightClient
from node.api.app import create_app
from tests.test_identity_api_scene import LIST_ID, REQUEST, VCT, Scene, build_scene
from tests.test_identity_helpers import det_key


@pytest.fixture(scope="module")
def scene() -> Scene:
    return build_scene()


@pytest.fixture(scope="module")
def http(scene: Scene) -> TestClient:
    app = create_app(scene.node, extra_routers=[identity_router,
                                                functools.partial(verify_router, clock_ms=scene.clock)])
    return TestClient(app, raise_server_exceptions=False)


def light(scene: Scene, http: TestClient) -> LightClient:
    return LightClient(scene.node.genesis, IdentityHttpFetcher("http://testserver", client=http),
                       freshness_ms=60_000)


def test_routers_are_what_the_node_command_composes() -> None:
    from cli.node_cmd import compose_handlers

    _, routers = compose_handlers()
    assert list(ROUTERS) == [identity_router, verify_router] and set(ROUTERS) <= set(routers)


def test_did_document_with_metadata_and_proof(scene: Scene, http: TestClient) -> None:
    body = http.get(f"/v1/dids/{scene.alice.did}").json()
    assert body["didDocument"]["id"] == scene.alice.did
    assert body["didDocument"]["verificationMethod"][0]["publicKeyJwk"] == scene.alice.key.public_key.to_jwk()
    assert body["didDocumentMetadata"]["versionId"] == "1" and body["didDocumentMetadata"]["deactivated"] is False
    assert {"proof", "header", "certificate", "value"} <= set(body)
    result = light(scene, http).resolve_did(scene.alice.did, scene.clock())
    assert result["didDocument"] == body["didDocument"]


def test_did_at_height_and_version(scene: Scene, http: TestClient) -> None:
    assert http.get(f"/v1/dids/{scene.alice.did}", params={"height": 1}).json()["height"] == 1
    assert http.get(f"/v1/dids/{scene.alice.did}", params={"version": 1}).json()["key"].endswith("#v1")
    lc = light(scene, http)
    assert lc.resolve_did(scene.alice.did, scene.clock(), version=1, height=2)["didDocumentMetadata"][
        "versionId"] == "1"


def test_absent_did_is_a_404_problem_with_a_verifiable_absence_proof(scene: Scene, http: TestClient) -> None:
    stranger = didmod.derive_did(det_key("stranger").public_key.to_jwk(), bytes(32))
    response = http.get(f"/v1/dids/{stranger}")
    assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["reason"] == "did-not-found" and body["value"] is None and "proof" in body
    with pytest.raises(NotFoundError) as info:
        light(scene, http).resolve_did(stranger, scene.clock())
    assert info.value.reason == "did-not-found"


def test_issuer_credential_type_and_status_list(scene: Scene, http: TestClient) -> None:
    issuer = http.get(f"/v1/issuers/{scene.agency.did}").json()["issuer"]
    assert issuer["status"] == "accredited" and issuer["vcts"] == [VCT] and issuer["name"] == "Agency"
    assert http.get("/v1/credential-types/" + quote(VCT, safe="")).json()["credential_type"]["vct"] == VCT
    body = http.get(f"/v1/status-lists/{LIST_ID}").json()
    lst, bits = sl.from_json(body["status_list"])
    assert set(body["status_list"]) == {"bits", "lst"} and bits == 2 and sl.get_status(lst, bits, 7) == 1
    lc = light(scene, http)
    now = scene.clock()
    assert lc.issuer(scene.agency.did, now)["status"] == "accredited"
    assert lc.credential_type(VCT, now)["vct"] == VCT
    assert [lc.status(LIST_ID, i, now) for i in (7, 9, 3)] == [1, 2, 0]
    assert http.get(f"/v1/status-lists/{LIST_ID}", params={"height": 3}).json()["height"] == 3


@pytest.mark.parametrize(("path", "status", "reason"), [
    ("/v1/dids/did:web:example.com", 400, "bad-did"),
    ("/v1/issuers/nope", 400, "bad-did"),
    ("/v1/dids/{alice}?height=0", 400, "bad-request"),
    ("/v1/dids/{alice}?height=999", 404, "unknown-block"),
    ("/v1/dids/{alice}?version=0", 400, "bad-request"),
    ("/v1/dids/{alice}?version=7", 404, "did-not-found"),
    ("/v1/credential-types/" + "x" * 2000, 400, "bad-request"),
    ("/v1/credential-types/urn%3Anope", 404, "vct-not-found"),
    ("/v1/status-lists/nope", 404, "list-not-found"),
])
def test_bad_reads_are_problems(scene: Scene, http: TestClient, path: str, status: int, reason: str) -> None:
    response = http.get(path.replace("{alice}", scene.alice.did))
    assert (response.status_code, response.json()["reason"]) == (status, reason)


# --- POST /v1/verify ------------------------------------------------------------------------
def verify(http: TestClient, presentation: str, request: dict[str, Any] | None = None) -> Any:
    return http.post("/v1/verify", json={"presentation": presentation, "request": request or REQUEST.to_json()})


def test_verify_valid_presentation(scene: Scene, http: TestClient) -> None:
    response = verify(http, scene.presentation(scene.credential()))
    body = response.json()
    assert response.status_code == 200 and body["valid"] is True and body["reason"] is None, body
    assert body["disclosed"]["given_name"] == "Alice" and body["disclosed"]["age_equal_or_over"] == {"18": True}
    assert "birthdate" not in body["disclosed"]
    assert body["checked_at_height"] == scene.node.store.height() and "certificate" in body


@pytest.mark.parametrize(("idx", "reason"), [(7, "revoked"), (9, "suspended")])
def test_verify_revoked_or_suspended_is_a_verdict(scene: Scene, http: TestClient, idx: int, reason: str) -> None:
    response = verify(http, scene.presentation(scene.credential(idx=idx)))
    assert response.status_code == 200 and response.json()["valid"] is False
    assert response.json()["reason"] == reason and response.json()["disclosed"] == {}


def test_verify_wrong_holder_key_and_foreign_issuer(scene: Scene, http: TestClient) -> None:
    assert verify(http, scene.presentation(scene.credential(), det_key("mallory"))).json()["reason"] == \
        "kb-bad-signature"
    assert verify(http, "not-a-presentation").json()["reason"] == "malformed-compact"


@pytest.mark.parametrize(("body", "status", "reason"), [
    ({"presentation": "x~"}, 422, "missing-field"),
    ({"presentation": "x~", "request": {"nonce": "n"}}, 422, "bad-field"),
    ({"presentation": "x~", "request": {"nonce": "n", "aud": "a", "evil": 1}}, 422, "unknown-field"),
    ({"presentation": 5, "request": {"nonce": "n", "aud": "a"}}, 422, "bad-field"),
    ({"presentation": "x~", "request": {"nonce": "n", "aud": "a"}, "more": 1}, 422, "unknown-field"),
    ({"presentation": "x" * 70_000, "request": {"nonce": "n", "aud": "a"}}, 422, "bad-field"),
])
def test_verify_malformed_bodies_are_problems(http: TestClient, body: dict[str, Any], status: int,
                                              reason: str) -> None:
    response = http.post("/v1/verify", json=body)
    assert (response.status_code, response.json()["reason"]) == (status, reason)


def test_verify_rejects_non_json_and_oversized_bodies(http: TestClient) -> None:
    assert http.post("/v1/verify", content=b"{", headers={"content-type": "application/json"}).json()[
        "reason"] == "malformed-json"
    assert http.post("/v1/verify", content=b"x" * 200_000,
                     headers={"content-type": "application/json"}).status_code == 413


def test_verify_on_a_stale_node_is_503(scene: Scene) -> None:
    app = create_app(scene.node, extra_routers=[
        functools.partial(verify_router, clock_ms=lambda: scene.clock() + 3_600_000)])
    response = verify(TestClient(app), scene.presentation(scene.credential()))
    assert (response.status_code, response.json()["reason"]) == (503, "stale-state")


def test_openapi_documents_the_identity_endpoints(http: TestClient) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    assert {"/v1/dids/{did}", "/v1/issuers/{did}", "/v1/credential-types/{vct}",
            "/v1/status-lists/{list_id}", "/v1/verify"} <= set(paths)
    assert "identity.light_client" in paths["/v1/verify"]["post"]["description"]
