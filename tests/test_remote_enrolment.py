"""Remote (zero-visit) enrolment over real HTTP through the services: a citizen enrolled once at
the public security bureau's counter gets the civil affairs bureau's credential without a visit
and without staff — and every way to cheat it is refused with a stable reason, with nothing
enrolled and nothing offered."""

from __future__ import annotations

import json
import time
import urllib.parse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import cli._ledger_client
from cli.main import app as imi_app
from identity import did as didmod
from identity import holder, oid4vp, presenter
from identity.constants import ISSUER_SERVICE_TYPE, REMOTE_ENROLMENT_STARTS_BURST
from identity.errors import Oid4vpError
from identity.fetcher import IdentityHttpFetcher
from identity.http.issuer_service import create_issuer_app
from identity.http.node_routes import ROUTERS
from identity.http.remote_enrolment import remote_enrolment_for
from identity.issuance import IssuanceRequestError
from identity.issuer_agent import IssuerAgent, Register
from identity.ledger_client import NodeClient
from identity.ledger_trust import LedgerServiceKeys, status_uri
from identity.light_client import LightClient
from identity.oid4vci import NonceMint, OAuthError
from identity.oid4vci_client import receive
from identity.presentation import present
from identity.remote_enrolment import RemoteEnrolmentConfig
from identity.remote_enrolment_client import enrol
from identity.rules import IDENTITY_HANDLERS
from identity.sdjwt import HolderBinding, issue
from identity.wallet import KdfParams, Wallet
from ledger.execution import DEVNET_HANDLERS
from ledger.keys import SigningKey
from node.api.app import create_app
from tests.test_node_api_support import InProcessNode

NODE = "http://node.test"
PSB = "http://psb.test"  # the public security bureau: issues the resident identity
CIVIL = "http://127.0.0.1:8702"  # the civil affairs bureau: enrols remotely (OpenID4VP wants https or loopback)
TAX = "http://127.0.0.1:8703"  # an agency that enrols remotely but never registered as a service
ID_VCT = "urn:imi:resident-id:1"
RES_VCT = "urn:imi:residence:1"
ID_CLAIMS = ["birthdate", "family_name", "given_name", "national_id"]
TOKEN = "staff-token-0123"
STAFF = {"authorization": f"Bearer {TOKEN}"}
PEOPLE = 16


def national_id(i: int) -> str:
    return f"4406041990061500{i:02d}"


@dataclass
class Agency:
    key: SigningKey
    did: str
    agent: IssuerAgent | None = None
    http: TestClient | None = None


@dataclass
class World:
    node: InProcessNode
    node_http: TestClient
    psb: Agency
    civil: Agency
    other: Agency  # accredited for the identity type too, but not accepted by civil affairs
    tax: Agency
    config: RemoteEnrolmentConfig

    def route(self) -> httpx.Client:
        clients = {"node.test": self.node_http, "psb.test": self.psb.http, "127.0.0.1:8702": self.civil.http,
                   "127.0.0.1:8703": self.tax.http}

        def handle(request: httpx.Request) -> httpx.Response:
            client = clients.get(request.url.netloc.decode())
            if client is None:
                raise httpx.ConnectError(f"no route to {request.url.netloc!r}", request=request)
            answer = client.request(request.method, request.url.raw_path.decode("ascii"), content=request.content,
                                    headers={k: v for k, v in request.headers.items() if k.lower() != "host"})
            return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

        return httpx.Client(transport=httpx.MockTransport(handle))

    def light(self) -> LightClient:
        self.node.commit()  # a fresh header: light clients refuse stale state
        return LightClient(self.node.genesis, IdentityHttpFetcher(NODE, client=self.node_http))

    def node_client(self) -> NodeClient:
        return NodeClient(NODE, client=self.node_http)

    def gov(self, type_: str, payload: dict[str, Any]) -> None:
        nc = self.node_client()
        nc.submit(nc.build(type_, "gov", payload, *self.node.consortium.trustee_keys[:2]))


