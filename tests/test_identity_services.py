"""Services (relying parties) on the ledger: registration, lifecycle, what they may ask."""

from __future__ import annotations

from typing import Any

import pytest

from identity import dcql, services
from ledger import statekeys
from tests.test_identity_authz import PID, TAX, scene, service_payload
from tests.test_identity_helpers import World


def _query(*credentials: dict[str, Any]) -> dcql.DcqlQuery:
    return dcql.parse_query({"credentials": list(credentials)})


def _pid(*paths: list[Any]) -> dict[str, Any]:
    return {"id": "pid", "format": "dc+sd-jwt", "meta": {"vct_values": [PID]},
            "claims": [{"path": p} for p in paths]}


def test_registration_records_names_purpose_and_claims_paths() -> None:
    s = scene()
    payload = service_payload(s)
    payload["queries"] = [{"vct": PID, "claims": [["given_name"], ["age_equal_or_over", "18"]]},
                          {"vct": TAX, "claims": [["address", None, "locality"]]}]
    s.w.ok(s.w.gov("gov.service_register", payload))
    record = s.w.value(statekeys.service_key(s.alice.did))
    assert record["status"] == "registered"
    assert record["name"] == {"en": "Community desk", "zh-CN": "社区服务台"}
    assert services.allowed_claims(record) == {
        PID: (("given_name",), ("age_equal_or_over", "18")), TAX: (("address", None, "locality"),)}


def test_service_lifecycle_follows_its_transition_table() -> None:
    s = scene()
    did = s.alice.did
    get = lambda: s.w.value(statekeys.service_key(did))["status"]
    assert s.w.run(s.w.gov("gov.service_suspend", {"did": did})) == "service-not-found"
    s.w.ok(s.w.gov("gov.service_register", service_payload(s)))
    assert s.w.run(s.w.gov("gov.service_reinstate", {"did": did})) == "invalid-transition"
    s.w.ok(s.w.gov("gov.service_suspend", {"did": did})); assert get() == "suspended"
    s.w.ok(s.w.gov("gov.service_reinstate", {"did": did})); assert get() == "registered"
    s.w.ok(s.w.gov("gov.service_remove", {"did": did})); assert get() == "removed"
    for action in ("reinstate", "suspend", "remove"):
        assert s.w.run(s.w.gov(f"gov.service_{action}", {"did": did})) == "service-removed"
    assert s.w.run(s.w.gov("gov.service_register", service_payload(s))) == "service-removed"


def test_amending_a_registration_keeps_its_first_time() -> None:
    s = scene()
    s.w.ok(s.w.gov("gov.service_register", service_payload(s)))
    first = s.w.value(statekeys.service_key(s.alice.did))
    payload = service_payload(s)
    payload["queries"] = [{"vct": TAX, "claims": [["tax_id"]]}]
    s.w.ok(s.w.gov("gov.service_register", payload))
    second = s.w.value(statekeys.service_key(s.alice.did))
    assert second["registered_ms"] == first["registered_ms"]
    assert services.allowed_claims(second) == {TAX: (("tax_id",),)}


def test_registration_needs_an_existing_did() -> None:
    w = World()
    ghost = w.holder("ghost")
    s = scene()
    payload = service_payload(s) | {"did": ghost.did}
    assert s.w.run(s.w.gov("gov.service_register", payload)) == "did-not-found"


@pytest.mark.parametrize("change", [
    {"name": {"en": "only english"}},
    {"name": {"en": "x", "zh-CN": "y", "fr": "z"}},
    {"purpose": {"en": " padded ", "zh-CN": "y"}},
    {"purpose": {"en": "", "zh-CN": "y"}},
    {"queries": []},
    {"queries": [{"vct": PID, "claims": []}]},
    {"queries": [{"vct": PID, "claims": [[]]}]},
    {"queries": [{"vct": PID, "claims": [["a", -1]]}]},
    {"queries": [{"vct": PID, "claims": [["a"], ["a"]]}]},
    {"queries": [{"vct": PID, "claims": [["a"]]}, {"vct": PID, "claims": [["b"]]}]},
    {"queries": [{"vct": PID, "claims": [["a"]], "extra": 1}]},
    {"queries": [{"vct": "has space", "claims": [["a"]]}]},
])
def test_malformed_registration_is_rejected_without_writes(change: dict[str, Any]) -> None:
    s = scene()
    assert s.w.run(s.w.gov("gov.service_register", service_payload(s) | change)) in {"bad-service", "bad-vct"}
    assert s.w.value(statekeys.service_key(s.alice.did)) is None


