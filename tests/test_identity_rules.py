"""Identity execution rules through ledger.execution.Executor on an in-memory dict state:
DID lifecycle, pre-rotation, recovery, governance, credential types, anchors, status lists."""

from __future__ import annotations

import hashlib

import pytest

from identity import did as didmod
from identity import status_list as sl
from identity.anchors import anchor_digest
from identity.rules import IDENTITY_HANDLERS
from ledger import statekeys
from ledger.constants import VALIDATOR_SET_CHANGE_DELAY_HEIGHTS
from ledger.execution import BlockContext, Executor, read_validator_set
from ledger.validators import ValidatorSet
from tests.factories import CHAIN_ID
from tests.test_identity_authz import recover_tx, scene, validator_value
from tests.test_identity_helpers import World, det_key


def record(w: World, did: str, version: int | None = None) -> dict:
    key = statekeys.did_key(did) if version is None else statekeys.did_version_key(did, version)
    return w.value(key)


# --- DIDs -------------------------------------------------------------------------------
def test_did_is_derived_from_inception_key_and_commitment() -> None:
    k, n = det_key("a"), det_key("b")
    did = didmod.derive_did(k.public_key.to_jwk(), didmod.key_commitment(n.public_key.to_jwk()))
    assert did.startswith("did:imi:") and didmod.is_did(did)
    assert len(didmod.b58decode(did.removeprefix("did:imi:"))) == 32
    other = didmod.derive_did(k.public_key.to_jwk(), didmod.key_commitment(det_key("c").public_key.to_jwk()))
    assert other != did


def test_created_did_resolves_to_a_did_core_document() -> None:
    w = World()
    h = w.new_did("alice", services=[{"id": "inbox", "type": "Inbox", "endpoint": "https://a.example/in"}])
    doc = didmod.document(record(w, h.did))
    kid = f"{h.did}#{h.key.key_id}"
    assert doc["id"] == h.did and doc["controller"] == h.did
    assert doc["verificationMethod"] == [{"id": kid, "type": "JsonWebKey2020", "controller": h.did,
                                          "publicKeyJwk": h.key.public_key.to_jwk()}]
    assert doc["authentication"] == [kid] and doc["assertionMethod"] == [kid]
    assert doc["service"][0]["serviceEndpoint"] == "https://a.example/in"
    assert record(w, h.did, 1) == record(w, h.did)


def test_rotation_reveals_next_key_and_the_old_key_loses_control() -> None:
    w = World()
    h = w.new_did("alice")
    old = h.key
    w.ok(w.rotate_tx(h, det_key("alice/2")))
    h.advance(det_key("alice/2"))
    rec = record(w, h.did)
    assert rec["version"] == 2 and rec["controller_key"] == h.key.key_id
    assert rec["next_key_commitment"] == didmod.key_commitment(det_key("alice/2").public_key.to_jwk())
    assert w.run(w.deactivate_tx(h, reveal=old)) == "next-key-mismatch"
    w.ok(w.rotate_tx(h, det_key("alice/3")))  # and again, with the newly committed key
    assert record(w, h.did)["version"] == 3
    assert record(w, h.did, 1)["controller_key"] == old.key_id  # history kept


def test_stolen_current_key_cannot_take_the_did_when_a_next_key_is_committed() -> None:
    w = World()
    h = w.new_did("alice")
    thief = det_key("thief")
    # The thief holds the current key; rotating to its own key fails the commitment.
    assert w.run(w.rotate_tx(h, det_key("thief/next"), h.key, thief, reveal=thief)) == "next-key-mismatch"
    # Nor can it install its key as an extra controlling key: extra keys never control.
    w.ok(w.tx("did.update", h.did, {"keys": [{"jwk": dict(thief.public_key.to_jwk()),
                                              "purposes": ["authentication"]}]}, h.key))
    assert w.run(w.deactivate_tx(h, thief, reveal=thief)) == "next-key-mismatch"
    assert w.run(w.rotate_tx(h, det_key("thief/next"), thief, reveal=thief)) == "next-key-mismatch"
    # The holder rotates with the committed next key and the thief is locked out.
    w.ok(w.rotate_tx(h, det_key("alice/2")))
    assert w.run(w.tx("did.update", h.did, {"services": []}, h.inception)) == "missing-signature"
    assert [k["id"] for k in record(w, h.did)["keys"]] == [h.next_key.key_id]  # thief's key dropped