def _agency(w_nc: NodeClient, node: InProcessNode, url: str | None, name: str, vct: str, claims: list[str],
            list_id: str) -> Agency:
    key, next_key = SigningKey.generate(), SigningKey.generate()
    commitment = didmod.key_commitment(next_key.public_key.to_jwk())
    did = didmod.derive_did(key.public_key.to_jwk(), commitment)
    services = [{"id": "oid4vci", "type": ISSUER_SERVICE_TYPE, "endpoint": url}] if url else []
    w_nc.submit(w_nc.build("did.create", did, {"jwk": dict(key.public_key.to_jwk()),
                                               "next_key_commitment": commitment, "services": services}, key))
    w_nc.submit(w_nc.build("gov.issuer_accredit", "gov", {"did": did, "name": name, "vcts": [vct]},
                           *node.consortium.trustee_keys[:2]))
    if claims:  # the second issuer of a type publishes nothing: the type is the first's
        w_nc.submit(w_nc.build("vct.publish", did, {"vct": vct, "name": name, "claims": claims}, key))
    w_nc.submit(w_nc.build("status.create_list", did, {"list_id": list_id, "bits": 2, "size": 1024}, key))
    return Agency(key, did)


def _serve(agency: Agency, node_http: TestClient, node: InProcessNode, url: str, list_id: str,
           register: dict[str, Any], config: RemoteEnrolmentConfig | None) -> None:
    nc = NodeClient(NODE, client=node_http)
    light = LightClient(node.genesis, IdentityHttpFetcher(NODE, client=node_http))
    agency.agent = IssuerAgent(agency.did, agency.key, nc, light, list_id, Register.from_json(register),
                               credential_issuer=url)
    # the test client is one peer: a trusted "proxy", so each test starts as its own client
    agency.http = TestClient(create_issuer_app(agency.agent, admin_token=TOKEN, token_rate=(1000.0, 1000),
                                               trusted_proxies=frozenset({"testclient"}),
                                               remote_enrolment=config),
                             base_url=url, raise_server_exceptions=False)


def _registers() -> tuple[dict[str, Any], dict[str, Any]]:
    psb = {f"psb-{i}": {"claims": {"national_id": national_id(i), "family_name": "Li", "given_name": f"Mei{i}",
                                   "birthdate": "1990-06-15"}} for i in range(PEOPLE)}
    civil = {f"civ-{i}": {"claims": {"national_id": national_id(i), "family_name": "Li", "locality": "Chancheng"},
                          "by_vct": {RES_VCT: {"family_name": "Li", "locality": "Chancheng"}}}
             for i in range(PEOPLE) if i not in (5, 6, 7)}
    civil["civ-5"] = {"claims": {"national_id": national_id(5), "family_name": "Wang", "locality": "Nanhai"}}
    civil["civ-7a"] = {"claims": {"national_id": national_id(7), "family_name": "Li", "locality": "Shunde"}}
    civil["civ-7b"] = {"claims": {"national_id": national_id(7), "family_name": "Li", "locality": "Gaoming"}}
    return psb, civil  # 5: another person under that number; 6: unknown here; 7: a duplicate record


