"""The authorization table, cell by cell: every signer role and every condition of every
transaction type has a case where it holds (allowed) and a case where it fails (denied).

A meta-test checks that the cases cover the whole of ``AUTH_TABLE``, so adding a row
or a cell without its tests fails here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from identity import did as didmod
from identity.authz import AUTH_TABLE, Condition, Signer
from ledger.encoding import Value
from ledger.tx import Transaction
from tests.test_identity_helpers import Holder, World, det_key

PID, RECOVERY, TAX = "imi:pid", "imi:recovery", "imi:tax"


@dataclass
class Scene:
    w: World
    alice: Holder
    agency: Holder  # accredited for PID and RECOVERY, owns list "agency-1" and vct PID
    tax: Holder  # accredited for TAX only, owns list "tax-1"


_BASE: list[Scene] = []


def scene(**policy: Value) -> Scene:
    """A fresh fork of one shared base scene (built once), with ``policy`` applied."""
    if not _BASE:
        _BASE.append(_build_scene())
    base = _BASE[0]
    s = Scene(base.w.fork(), copy.copy(base.alice), copy.copy(base.agency), copy.copy(base.tax))
    if policy:
        s.w.ok(s.w.gov("gov.policy_set", {"policy": dict(policy)}))
    return s


def _build_scene() -> Scene:
    w = World()
    alice = w.new_did("alice")
    agency = w.issuer("agency", [PID, RECOVERY])
    tax = w.issuer("tax", [TAX])
    for issuer, list_id in ((agency, "agency-1"), (tax, "tax-1")):
        w.ok(w.tx("status.create_list", issuer.did, {"list_id": list_id, "bits": 2, "size": 64}, issuer.key))
    w.ok(w.tx("vct.publish", agency.did, {"vct": PID, "name": "PID", "claims": ["given_name"]}, agency.key))
    return Scene(w, alice, agency, tax)


def gov_move(s: Scene, action: str, did: str) -> None:
    s.w.ok(s.w.gov(f"gov.issuer_{action}", {"did": did}))


def service_payload(s: Scene) -> dict[str, Value]:
    return {"did": s.alice.did, "name": {"en": "Community desk", "zh-CN": "社区服务台"},
            "purpose": {"en": "Check residence", "zh-CN": "核验居住地"},
            "queries": [{"vct": PID, "claims": [["given_name"]]}]}


def registered_service(s: Scene, *then: str) -> dict[str, Value]:
    """Register alice as a service (then move it by each action in ``then``); its ``{did}``."""
    s.w.ok(s.w.gov("gov.service_register", service_payload(s)))
    for action in then:
        s.w.ok(s.w.gov(f"gov.service_{action}", {"did": s.alice.did}))
    return {"did": s.alice.did}


def recover_tx(s: Scene, *, issuer: Holder | None = None, sign_new: bool = True,
               sign_issuer: bool = True) -> Transaction:
    issuer = issuer or s.agency
    new, new_next = det_key("alice/new"), det_key("alice/new-next")
    signers = ([new] if sign_new else []) + ([issuer.key] if sign_issuer else [])
    return s.w.tx("did.recover", s.alice.did, {
        "jwk": dict(new.public_key.to_jwk()),
        "next_key_commitment": didmod.key_commitment(new_next.public_key.to_jwk()),
        "issuer": issuer.did}, *signers)


def validator_value(label: str) -> dict[str, Value]:
    import hashlib
    return {"name": label, "jwk": dict(det_key(label).public_key.to_jwk()), "power": 1,
            "address": "127.0.0.1:9999", "tls_spki_sha256": hashlib.sha256(label.encode()).digest()}


GOV_PAYLOADS: dict[str, Callable[[Scene], dict[str, Value]]] = {
    "gov.validator_add": lambda s: {"validator": validator_value("v-new")},
    "gov.validator_remove": lambda s: {"key_id": s.w.c.validators.validators[0].key_id},
    "gov.issuer_accredit": lambda s: {"did": s.alice.did, "name": "Alice Agency", "vcts": [TAX]},
    "gov.issuer_suspend": lambda s: {"did": s.agency.did},
    "gov.issuer_reinstate": lambda s: (gov_move(s, "suspend", s.agency.did), {"did": s.agency.did})[1],
    "gov.issuer_remove": lambda s: {"did": s.tax.did},
    "gov.service_register": service_payload,
    "gov.service_suspend": lambda s: registered_service(s),
    "gov.service_reinstate": lambda s: registered_service(s, "suspend"),
    "gov.service_remove": lambda s: registered_service(s, "suspend"),
    "gov.policy_set": lambda s: {"policy": {"self_register_dids": False}},
    "gov.trustees_set": lambda s: {"keys": [dict(k.public_key.to_jwk()) for k in s.w.c.trustee_keys],
                                   "threshold": 3},
}


@dataclass(frozen=True)
class Case:
    name: str
    tx_type: str
    cell: Signer | Condition | str  # "sender" for the sender column
    reason: str | None  # None: allowed
    build: Callable[[Scene], Transaction]
    policy: tuple[tuple[str, Value], ...] = ()


def _did_cases() -> list[Case]:
    def create_with(signers: Callable[[Scene, Holder], list], sender: Callable[[Holder], str] | None = None,
                    registrar: Holder | None | str = None) -> Callable[[Scene], Transaction]:
        def build(s: Scene) -> Transaction:
            h = s.w.holder("bob")
            extra: dict[str, Value] = {}
            reg = s.agency if registrar == "agency" else s.tax if registrar == "tax" else None
            if reg is not None:
                extra["registrar"] = reg.did
            tx = s.w.create_tx(h, **extra)
            return s.w.tx("did.create", sender(h) if sender else h.did, tx.payload, *signers(s, h))
        return build

    def suspended_registrar(s: Scene) -> Transaction:
        gov_move(s, "suspend", s.agency.did)
        return create_with(lambda s, h: [h.key, s.agency.key], registrar="agency")(s)

    off = (("self_register_dids", False),)
    return [
        Case("create-self-registered", "did.create", Signer.INCEPTION_KEY, None,
             create_with(lambda s, h: [h.key])),
        Case("create-signed-by-another-key", "did.create", Signer.INCEPTION_KEY, "missing-signature",
             create_with(lambda s, h: [h.next_key])),
        Case("create-with-unexplained-extra-signature", "did.create", Signer.INCEPTION_KEY,
             "unexpected-signer", create_with(lambda s, h: [h.key, h.next_key])),
        Case("create-derived-did", "did.create", Condition.DERIVED_DID, None, create_with(lambda s, h: [h.key])),
        Case("create-for-a-did-not-derived-from-the-key", "did.create", Condition.DERIVED_DID, "did-mismatch",
             create_with(lambda s, h: [h.key], sender=lambda h: s_alice_did)),
        Case("create-when-self-registration-disabled", "did.create", Condition.SELF_REGISTER_OR_REGISTRAR,
             "self-registration-disabled", create_with(lambda s, h: [h.key]), off),
        Case("create-with-accredited-registrar-when-disabled", "did.create",
             Condition.SELF_REGISTER_OR_REGISTRAR, None,
             create_with(lambda s, h: [h.key, s.agency.key], registrar="agency"), off),
        Case("create-with-suspended-registrar", "did.create", Condition.SELF_REGISTER_OR_REGISTRAR,
             "registrar-not-accredited", suspended_registrar, off),
        Case("create-registrar-cosigns", "did.create", Signer.REGISTRAR_KEY, None,
             create_with(lambda s, h: [h.key, s.tax.key], registrar="tax"), off),
        Case("create-registrar-named-but-not-signing", "did.create", Signer.REGISTRAR_KEY, "missing-signature",
             create_with(lambda s, h: [h.key], registrar="agency"), off),
        Case("create-existing-did", "did.create", "lifecycle", "did-exists",
             lambda s: s.w.create_tx(s.alice)),
    ]


s_alice_did = didmod.derive_did(det_key("alice/0").public_key.to_jwk(),
                                didmod.key_commitment(det_key("alice/1").public_key.to_jwk()))


def _update(s: Scene, *signers) -> Transaction:
    return s.w.tx("did.update", s.alice.did,
                  {"services": [{"id": "inbox", "type": "Inbox", "endpoint": "https://a.example"}]},
                  *(signers or (s.alice.key,)))


def _deactivated(build: Callable[[Scene], Transaction]) -> Callable[[Scene], Transaction]:
    def wrapped(s: Scene) -> Transaction:
        s.w.ok(s.w.deactivate_tx(s.alice))
        return build(s)
    return wrapped


def _absent(type_: str) -> Callable[[Scene], Transaction]:
    def build(s: Scene) -> Transaction:
        ghost = s.w.holder("ghost")
        return s.w.tx(type_, ghost.did, {}, ghost.key)
    return build


def _lifecycle_cases() -> list[Case]:
    attacker = det_key("attacker")
    return [
        Case("update-by-controller", "did.update", Signer.CONTROLLER_KEY, None, _update),
        Case("update-by-next-key", "did.update", Signer.CONTROLLER_KEY, "missing-signature",
             lambda s: _update(s, s.alice.next_key)),
        Case("update-by-controller-plus-stranger", "did.update", Signer.CONTROLLER_KEY, "unexpected-signer",
             lambda s: _update(s, s.alice.key, attacker)),
        Case("update-active", "did.update", Condition.DID_ACTIVE, None, _update),
        Case("update-deactivated", "did.update", Condition.DID_ACTIVE, "did-deactivated", _deactivated(_update)),
        Case("update-unknown-did", "did.update", Condition.DID_ACTIVE, "did-not-found", _absent("did.update")),
        Case("rotate-by-next-key", "did.rotate", Signer.NEXT_KEY, None,
             lambda s: s.w.rotate_tx(s.alice, det_key("alice/2"))),
        Case("rotate-by-current-key-only", "did.rotate", Signer.NEXT_KEY, "missing-signature",
             lambda s: s.w.rotate_tx(s.alice, det_key("alice/2"), s.alice.key)),
        Case("rotate-matching-commitment", "did.rotate", Condition.NEXT_KEY_MATCHES, None,
             lambda s: s.w.rotate_tx(s.alice, det_key("alice/2"))),
        Case("rotate-stolen-current-key-to-attacker-key", "did.rotate", Condition.NEXT_KEY_MATCHES,
             "next-key-mismatch",
             lambda s: s.w.rotate_tx(s.alice, attacker, s.alice.key, attacker, reveal=attacker)),
        Case("rotate-active", "did.rotate", Condition.DID_ACTIVE, None,
             lambda s: s.w.rotate_tx(s.alice, det_key("alice/2"))),
        Case("rotate-deactivated", "did.rotate", Condition.DID_ACTIVE, "did-deactivated",
             _deactivated(lambda s: s.w.rotate_tx(s.alice, det_key("alice/2")))),
        Case("deactivate-by-next-key", "did.deactivate", Signer.NEXT_KEY, None,
             lambda s: s.w.deactivate_tx(s.alice)),
        Case("deactivate-by-current-key-only", "did.deactivate", Signer.NEXT_KEY, "missing-signature",
             lambda s: s.w.deactivate_tx(s.alice, s.alice.key)),
        Case("deactivate-matching-commitment", "did.deactivate", Condition.NEXT_KEY_MATCHES, None,
             lambda s: s.w.deactivate_tx(s.alice)),
        Case("deactivate-stolen-current-key", "did.deactivate", Condition.NEXT_KEY_MATCHES,
             "next-key-mismatch", lambda s: s.w.deactivate_tx(s.alice, reveal=s.alice.key)),
        Case("deactivate-active", "did.deactivate", Condition.DID_ACTIVE, None,
             lambda s: s.w.deactivate_tx(s.alice)),
        Case("deactivate-twice", "did.deactivate", Condition.DID_ACTIVE, "did-deactivated",
             _deactivated(lambda s: s.w.deactivate_tx(s.alice))),
    ]


def _recover_cases() -> list[Case]:
    def suspended(s: Scene) -> Transaction:
        gov_move(s, "suspend", s.agency.did)
        return recover_tx(s)

    return [
        Case("recover-new-key-and-issuer", "did.recover", Signer.NEW_KEY, None, recover_tx),
        Case("recover-without-new-key-signature", "did.recover", Signer.NEW_KEY, "missing-signature",
             lambda s: recover_tx(s, sign_new=False)),
        Case("recover-issuer-signs", "did.recover", Signer.RECOVERY_ISSUER_KEY, None, recover_tx),
        Case("recover-without-issuer-signature", "did.recover", Signer.RECOVERY_ISSUER_KEY,
             "missing-signature", lambda s: recover_tx(s, sign_issuer=False)),
        Case("recover-active-did", "did.recover", Condition.DID_ACTIVE, None, recover_tx),
        Case("recover-deactivated-did", "did.recover", Condition.DID_ACTIVE, "did-deactivated",
             _deactivated(recover_tx)),
        Case("recover-policy-allows", "did.recover", Condition.RECOVERY_ALLOWED, None, recover_tx),
        Case("recover-policy-forbids", "did.recover", Condition.RECOVERY_ALLOWED, "recovery-disabled",
             recover_tx, (("issuer_recovery", False),)),
        Case("recover-by-recovery-issuer", "did.recover", Condition.RECOVERY_ISSUER_ACCREDITED, None,
             recover_tx),
        Case("recover-by-issuer-not-accredited-for-recovery", "did.recover",
             Condition.RECOVERY_ISSUER_ACCREDITED, "issuer-not-accredited",
             lambda s: recover_tx(s, issuer=s.tax)),
        Case("recover-a-citizen-did", "did.recover", Condition.SUBJECT_NOT_ISSUER, None, recover_tx),
        Case("recover-another-issuers-did", "did.recover", Condition.SUBJECT_NOT_ISSUER, "recovery-of-issuer",
             lambda s: (setattr(s, "alice", s.tax), recover_tx(s))[1]),
        Case("recover-by-suspended-issuer", "did.recover", Condition.RECOVERY_ISSUER_ACCREDITED,
             "issuer-not-accredited", suspended),
    ]


def _gov_cases() -> list[Case]:
    cases: list[Case] = []
    for type_, payload in GOV_PAYLOADS.items():
        def build(s: Scene, type_=type_, payload=payload, signers=None, sender="gov") -> Transaction:
            keys = s.w.c.trustee_keys
            chosen = {"k": keys[:2], "one": keys[:1], "outsider": keys[:2] + [det_key("x")],
                      "all": keys}[signers or "k"]
            return s.w.gov(type_, payload(s), chosen, sender=sender)
        cases += [
            Case(f"{type_}-k-of-n", type_, Signer.TRUSTEES, None, build),
            Case(f"{type_}-all-trustees", type_, Signer.TRUSTEES, None,
                 lambda s, b=build: b(s, signers="all")),
            Case(f"{type_}-one-trustee", type_, Signer.TRUSTEES, "trustee-threshold-not-met",
                 lambda s, b=build: b(s, signers="one")),
            Case(f"{type_}-k-trustees-plus-outsider", type_, Signer.TRUSTEES, "trustee-threshold-not-met",
                 lambda s, b=build: b(s, signers="outsider")),
            Case(f"{type_}-sender-gov", type_, "sender", None, build),
            Case(f"{type_}-sender-not-gov", type_, "sender", "wrong-sender",
                 lambda s, b=build: b(s, sender=s.alice.did)),
        ]
    return cases


def _publish(s: Scene, issuer: Holder, vct: str, *signers) -> Transaction:
    return s.w.tx("vct.publish", issuer.did, {"vct": vct, "name": vct, "claims": ["a", "b"]},
                  *(signers or (issuer.key,)))


def _with_assertion_key(s: Scene) -> Transaction:
    op = det_key("agency/op")
    s.w.ok(s.w.tx("did.update", s.agency.did, {"keys": [
        {"jwk": dict(op.public_key.to_jwk()), "purposes": ["assertionMethod"]}]}, s.agency.key))
    return _publish(s, s.agency, PID, op)


def _auth_only_key(s: Scene) -> Transaction:
    login = det_key("agency/login")
    s.w.ok(s.w.tx("did.update", s.agency.did, {"keys": [
        {"jwk": dict(login.public_key.to_jwk()), "purposes": ["authentication"]}]}, s.agency.key))
    return _publish(s, s.agency, PID, login)


def _then(prep: Callable[[Scene], None], build: Callable[[Scene], Transaction]) -> Callable[[Scene], Transaction]:
    def wrapped(s: Scene) -> Transaction:
        prep(s)
        return build(s)
    return wrapped


def _anchor(s: Scene, issuer: Holder | None = None) -> Transaction:
    issuer = issuer or s.agency
    return s.w.tx("anchor.put", issuer.did, {"digests": [bytes(range(32))]}, issuer.key)


def _new_list(s: Scene, issuer: Holder | None = None) -> Transaction:
    issuer = issuer or s.agency
    return s.w.tx("status.create_list", issuer.did, {"list_id": "new-list", "bits": 1, "size": 16}, issuer.key)


def _set(s: Scene, issuer: Holder | None = None, list_id: str = "agency-1", status: int = 1,
         signer=None) -> Transaction:
    issuer = issuer or s.agency
    return s.w.tx("status.set", issuer.did, {"list_id": list_id, "updates": [[3, status]]},
                  signer or issuer.key)


def _issuer_cases() -> list[Case]:
    suspend = lambda who: lambda s: gov_move(s, "suspend", getattr(s, who).did)
    remove = lambda who: lambda s: gov_move(s, "remove", getattr(s, who).did)
    return [
        Case("publish-by-issuer-controller-key", "vct.publish", Signer.ISSUER_KEY, None,
             lambda s: _publish(s, s.agency, PID)),
        Case("publish-by-issuer-assertion-key", "vct.publish", Signer.ISSUER_KEY, None, _with_assertion_key),
        Case("publish-by-authentication-only-key", "vct.publish", Signer.ISSUER_KEY, "missing-signature",
             _auth_only_key),
        Case("publish-by-foreign-key", "vct.publish", Signer.ISSUER_KEY, "missing-signature",
             lambda s: _publish(s, s.agency, PID, s.alice.key)),
        Case("publish-accredited-vct", "vct.publish", Condition.ISSUER_ACCREDITED_FOR_VCT, None,
             lambda s: _publish(s, s.tax, TAX)),
        Case("publish-vct-not-accredited-for", "vct.publish", Condition.ISSUER_ACCREDITED_FOR_VCT,
             "issuer-not-accredited", lambda s: _publish(s, s.tax, "imi:other")),
        Case("publish-by-suspended-issuer", "vct.publish", Condition.ISSUER_ACCREDITED_FOR_VCT,
             "issuer-not-accredited", _then(suspend("tax"), lambda s: _publish(s, s.tax, TAX))),
        Case("publish-new-version-of-own-vct", "vct.publish", Condition.VCT_NOT_OWNED_BY_OTHER, None,
             lambda s: _publish(s, s.agency, PID)),
        Case("publish-vct-owned-by-other", "vct.publish", Condition.VCT_NOT_OWNED_BY_OTHER,
             "vct-owned-by-other", lambda s: (s.w.ok(s.w.gov("gov.issuer_accredit", {
                 "did": s.tax.did, "name": "tax", "vcts": [TAX, PID]})), _publish(s, s.tax, PID))[1]),
        Case("anchor-by-issuer", "anchor.put", Signer.ISSUER_KEY, None, _anchor),
        Case("anchor-by-foreign-key", "anchor.put", Signer.ISSUER_KEY, "missing-signature",
             lambda s: s.w.tx("anchor.put", s.agency.did, {"digests": [bytes(32)]}, s.alice.key)),
        Case("anchor-accredited", "anchor.put", Condition.ISSUER_ACCREDITED, None, _anchor),
        Case("anchor-by-citizen", "anchor.put", Condition.ISSUER_ACCREDITED, "issuer-not-accredited",
             lambda s: _anchor(s, s.alice)),
        Case("anchor-by-suspended-issuer", "anchor.put", Condition.ISSUER_ACCREDITED,
             "issuer-not-accredited", _then(suspend("agency"), _anchor)),
        Case("create-list-by-issuer", "status.create_list", Signer.ISSUER_KEY, None, _new_list),
        Case("create-list-by-foreign-key", "status.create_list", Signer.ISSUER_KEY, "missing-signature",
             lambda s: s.w.tx("status.create_list", s.agency.did,
                              {"list_id": "x", "bits": 1, "size": 16}, s.tax.key)),
        Case("create-list-accredited", "status.create_list", Condition.ISSUER_ACCREDITED, None, _new_list),
        Case("create-list-removed-issuer", "status.create_list", Condition.ISSUER_ACCREDITED,
             "issuer-not-accredited", _then(remove("agency"), _new_list)),
        Case("set-by-owner", "status.set", Signer.ISSUER_KEY, None, _set),
        Case("set-by-foreign-key", "status.set", Signer.ISSUER_KEY, "missing-signature",
             lambda s: _set(s, signer=s.tax.key)),
        Case("set-by-suspended-issuer-still-revokes", "status.set", Condition.ISSUER_NOT_REMOVED, None,
             _then(suspend("agency"), _set)),
        Case("set-by-accredited-issuer-reinstates", "status.set", Condition.SUSPENDED_ONLY_REVOKES, None,
             lambda s: (s.w.ok(_set(s, list_id="agency-1", status=2)), _set(s, list_id="agency-1", status=0))[1]),
        Case("set-by-suspended-issuer-reinstates", "status.set", Condition.SUSPENDED_ONLY_REVOKES,
             "issuer-suspended", lambda s: (s.w.ok(_set(s, list_id="agency-1", status=2)),
                                            gov_move(s, "suspend", s.agency.did),
                                            _set(s, list_id="agency-1", status=0))[2]),
        Case("set-by-suspended-issuer-suspends", "status.set", Condition.SUSPENDED_ONLY_REVOKES,
             "issuer-suspended", _then(suspend("agency"), lambda s: _set(s, list_id="agency-1", status=2))),
        Case("set-by-removed-issuer", "status.set", Condition.ISSUER_NOT_REMOVED, "issuer-not-accredited",
             _then(remove("agency"), _set)),
        Case("set-own-list", "status.set", Condition.LIST_OWNED_BY_SENDER, None, _set),
        Case("set-other-issuers-list", "status.set", Condition.LIST_OWNED_BY_SENDER, "not-list-owner",
             lambda s: _set(s, issuer=s.tax, list_id="agency-1")),
        Case("set-unknown-list", "status.set", Condition.LIST_OWNED_BY_SENDER, "list-not-found",
             lambda s: _set(s, list_id="nope")),
        Case("set-revoked-entry-back-to-valid", "status.set", "lifecycle", "status-final",
             lambda s: (s.w.ok(_set(s)), _set(s, status=0))[1]),
    ]


def _sender_cases() -> list[Case]:
    cases = []
    for type_, rule in AUTH_TABLE.items():
        if rule.sender.name == "DID":
            cases.append(Case(f"{type_}-sender-not-a-did", type_, "sender", "wrong-sender",
                              lambda s, t=type_: s.w.tx(t, "gov", {}, s.alice.key)))
    return cases


CASES = _did_cases() + _lifecycle_cases() + _recover_cases() + _gov_cases() + _issuer_cases() + _sender_cases()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_authorization_cell(case: Case) -> None:
    s = scene(**dict(case.policy))
    tx = case.build(s)
    assert s.w.run(tx) == case.reason


def test_every_cell_of_the_table_has_an_allowed_and_a_denied_case() -> None:
    covered = {(c.tx_type, c.cell, c.reason is None) for c in CASES}
    missing = []
    for type_, rule in AUTH_TABLE.items():
        for cell in (*rule.signers, *rule.conditions):
            for allowed in (True, False):
                if (type_, cell, allowed) not in covered:
                    missing.append((type_, cell, "allowed" if allowed else "denied"))
        if (type_, "sender", False) not in covered:
            missing.append((type_, "sender", "denied"))
    assert not missing, missing


def test_unknown_identity_type_has_no_rule() -> None:
    s = scene()
    assert s.w.run(s.w.tx("did.teleport", s.alice.did, {}, s.alice.key)) == "unknown-type"
