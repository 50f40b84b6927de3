"""Credential types (vct) an accredited issuer publishes on the ledger.

A definition says which claims a credential of this type carries, which of them
are selectively disclosable (all by default; claims SD-JWT VC keeps in the clear
never are), and which predicate claims the issuer offers — e.g.
``{"age_equal_or_over": [14, 18, 21]}`` means a credential carries
``age_equal_or_over: {"18": true, ...}`` with each member disclosable on its own,
so a holder can answer "over 18?" without the birth date.

State ``vct/<vct>``: ``{vct, issuer, name, claims, selectively_disclosable,
predicates, version, updated_ms, updated_height}``. The first issuer to publish a
vct owns its definition; it may publish new versions.

The definition is what both ends go by (:class:`CredentialType`):

* the issuer (:meth:`CredentialType.issuable`) issues only the listed claims, makes
  exactly ``selectively_disclosable`` disclosable (the other claims stay in the clear),
  derives each predicate's members exactly from its published thresholds
  (``age_equal_or_over`` from ``birthdate``: the source claim may be in the agency's
  record without being issued), and refuses a record carrying anything else;
* the verifier (:meth:`CredentialType.check_credential`) requires the definition to be
  published by the credential's ``iss``, every claim and predicate member to be in it,
  and no claim the definition keeps in the clear to arrive as (or contain) a disclosure.

Issuer refusals are :class:`~identity.errors.IssuanceError` (``claims-not-in-type``,
``predicate-not-derivable``, ``predicate-source-missing``, ``bad-predicate-source``);
verifier failures are :class:`~identity.errors.CredentialTypeError` (reasons in
:mod:`identity.verifier`). Both read definitions through a bounded, time-limited
:class:`CredentialTypeCache` (:data:`~identity.constants.CREDENTIAL_TYPE_CACHE_S`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from identity.constants import (
    CREDENTIAL_TYPE_CACHE_S,
    CREDENTIAL_TYPES_CACHED_MAX,
    NEVER_DISCLOSABLE_CLAIMS,
    PREDICATE_SOURCES,
    RESERVED_CLAIM_NAMES,
)
from identity.errors import CredentialTypeError, IssuanceError, PayloadError
from identity.governance import check_name, check_vct
from identity.ledger_constants import (
    CLAIM_NAME_CHARS_MAX,
    PREDICATE_THRESHOLD_MAX,
    PREDICATE_THRESHOLDS_MAX,
    VCT_CLAIMS_MAX,
)
from identity.sdjwt import derive_predicates
from ledger.encoding import Value
from ledger.lru import BoundedLRU

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


# --- the definition as issuer and verifier use it -------------------------------------------
_CHECK_DAY: Final = dt.date(2000, 1, 1)  # any day: a record's predicate sources are checked by deriving


def _names(value: object, field: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise ValueError(f"type definition: {field} must be a list of names")
    return frozenset(value)


_FREE: Final = 0  # a claim that may arrive in any form: listed and disclosable, or kept clear by SD-JWT VC
_CLEAR: Final = 1  # a listed claim the definition keeps in the clear


@dataclass(frozen=True, slots=True)
class CredentialType:
    """A published definition (``vct/<vct>`` on the ledger), ready to check against.

    ``members``: predicate claim → the member names its thresholds allow (``"18"``...).
    ``kinds``: every claim name a credential may show → ``_FREE``, ``_CLEAR`` or the
    predicate's allowed members (one lookup per claim when verifying).
    """

    vct: str
    issuer: str
    claims: frozenset[str]
    disclosable: frozenset[str]
    predicates: Mapping[str, tuple[int, ...]]
    members: Mapping[str, frozenset[str]]
    version: int = 0
    kinds: Mapping[str, int | frozenset[str]] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        kinds: dict[str, int | frozenset[str]] = dict.fromkeys(NEVER_DISCLOSABLE_CLAIMS, _FREE)
        kinds.update((name, _FREE if name in self.disclosable else _CLEAR) for name in self.claims)
        kinds.update(self.members)
        object.__setattr__(self, "kinds", kinds)  # derived once; the instance stays frozen

    @classmethod
    def of(cls, vct: str, issuer: str, claims: Iterable[str], *, disclosable: Iterable[str] | None = None,
           predicates: Mapping[str, Iterable[int]] | None = None, version: int = 0) -> CredentialType:
        """Build one (``disclosable`` defaults to every claim SD-JWT VC lets be disclosable)."""
        names = frozenset(claims)
        sd = frozenset(disclosable) if disclosable is not None else names - NEVER_DISCLOSABLE_CLAIMS
        preds = {name: tuple(sorted(set(t))) for name, t in (predicates or {}).items()}
        members = {name: frozenset(str(t) for t in ts) for name, ts in preds.items()}
        return cls(vct, issuer, names, sd, preds, members, version)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> CredentialType:
        """From the ledger's certified record; raises ValueError on a shape the rules never store."""
        vct, issuer, predicates = record.get("vct"), record.get("issuer"), record.get("predicates", {})
        if not isinstance(vct, str) or not isinstance(issuer, str) or not isinstance(predicates, dict):
            raise ValueError("type definition needs vct, issuer and a predicates map")  # noqa: TRY004 - one type for a bad shape
        if not all(isinstance(t, list) and all(type(x) is int for x in t) for t in predicates.values()):
            raise ValueError("type definition: predicate thresholds must be integer lists")
        version = record.get("version", 0)
        return cls.of(vct, issuer, _names(record.get("claims"), "claims"),
                      disclosable=_names(record.get("selectively_disclosable", []), "selectively_disclosable"),
                      predicates=predicates, version=version if isinstance(version, int) else 0)

    # --- issuer ---------------------------------------------------------------------------
    def check_record(self, record: Mapping[str, Any]) -> None:
        """Refuse a subject record this type cannot be issued from: a claim neither listed
        nor the source of a listed predicate (``claims-not-in-type``), a predicate without a
        derivation or its source (``predicate-not-derivable``, ``predicate-source-missing``,
        ``bad-predicate-source``). Raises IssuanceError."""
        sources = {PREDICATE_SOURCES.get(name) for name in self.predicates}
        extra = sorted(name for name in record if name not in self.claims and name not in sources)
        if extra:
            raise IssuanceError(f"claims {extra} are not in the published type {self.vct}",
                                reason="claims-not-in-type")
        derive_predicates(self.predicates, record, _CHECK_DAY)

    def issuable(self, record: Mapping[str, Any], on: dt.date) -> dict[str, Any]:
        """The user claims of a credential of this type for ``record`` on day ``on``: the
        listed claims it holds, and every published predicate with exactly its thresholds.
        Precondition for :func:`identity.sdjwt.issue`: pass ``disclosable=``
        :attr:`disclosable_claims`. Raises IssuanceError as :meth:`check_record`."""
        self.check_record(record)
        claims = {name: value for name, value in record.items() if name in self.claims}
        claims.update(derive_predicates(self.predicates, record, on))
        return claims

    @property
    def disclosable_claims(self) -> frozenset[str]:
        """What an issued credential carries as disclosures: the selectively disclosable
        claims and every predicate claim (each of its members a disclosure too)."""
        return self.disclosable | frozenset(self.predicates)

    # --- verifier -------------------------------------------------------------------------
    def check_credential(self, iss: str, payload: Mapping[str, Any], claims: Mapping[str, Any]) -> None:
        """Check a credential's issuer-signed ``payload`` and its disclosed ``claims`` (the
        payload with the presented disclosures applied) against this definition. Raises
        CredentialTypeError: ``vct-other-issuer``, ``not-in-type-definition``,
        ``not-disclosable-in-type``."""
        if iss != self.issuer:
            raise CredentialTypeError(f"{self.vct} is published by another issuer", reason="vct-other-issuer")
        kinds = self.kinds
        for name, value in claims.items():
            kind = kinds.get(name)
            if kind is _FREE:
                continue
            if kind is None:
                raise CredentialTypeError(f"claim {name!r} is not in the type definition",
                                          reason="not-in-type-definition")
            if kind is _CLEAR:
                if name not in payload or payload[name] != value:
                    # a disclosure of the claim, or disclosures inside its value
                    raise CredentialTypeError(f"claim {name!r} is not selectively disclosable in this type",
                                              reason="not-disclosable-in-type")
            elif not isinstance(kind, frozenset) or value.__class__ is not dict or not value.keys() <= kind \
                    or any(v.__class__ is not bool for v in value.values()):
                raise CredentialTypeError(f"{name} carries members the type does not publish",
                                          reason="not-in-type-definition")


