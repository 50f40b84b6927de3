"""Consortium governance state: trustees, policy, issuer accreditation, validator changes.

Trustees (state ``gov/trustees``: ``{keys: [jwk], threshold: k}``) act by k-of-n
multi-signature over the transaction id. They admit and remove validators
(effective ``VALIDATOR_SET_CHANGE_DELAY_HEIGHTS`` blocks later), accredit issuers
for a list of credential types (vct), suspend, reinstate and remove them, and set
policy.

Issuer lifecycle (a transition table): ``accredited ↔ suspended``, either ``→
removed`` (final). Accrediting an accredited issuer again amends its name and vct
list; a removed issuer is never re-accredited under the same DID.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from identity.errors import NotFoundTxError, PayloadError, TransitionError
from identity.ledger_constants import (
    ISSUER_NAME_CHARS_MAX,
    ISSUER_VCTS_MAX,
    RECOVERY_VCT_DEFAULT,
    TRUSTEES_MAX,
    VCT_CHARS_MAX,
)
from ledger import statekeys
from ledger.encoding import Value
from ledger.errors import KeyError_
from ledger.execution import Overlay, StateReader, read_validator_set
from ledger.keys import PublicKey
from ledger.validators import ValidatorSet

ACCREDITED = "accredited"
SUSPENDED = "suspended"
REMOVED = "removed"

# (status before, action) -> status after; ``None`` is "never accredited".
ISSUER_TRANSITIONS: dict[tuple[str | None, str], str] = {
    (None, "accredit"): ACCREDITED,
    (ACCREDITED, "accredit"): ACCREDITED,  # amend name / vct list
    (ACCREDITED, "suspend"): SUSPENDED,
    (SUSPENDED, "reinstate"): ACCREDITED,
    (ACCREDITED, "remove"): REMOVED,
    (SUSPENDED, "remove"): REMOVED,
}

# Policy keys, their types and defaults when the genesis does not set them.
POLICY_SCHEMA: dict[str, type] = {
    "self_register_dids": bool,  # citizens may create their own did:imi
    "heartbeat_ms": int,  # empty-block interval (read by the node)
    "issuer_recovery": bool,  # an accredited issuer may re-bind a DID whose keys are lost
    "recovery_vct": str,  # the vct an issuer must be accredited for to do so
}
POLICY_DEFAULTS: dict[str, Value] = {
    "self_register_dids": True,
    "issuer_recovery": True,
    "recovery_vct": RECOVERY_VCT_DEFAULT,
}


def issuer_transition(status: str | None, action: str) -> str:
    after = ISSUER_TRANSITIONS.get((status, action))
    if after is None:
        raise TransitionError(f"issuer {status or 'not accredited'}: cannot {action}",
                              reason="issuer-removed" if status == REMOVED
                              else "issuer-not-found" if status is None else "invalid-transition")
    return after


# --- reads ---------------------------------------------------------------------------
def read_trustees(state: StateReader | Overlay) -> tuple[dict[str, PublicKey], int]:
    """Trustee keys (id → key) and threshold k."""
    value = _get(state, statekeys.TRUSTEES)
    jwks = value.get("keys") if isinstance(value, dict) else None
    threshold = value.get("threshold") if isinstance(value, dict) else None
    if not isinstance(jwks, list) or type(threshold) is not int:
        raise NotFoundTxError("no trustees in state", reason="no-trustees")
    keys = {k.key_id: k for k in (PublicKey.from_jwk(j) for j in jwks if isinstance(j, dict))}
    return keys, threshold


def read_policy(state: StateReader | Overlay) -> dict[str, Value]:
    """The policy map with defaults filled in for keys the genesis left out."""
    value = _get(state, statekeys.POLICY)
    policy = dict(POLICY_DEFAULTS)
    if isinstance(value, dict):
        policy.update(value)
    return policy


def read_issuer(state: StateReader | Overlay, did: str) -> dict[str, Any] | None:
    value = _get(state, statekeys.issuer_key(did))
    return value if isinstance(value, dict) else None


def issuer_status(state: StateReader | Overlay, did: str) -> str | None:
    record = read_issuer(state, did)
    return None if record is None else str(record["status"])


def accredited_for(state: StateReader | Overlay, did: str, vct: str) -> bool:
    """True iff ``did`` is an accredited (not suspended, not removed) issuer of ``vct``."""
    record = read_issuer(state, did)
    return record is not None and record["status"] == ACCREDITED and vct in record["vcts"]


def latest_validator_set(state: Overlay) -> ValidatorSet:
    """The set that will be in force after every already scheduled change."""
    pending = state.get_value(statekeys.VALSET_PENDING) or []
    assert isinstance(pending, list)
    scheduled = [p for p in pending if isinstance(p, dict)]
    if scheduled:
        last = max(scheduled, key=lambda p: p["height"])  # type: ignore[arg-type,return-value]
        return ValidatorSet.from_value(last["set"])
    return read_validator_set(state)


def _get(state: StateReader | Overlay, key: bytes) -> Value:
    from ledger.encoding import decode

    raw = state.get(key)
    return None if raw is None else decode(raw)


# --- payload checks ------------------------------------------------------------------------
def check_vct(value: object, field: str = "vct") -> str:
    if not isinstance(value, str) or not 0 < len(value) <= VCT_CHARS_MAX or any(
            c.isspace() for c in value):
        raise PayloadError(f"{field} must be a non-empty string without spaces", reason="bad-vct")
    return value


def parse_vcts(value: object) -> list[Value]:
    if not isinstance(value, list) or not 0 < len(value) <= ISSUER_VCTS_MAX:
        raise PayloadError(f"vcts must list 1..{ISSUER_VCTS_MAX} types", reason="bad-vct")
    vcts = [check_vct(v) for v in value]
    if len(set(vcts)) != len(vcts):
        raise PayloadError("duplicate vct", reason="bad-vct")
    out: list[Value] = []
    out.extend(sorted(vcts))
    return out


def check_name(value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= ISSUER_NAME_CHARS_MAX:
        raise PayloadError(f"name must be 1..{ISSUER_NAME_CHARS_MAX} characters", reason="bad-name")
    return value


def parse_policy_update(value: object) -> dict[str, Value]:
    """A partial policy: known keys only, each of its declared type."""
    if not isinstance(value, dict) or not value:
        raise PayloadError("policy must be a non-empty map", reason="bad-policy")
    for name, item in value.items():
        kind = POLICY_SCHEMA.get(name)
        if kind is None:
            raise PayloadError(f"unknown policy key {name!r}", reason="bad-policy")
        if type(item) is not kind:
            raise PayloadError(f"policy {name} must be {kind.__name__}", reason="bad-policy")
    heartbeat = value.get("heartbeat_ms", 2000)
    if not isinstance(heartbeat, int) or not 100 <= heartbeat <= 3_600_000:
        raise PayloadError("heartbeat_ms out of range", reason="bad-policy")
    if "recovery_vct" in value:
        check_vct(value["recovery_vct"], "recovery_vct")
    return dict(value)


def parse_trustees(value: Mapping[str, object]) -> dict[str, Value]:
    """``{keys: [jwk], threshold: k}`` with ``1 <= k <= n <= TRUSTEES_MAX``, no duplicates."""
    keys, threshold = value.get("keys"), value.get("threshold")
    if not isinstance(keys, list) or not 0 < len(keys) <= TRUSTEES_MAX:
        raise PayloadError(f"trustees must list 1..{TRUSTEES_MAX} keys", reason="bad-trustees")
    try:
        public = [PublicKey.from_jwk(k if isinstance(k, dict) else {}) for k in keys]
    except KeyError_ as exc:
        raise PayloadError(f"trustee key: {exc}", reason="bad-trustees") from exc
    if len({k.key_id for k in public}) != len(public):
        raise PayloadError("duplicate trustee key", reason="bad-trustees")
    if type(threshold) is not int or not 1 <= threshold <= len(public):
        raise PayloadError("threshold must be within 1..len(keys)", reason="bad-trustees")
    # A threshold of one out of many lets a single trustee act alone; refuse a
    # change that would give any one trustee that power unless there is only one.
    if len(public) > 1 and threshold < 2:
        raise PayloadError("threshold must be at least 2 with several trustees", reason="bad-trustees")
    return {"keys": [dict(k.to_jwk()) for k in public], "threshold": threshold}


__all__ = [
    "ACCREDITED",
    "ISSUER_TRANSITIONS",
    "POLICY_DEFAULTS",
    "POLICY_SCHEMA",
    "REMOVED",
    "SUSPENDED",
    "accredited_for",
    "check_name",
    "check_vct",
    "issuer_status",
    "issuer_transition",
    "latest_validator_set",
    "parse_policy_update",
    "parse_trustees",
    "parse_vcts",
    "read_issuer",
    "read_policy",
    "read_trustees",
]
