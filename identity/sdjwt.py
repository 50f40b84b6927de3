"""Issuance of SD-JWT VCs (RFC 9901, draft-ietf-oauth-sd-jwt-vc), compact form.

``<issuer-signed JWT>~<disclosure>~...~``. Every claim is selectively
disclosable except those SD-JWT VC keeps in the clear (``iss``, ``iat``,
``nbf``, ``exp``, ``cnf``, ``vct``, ``status``): each top-level claim, each
member of a nested object and each array element gets its own disclosure, so
a holder can reveal ``address.locality`` without ``address.street_address``.
Each object carrying digests also carries decoy digests, and digests are
sorted, so neither the count nor the order of claims leaks.

Predicate claims are derived, never taken as given: ``predicates={"age_equal_or_over":
[18, 21]}`` (the thresholds a published credential type lists, :mod:`identity.credtypes`)
turns a ``birthdate`` (``YYYY-MM-DD``) into ``age_equal_or_over`` {"18": bool, "21": bool},
computed on the UTC day of ``iat``; each threshold is its own disclosure so the holder
can show only ``"18": true``. ``disclosable`` names the user claims that are selectively
disclosable (default: all); the others stay in the clear, whole.
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
from binascii import a2b_base64, b2a_base64
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

from identity import jose
from identity.constants import (
    AGE_PREDICATE_CLAIM,
    ARRAY_DIGEST_KEY,
    DECOYS_PER_OBJECT_MAX,
    DECOYS_PER_OBJECT_MIN,
    JSON_DEPTH_MAX,
    NEVER_DISCLOSABLE_CLAIMS,
    PREDICATE_SOURCES,
    RESERVED_CLAIM_NAMES,
    SALT_BYTES,
    SD_ALG,
    SD_ALG_KEY,
    SD_KEY,
    SEPARATOR,
    TYP_SD_JWT_VC,
)
from identity.errors import DisclosureError, FormatError, IssuanceError
from ledger.errors import KeyError_
from ledger.keys import PublicKey, SigningKey, b64url_encode


def digest(encoded: str) -> str:
    """``_sd`` digest: base64url(SHA-256(ASCII bytes of the base64url disclosure))."""
    return jose.b64url_sha256(encoded.encode("ascii"))


def decode_disclosure(encoded: str) -> tuple[str, str | None, Any]:
    """``(salt, name, value)`` of a base64url disclosure (``name`` None for an array
    element), checked strictly; raises DisclosureError (reason ``malformed-disclosure``,
    ``bad-claim-name`` or ``reserved-claim-name``)."""
    try:
        raw = jose.b64url_decode_strict(encoded)
    except FormatError as exc:
        raise DisclosureError("disclosure is not base64url JSON", reason="malformed-disclosure") from exc
    return _disclosure_array(raw)


def disclosed_by_digest(encoded: Sequence[str]) -> dict[str, tuple[str | None, Any]]:
    """``{digest: (name, value)}`` of base64url disclosures, each checked as
    :func:`decode_disclosure` does (the first bad one raises, in order). A disclosure
    given twice appears once, so a caller compares lengths. What verifiers use:
    the base64url decode and the digest inline, one ASCII encoding per disclosure.
    Precondition: the strings are ASCII (a presentation is checked as a whole)."""
    out: dict[str, tuple[str | None, Any]] = {}
    for text in encoded:
        try:  # jose.b64url_decode_strict, inline
            data = text.encode("ascii")  # UnicodeEncodeError is a ValueError
            rest = len(data) % 4
            if rest == 1:
                raise ValueError("not base64url")
            raw = a2b_base64(data.translate(jose.URL_TO_STD) + jose.PADDING[rest], strict_mode=True)
            if rest and text[-1] not in jose.CANONICAL_LAST[rest]:
                raise ValueError("non-canonical base64url")
        except ValueError as exc:
            raise DisclosureError("disclosure is not base64url JSON", reason="malformed-disclosure") from exc
        _salt, name, value = _disclosure_array(raw)
        # digest(text), inline: base64url(SHA-256(ASCII)), 43 characters unpadded
        dig = b2a_base64(sha256(data).digest(), newline=False)[:43].translate(jose.STD_TO_URL)
        out[dig.decode("ascii")] = (name, value)
    return out


def _disclosure_array(raw: bytes) -> tuple[str, str | None, Any]:
    try:
        array = jose.json_loads(raw)
    except FormatError as exc:
        raise DisclosureError("disclosure is not base64url JSON", reason="malformed-disclosure") from exc
    if array.__class__ is not list or len(array) not in (2, 3):  # JSON arrays are exactly list
        raise DisclosureError(
            "disclosure must be a JSON array of 2 or 3 elements", reason="malformed-disclosure"
        )
    salt = array[0]
    if salt.__class__ is not str:  # JSON strings are exactly str
        raise DisclosureError("disclosure salt must be a string", reason="malformed-disclosure")
    if len(array) == 2:
        return salt, None, array[1]
    name = array[1]
    if name.__class__ is not str:
        raise DisclosureError("disclosed claim name must be a string", reason="bad-claim-name")
    if name in RESERVED_CLAIM_NAMES:
        raise DisclosureError(f"claim name {name!r} is reserved", reason="reserved-claim-name")
    return salt, name, array[2]


@dataclass(frozen=True, slots=True)
class Disclosure:
    """One disclosure: ``[salt, name, value]`` for an object member, ``[salt, value]``
    for an array element (``name`` is then None)."""

    encoded: str
    salt: str
    name: str | None
    value: Any
    digest: str

    @classmethod
    def create(cls, name: str | None, value: Any) -> Disclosure:
        salt = b64url_encode(secrets.token_bytes(SALT_BYTES))
        array = [salt, value] if name is None else [salt, name, value]
        encoded = b64url_encode(jose.json_dumps(array))
        return cls(encoded, salt, name, value, digest(encoded))

    @classmethod
    def decode(cls, encoded: str) -> Disclosure:
        """Parse strictly; raises DisclosureError (reason ``malformed-disclosure`` or
        ``bad-claim-name`` / ``reserved-claim-name``)."""
        salt, name, value = decode_disclosure(encoded)
        return cls(encoded, salt, name, value, digest(encoded))


@dataclass(frozen=True, slots=True)
class HolderBinding:
    """The holder's key as put into ``cnf``: a public JWK, or a DID URL (``did:imi:...#key``)."""

    jwk: Mapping[str, str] | None = None
    kid: str | None = None

    def __post_init__(self) -> None:
        if (self.jwk is None) == (self.kid is None):
            raise IssuanceError("holder binding needs exactly one of jwk or kid")
        if self.jwk is not None:
            try:
                PublicKey.from_jwk(self.jwk)
            except KeyError_ as exc:
                raise IssuanceError(f"holder JWK is invalid: {exc}") from exc

    @classmethod
    def from_key(cls, key: PublicKey) -> HolderBinding:
        return cls(jwk=key.to_jwk())

    def to_cnf(self) -> dict[str, Any]:
        if self.jwk is not None:
            return {"jwk": dict(self.jwk)}
        return {"kid": self.kid}


