"""Services (relying parties) registered on the ledger: who may ask a citizen what.

A service — a community platform, another agency's counter — is registered by the
trustees (``gov.service_register``, the authorization table in
:mod:`identity.authz`) under its did:imi with a name and a purpose in zh-CN and en,
and the credential types and claims it may ask for: for each vct, a list of claims
path pointers (OpenID4VP 1.0 §7), predicates included (``["age_equal_or_over",
"18"]``). The record lives at ``service/<did>`` (:mod:`ledger.statekeys`), so a wallet
reads it through the light client and refuses, and records, any request that asks
beyond it (:func:`identity.dcql.beyond_registration`). That makes data minimisation
enforceable rather than a promise.

Lifecycle (a transition table, like issuers'): ``registered ↔ suspended``, either
``→ removed`` (final). Registering a registered service again amends it; a removed
service is never registered again under the same DID.

Why trustees and not an accredited agency: what a service may ask is a policy
decision over citizens' data, which the consortium's governance takes (k of n
trustees), the same body that accredits issuers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from identity import dcql
from identity.errors import DcqlError, PayloadError, TransitionError
from identity.governance import check_vct
from identity.ledger_constants import (
    SERVICE_CLAIMS_PER_VCT_MAX,
    SERVICE_NAME_CHARS_MAX,
    SERVICE_PURPOSE_CHARS_MAX,
    SERVICE_VCTS_MAX,
)
from ledger import statekeys
from ledger.encoding import Value, decode
from ledger.execution import Overlay, StateReader

REGISTERED = "registered"
SUSPENDED = "suspended"
REMOVED = "removed"
LANGUAGES = ("en", "zh-CN")  # every name and purpose is given in both

# (status before, action) -> status after; ``None`` is "never registered".
SERVICE_TRANSITIONS: dict[tuple[str | None, str], str] = {
    (None, "register"): REGISTERED,
    (REGISTERED, "register"): REGISTERED,  # amend name, purpose or queries
    (REGISTERED, "suspend"): SUSPENDED,
    (SUSPENDED, "reinstate"): REGISTERED,
    (REGISTERED, "remove"): REMOVED,
    (SUSPENDED, "remove"): REMOVED,
}


def service_transition(status: str | None, action: str) -> str:
    """The status after ``action``, or :class:`TransitionError` if the table forbids it."""
    after = SERVICE_TRANSITIONS.get((status, action))
    if after is None:
        raise TransitionError(f"service {status or 'not registered'}: cannot {action}",
                              reason="service-removed" if status == REMOVED
                              else "service-not-found" if status is None else "invalid-transition")
    return after


def read_service(state: StateReader | Overlay, did: str) -> dict[str, Any] | None:
    """The service record of ``did`` in ``state``, or None."""
    raw = state.get(statekeys.service_key(did))
    value = None if raw is None else decode(raw)
    return value if isinstance(value, dict) else None


# --- the registration payload -------------------------------------------------------------------
def parse_registration(payload: Mapping[str, Any]) -> dict[str, Value]:
    """The checked ``{name, purpose, queries}`` of a ``gov.service_register`` payload."""
    return {
        "name": _texts(payload.get("name"), "name", SERVICE_NAME_CHARS_MAX),
        "purpose": _texts(payload.get("purpose"), "purpose", SERVICE_PURPOSE_CHARS_MAX),
        "queries": _queries(payload.get("queries")),
    }


def _texts(value: object, field: str, most: int) -> dict[str, Value]:
    if not isinstance(value, dict) or set(value) != set(LANGUAGES):
        raise PayloadError(f"{field} must give exactly {', '.join(LANGUAGES)}", reason="bad-service")
    for language, text in value.items():
        if not isinstance(text, str) or not 0 < len(text) <= most or text != text.strip():
            raise PayloadError(f"{field}.{language} must be 1..{most} characters, trimmed",
                               reason="bad-service")
    return {language: value[language] for language in LANGUAGES}


def _queries(value: object) -> list[Value]:
    if not isinstance(value, list) or not 0 < len(value) <= SERVICE_VCTS_MAX:
        raise PayloadError(f"queries must list 1..{SERVICE_VCTS_MAX} credential types", reason="bad-service")
    out: list[Value] = []
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, dict) or set(item) != {"vct", "claims"}:
            raise PayloadError("each query is {vct, claims}", reason="bad-service")
        vct = check_vct(item["vct"])
        if vct in seen:
            raise PayloadError(f"vct {vct} listed twice", reason="bad-service")
        seen.add(vct)
        out.append({"vct": vct, "claims": _paths(item["claims"], vct)})
    return out


def _paths(value: object, vct: str) -> list[Value]:
    if not isinstance(value, list) or not 0 < len(value) <= SERVICE_CLAIMS_PER_VCT_MAX:
        raise PayloadError(f"{vct}: claims must list 1..{SERVICE_CLAIMS_PER_VCT_MAX} paths",
                           reason="bad-service")
    try:
        paths = [dcql.parse_path(p, f"{vct} claim") for p in value]
    except DcqlError as exc:
        raise PayloadError(str(exc), reason="bad-service") from exc
    if len(set(paths)) != len(paths):
        raise PayloadError(f"{vct}: a claim path is listed twice", reason="bad-service")
    return [list(p) for p in paths]


# --- reading a record ------------------------------------------------------------------------------
def allowed_claims(record: Mapping[str, Any]) -> dict[str, tuple[dcql.ClaimPath, ...]]:
    """vct -> the claims paths a registered service may ask for (from its ledger record)."""
    queries = record.get("queries")
    if not isinstance(queries, list):
        return {}
    return {str(q["vct"]): tuple(tuple(p) for p in q["claims"]) for q in queries
            if isinstance(q, dict) and isinstance(q.get("claims"), list)}


def may_ask(record: Mapping[str, Any] | None, query: dcql.DcqlQuery) -> list[str]:
    """Why a service with ``record`` may not send ``query`` (empty: it may)."""
    if record is None:
        return ["the service is not registered on the ledger"]
    if record.get("status") != REGISTERED:
        return [f"the service is {record.get('status')}"]
    return dcql.beyond_registration(query, allowed_claims(record))


__all__ = [
    "LANGUAGES",
    "REGISTERED",
    "REMOVED",
    "SERVICE_TRANSITIONS",
    "SUSPENDED",
    "allowed_claims",
    "may_ask",
    "parse_registration",
    "read_service",
    "service_transition",
]
