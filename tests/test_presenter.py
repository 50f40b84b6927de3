"""The wallet's side over HTTP: prepare (verify, compare with the registration, preview), send,
decline — and the refusals the wallet records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from identity import dcql, oid4vp, presenter
from identity.errors import Oid4vpError, WalletError
from tests.test_identity_api_scene import VCT
from tests.test_verifier_service import QUESTION, World, make_world


@pytest.fixture()
def world(tmp_path: Path) -> World:
    return make_world(tmp_path, "http://127.0.0.1:8710")


def test_prepare_shows_who_asks_why_and_exactly_what_then_send_answers(world: World) -> None:
    body = world.ask().json()
    prepared = presenter.prepare(body["request_uri"], wallet=world.wallet, light=world.light, http=world.verifier,
                                 now_ms=world.scene.clock())
    assert prepared.name("zh-CN") == "社区服务台" and prepared.purpose("en") == "Age check"
    (held,) = world.wallet.credentials()
    assert prepared.disclosures == (presenter.Disclosure("pid", VCT, world.scene.agency.did,
                                                         ("age_equal_or_over.18",), held.id, reused=False),)
    assert world.wallet.history() == []  # nothing happens before consent
    presenter.send(prepared, wallet=world.wallet, http=world.verifier, now=world.now(), lang="zh-CN")
    assert world.result(body["id"])["valid"] is True
    assert [h.verifier for h in world.wallet.history()] == ["社区服务台"]
    assert world.wallet.uses(held.id) == 1


def test_decline_tells_the_service_no_and_is_recorded(world: World) -> None:
    body = world.ask().json()
    prepared = presenter.prepare(body["request_uri"], wallet=world.wallet, light=world.light, http=world.verifier,
                                 now_ms=world.scene.clock())
    presenter.decline(prepared, wallet=world.wallet, http=world.verifier, now=world.now())
    assert world.result(body["id"])["reason"] == "access_denied"
    (record,) = world.wallet.history()
    assert record.disclosed == () and record.refused is not None and record.refused.startswith("declined")


@dataclass
class _Served:
    """A stand-in for the network: serves one request object (unit test of the wallet layer)."""

    text: str
    status_code: int = 200

    @property
    def content(self) -> bytes:
        return self.text.encode()

    def get(self, url: str, **_: Any) -> _Served:
        return self


def _forged(world: World, query: dict[str, Any], signer: Any, did: str) -> str:
    request = oid4vp.new_request(did, "http://127.0.0.1:8710/v1/responses", dcql.parse_query(query),
                                 nonce="n", state="s", now=world.now(), lifetime_s=60)
    return oid4vp.sign_request(request, signer, f"{did}#{signer.key_id}")


def test_a_request_beyond_the_registration_is_refused_and_recorded(world: World) -> None:
    query = {"credentials": [{"id": "pid", "format": "dc+sd-jwt", "meta": {"vct_values": [VCT]},
                              "claims": [{"path": ["birthdate"]}]}]}
    served = _Served(_forged(world, query, world.desk.key, world.desk.did))
    uri = oid4vp.authorization_uri(oid4vp.client_id_for(world.desk.did), "http://127.0.0.1:8710/r/1")
    with pytest.raises(Oid4vpError) as err:
        presenter.prepare(uri, wallet=world.wallet, light=world.light, http=served, now_ms=world.scene.clock())
    assert err.value.reason == "beyond-registration"
    (record,) = world.wallet.history()
    assert record.verifier == "Community desk" and "birthdate" in (record.refused or "")


def test_an_unregistered_service_is_refused(world: World) -> None:
    alice = world.scene.alice  # a did:imi on the ledger, but no registered service
    served = _Served(_forged(world, QUESTION, alice.key, alice.did))
    uri = oid4vp.authorization_uri(oid4vp.client_id_for(alice.did), "http://127.0.0.1:8710/r/1")
    with pytest.raises(Oid4vpError) as err:
        presenter.prepare(uri, wallet=world.wallet, light=world.light, http=served, now_ms=world.scene.clock())
    assert err.value.reason == "invalid_client" and world.wallet.history()[0].refused


def test_a_request_object_signed_by_another_key_is_refused(world: World) -> None:
    served = _Served(_forged(world, QUESTION, world.scene.alice.key, world.desk.did))
    uri = oid4vp.authorization_uri(oid4vp.client_id_for(world.desk.did), "http://127.0.0.1:8710/r/1")
    with pytest.raises(Oid4vpError) as err:
        presenter.prepare(uri, wallet=world.wallet, light=world.light, http=served, now_ms=world.scene.clock())
    assert err.value.reason == "invalid_request_object"


def test_an_unreachable_request_is_a_clear_error(world: World) -> None:
    uri = oid4vp.authorization_uri(oid4vp.client_id_for(world.desk.did), "http://127.0.0.1:8710/r/1")
    with pytest.raises(Oid4vpError) as err:
        presenter.prepare(uri, wallet=world.wallet, light=world.light, http=_Served("", 404),
                          now_ms=world.scene.clock())
    assert err.value.reason == "request-unavailable"


def test_a_used_up_credential_is_named_reused_or_refused_per_the_setting(world: World) -> None:
    """The world's wallet holds one credential (a batch of one): after one answer the next
    consent says it is reused; with the setting ``refuse`` prepare refuses and records it."""
    body = world.ask().json()
    first = presenter.prepare(body["request_uri"], wallet=world.wallet, light=world.light, http=world.verifier,
                              now_ms=world.scene.clock())
    presenter.send(first, wallet=world.wallet, http=world.verifier, now=world.now())
    again = presenter.prepare(world.ask().json()["request_uri"], wallet=world.wallet, light=world.light,
                              http=world.verifier, now_ms=world.scene.clock())
    assert [d.reused for d in again.disclosures] == [True]
    world.wallet.set_when_used_up("refuse")
    with pytest.raises(WalletError) as info:
        presenter.prepare(world.ask().json()["request_uri"], wallet=world.wallet, light=world.light,
                          http=world.verifier, now_ms=world.scene.clock())
    assert info.value.reason == "batch-used-up"
    assert world.wallet.history()[-1].refused is not None and world.wallet.history()[-1].disclosed == ()
