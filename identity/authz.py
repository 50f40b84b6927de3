"""Who may sign what: the authorization table, and the one function that enforces it.

Like Hyperledger Indy's auth rules, authorization is *data*: for every
transaction type, :data:`AUTH_TABLE` names the sender it must carry, the signer
roles that must all sign, and the conditions on state and policy that must hold.
:func:`authorize` enforces a row for any transaction; handlers never decide
authorization themselves.

Signatures were already checked against the transaction id (``check_stateless``);
here we decide whether the *signers* are the right ones. Every signature on a
transaction must be accounted for by a role of its row: unexplained signatures
are refused, so a transaction never carries material nobody checked.

==================  ======  ==========================================  =======================================
type                sender  signers (all required)                      conditions
==================  ======  ==========================================  =======================================
did.create          DID     inception key; registrar key if named       sender = derived DID; self-registration
                                                                        allowed by policy or an accredited
                                                                        registrar co-signs
did.update          DID     current controller key                      DID active
did.rotate          DID     next key (revealed in the payload)          DID active; next key matches commitment
did.deactivate      DID     next key (revealed in the payload)          DID active; next key matches commitment
did.recover         DID     holder's new key; recovery issuer's key     DID active; policy issuer_recovery;
                                                                        issuer accredited for policy recovery_vct;
                                                                        the DID is not (and never was) an issuer
gov.*               "gov"   trustees, k of n                            — (gov.service_* too)
vct.publish         issuer  an assertion key of the issuer DID          issuer accredited for the vct; vct not
                                                                        owned by another issuer
anchor.put          issuer  an assertion key of the issuer DID          issuer accredited
status.create_list  issuer  an assertion key of the issuer DID          issuer accredited
status.set          issuer  an assertion key of the issuer DID          issuer accredited, or suspended and
                                                                        every update revokes; list owned by
                                                                        the issuer
==================  ======  ==========================================  =======================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from identity import did as didmod
from identity.constants import STATUS_INVALID
from identity.errors import NotFoundTxError, PayloadError, UnauthorizedError
from identity.governance import (
    ACCREDITED,
    SUSPENDED,
    accredited_for,
    issuer_status,
    read_policy,
    read_trustees,
)
from identity.ledger_constants import GOV_SENDER
from ledger import statekeys
from ledger.errors import SignatureError
from ledger.execution import BlockContext, Overlay
from ledger.keys import PublicKey, verify_threshold
from ledger.tx import Transaction


class Sender(Enum):
    GOV = "the literal sender 'gov'"
    DID = "a did:imi (the subject DID, or the issuer DID)"


class Signer(Enum):
    TRUSTEES = "trustees, k of n"
    INCEPTION_KEY = "the key in the payload the new DID is derived from"
    CONTROLLER_KEY = "the sender DID's current controller key"
    NEXT_KEY = "the key revealed in the payload (must match the next-key commitment)"
    NEW_KEY = "the holder's new key in the payload"
    ISSUER_KEY = "an assertion key of the sender DID"
    RECOVERY_ISSUER_KEY = "an assertion key of the payload's recovery issuer DID"
    REGISTRAR_KEY = "an assertion key of the payload's registrar DID (only if named)"


class Condition(Enum):
    DERIVED_DID = "sender is the DID derived from the inception key and commitment"
    SELF_REGISTER_OR_REGISTRAR = "policy self_register_dids, or an accredited registrar"
    DID_ACTIVE = "the sender DID exists and is active"
    NEXT_KEY_MATCHES = "hash of the revealed key equals the stored next-key commitment"
    RECOVERY_ALLOWED = "policy issuer_recovery is true"
    RECOVERY_ISSUER_ACCREDITED = "payload issuer accredited for policy recovery_vct"
    SUBJECT_NOT_ISSUER = "the DID being recovered has never been an issuer"
    ISSUER_ACCREDITED_FOR_VCT = "sender accredited for the payload vct"
    VCT_NOT_OWNED_BY_OTHER = "no other issuer has published this vct"
    ISSUER_ACCREDITED = "sender is an accredited issuer"
    ISSUER_NOT_REMOVED = "sender is an accredited or suspended issuer"
    SUSPENDED_ONLY_REVOKES = "a suspended sender's updates only revoke (status invalid)"
    LIST_OWNED_BY_SENDER = "the status list exists and belongs to the sender"


@dataclass(frozen=True, slots=True)
class AuthRule:
    """One row: the sender kind, every signer role that must sign, every condition."""

    sender: Sender
    signers: tuple[Signer, ...]
    conditions: tuple[Condition, ...] = ()


_GOV = AuthRule(Sender.GOV, (Signer.TRUSTEES,))
_ISSUER = (Signer.ISSUER_KEY,)

AUTH_TABLE: Mapping[str, AuthRule] = {
    "did.create": AuthRule(Sender.DID, (Signer.INCEPTION_KEY, Signer.REGISTRAR_KEY),
                           (Condition.DERIVED_DID, Condition.SELF_REGISTER_OR_REGISTRAR)),
    "did.update": AuthRule(Sender.DID, (Signer.CONTROLLER_KEY,), (Condition.DID_ACTIVE,)),
    "did.rotate": AuthRule(Sender.DID, (Signer.NEXT_KEY,),
                           (Condition.DID_ACTIVE, Condition.NEXT_KEY_MATCHES)),
    # Like a rotation, deactivation needs the pre-rotated next key: a thief of the current
    # key alone must not be able to destroy the DID for good.
    "did.deactivate": AuthRule(Sender.DID, (Signer.NEXT_KEY,),
                               (Condition.DID_ACTIVE, Condition.NEXT_KEY_MATCHES)),
    "did.recover": AuthRule(Sender.DID, (Signer.NEW_KEY, Signer.RECOVERY_ISSUER_KEY),
                            (Condition.DID_ACTIVE, Condition.RECOVERY_ALLOWED,
                             Condition.RECOVERY_ISSUER_ACCREDITED, Condition.SUBJECT_NOT_ISSUER)),
    "gov.validator_add": _GOV,
    "gov.validator_remove": _GOV,
    "gov.issuer_accredit": _GOV,
    "gov.issuer_suspend": _GOV,
    "gov.issuer_reinstate": _GOV,
    "gov.issuer_remove": _GOV,
    "gov.service_register": _GOV,
    "gov.service_suspend": _GOV,
    "gov.service_reinstate": _GOV,
    "gov.service_remove": _GOV,
    "gov.policy_set": _GOV,
    "gov.trustees_set": _GOV,
    "vct.publish": AuthRule(Sender.DID, _ISSUER, (Condition.ISSUER_ACCREDITED_FOR_VCT,
                                                  Condition.VCT_NOT_OWNED_BY_OTHER)),
    "anchor.put": AuthRule(Sender.DID, _ISSUER, (Condition.ISSUER_ACCREDITED,)),
    "status.create_list": AuthRule(Sender.DID, _ISSUER, (Condition.ISSUER_ACCREDITED,)),
    # A suspended issuer keeps the duty to revoke, and nothing else: it must not
    # reinstate (or newly suspend) entries while its own accreditation is on hold.
    "status.set": AuthRule(Sender.DID, _ISSUER, (Condition.ISSUER_NOT_REMOVED,
                                                 Condition.SUSPENDED_ONLY_REVOKES,
                                                 Condition.LIST_OWNED_BY_SENDER)),
}


@dataclass(frozen=True, slots=True)
class Authorized:
    """What :func:`authorize` established, for the handler to build on."""

    rule: AuthRule
    record: didmod.DidRecord | None  # the sender DID's record, if it has one
    signers: Mapping[Signer, frozenset[str]]  # role -> key ids that signed for it


# --- reading state ------------------------------------------------------------------------
def read_did(state: Overlay, did: str) -> didmod.DidRecord | None:
    value = state.get_value(statekeys.did_key(did)) if didmod.is_did(did) else None
    return didmod.DidRecord(value) if isinstance(value, dict) else None


def _payload_key(tx: Transaction, field: str = "jwk") -> PublicKey:
    jwk = tx.payload.get(field)
    if not isinstance(jwk, dict):
        raise PayloadError(f"payload.{field} must be a JWK", reason="bad-key")
    return PublicKey.from_jwk(didmod.canonical_jwk(jwk))


def _payload_did(tx: Transaction, field: str) -> str:
    return didmod.check_did(tx.payload.get(field), field)


def _assertion_keys(state: Overlay, did: str) -> dict[str, PublicKey]:
    record = read_did(state, did)
    return {} if record is None else record.keys_for(didmod.ASSERTION_METHOD)


# --- signer roles: each returns the acceptable keys, or None when not required ----------
_RoleKeys = Callable[[Transaction, Overlay, "didmod.DidRecord | None"], "dict[str, PublicKey] | None"]


def _one(key: PublicKey) -> dict[str, PublicKey]:
    return {key.key_id: key}


def _controller(tx: Transaction, state: Overlay, rec: didmod.DidRecord | None) -> dict[str, PublicKey]:
    if rec is None or not rec.active:
        return {}
    return _one(rec.controller_key())


def _registrar(tx: Transaction, state: Overlay, rec: didmod.DidRecord | None) -> dict[str, PublicKey] | None:
    if "registrar" not in tx.payload:
        return None
    return _assertion_keys(state, _payload_did(tx, "registrar"))


ROLE_KEYS: Mapping[Signer, _RoleKeys] = {
    Signer.INCEPTION_KEY: lambda tx, st, rec: _one(_payload_key(tx)),
    Signer.CONTROLLER_KEY: _controller,
    Signer.NEXT_KEY: lambda tx, st, rec: _one(_payload_key(tx)),
    Signer.NEW_KEY: lambda tx, st, rec: _one(_payload_key(tx)),
    Signer.ISSUER_KEY: lambda tx, st, rec: _assertion_keys(st, tx.sender),
    Signer.RECOVERY_ISSUER_KEY: lambda tx, st, rec: _assertion_keys(st, _payload_did(tx, "issuer")),
    Signer.REGISTRAR_KEY: _registrar,
}


# --- conditions: each raises UnauthorizedError (or NotFound) when it does not hold -------
def _deny(reason: str, message: str) -> UnauthorizedError:
    return UnauthorizedError(message, reason=reason)


def _derived_did(tx: Transaction, state: Overlay, rec: didmod.DidRecord | None) -> None:
    commitment = didmod.check_commitment(tx.payload.get("next_key_commitment"))
    if tx.sender != didmod.derive_did(_payload_key(tx).to_jwk(), commitment):
        raise _deny("did-mismatch", "sender is not the DID derived from the inception key")


def _self_register_or_registrar(tx: Transaction, state: Overlay, rec: didmod.DidRecord | None) -> None:
    if "registrar" in tx.payload:
        if issuer_status(state, _payload_did(tx, "registrar")) != ACCREDITED:
            raise _deny("registrar-not-accredited", "registrar is not an accredited issuer")
    elif read_policy(state).get("self_register_dids") is not True:
        raise _deny("self-registration-disabled", "policy requires an accredited registrar")


def _did_active(tx: Transaction, state: Overlay, rec: didmod.DidRecord | None) -> None:
    if rec is None:
        raise NotFoundTxError(f"DID {tx.sender} not found", reason="did-not-found")
    if not rec.active:
        raise _deny("did-deactivated", "DID is deactivated")


def _next_key_matches(tx: Transaction, state: Overlay, rec: didmod.DidRecord | None) -> None:
    assert rec is not None
    if didmod.key_commitment(_payload_key(tx).to_jwk()) != rec.next_key_commitment:
        raise _deny("next-key-mismatch", "revealed key does not match the next-key commitment")


def _recovery_allowed(tx: Transaction, state: Overlay, rec: didmod.DidRecord | None) -> None:
    if read_policy(state).get("issuer_recovery") is not True:
        raise _deny("recovery-disabled", "policy does not allow issuer recovery")


def _recovery_issuer(tx: Transaction, state: Overlay, rec: didmod.DidRecord | None) -> None:
    vct = read_policy(state).get("recovery_vct")
    if not isinstance(vct, str) or not accredited_for(state, _payload_did(tx, "issuer"), vct):
        raise _deny("issuer-not-accredited", f"issuer is not accredited for {vct!r}")


def _subject_not_issuer(tx: Transaction, state: Overlay, rec: didmod.DidRecord | None) -> None:
    # An agency's DID is governed by the trustees: one issuer must never be able to
    # re-bind another issuer's (or its own) DID to a key of its choosing.
    if issuer_status(state, tx.sender) is not None:
        raise _deny("recovery-of-issuer", "issuer DIDs are not recoverable by another issuer")


def _accredited_for_vct(tx: Transaction, state: Overlay, rec: didmod.DidRecord | None) -> None:
    vct = tx.payload.get("vct")
    if not isinstance(vct, str) or not accredited_for(state, tx.sender, vct):
        raise _deny("issuer-not-accredited", "sender is not accredited for this vct")


def _vct_not_owned(tx: Transaction, state: Overlay, rec: didmod.DidRecord | None) -> None:
    existing = state.get_value(statekeys.vct_key(str(tx.payload.get("vct"))))
    if isinstance(existing, dict) and existing.get("issuer") != tx.sender:
        raise _deny("vct-owned-by-other", "another issuer publishes this vct")


def _issuer_in(statuses: tuple[str, ...]) -> Callable[[Transaction, Overlay, Any], None]:
    def check(tx: Transaction, state: Overlay, rec: didmod.DidRecord | None) -> None:
        if issuer_status(state, tx.sender) not in statuses:
            raise _deny("issuer-not-accredited", f"sender issuer is not {' or '.join(statuses)}")
    return check


def _suspended_only_revokes(tx: Transaction, state: Overlay, rec: didmod.DidRecord | None) -> None:
    if issuer_status(state, tx.sender) != SUSPENDED:
        return
    updates = tx.payload.get("updates")
    if not isinstance(updates, list) or not all(
            isinstance(u, list) and len(u) == 2 and u[1] == STATUS_INVALID and type(u[1]) is int for u in updates):
        raise _deny("issuer-suspended", "a suspended issuer may only revoke (set entries to invalid)")


def _list_owned(tx: Transaction, state: Overlay, rec: didmod.DidRecord | None) -> None:
    list_id = tx.payload.get("list_id")
    value = state.get_value(statekeys.status_list_key(list_id)) if isinstance(list_id, str) else None
    if not isinstance(value, dict):
        raise NotFoundTxError("status list not found", reason="list-not-found")
    if value.get("issuer") != tx.sender:
        raise _deny("not-list-owner", "the status list belongs to another issuer")


CONDITION_CHECKS: Mapping[Condition, Callable[[Transaction, Overlay, Any], None]] = {
    Condition.DERIVED_DID: _derived_did,
    Condition.SELF_REGISTER_OR_REGISTRAR: _self_register_or_registrar,
    Condition.DID_ACTIVE: _did_active,
    Condition.NEXT_KEY_MATCHES: _next_key_matches,
    Condition.RECOVERY_ALLOWED: _recovery_allowed,
    Condition.RECOVERY_ISSUER_ACCREDITED: _recovery_issuer,
    Condition.SUBJECT_NOT_ISSUER: _subject_not_issuer,
    Condition.ISSUER_ACCREDITED_FOR_VCT: _accredited_for_vct,
    Condition.VCT_NOT_OWNED_BY_OTHER: _vct_not_owned,
    Condition.ISSUER_ACCREDITED: _issuer_in((ACCREDITED,)),
    Condition.ISSUER_NOT_REMOVED: _issuer_in((ACCREDITED, SUSPENDED)),
    Condition.SUSPENDED_ONLY_REVOKES: _suspended_only_revokes,
    Condition.LIST_OWNED_BY_SENDER: _list_owned,
}


# --- the enforcer -------------------------------------------------------------------------------
def authorize(tx: Transaction, state: Overlay, ctx: BlockContext) -> Authorized:
    """Enforce :data:`AUTH_TABLE` for ``tx``; raise :class:`UnauthorizedError` if it fails.

    Precondition: ``tx.check_stateless`` passed (every signature verifies over the id).
    Conditions run first (they explain *why* in their reason), then signer roles.
    """
    rule = AUTH_TABLE.get(tx.type)
    if rule is None:
        raise _deny("no-auth-rule", f"no authorization rule for {tx.type!r}")
    if rule.sender is Sender.GOV:
        if tx.sender != GOV_SENDER:
            raise _deny("wrong-sender", f"{tx.type} must be sent by {GOV_SENDER!r}")
    elif not didmod.is_did(tx.sender):
        raise _deny("wrong-sender", f"{tx.type} must be sent by a did:imi")
    record = read_did(state, tx.sender) if rule.sender is Sender.DID else None
    for condition in rule.conditions:
        CONDITION_CHECKS[condition](tx, state, record)
    sigs = {s.key_id: s.signature for s in tx.signatures}
    signed: dict[Signer, frozenset[str]] = {}
    for role in rule.signers:
        signed_by = _check_role(role, tx, state, record, sigs)
        if signed_by is not None:
            signed[role] = signed_by
    explained = set().union(*signed.values()) if signed else set()
    if set(sigs) - explained:
        raise _deny("unexpected-signer", "a signature is not required by any role")
    return Authorized(rule, record, signed)


def _check_role(role: Signer, tx: Transaction, state: Overlay, record: didmod.DidRecord | None,
                sigs: Mapping[str, bytes]) -> frozenset[str] | None:
    if role is Signer.TRUSTEES:
        keys, threshold = read_trustees(state)
        try:
            return frozenset(verify_threshold(tx.tx_id, sigs, keys, threshold))
        except SignatureError as exc:
            raise _deny("trustee-threshold-not-met", f"trustees: {exc}") from exc
    role_keys = ROLE_KEYS[role](tx, state, record)
    if role_keys is None:
        return None
    present = frozenset(k for k in sigs if k in role_keys)
    # check_stateless verified these already; verifying again keeps this function
    # safe on its own (it is the one place that grants authority).
    if not present or not all(role_keys[k].verify(tx.tx_id, sigs[k]) for k in present):
        raise _deny("missing-signature", f"missing signature: {role.value}")
    return present


__all__ = [
    "AUTH_TABLE",
    "AuthRule",
    "Authorized",
    "Condition",
    "Sender",
    "Signer",
    "authorize",
    "read_did",
]