def test_a_stolen_current_key_cannot_deactivate_the_did() -> None:
    """Deactivation is final, so it needs the pre-rotated next key, as a rotation does:
    the current key alone (all a thief of the phone holds) is refused, however signed."""
    w = World()
    h = w.new_did("alice")
    assert w.run(w.tx("did.deactivate", h.did, {}, h.key)) is not None  # refused
    assert w.run(w.deactivate_tx(h, h.key, reveal=h.key)) == "next-key-mismatch"
    assert w.run(w.deactivate_tx(h, h.key)) == "missing-signature"  # names the next key, signs with the current
    assert record(w, h.did)["status"] == "active"
    w.ok(w.deactivate_tx(h))  # the holder, with the recovery kit's next key
    assert record(w, h.did)["status"] == "deactivated"


def test_rotation_must_commit_to_a_fresh_next_key() -> None:
    w = World()
    h = w.new_did("alice")
    assert w.run(w.rotate_tx(h, h.next_key)) == "commitment-reuse"


def test_deactivation_is_final() -> None:
    w = World()
    h = w.new_did("alice")
    w.ok(w.deactivate_tx(h))
    assert record(w, h.did)["status"] == "deactivated"
    assert didmod.document(record(w, h.did))["verificationMethod"] == []
    assert w.run(w.rotate_tx(h, det_key("alice/2"))) == "did-deactivated"


def test_update_replaces_services_and_extra_keys_but_keeps_the_controller() -> None:
    w = World()
    h = w.new_did("alice")
    extra = det_key("alice/ops")
    w.ok(w.tx("did.update", h.did, {"keys": [{"jwk": dict(extra.public_key.to_jwk()),
                                              "purposes": ["assertionMethod"]}]}, h.key))
    doc = didmod.document(record(w, h.did))
    assert [m["publicKeyJwk"] for m in doc["verificationMethod"]] == [
        h.key.public_key.to_jwk(), extra.public_key.to_jwk()]
    assert doc["authentication"] == [f"{h.did}#{h.key.key_id}"]
    w.ok(w.tx("did.update", h.did, {"keys": []}, h.key))
    assert len(record(w, h.did)["keys"]) == 1


@pytest.mark.parametrize("payload", [
    {"services": [{"id": "a b", "type": "X", "endpoint": "https://x"}]},
    {"services": [{"id": "a", "type": "X", "endpoint": "not a uri"}]},
    {"services": [{"id": "a", "type": "X", "endpoint": "https://x", "extra": 1}]},
    {"keys": [{"jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AA"}, "purposes": ["authentication"]}]},
    {"keys": [{"jwk": dict(det_key("k").public_key.to_jwk()), "purposes": ["capabilityInvocation"]}]},
    {"unknown": 1},
    {},
])
def test_malformed_update_payload_is_rejected_without_writes(payload: dict) -> None:
    w = World()
    h = w.new_did("alice")
    before = dict(w.state.data)
    assert w.run(w.tx("did.update", h.did, payload, h.key)) is not None
    assert w.state.data == before


# --- recovery ------------------------------------------------------------------------------
def test_recovery_rebinds_the_did_to_the_holders_new_key() -> None:
    s = scene()
    old_version = record(s.w, s.alice.did)["version"]
    s.w.ok(recover_tx(s))
    rec = record(s.w, s.alice.did)
    new = det_key("alice/new")
    assert rec["controller_key"] == new.key_id and [k["id"] for k in rec["keys"]] == [new.key_id]
    assert rec["recovered_by"] == s.agency.did and rec["version"] == old_version + 1
    # the lost keys are dead, the new key controls, and the new commitment works
    assert s.w.run(s.w.deactivate_tx(s.alice, reveal=s.alice.key)) == "next-key-mismatch"
    assert s.w.run(s.w.rotate_tx(s.alice, det_key("x"))) == "next-key-mismatch"
    s.alice.key, s.alice.next_key = new, det_key("alice/new-next")
    s.w.ok(s.w.rotate_tx(s.alice, det_key("alice/after")))


def test_recovery_needs_the_issuer_accredited_for_the_policy_recovery_vct() -> None:
    s = scene()
    s.w.ok(s.w.gov("gov.policy_set", {"policy": {"recovery_vct": "imi:tax"}}))
    assert s.w.run(recover_tx(s)) == "issuer-not-accredited"
    s.w.ok(recover_tx(s, issuer=s.tax))


# --- governance ------------------------------------------------------------------------------
def test_validator_add_takes_effect_after_the_delay() -> None:
    w = World()
    before = read_validator_set(w.state)
    w.ok(w.gov("gov.validator_add", {"validator": validator_value("v-new")}))
    added_at = w.height
    assert read_validator_set(w.state) == before
    while w.height < added_at + VALIDATOR_SET_CHANGE_DELAY_HEIGHTS - 1:
        w.ok(w.tx("test.note", det_key("n").key_id, {"data": b"x"}, det_key("n")))
    now = read_validator_set(w.state)
    assert len(now) == len(before) + 1
    assert now.get(det_key("v-new").key_id) is not None