def _record(status: str = "registered") -> dict[str, Any]:
    return {"status": status, "queries": [{"vct": PID, "claims": [["given_name"], ["age_equal_or_over", "18"],
                                                               ["address"]]}]}


def test_may_ask_allows_registered_claims_and_their_sub_claims() -> None:
    query = _query(_pid(["given_name"], ["age_equal_or_over", "18"], ["address", "locality"]))
    assert services.may_ask(_record(), query) == []


@pytest.mark.parametrize(("credential", "fault"), [
    (_pid(["birthdate"]), "claim ['birthdate'] not registered"),
    (_pid(["age_equal_or_over", "21"]), "claim ['age_equal_or_over', '21'] not registered"),
    (_pid(["age_equal_or_over"]), "claim ['age_equal_or_over'] not registered"),
    ({"id": "pid", "format": "dc+sd-jwt", "meta": {"vct_values": [PID]}}, "every claim"),
    ({"id": "pid", "format": "dc+sd-jwt", "meta": {}, "claims": [{"path": ["given_name"]}]}, "any credential type"),
    ({"id": "tax", "format": "dc+sd-jwt", "meta": {"vct_values": [TAX]}, "claims": [{"path": ["x"]}]},
     "not registered"),
])
def test_may_ask_refuses_what_the_registration_does_not_list(credential: dict[str, Any], fault: str) -> None:
    faults = services.may_ask(_record(), _query(credential))
    assert len(faults) == 1 and fault in faults[0], faults


def test_may_ask_refuses_unregistered_and_suspended_services() -> None:
    query = _query(_pid(["given_name"]))
    assert services.may_ask(None, query) == ["the service is not registered on the ledger"]
    assert services.may_ask(_record("suspended"), query) == ["the service is suspended"]


def test_claim_sets_count_every_claim_they_may_yield() -> None:
    credential = _pid(["given_name"], ["birthdate"])
    credential["claims"] = [{"id": "a", "path": ["given_name"]}, {"id": "b", "path": ["birthdate"]}]
    credential["claim_sets"] = [["a"], ["b"]]
    faults = services.may_ask(_record(), _query(credential))
    assert faults == [f"pid: {PID} claim ['birthdate'] not registered"]


def test_node_serves_a_registration_with_a_proof_the_light_client_checks() -> None:
    from fastapi.testclient import TestClient

    from identity.errors import NotFoundError
    from identity.fetcher import IdentityHttpFetcher
    from identity.http.node_routes import identity_router
    from identity.light_client import LightClient
    from node.api.app import create_app
    from tests.test_identity_api_scene import VCT, build_scene

    s = build_scene()
    payload = {"did": s.alice.did, "name": {"en": "Desk", "zh-CN": "服务台"},
               "purpose": {"en": "Age check", "zh-CN": "年龄核验"},
               "queries": [{"vct": VCT, "claims": [["age_equal_or_over", "18"]]}]}
    s.block(s.gov("gov.service_register", payload))
    http = TestClient(create_app(s.node, extra_routers=[identity_router]), raise_server_exceptions=False)
    body = http.get(f"/v1/services/{s.alice.did}").json()
    assert body["service"]["status"] == "registered" and body["service"]["purpose"]["zh-CN"] == "年龄核验"
    lc = LightClient(s.node.genesis, IdentityHttpFetcher("http://testserver", client=http), freshness_ms=60_000)
    record = lc.service(s.alice.did, s.clock())
    assert services.allowed_claims(record) == {VCT: (("age_equal_or_over", "18"),)}
    missing = http.get(f"/v1/services/{s.agency.did}")
    assert missing.status_code == 404 and missing.json()["reason"] == "service-not-found"
    with pytest.raises(NotFoundError):
        lc.service(s.agency.did, s.clock())
    assert http.get("/v1/services/not-a-did").status_code == 400