@pytest.fixture(scope="module")
def world() -> World:
    node = InProcessNode(handlers={**DEVNET_HANDLERS, **IDENTITY_HANDLERS})
    node.commit()
    node_http = TestClient(create_app(node, extra_routers=ROUTERS), base_url=NODE, raise_server_exceptions=False)
    nc = NodeClient(NODE, client=node_http)
    psb = _agency(nc, node, PSB, "Foshan Public Security Bureau", ID_VCT, ID_CLAIMS, "psb-1")
    civil = _agency(nc, node, CIVIL, "Foshan Civil Affairs Bureau", RES_VCT, ["family_name", "locality"], "civ-1")
    other = _agency(nc, node, None, "Another Bureau", ID_VCT, [], "other-1")
    tax = _agency(nc, node, TAX, "Foshan Tax Bureau", "urn:imi:tax:1", ["family_name"], "tax-1")
    config = RemoteEnrolmentConfig.from_json({"accept": [{"issuer": psb.did, "vct": ID_VCT, "match": {
        "national_id": "national_id", "family_name": "family_name"}}]})
    w = World(node, node_http, psb, civil, other, tax, config)
    w.gov("gov.service_register", {"did": civil.did, "name": {"en": "Civil Affairs", "zh-CN": "民政局"},
                                   "purpose": {"en": "Enrolment without a visit", "zh-CN": "免到场登记"},
                                   "queries": config.registration_queries()})
    psb_register, civil_register = _registers()
    _serve(psb, node_http, node, PSB, "psb-1", psb_register, None)
    _serve(civil, node_http, node, CIVIL, "civ-1", civil_register, config)
    _serve(tax, node_http, node, TAX, "tax-1", {"t-0": {"claims": {"national_id": national_id(0),
                                                                   "family_name": "Li"}}}, config)
    return w


# --- helpers ----------------------------------------------------------------------------------
def now() -> int:
    return int(time.time())


def new_wallet(tmp_path: Path, name: str = "w.json") -> Wallet:
    return Wallet.create(tmp_path / name, "pw", kdf=KdfParams.fastest())


def at_the_psb_counter(world: World, wallet: Wallet, person: int, *, did: str | None = None,
                       batch: int = 1) -> list[str]:
    """The one visit: PSB staff make an enrolment offer, the wallet redeems it with the PIN."""
    assert world.psb.http is not None
    made = world.psb.http.post("/v1/admin/offers", json={"subject": f"psb-{person}", "vcts": [ID_VCT],
                                                         "batch": batch}, headers=STAFF).json()
    return receive(wallet, made["offer_uri"], http=world.route(), ledger=world.light(), now=now(),
                   tx_code=made["tx_code"], did=did, batch=batch, allow_http=True)