class CredentialTypeCache:
    """Definitions by vct, each reused for ``ttl_s`` after it was read (then read again:
    a new version is seen within that time), at most ``entries_max`` of them. Thread-safe
    (a :class:`~ledger.lru.BoundedLRU` without weight)."""

    __slots__ = ("_entries", "ttl_s")

    def __init__(self, entries_max: int = CREDENTIAL_TYPES_CACHED_MAX, ttl_s: int = CREDENTIAL_TYPE_CACHE_S) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self._entries: BoundedLRU[str, tuple[int, CredentialType]] = BoundedLRU(entries_max)
        self.ttl_s = ttl_s

    def get(self, vct: str, now_ms: int) -> CredentialType | None:
        """The definition read less than ``ttl_s`` before ``now_ms``, or None."""
        entry = self._entries.get(vct)
        if entry is None or not 0 <= now_ms - entry[0] < self.ttl_s * 1000:
            return None
        return entry[1]

    def put(self, definition: CredentialType, now_ms: int) -> None:
        self._entries.put(definition.vct, (now_ms, definition))


class KnownCredentialTypes:
    """:class:`identity.verifier.CredentialTypes` over definitions the caller holds (offline)."""

    __slots__ = ("_types",)

    def __init__(self, types: Iterable[CredentialType]) -> None:
        self._types = {t.vct: t for t in types}

    def definition(self, vct: str) -> CredentialType:
        found = self._types.get(vct)
        if found is None:
            raise CredentialTypeError(f"{vct[:120]!r} is not a published type", reason="vct-not-published")
        return found


__all__ = [
    "VCT_FIELDS",
    "CredentialType",
    "CredentialTypeCache",
    "KnownCredentialTypes",
    "parse_definition",
]