def test_validator_remove_builds_on_the_pending_set() -> None:
    w = World()
    original = read_validator_set(w.state)
    w.ok(w.gov("gov.validator_add", {"validator": validator_value("v-new")}))
    w.ok(w.gov("gov.validator_remove", {"key_id": det_key("v-new").key_id}))  # still pending here
    pending = w.value(statekeys.VALSET_PENDING)
    assert ValidatorSet.from_value(pending[-1]["set"]) == original
    assert w.run(w.gov("gov.validator_remove", {"key_id": "nope"})) == "validator-not-found"
    assert w.run(w.gov("gov.validator_add", {"validator": validator_value("v-new")})) is None


def test_issuer_lifecycle_follows_its_transition_table() -> None:
    s = scene()
    did = s.tax.did
    get = lambda: s.w.value(statekeys.issuer_key(did))["status"]
    assert s.w.run(s.w.gov("gov.issuer_reinstate", {"did": did})) == "invalid-transition"
    s.w.ok(s.w.gov("gov.issuer_suspend", {"did": did})); assert get() == "suspended"
    assert s.w.run(s.w.gov("gov.issuer_suspend", {"did": did})) == "invalid-transition"
    s.w.ok(s.w.gov("gov.issuer_reinstate", {"did": did})); assert get() == "accredited"
    s.w.ok(s.w.gov("gov.issuer_remove", {"did": did})); assert get() == "removed"
    for action in ("reinstate", "suspend", "remove"):
        assert s.w.run(s.w.gov(f"gov.issuer_{action}", {"did": did})) == "issuer-removed"
    assert s.w.run(s.w.gov("gov.issuer_accredit", {"did": did, "name": "t", "vcts": ["x"]})) == "issuer-removed"
    assert s.w.run(s.w.gov("gov.issuer_suspend", {"did": s.alice.did})) == "issuer-not-found"


def test_issuer_accreditation_requires_an_existing_did() -> None:
    w = World()
    ghost = w.holder("ghost")
    assert w.run(w.gov("gov.issuer_accredit", {"did": ghost.did, "name": "g", "vcts": ["x"]})) == "did-not-found"


def test_policy_set_rejects_unknown_keys_and_wrong_types() -> None:
    w = World()
    assert w.run(w.gov("gov.policy_set", {"policy": {"free_lunch": True}})) == "bad-policy"
    assert w.run(w.gov("gov.policy_set", {"policy": {"self_register_dids": 1}})) == "bad-policy"
    w.ok(w.gov("gov.policy_set", {"policy": {"self_register_dids": False}}))
    assert w.value(statekeys.POLICY)["self_register_dids"] is False
    assert w.value(statekeys.POLICY)["heartbeat_ms"] == 2000  # untouched keys kept


def test_trustees_set_changes_who_governs() -> None:
    w = World()
    new = [det_key(f"t{i}") for i in range(3)]
    w.ok(w.gov("gov.trustees_set", {"keys": [dict(k.public_key.to_jwk()) for k in new], "threshold": 2}))
    assert w.run(w.gov("gov.policy_set", {"policy": {"issuer_recovery": False}})) == "trustee-threshold-not-met"
    w.ok(w.gov("gov.policy_set", {"policy": {"issuer_recovery": False}}, new[1:]))
    assert w.run(w.gov("gov.trustees_set", {"keys": [dict(k.public_key.to_jwk()) for k in new],
                                             "threshold": 1}, new[:2])) == "bad-trustees"


# --- credential types, anchors, status lists --------------------------------------------------
def test_vct_publish_records_claims_sd_and_predicates() -> None:
    s = scene()
    s.w.ok(s.w.tx("vct.publish", s.agency.did, {
        "vct": "imi:pid", "name": "Person ID", "claims": ["given_name", "birthdate", "vct"],
        "predicates": {"age_equal_or_over": [65, 18, 16]}}, s.agency.key))
    d = s.w.value(statekeys.vct_key("imi:pid"))
    assert d["selectively_disclosable"] == ["birthdate", "given_name"]  # vct stays in the clear
    assert d["predicates"] == {"age_equal_or_over": [16, 18, 65]} and d["version"] == 2
    bad = s.w.tx("vct.publish", s.agency.did, {"vct": "imi:pid", "name": "x", "claims": ["iss"],
                                                "selectively_disclosable": ["iss"]}, s.agency.key)
    assert s.w.run(bad) == "bad-vct-definition"


