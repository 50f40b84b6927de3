"""Credential types (vct) an accredited issuer publishes on the ledger.

A definition says which claims a credential of this type carries, which of them
are selectively disclosable (all by default; claims SD-JWT VC keeps in the clear
never are), and which predicate claims the issuer offers — e.g.
``{"age_equal_or_over": [16, 18, 65]}`` means a credential carries
``age_equal_or_over: {"18": true, ...}`` with each member disclosable on its own,
so a holder can answer "over 18?" without the birth date.

State ``vct/<vct>``: ``{vct, issuer, name, claims, selectively_disclosable,
predicates, version, updated_ms, updated_height}``. The first issuer to publish a
vct owns its definition; it may publish new versions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from identity.constants import NEVER_DISCLOSABLE_CLAIMS, RESERVED_CLAIM_NAMES
from identity.errors import PayloadError
from identity.governance import check_name, check_vct
from identity.ledger_constants import (
    CLAIM_NAME_CHARS_MAX,
    PREDICATE_THRESHOLD_MAX,
    PREDICATE_THRESHOLDS_MAX,
    VCT_CLAIMS_MAX,
)
from ledger.encoding import Value

_CLAIM_RE = re.compile(rf"^[A-Za-z_][A-Za-z0-9_]{{0,{CLAIM_NAME_CHARS_MAX - 1}}}$")
VCT_FIELDS = frozenset({"vct", "name", "claims", "selectively_disclosable", "predicates"})


def _claims(value: object, field: str) -> list[str]:
    if not isinstance(value, list) or len(value) > VCT_CLAIMS_MAX:
        raise PayloadError(f"{field} must be a list of at most {VCT_CLAIMS_MAX}", reason="bad-vct-definition")
    for name in value:
        if not isinstance(name, str) or not _CLAIM_RE.match(name) or name in RESERVED_CLAIM_NAMES:
            raise PayloadError(f"{field}: bad claim name {name!r}", reason="bad-vct-definition")
    if len(set(value)) != len(value):
        raise PayloadError(f"{field}: duplicate claim", reason="bad-vct-definition")
    return sorted(value)


def _predicates(value: object) -> dict[str, Value]:
    if not isinstance(value, dict) or len(value) > VCT_CLAIMS_MAX:
        raise PayloadError("predicates must be a map claim -> thresholds", reason="bad-vct-definition")
    out: dict[str, Value] = {}
    for name, thresholds in value.items():
        _claims([name], "predicates")
        if (not isinstance(thresholds, list) or not 0 < len(thresholds) <= PREDICATE_THRESHOLDS_MAX
                or any(type(t) is not int or not 0 <= t <= PREDICATE_THRESHOLD_MAX for t in thresholds)
                or len(set(thresholds)) != len(thresholds)):
            raise PayloadError(f"predicates.{name}: 1..{PREDICATE_THRESHOLDS_MAX} distinct "
                               f"thresholds in 0..{PREDICATE_THRESHOLD_MAX}", reason="bad-vct-definition")
        out[name] = sorted(thresholds)
    return out


def parse_definition(payload: Mapping[str, Any]) -> dict[str, Value]:
    """Validate a ``vct.publish`` payload into the stored definition (without issuer/version)."""
    if set(payload) - VCT_FIELDS or not {"vct", "name", "claims"} <= set(payload):
        raise PayloadError(f"vct.publish payload fields are {sorted(VCT_FIELDS)}", reason="bad-payload")
    claims = _claims(payload["claims"], "claims")
    sd = _claims(payload.get("selectively_disclosable",
                             [c for c in claims if c not in NEVER_DISCLOSABLE_CLAIMS]),
                 "selectively_disclosable")
    if not set(sd) <= set(claims):
        raise PayloadError("selectively_disclosable must be a subset of claims", reason="bad-vct-definition")
    if set(sd) & NEVER_DISCLOSABLE_CLAIMS:
        raise PayloadError("SD-JWT VC forbids these claims to be disclosable: "
                           f"{sorted(set(sd) & NEVER_DISCLOSABLE_CLAIMS)}", reason="bad-vct-definition")
    predicates = _predicates(payload.get("predicates", {}))
    if set(predicates) & set(claims):
        raise PayloadError("a predicate claim cannot also be a plain claim", reason="bad-vct-definition")
    return {
        "vct": check_vct(payload["vct"]),
        "name": check_name(payload["name"]),
        "claims": claims,  # type: ignore[dict-item]
        "selectively_disclosable": sd,  # type: ignore[dict-item]
        "predicates": predicates,
    }


__all__ = ["VCT_FIELDS", "parse_definition"]