@dataclass(frozen=True, slots=True)
class Credential:
    """An issued SD-JWT: the signed JWT and all its disclosures."""

    jws: str
    disclosures: tuple[Disclosure, ...]

    def serialize(self) -> str:
        """Compact form ``<JWT>~<d1>~...~<dn>~`` (no KB-JWT)."""
        return SEPARATOR.join([self.jws, *(d.encoded for d in self.disclosures)]) + SEPARATOR


# --- building the payload --------------------------------------------------------------
class _Builder:
    """Collects disclosures while turning plain claims into their SD form."""

    __slots__ = ("decoys", "disclosures")

    def __init__(self, decoys: bool) -> None:
        self.disclosures: list[Disclosure] = []
        self.decoys = decoys

    def value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return self.obj(value, keep=frozenset())
        if isinstance(value, list):
            return [self.element(item) for item in value]
        return value

    def element(self, item: Any) -> dict[str, str]:
        disclosure = Disclosure.create(None, self.value(item))
        self.disclosures.append(disclosure)
        return {ARRAY_DIGEST_KEY: disclosure.digest}

    def obj(self, claims: Mapping[str, Any], keep: frozenset[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        digests: list[str] = []
        for name, value in claims.items():
            if name in keep:
                out[name] = value
                continue
            disclosure = Disclosure.create(name, self.value(value))
            self.disclosures.append(disclosure)
            digests.append(disclosure.digest)
        if digests and self.decoys:
            count = DECOYS_PER_OBJECT_MIN + secrets.randbelow(
                DECOYS_PER_OBJECT_MAX - DECOYS_PER_OBJECT_MIN + 1
            )
            digests.extend(digest(b64url_encode(secrets.token_bytes(SALT_BYTES))) for _ in range(count))
        if digests:
            out[SD_KEY] = sorted(digests)  # sorted: the order reveals nothing about claims
        return out


def _check_claims(value: Any, path: str, depth: int = 0) -> None:
    """Precondition of issuance: plain, finite JSON, nested no deeper than a verifier
    accepts, with no SD-JWT reserved names anywhere."""
    if isinstance(value, (dict, list)) and depth > JSON_DEPTH_MAX - 2:
        # one level of margin below the verifier's limit for the disclosure wrapping
        raise IssuanceError(f"claims nest deeper than {JSON_DEPTH_MAX - 1} containers at {path}")
    if isinstance(value, dict):
        for name, item in value.items():
            if not isinstance(name, str):
                raise IssuanceError(f"claim name at {path} must be a string")
            if name in RESERVED_CLAIM_NAMES or name == SD_ALG_KEY:
                raise IssuanceError(f"claim name {name!r} at {path} is reserved by SD-JWT")
            _check_claims(item, f"{path}.{name}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_claims(item, f"{path}[{index}]", depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise IssuanceError(f"claim at {path} is not a finite number")
    elif not (value is None or isinstance(value, (str, int, float, bool))):
        raise IssuanceError(f"claim at {path} is not a JSON value")


def age_predicates(birthdate: object, on: dt.date, thresholds: Collection[int]) -> dict[str, bool]:
    """``age_equal_or_over`` for each of ``thresholds``, for a ``YYYY-MM-DD`` birth date on day ``on``."""
    if not isinstance(birthdate, str) or len(birthdate) != 10:
        raise IssuanceError("birthdate must be YYYY-MM-DD", reason="bad-predicate-source")
    try:
        born = dt.date.fromisoformat(birthdate)
    except ValueError as exc:
        raise IssuanceError("birthdate must be YYYY-MM-DD", reason="bad-predicate-source") from exc
    before_birthday = (on.month, on.day) < (born.month, born.day)
    age = on.year - born.year - (1 if before_birthday else 0)
    return {str(threshold): age >= threshold for threshold in sorted(thresholds)}


# predicate claim -> derivation (source value, day, thresholds) -> members
_DERIVERS: Mapping[str, Callable[[object, dt.date, Collection[int]], dict[str, bool]]] = {
    AGE_PREDICATE_CLAIM: age_predicates,
}


def derive_predicates(predicates: Mapping[str, Collection[int]], claims: Mapping[str, Any],
                      on: dt.date) -> dict[str, dict[str, bool]]:
    """Each predicate claim with exactly the members ``predicates`` lists, derived from its
    source claim (:data:`~identity.constants.PREDICATE_SOURCES`) in ``claims`` on day ``on``.
    Raises IssuanceError: ``predicate-not-derivable`` (no known derivation),
    ``predicate-source-missing`` (e.g. no birthdate), ``bad-predicate-source``."""
    out: dict[str, dict[str, bool]] = {}
    for name, thresholds in predicates.items():
        source = PREDICATE_SOURCES.get(name)
        if source is None or name not in _DERIVERS:
            raise IssuanceError(f"no derivation is known for predicate {name!r}", reason="predicate-not-derivable")
        if source not in claims:
            raise IssuanceError(f"predicate {name!r} needs the claim {source!r}", reason="predicate-source-missing")
        out[name] = _DERIVERS[name](claims[source], on, thresholds)
    return out


def issue(
    claims: Mapping[str, Any],
    *,
    issuer_key: SigningKey,
    iss: str,
    vct: str,
    holder: HolderBinding,
    iat: int,
    exp: int | None = None,
    nbf: int | None = None,
    status: Mapping[str, Any] | None = None,
    kid: str | None = None,
    decoys: bool = True,
    predicates: Mapping[str, Collection[int]] | None = None,
    disclosable: Collection[str] | None = None,
) -> Credential:
    """Issue an SD-JWT VC. Times are integer seconds since the epoch.

    ``claims`` are the user claims (JSON); they must not name a claim SD-JWT VC
    keeps in the clear — pass those as arguments. ``predicates`` (claim → thresholds)
    are derived from ``claims`` (:func:`derive_predicates`) and added, each member its own
    disclosure. ``disclosable`` (default: every user claim) names the user claims issued
    as disclosures; the others are issued in the clear. ``kid`` defaults to the
    issuer key's RFC 7638 thumbprint. Raises :class:`IssuanceError`.
    """
    _check_claims(dict(claims), "$")
    clash = NEVER_DISCLOSABLE_CLAIMS.intersection(claims)
    if clash:
        raise IssuanceError(f"claims {sorted(clash)} are set by the issuer, not the claims file")
    if exp is not None and exp <= iat:
        raise IssuanceError("exp must be after iat")
    user = dict(claims)
    if predicates:
        given = set(predicates) & set(user)
        if given:
            raise IssuanceError(f"predicate claims {sorted(given)} are derived, not given",
                                reason="predicate-given")
        user.update(derive_predicates(predicates, user, dt.datetime.fromtimestamp(iat, tz=dt.UTC).date()))
    clear: dict[str, Any] = {"iss": iss, "vct": vct, "iat": iat, "cnf": holder.to_cnf()}
    if exp is not None:
        clear["exp"] = exp
    if nbf is not None:
        clear["nbf"] = nbf
    if status is not None:
        clear["status"] = dict(status)
    keep = set(clear)
    if disclosable is not None:
        keep.update(name for name in user if name not in disclosable and name not in (predicates or {}))
    builder = _Builder(decoys)
    payload = builder.obj({**clear, **user}, keep=frozenset(keep))
    payload[SD_ALG_KEY] = SD_ALG
    header = {"typ": TYP_SD_JWT_VC, "kid": kid if kid is not None else issuer_key.key_id}
    jws = jose.sign(header, payload, issuer_key)
    return Credential(jws, tuple(builder.disclosures))


__all__ = [
    "Credential",
    "Disclosure",
    "HolderBinding",
    "age_predicates",
    "decode_disclosure",
    "derive_predicates",
    "digest",
    "disclosed_by_digest",
    "issue",
]