def test_anchor_records_issuer_and_time_only_and_never_twice() -> None:
    s = scene()
    digest = anchor_digest("eyJhbGciOiJFZERTQSJ9.e30.sig~WyJzYWx0IiwibmFtZSIsIkFsaWNlIl0~", b"s" * 16)
    assert digest == anchor_digest("eyJhbGciOiJFZERTQSJ9.e30.sig~", b"s" * 16)  # disclosures never hashed
    s.w.ok(s.w.tx("anchor.put", s.agency.did, {"digests": [digest]}, s.agency.key))
    assert s.w.value(statekeys.anchor_key(digest.hex())) == {
        "issuer": s.agency.did, "time_ms": s.w.now_ms - 1000, "height": s.w.height}
    again = s.w.tx("anchor.put", s.agency.did, {"digests": [hashlib.sha256(b"n").digest(), digest]},
                   s.agency.key)
    assert s.w.run(again) == "anchor-exists"
    assert s.w.value(statekeys.anchor_key(hashlib.sha256(b"n").hexdigest())) is None  # atomic


def test_status_list_flow_suspend_reinstate_revoke() -> None:
    s = scene()
    w, a = s.w, s.agency
    upd = lambda *pairs: w.tx("status.set", a.did, {"list_id": "agency-1",
                                                    "updates": [list(p) for p in pairs]}, a.key)
    w.ok(upd((5, 2), (9, 1)))
    lst = w.value(statekeys.status_list_key("agency-1"))
    assert sl.get_status(lst["lst"], 2, 5) == 2 and sl.get_status(lst["lst"], 2, 9) == 1
    w.ok(upd((5, 0)))
    assert w.run(upd((9, 0))) == "status-final"
    assert w.run(upd((5, 1), (64, 1))) == "index-out-of-range"
    assert sl.get_status(w.value(statekeys.status_list_key("agency-1"))["lst"], 2, 5) == 0  # atomic
    assert w.run(w.tx("status.create_list", a.did, {"list_id": "agency-1", "bits": 1, "size": 16},
                      a.key)) == "list-exists"
    assert w.run(w.tx("status.create_list", a.did, {"list_id": "b", "bits": 3, "size": 16},
                      a.key)) == "bad-bits"


def test_a_suspended_issuer_may_only_revoke() -> None:
    """While its accreditation is suspended an issuer keeps the duty to revoke, and nothing
    else: reinstating a suspended entry (or suspending one) is refused."""
    s = scene()
    w, a = s.w, s.agency
    upd = lambda *pairs: w.tx("status.set", a.did, {"list_id": "agency-1",
                                                    "updates": [list(p) for p in pairs]}, a.key)
    w.ok(upd((5, 2)))
    w.ok(w.gov("gov.issuer_suspend", {"did": a.did}))
    assert w.run(upd((5, 0))) == "issuer-suspended"
    assert w.run(upd((6, 2))) == "issuer-suspended"
    assert w.run(upd((7, 1), (5, 0))) == "issuer-suspended"  # one reinstatement spoils the batch
    assert sl.get_status(w.value(statekeys.status_list_key("agency-1"))["lst"], 2, 5) == 2
    w.ok(upd((5, 1), (7, 1)))  # revoking still works
    w.ok(w.gov("gov.issuer_reinstate", {"did": a.did}))
    w.ok(upd((6, 2)))


def test_one_bit_list_rejects_suspension_on_the_ledger() -> None:
    s = scene()
    s.w.ok(s.w.tx("status.create_list", s.agency.did, {"list_id": "one", "bits": 1, "size": 8}, s.agency.key))
    assert s.w.run(s.w.tx("status.set", s.agency.did, {"list_id": "one", "updates": [[0, 2]]},
                          s.agency.key)) == "bad-status"


# --- determinism -----------------------------------------------------------------------------------
def test_execution_is_deterministic_across_validators() -> None:
    s = scene()
    txs = [recover_tx(s), s.w.tx("anchor.put", s.agency.did, {"digests": [bytes(32)]}, s.agency.key)]
    ctx = BlockContext(CHAIN_ID, s.w.height + 1, s.w.now_ms, "p")
    runs = [Executor(CHAIN_ID, IDENTITY_HANDLERS).execute_block(s.w.state, txs, ctx, lambda _: False,
                                                                strict=True) for _ in range(2)]
    assert runs[0].updates == runs[1].updates and len(runs[0].txs) == 2