def start(world: World, agency: Agency | None = None, client: str | None = None) -> str:
    http = (agency or world.civil).http
    assert http is not None
    answer = http.post("/remote-enrolment", headers={"x-forwarded-for": client or f"10.0.{time.monotonic_ns() % 65536}"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["request_uri"].startswith("openid4vp://?client_id=decentralized_identifier%3Adid%3Aimi%3A")
    return str(body["request_uri"])


def enrol_remotely(world: World, wallet: Wallet, *, batch: int = 1) -> list[str]:
    prepared = presenter.prepare(start(world), wallet=wallet, light=world.light(), http=world.route(),
                                 now_ms=now() * 1000)
    return enrol(prepared, wallet=wallet, http=world.route(), ledger=world.light(), now=now(), batch=batch,
                 allow_http=True)


def refused(world: World, wallet: Wallet) -> str:
    """Try a remote enrolment that must fail; return the reason the agency gave."""
    with pytest.raises(Oid4vpError) as caught:
        enrol_remotely(world, wallet)
    return caught.value.reason


def civil_state(world: World) -> tuple[list[tuple[str, str | None]], int, int]:
    """Enrolments by subject, live offers, issued records: what a refusal must leave alone."""
    agent = world.civil.agent
    assert agent is not None
    enrolled = [(s, getattr(agent.records.enrolment(s), "holder", None)) for s in agent.register.subjects()]
    return enrolled, len(agent.offers), len(agent.records.all())


def request_of(world: World, uri: str) -> oid4vp.AuthorizationRequest:
    """What a wallet fetches and verifies for ``uri`` (to build a hand-made answer)."""
    assert world.civil.http is not None
    client_id, request_uri = oid4vp.parse_authorization_uri(uri)
    fetched = world.civil.http.get(urllib.parse.urlsplit(request_uri).path)
    assert fetched.status_code == 200 and fetched.headers["content-type"].startswith("application/oauth-authz-req+jwt")
    light = world.light()
    return oid4vp.open_request(fetched.text, client_id=client_id, service_key=LedgerServiceKeys(light), now=now())


def post(world: World, form: dict[str, str]) -> Any:
    assert world.civil.http is not None
    return world.civil.http.post("/remote-enrolment/responses", content=urllib.parse.urlencode(form),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})


def id_presentation(wallet: Wallet, request: oid4vp.AuthorizationRequest, key: SigningKey | None = None) -> str:
    """The identity credential's answer; with ``key``, a KB-JWT signed by that key instead."""
    (summary,) = [s for s in wallet.credentials() if s.vct == ID_VCT][:1]
    compact = wallet._credentials[summary.id]["compact"]  # a hand-made answer needs the raw credential
    return present(compact, ["family_name", "national_id"], holder_key=key or wallet.signing_key(summary.holder_key),
                   nonce=request.nonce, aud=request.client_id, iat=now())


# --- the zero-visit story ------------------------------------------------------------------------
def test_enrolled_at_one_counter_the_citizen_gets_another_agencys_credential_without_a_visit(
        world: World, tmp_path: Path) -> None:
    wallet = new_wallet(tmp_path)
    (psb_id,) = at_the_psb_counter(world, wallet, 0)
    presenting_key = next(s.holder_key for s in wallet.credentials() if s.id == psb_id)
    ids = enrol_remotely(world, wallet, batch=2)  # no civil affairs staff anywhere
    assert len(ids) == 2
    payloads = [wallet.show(i) for i in ids]
    assert all(p["iss"] == world.civil.did and p["vct"] == RES_VCT for p in payloads)
    # the batch includes a proof by the very key that presented; the other key is fresh
    assert payloads[0]["cnf"] == {"jwk": dict(wallet.public_key(presenting_key).to_jwk())}
    assert payloads[1]["cnf"]["jwk"] != payloads[0]["cnf"]["jwk"]
    assert world.civil.agent is not None
    enrolment = world.civil.agent.records.enrolment("civ-0")
    assert enrolment is not None and (enrolment.kind, enrolment.holder) == ("jwk", presenting_key)
    assert enrolment.via == f"remote:{world.psb.did}"
    # civil affairs told the wallet's history who asked, and what was shown: the ID number and name only
    shown = [h for h in wallet.history() if h.disclosed]
    assert [(h.verifier, h.disclosed) for h in shown] == [("Civil Affairs", ("family_name", "national_id"))]
    assert wallet.issuances()[-1]["iss"] == world.civil.did and wallet.issuances()[-1]["holder"] == presenting_key
    # later offers from that agency need a proof by the key enrolled remotely — the wallet remembers it
    assert world.civil.http is not None
    later = world.civil.http.post("/v1/admin/offers", json={"subject": "civ-0", "vcts": [RES_VCT],
                                                            "tx_code": False}, headers=STAFF).json()
    (again,) = receive(wallet, later["offer_uri"], http=world.route(), ledger=world.light(), now=now(),
                       allow_http=True)
    assert next(s for s in wallet.credentials() if s.id == again).holder_key == presenting_key


def test_a_did_bound_identity_enrols_the_did(world: World, tmp_path: Path) -> None:
    wallet = new_wallet(tmp_path)
    did, _ = holder.create_did(wallet, world.node_client())
    at_the_psb_counter(world, wallet, 1, did=did)
    (res_id,) = enrol_remotely(world, wallet)
    assert wallet.show(res_id)["cnf"] == {"kid": did}
    assert world.civil.agent is not None
    enrolment = world.civil.agent.records.enrolment("civ-1")
    assert enrolment is not None and (enrolment.kind, enrolment.holder) == ("did", did)


# --- refusals: nothing enrolled, nothing offered ---------------------------------------------------
def test_an_identity_from_an_agency_not_accepted_is_refused(world: World, tmp_path: Path) -> None:
    wallet = new_wallet(tmp_path)
    key_id = wallet.new_key("ES256")
    other = world.other
    credential = issue({"national_id": national_id(2), "family_name": "Li"}, issuer_key=other.key, iss=other.did,
                       vct=ID_VCT, holder=HolderBinding.from_key(wallet.public_key(key_id)), iat=now(),
                       status={"status_list": {"idx": 3, "uri": status_uri("other-1")}},
                       kid=f"{other.did}#{other.key.key_id}").serialize()
    wallet.add_credential(credential, now=now())
    before = civil_state(world)
    # ID_VCT's published definition is the PSB's: another agency's credential of that type is
    # invalid before civil affairs' list of accepted issuers is even consulted
    assert refused(world, wallet) == "vct-other-issuer"
    assert civil_state(world) == before


@pytest.mark.parametrize(("person", "why"), [(6, "no-matching-subject"), (5, "no-matching-subject"),
                                             (7, "ambiguous-subject")])
def test_claims_must_identify_exactly_one_subject(world: World, tmp_path: Path, person: int, why: str) -> None:
    """6 is unknown here; under 5's number the register knows someone named Wang (the wrong
    subject: the name does not match); 7's number is in two records."""
    wallet = new_wallet(tmp_path)
    at_the_psb_counter(world, wallet, person)
    before = civil_state(world)
    assert refused(world, wallet) == why
    assert civil_state(world) == before


def test_a_citizen_who_declines_shares_nothing_and_is_not_enrolled(world: World, tmp_path: Path) -> None:
    wallet = new_wallet(tmp_path)
    at_the_psb_counter(world, wallet, 4)
    prepared = presenter.prepare(start(world), wallet=wallet, light=world.light(), http=world.route(),
                                 now_ms=now() * 1000)
    before = civil_state(world)
    presenter.decline(prepared, wallet=wallet, http=world.route(), now=now())
    assert civil_state(world) == before
    assert [h.disclosed for h in wallet.history()] == [()]
    # the declined request is closed: an answer sent after it is not taken
    late = post(world, {"vp_token": json.dumps({"identity0": [id_presentation(wallet, prepared.request)]}),
                        "state": prepared.request.state})
    assert late.status_code == 400 and late.json()["reason"] == "response-already-received"
    assert civil_state(world) == before


def test_a_subject_enrolled_to_another_holder_is_not_taken_over(world: World, tmp_path: Path) -> None:
    assert world.civil.http is not None and world.civil.agent is not None
    stranger = SigningKey.generate()
    assert world.civil.http.post("/v1/admin/enrol", json={"subject": "civ-8", "jwk": stranger.public_key.to_jwk()},
                                 headers=STAFF).status_code == 200
    wallet = new_wallet(tmp_path)
    at_the_psb_counter(world, wallet, 8)
    before = civil_state(world)
    assert refused(world, wallet) == "subject-enrolled-elsewhere"
    assert civil_state(world) == before
    enrolment = world.civil.agent.records.enrolment("civ-8")
    assert enrolment is not None and enrolment.holder == stranger.public_key.thumbprint()


def test_a_key_binding_by_another_key_is_refused(world: World, tmp_path: Path) -> None:
    wallet = new_wallet(tmp_path)
    at_the_psb_counter(world, wallet, 9)
    request = request_of(world, start(world))
    forged = id_presentation(wallet, request, key=SigningKey.generate("ES256"))
    before = civil_state(world)
    answer = post(world, {"vp_token": json.dumps({"identity0": [forged]}), "state": request.state})
    assert answer.status_code == 403 and answer.json()["reason"] == "kb-bad-signature"
    assert civil_state(world) == before


def test_a_replayed_vp_token_is_refused(world: World, tmp_path: Path) -> None:
    wallet = new_wallet(tmp_path)
    at_the_psb_counter(world, wallet, 10)
    request = request_of(world, start(world))
    form = {"vp_token": json.dumps({"identity0": [id_presentation(wallet, request)]}), "state": request.state}
    first = post(world, form)
    assert first.status_code == 200 and first.json()["redirect_uri"].startswith("openid-credential-offer://")
    before = civil_state(world)
    again = post(world, form)  # the same answer to the same request
    assert again.status_code == 400 and again.json()["reason"] == "response-already-received"
    other = request_of(world, start(world))  # the same answer to a new request: its nonce differs
    moved = post(world, {**form, "state": other.state})
    assert moved.status_code == 403 and moved.json()["reason"] == "kb-wrong-nonce"
    assert civil_state(world) == before
    # and an answered request object is no longer served
    assert world.civil.http is not None
    assert world.civil.http.get(f"/remote-enrolment/requests/{request.state}").status_code == 404


@pytest.mark.parametrize(("person", "action"), [(11, "revoke"), (12, "suspend")])
def test_a_revoked_or_suspended_identity_is_refused(world: World, tmp_path: Path, person: int, action: str) -> None:
    wallet = new_wallet(tmp_path)
    (cred_id,) = at_the_psb_counter(world, wallet, person)
    idx = wallet.show(cred_id)["status"]["status_list"]["idx"]
    assert world.psb.http is not None
    assert world.psb.http.post(f"/v1/issuance/{action}", json={"idx": idx}, headers=STAFF).status_code == 200
    before = civil_state(world)
    assert refused(world, wallet) == {"revoke": "revoked", "suspend": "suspended"}[action]
    assert civil_state(world) == before


def test_an_unregistered_or_suspended_agency_gets_nothing_from_the_wallet(world: World, tmp_path: Path) -> None:
    wallet = new_wallet(tmp_path)
    at_the_psb_counter(world, wallet, 13)
    # the tax bureau enrols remotely but is not registered as a service: the wallet refuses
    with pytest.raises(Oid4vpError) as caught:
        presenter.prepare(start(world, world.tax), wallet=wallet, light=world.light(), http=world.route(),
                          now_ms=now() * 1000)
    assert caught.value.reason == "invalid_client"
    world.gov("gov.service_suspend", {"did": world.civil.did})
    try:
        before = civil_state(world)
        with pytest.raises(Oid4vpError) as caught:
            presenter.prepare(start(world), wallet=wallet, light=world.light(), http=world.route(),
                              now_ms=now() * 1000)
        assert caught.value.reason == "invalid_client"
        assert civil_state(world) == before
    finally:
        world.gov("gov.service_reinstate", {"did": world.civil.did})
    assert [h.disclosed for h in wallet.history()] == [(), ()]  # two refusals recorded, nothing disclosed


def test_an_offer_the_agency_cannot_make_enrols_no_one(world: World, tmp_path: Path) -> None:
    """A configured type the issuer does not offer (not accredited or not published) is found
    out before the enrolment is written, not after."""
    assert world.civil.agent is not None
    flow = remote_enrolment_for(world.civil.agent, replace(world.config, offer=("urn:imi:not-offered:1",)))
    wallet = new_wallet(tmp_path)
    at_the_psb_counter(world, wallet, 3)
    started = flow.start(now())
    request = oid4vp.open_request(flow.request_object(started.state, now()), client_id=flow.client_id,
                                  service_key=LedgerServiceKeys(world.light()), now=now())
    before = civil_state(world)
    with pytest.raises(Oid4vpError) as caught:
        flow.respond({"vp_token": json.dumps({"identity0": [id_presentation(wallet, request)]}),
                      "state": started.state}, now())
    assert caught.value.reason == "nothing-to-offer"
    assert civil_state(world) == before


def test_the_wallet_takes_an_offer_only_from_the_agency_that_asked(world: World, tmp_path: Path) -> None:
    """A redirect to another issuer's offer (here the PSB's) is refused before anything is signed."""
    assert world.psb.http is not None
    made = world.psb.http.post("/v1/admin/offers", json={"subject": "psb-14", "vcts": [ID_VCT]},
                               headers=STAFF).json()
    wallet = new_wallet(tmp_path)
    with pytest.raises(IssuanceRequestError) as caught:
        receive(wallet, made["offer_uri"], http=world.route(), ledger=world.light(), now=now(),
                tx_code=made["tx_code"], allow_http=True, issuer_did=world.civil.did)
    assert caught.value.reason == "issuer-untrusted" and wallet.credentials() == []


def test_starting_is_rate_limited_per_client(world: World) -> None:
    assert world.civil.http is not None
    codes = [world.civil.http.post("/remote-enrolment", headers={"x-forwarded-for": "192.0.2.99"}).status_code
             for _ in range(REMOTE_ENROLMENT_STARTS_BURST + 1)]
    assert codes[:-1] == [200] * REMOTE_ENROLMENT_STARTS_BURST and codes[-1] == 429
    assert start(world, client="192.0.2.100")  # another client is not locked out


def test_bad_posts_get_a_clear_4xx(world: World) -> None:
    for state in ("made-up", "", "x" * 40):
        assert post(world, {"vp_token": "{}", "state": state}).json()["reason"] == "unknown-state"
    with pytest.raises(OAuthError) as caught:  # the same rule for c_nonce: not base64url is not ours
        NonceMint().check("made-up", now())
    assert caught.value.reason == "invalid_nonce"
    request = request_of(world, start(world))
    assert post(world, {"vp_token": "not json", "state": request.state}).json()["reason"] == "invalid-vp-token"
    assert world.civil.http is not None
    wrong_type = world.civil.http.post("/remote-enrolment/responses", json={"state": request.state})
    assert wrong_type.status_code == 415


# --- configuration ------------------------------------------------------------------------------
@pytest.mark.parametrize("config", [
    [],
    {"accept": []},
    {"accept": [{"issuer": "did:web:x", "vct": ID_VCT, "match": {"national_id": "national_id"}}]},
    {"accept": [{"issuer": "DID", "vct": "a b", "match": {"national_id": "national_id"}}]},
    {"accept": [{"issuer": "DID", "vct": ID_VCT, "match": {}}]},
    {"accept": [{"issuer": "DID", "vct": ID_VCT, "match": {"national_id": "a..b"}}]},
    {"accept": [{"issuer": "DID", "vct": ID_VCT, "match": {"national_id": "national_id"}, "extra": 1}]},
    {"accept": [{"issuer": "DID", "vct": ID_VCT, "match": {"national_id": "national_id"}}], "batch": 0},
    {"accept": [{"issuer": "DID", "vct": ID_VCT, "match": {"national_id": "national_id"}}], "offer": "x"},
    {"accept": [{"issuer": "DID", "vct": ID_VCT, "match": {"national_id": "national_id"}},
                {"issuer": "DID", "vct": ID_VCT, "match": {"national_id": "national_id"}}]},
    {"accept": [{"issuer": "DID", "vct": ID_VCT, "match": {"national_id": "national_id"}},
                {"issuer": "DID2", "vct": ID_VCT, "match": {"family_name": "family_name"}}]},
])
def test_a_bad_configuration_is_refused(world: World, config: Any) -> None:
    text = json.dumps(config).replace('"DID2"', json.dumps(world.other.did)).replace('"DID"', json.dumps(world.psb.did))
    with pytest.raises(ValueError, match=r"\S"):
        RemoteEnrolmentConfig.from_json(json.loads(text))


def test_several_issuers_of_one_type_share_its_query(world: World) -> None:
    config = RemoteEnrolmentConfig.from_json({"accept": [
        {"issuer": world.psb.did, "vct": ID_VCT, "match": {"national_id": "national_id"}},
        {"issuer": world.other.did, "vct": ID_VCT, "match": {"national_id": "national_id"}},
        {"issuer": world.psb.did, "vct": "urn:imi:passport:1", "match": {"national_id": "holder.id"}}]})
    assert [(s.vct, s.issuers) for s in config.sources] == [
        (ID_VCT, frozenset({world.psb.did, world.other.did})), ("urn:imi:passport:1", frozenset({world.psb.did}))]
    query = config.query().to_json()
    assert [c["claims"] for c in query["credentials"]] == [[{"path": ["national_id"]}], [{"path": ["holder", "id"]}]]
    assert [item["options"] for item in query["credential_sets"]] == [[["identity0"], ["identity1"]]]
    assert config.query().credential_sets is not None and config.query().credential_sets[0].required  # one of them


def test_imi_issue_serve_exits_1_on_a_bad_configuration(world: World, tmp_path: Path) -> None:
    genesis = tmp_path / "genesis.json"
    genesis.write_text(world.node.genesis.dumps())
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "remote.json").write_text(json.dumps({"accept": [{"issuer": "did:web:nope", "vct": ID_VCT,
                                                                  "match": {"id": "id"}}]}))
    result = CliRunner().invoke(imi_app, ["issue", "serve", "--issuer-dir", str(tmp_path / "missing"), "--node", NODE,
                                          "--genesis", str(genesis), "--admin-token-file", str(tmp_path / "token"),
                                          "--remote-enrolment", str(tmp_path / "remote.json")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.stderr.count("\n") == 1 and "error [bad-remote-enrolment]: --remote-enrolment" in result.stderr


# --- the wallet command -----------------------------------------------------------------------------
def test_imi_wallet_enrol_presents_then_receives(world: World, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    wallet = new_wallet(tmp_path)
    at_the_psb_counter(world, wallet, 15)
    wallet.save()
    monkeypatch.setattr(cli._ledger_client, "http_client", world.route)
    genesis = tmp_path / "genesis.json"
    genesis.write_text(world.node.genesis.dumps())
    env = {"IMI_WALLET_PASSWORD": "pw", "IMI_WALLET_ALLOW_HTTP": "1"}
    uri = start(world)
    world.node.commit()
    args = ["wallet", "enrol", uri, "--yes", "--json", "--batch", "2", "--wallet", str(wallet.path), "--node", NODE,
            "--genesis", str(genesis)]
    result = CliRunner().invoke(imi_app, args, env=env)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["service"] == "Civil Affairs" and shown["did"] == world.civil.did and shown["sent"] is True
    assert shown["disclosed"] == [{"vct": ID_VCT, "issuer": world.psb.did, "claims": ["family_name", "national_id"],
                                   "reused": False}]
    assert len(shown["ids"]) == 2
    reopened = Wallet.open(wallet.path, "pw")
    assert {s.vct for s in reopened.credentials() if s.id in shown["ids"]} == {RES_VCT}
    # the same link again: the request was answered; exit 1 with the reason, nothing more received
    again = CliRunner().invoke(imi_app, args, env=env)
    assert again.exit_code == 1 and json.loads(again.stdout)["reason"] == "request-unavailable"
    assert len(Wallet.open(wallet.path, "pw").credentials()) == len(reopened.credentials())


def test_the_register_finds_subjects_by_typed_values_and_forgets_its_index_on_change() -> None:
    register = Register.from_json({
        "a": {"claims": {"national_id": "110", "address": {"district": "Chancheng"}}},
        "b": {"claims": {"national_id": 110}},
        "c": {"claims": {"national_id": "110", "address": {"district": "Nanhai"}}},
        "d": {"claims": {"given_name": "No id"}}})
    assert register.find([("national_id", "110")]) == ["a", "c"]
    assert register.find([("national_id", 110)]) == ["b"]  # the number is not the string
    assert register.find([("national_id", "110"), ("address.district", "Nanhai")]) == ["c"]
    assert register.find([("national_id", None)]) == []  # absent never matches absent
    assert register.find([("national_id", True)]) == []
    register.put("e", {"national_id": "110"})
    assert register.find([("national_id", "110")]) == ["a", "c", "e"]  # the index was rebuilt
