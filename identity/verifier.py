"""Strict verifier of SD-JWT VC presentations (RFC 9901 §7.1, §7.3; SD-JWT VC).

One recipe: :func:`verify_presentation` returns a :class:`VerificationResult`
(``valid``, the disclosed claims, a stable ``reason``). It never raises for bad
input; every failure is a :class:`identity.errors.VerificationError` turned
into a reason code. Time is an argument (``now``, integer seconds), never read
from a clock. Ledger-backed trust plugs in through three small interfaces:
:class:`IssuerKeyResolver`, :class:`HolderKeyResolver`, :class:`StatusChecker`;
offline implementations are :class:`FixedIssuerKey`, :class:`CnfHolderKeys`,
:class:`NoStatus` and :class:`InMemoryStatusLists`. An issuer key may come with the
published credential types (:class:`CredentialTypes`; on the ledger
:class:`identity.ledger_trust.LedgerIssuerKeys` always brings them): then the
credential is also checked against the definition of its ``vct``
(:meth:`identity.credtypes.CredentialType.check_credential`).

Checks run in this order; the first failure decides the reason.

==========================  ===================  =================================================
reason                      error class          when
==========================  ===================  =================================================
malformed-compact           FormatError          not ``<JWT>~<disclosure>~...~[<KB-JWT>]``, empty
                                                 disclosure slot, non-ASCII
too-large                   FormatError          presentation, JWS, disclosure count or digest
                                                 count over the limits in identity.constants
malformed-jws               FormatError          issuer JWT not 3 canonical base64url parts,
                                                 header/payload not JSON objects, ``crit``
malformed-json              FormatError          duplicate member names, NaN, too deep, not UTF-8
alg-not-allowed             FormatError          issuer ``alg`` not EdDSA/ES256 (``none``, HS256…)
wrong-typ                   FormatError          issuer header ``typ`` is not ``dc+sd-jwt``
missing-vc-claim            FormatError          ``iss`` or ``vct`` missing or not a string
unknown-issuer              IssuerError          the resolver knows no key for iss/kid
bad-signature               IssuerError          issuer signature invalid (or key alg ≠ ``alg``)
issuer-not-accredited       IssuerError          the issuer is not accredited for this ``vct``
unsupported-sd-alg          DisclosureError      ``_sd_alg`` is not ``sha-256``
malformed-disclosure        DisclosureError      not base64url JSON array of 2 or 3, salt not str
bad-claim-name              DisclosureError      disclosed claim name is not a string
reserved-claim-name         DisclosureError      disclosed claim name is ``_sd`` or ``...``
duplicate-disclosure        DisclosureError      the same disclosure (digest) appears twice
malformed-digests           DisclosureError      ``_sd`` not a list of strings, bad ``{"...": d}``
duplicate-digest            DisclosureError      a digest appears twice anywhere in the payload
misplaced-disclosure        DisclosureError      array-element disclosure in ``_sd`` or a name/
                                                 value disclosure in a ``{"...": d}`` position
claim-overwrite             DisclosureError      disclosed name already present in its object
non-disclosable-claim       DisclosureError      disclosure of iss/iat/nbf/exp/cnf/vct/status
unreferenced-disclosure     DisclosureError      a disclosure no digest refers to (RFC 9901 §7.1
                                                 step 5; the reference implementation skips it)
vct-not-published           CredentialTypeError  (with types) no published definition of ``vct``
vct-unavailable             CredentialTypeError  (with types) the definition cannot be read/verified
vct-other-issuer            CredentialTypeError  the definition of ``vct`` is not ``iss``'s
not-in-type-definition      CredentialTypeError  a claim the definition does not list, or a
                                                 predicate member (threshold) it does not publish
not-disclosable-in-type     CredentialTypeError  a claim the definition keeps in the clear came as
                                                 a disclosure, or with disclosures inside it
bad-time-claim              ValidityError        ``iat``/``nbf``/``exp`` present but not an integer
expired                     ValidityError        ``now >= exp + CLOCK_SKEW_S``
not-yet-valid               ValidityError        ``now + CLOCK_SKEW_S < nbf``
issued-in-future            ValidityError        ``iat > now + CLOCK_SKEW_S``
kb-missing                  KeyBindingError      the request needs key binding, none present
no-holder-key               KeyBindingError      ``cnf`` missing or neither ``jwk`` nor ``kid``
unknown-holder-key          KeyBindingError      ``cnf.kid`` cannot be resolved / bad cnf.jwk
kb-malformed-jws,           KeyBindingError      KB-JWT fails the strict JWS parse (same codes as
kb-malformed-json,                               above, ``kb-`` prefixed)
kb-alg-not-allowed,
kb-too-large
kb-wrong-typ                KeyBindingError      KB header ``typ`` is not ``kb+jwt``
kb-bad-signature            KeyBindingError      not signed by the ``cnf`` key
kb-bad-iat                  KeyBindingError      KB ``iat`` missing or not an integer
kb-stale                    KeyBindingError      KB ``iat < now - KB_IAT_WINDOW_S``
kb-future                   KeyBindingError      KB ``iat > now + CLOCK_SKEW_S``
kb-wrong-nonce              KeyBindingError      KB ``nonce`` ≠ the request's
kb-wrong-aud                KeyBindingError      KB ``aud`` ≠ the request's
kb-wrong-sd-hash            KeyBindingError      ``sd_hash`` ≠ hash of the presented SD-JWT
bad-status-claim            StatusError          ``status.status_list`` not {idx: int ≥ 0, uri: str}
status-unavailable          StatusError          no status list for the uri / index out of range
status-stale                StatusError          the status list is older than allowed
revoked                     StatusError          status INVALID
suspended                   StatusError          status SUSPENDED
vct-not-accepted            RequestError         ``vct`` not among the request's types
issuer-not-trusted          RequestError         ``iss`` not in the request's trusted issuers
claim-not-disclosed         RequestError         a requested claim or predicate was not disclosed
predicate-not-satisfied     RequestError         a predicate's disclosed value is not ``true``
credential-too-old          RequestError         ``now - iat > max_age_s`` (or no ``iat``)
==========================  ===================  =================================================
"""

from __future__ import annotations

import enum
import marshal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, Protocol

from identity import jose
from identity.constants import (
    ARRAY_DIGEST_KEY,
    CLOCK_SKEW_S,
    DIGESTS_MAX,
    DISCLOSURE_CHARS_MAX,
    DISCLOSURES_MAX,
    JSON_DEPTH_MAX,
    JWS_CHARS_MAX,
    KB_IAT_WINDOW_S,
    KB_JWT_CHARS_MAX,
    NEVER_DISCLOSABLE_CLAIMS,
    PREPARED_KEYS_MAX,
    PRESENTATION_CHARS_MAX,
    SD_ALG,
    SD_ALG_KEY,
    SD_KEY,
    SEPARATOR,
    STATUS_INVALID,
    STATUS_LIST_AGE_S_MAX,
    STATUS_SUSPENDED,
    STATUS_VALID,
    TYP_KB_JWT,
    TYP_SD_JWT_VC,
    VERIFIER_CACHE_ENTRIES_MAX,
)
from identity.credtypes import CredentialType
from identity.errors import (
    DisclosureError,
    FormatError,
    IssuerError,
    KeyBindingError,
    StatusError,
    ValidityError,
    VerificationError,
)
from identity.presentation import sd_hash
from identity.request import PresentationRequest, check_answer
from identity.sdjwt import disclosed_by_digest
from ledger.errors import KeyError_
from ledger.keys import PublicKey
from ledger.lru import BoundedLRU

JsonObject = dict[str, Any]


# --- pluggable trust ----------------------------------------------------------------------
class CredentialTypes(Protocol):
    def definition(self, vct: str) -> CredentialType:
        """The published definition of ``vct``; raise CredentialTypeError (vct-not-published,
        vct-unavailable)."""
        ...


@dataclass(frozen=True, slots=True)
class IssuerKey:
    """An issuer's verification key, the credential types it is accredited for (``None``:
    any type — only for offline use with a key the caller trusts fully) and where their
    published definitions come from (``None``: credentials are not checked against one)."""

    key: jose.PreparedKey
    vct: frozenset[str] | None
    types: CredentialTypes | None = None


class IssuerKeyResolver(Protocol):
    def resolve(self, iss: str, header: Mapping[str, Any]) -> IssuerKey:
        """Key for ``iss`` and the JOSE header (``kid``); raise IssuerError(unknown-issuer)."""
        ...


class HolderKeyResolver(Protocol):
    def resolve(self, cnf: Mapping[str, Any]) -> jose.PreparedKey:
        """Holder key from ``cnf`` (``jwk`` or ``kid`` DID URL); raise KeyBindingError."""
        ...


class CredentialStatus(enum.Enum):
    VALID = STATUS_VALID
    INVALID = STATUS_INVALID
    SUSPENDED = STATUS_SUSPENDED


_STATUS_BY_VALUE: Final[Mapping[int, CredentialStatus]] = {s.value: s for s in CredentialStatus}


class StatusReference(NamedTuple):
    """``status.status_list`` of a credential: index ``idx`` in the list at ``uri``.
    Immutable (a NamedTuple: built on every verification, cheaper than a frozen dataclass)."""

    idx: int
    uri: str


class StatusChecker(Protocol):
    def check(self, reference: StatusReference, *, now: int) -> CredentialStatus:
        """Status at ``now`` (seconds); raise StatusError (status-stale, status-unavailable)."""
        ...


# --- offline implementations ----------------------------------------------------------------
class FixedIssuerKey:
    """One trusted issuer key (e.g. from a JWK file). Optional ``iss`` must match; a header
    ``kid``, if present, must equal ``kid`` (default: the key's RFC 7638 thumbprint).
    ``memo_max`` > 0 remembers that many issuer JWTs that verified (see PreparedKey)."""

    __slots__ = ("_iss", "_issuer_key", "_kid")

    def __init__(
        self,
        public_key: PublicKey,
        *,
        iss: str | None = None,
        vct: frozenset[str] | None = None,
        kid: str | None = None,
        memo_max: int = 0,
        types: CredentialTypes | None = None,
    ) -> None:
        self._issuer_key = IssuerKey(jose.PreparedKey(public_key, memo_max=memo_max), vct, types)
        self._iss = iss
        self._kid = kid if kid is not None else public_key.thumbprint()

    def resolve(self, iss: str, header: Mapping[str, Any]) -> IssuerKey:
        if self._iss is not None and iss != self._iss:
            raise IssuerError(f"unknown issuer {iss!r}", reason="unknown-issuer")
        kid = header.get("kid")
        if kid is not None and kid != self._kid:
            raise IssuerError(f"unknown issuer key {kid!r}", reason="unknown-issuer")
        return self._issuer_key


class CnfHolderKeys:
    """Holder keys from ``cnf.jwk``, or ``cnf.kid`` looked up in ``did_keys`` (DID URL → key).
    Parsed JWKs are cached (bounded, ``cache_max``) so a busy verifier does not re-decode
    points; pass ``keys`` to share one :class:`~identity.jose.PreparedKeys` between resolvers."""

    __slots__ = ("_cache", "_did_keys")

    def __init__(self, did_keys: Mapping[str, PublicKey] | None = None, *, cache_max: int = PREPARED_KEYS_MAX,
                 keys: jose.PreparedKeys | None = None) -> None:
        self._did_keys = {k: jose.PreparedKey(v) for k, v in (did_keys or {}).items()}
        self._cache = keys if keys is not None else jose.PreparedKeys(cache_max)

    def resolve(self, cnf: Mapping[str, Any]) -> jose.PreparedKey:
        jwk = cnf.get("jwk")
        if isinstance(jwk, dict):
            return self._from_jwk(jwk)
        kid = cnf.get("kid")
        if isinstance(kid, str):
            key = self._did_keys.get(kid)
            if key is None:
                raise KeyBindingError(f"holder key {kid!r} is unknown", reason="unknown-holder-key")
            return key
        raise KeyBindingError("cnf has neither jwk nor kid", reason="no-holder-key")

    def _from_jwk(self, jwk: dict[str, Any]) -> jose.PreparedKey:
        if "d" in jwk:
            raise KeyBindingError("cnf.jwk contains a private key", reason="unknown-holder-key")
        try:
            return self._cache.from_jwk(jwk)
        except (KeyError_, ValueError) as exc:
            raise KeyBindingError(f"cnf.jwk is not a usable key: {exc}", reason="unknown-holder-key") from exc


class NoStatus:
    """No status source: a credential that carries ``status`` cannot be checked, so it fails."""

    __slots__ = ()

    def check(self, reference: StatusReference, *, now: int) -> CredentialStatus:
        raise StatusError(f"no status source for {reference.uri}", reason="status-unavailable")


@dataclass(frozen=True, slots=True)
class StatusListSnapshot:
    """Decoded status values (one per index) fetched at ``fetched_at`` (seconds)."""

    statuses: bytes
    fetched_at: int


@dataclass(frozen=True, slots=True)
class InMemoryStatusLists:
    """Status lists held in memory, keyed by uri; older than ``max_age_s`` means stale."""

    lists: Mapping[str, StatusListSnapshot] = field(default_factory=dict)
    max_age_s: int = STATUS_LIST_AGE_S_MAX

    def check(self, reference: StatusReference, *, now: int) -> CredentialStatus:
        snapshot = self.lists.get(reference.uri)
        if snapshot is None:
            raise StatusError(f"no status list {reference.uri}", reason="status-unavailable")
        if now - snapshot.fetched_at > self.max_age_s:
            raise StatusError("status list is stale", reason="status-stale")
        if reference.idx >= len(snapshot.statuses):
            raise StatusError("status index out of range", reason="status-unavailable")
        # a dict lookup, not CredentialStatus(value): the Enum call costs more than the rest
        known = _STATUS_BY_VALUE.get(snapshot.statuses[reference.idx])
        if known is None:  # application-specific values: not known to be valid
            raise StatusError("unknown status value", reason="status-unavailable")
        return known


# marshal format 2 has no back-references, so every load builds a tree that shares no
# container with another; it is also the fastest to load here (~2.4 µs for the bench's claims).
_CLAIMS_MARSHAL_VERSION: Final = 2


@dataclass(slots=True)
class _Checked:
    """One SD-JWT (issuer JWT and disclosures, without KB-JWT) whose pure checks all
    passed: parsing, every disclosure rule, and the digests. ``claims`` is the
    ``marshal`` form of the disclosed claims, so each hit gets its own copy.
    ``typed``: the credential type definition (the very object) it last passed against;
    the type check is a pure function of the text and the definition, so a hit with the
    same definition object skips it, and a new definition (a new read, a new version) is
    checked afresh. The only field ever set after creation."""

    jws: jose.Jws
    claims: bytes
    sd_hash: str
    typed: object = None


class VerifierCache:
    """Bounded memo of what the pure checks made of an exact SD-JWT text (the
    presentation up to its last ``~``), for a long-lived verifier that sees the same
    credential presented again (a daily login): the parsed issuer JWT, the disclosed
    claims (every disclosure rule passed) and its ``sd_hash``. These are pure
    functions of the text, so a hit returns what the checks would compute.

    A miss runs the checks exactly as without a cache. An SD-JWT is kept from its
    second sighting on: the first only notes its ``sd_hash`` (a 43-character digest
    of the text), so a verifier whose every presentation is new — one-time
    credentials of a batch — never pays for copying claims it will not see again.
    What depends on anything but the text runs on every call: the issuer key is
    resolved and its accreditation checked, the issuer signature checked (with
    ``FixedIssuerKey(memo_max=)`` a signature seen valid before is not
    re-computed), then the type definition (read every time; the check against it is
    skipped only when this text passed against that very definition object before),
    times against ``now``, the whole KB-JWT
    (parsed, signature computed, nonce/aud/iat/sd_hash), status and the request.
    Failures are never cached or noted. ``entries_max`` bounds each of the two maps
    (memory ≤ entries_max × (JWS_CHARS_MAX + 2 × PRESENTATION_CHARS_MAX + 43)).
    """

    __slots__ = ("_checked", "_seen")

    def __init__(self, entries_max: int = VERIFIER_CACHE_ENTRIES_MAX) -> None:
        self._checked: BoundedLRU[str, _Checked] = BoundedLRU(entries_max)
        self._seen: BoundedLRU[str, bool] = BoundedLRU(entries_max)  # sd_hash of SD-JWTs seen once

    def checked(self, sd_jwt: str) -> _Checked | None:
        return self._checked.get(sd_jwt)

    def seen_before(self, sd_hash: str) -> bool:
        """Whether an SD-JWT with this ``sd_hash`` passed the checks before (then it is
        worth keeping); otherwise note it, and say no."""
        if self._seen.pop(sd_hash) is not None:
            return True
        self._seen.put(sd_hash, True)
        return False

    def put_checked(self, sd_jwt: str, checked: _Checked) -> None:
        self._checked.put(sd_jwt, checked)


# --- result --------------------------------------------------------------------------------
class VerificationResult(NamedTuple):
    """``valid`` with the disclosed claims (``_sd``, ``_sd_alg``, decoys removed), or
    ``reason`` (a stable code from the table above) and a human ``detail``. Immutable
    (a NamedTuple: one per verification, a third of a frozen dataclass's cost)."""

    valid: bool
    claims: Mapping[str, Any] | None
    reason: str
    detail: str = ""


# --- disclosure processing (RFC 9901 §7.1 steps 3–5) ------------------------------------------
_NO_DIGESTS: Final[list[Any]] = []  # never mutated: the ``_sd`` of an object without one


class _Processor:
    """Applies disclosures to the issuer payload. ``pending`` maps digest → (name, value)
    for the presented disclosures not yet referenced; each is removed when its digest
    is met (a digest can be met once: a second sighting is ``duplicate-digest``), so
    whatever remains at the end is unreferenced."""

    __slots__ = ("_pending", "_seen")

    def __init__(self, pending: dict[str, tuple[str | None, Any]]) -> None:
        self._pending = pending
        self._seen: set[str] = set()

    def run(self, payload: JsonObject) -> JsonObject:
        out = self._object(payload, 1, True)
        if self._pending:
            raise DisclosureError(
                "a disclosure is not referenced by any digest", reason="unreferenced-disclosure"
            )
        return out

    def _see(self, dig: Any) -> tuple[str | None, Any] | None:
        if not isinstance(dig, str):
            raise DisclosureError("digest must be a string", reason="malformed-digests")
        seen = self._seen
        if dig in seen:
            raise DisclosureError("digest appears more than once", reason="duplicate-digest")
        seen.add(dig)
        return self._pending.pop(dig, None)

    def _value(self, value: Any, depth: int) -> Any:
        if isinstance(value, dict):
            return self._object(value, depth + 1, False)
        if isinstance(value, list):
            return self._array(value, depth + 1)
        return value

    def _object(self, node: JsonObject, depth: int, top: bool) -> JsonObject:
        if depth > JSON_DEPTH_MAX:
            raise FormatError("claims nest too deeply", reason="malformed-json")
        digests = node.get(SD_KEY, _NO_DIGESTS)
        if not isinstance(digests, list):
            raise DisclosureError("_sd must be an array", reason="malformed-digests")
        if len(self._seen) + len(digests) > DIGESTS_MAX:
            raise FormatError("too many digests", reason="too-large")
        # Copied in C, then ``_sd`` (and ``_sd_alg`` at the top) dropped and containers
        # replaced in member order — the order the checks below meet them in.
        out: JsonObject = dict(node)
        if digests is not _NO_DIGESTS:
            del out[SD_KEY]
        if top:
            out.pop(SD_ALG_KEY, None)
        # _value inlined in both loops: one call per nested container, not two
        for member, member_value in out.items():
            if isinstance(member_value, dict):  # same key below: the dict does not resize
                out[member] = self._object(member_value, depth + 1, False)
            elif isinstance(member_value, list):
                out[member] = self._array(member_value, depth + 1)
        seen, pending = self._seen, self._pending
        for dig in digests:
            # _see inlined: this loop meets every digest of the credential, decoys included
            if not isinstance(dig, str):
                raise DisclosureError("digest must be a string", reason="malformed-digests")
            if dig in seen:
                raise DisclosureError("digest appears more than once", reason="duplicate-digest")
            seen.add(dig)
            found = pending.pop(dig, None)
            if found is None:
                continue  # a decoy or an undisclosed claim
            name, value = found
            if name is None:
                raise DisclosureError("array element disclosure in _sd", reason="misplaced-disclosure")
            if name in out:
                raise DisclosureError(f"claim {name!r} already present", reason="claim-overwrite")
            if top and name in NEVER_DISCLOSABLE_CLAIMS:
                raise DisclosureError(f"claim {name!r} must not be disclosable", reason="non-disclosable-claim")
            if isinstance(value, dict):
                value = self._object(value, depth + 1, False)
            elif isinstance(value, list):
                value = self._array(value, depth + 1)
            out[name] = value
        return out

    def _array(self, node: list[Any], depth: int) -> list[Any]:
        if depth > JSON_DEPTH_MAX:
            raise FormatError("claims nest too deeply", reason="malformed-json")
        if len(self._seen) + len(node) > DIGESTS_MAX:
            raise FormatError("too many digests", reason="too-large")
        out: list[Any] = []
        for item in node:
            if isinstance(item, dict) and ARRAY_DIGEST_KEY in item:
                if len(item) != 1:
                    raise DisclosureError("array digest object has extra members", reason="malformed-digests")
                found = self._see(item[ARRAY_DIGEST_KEY])
                if found is None:
                    continue
                if found[0] is not None:
                    raise DisclosureError(
                        "object property disclosure in an array position", reason="misplaced-disclosure"
                    )
                out.append(self._value(found[1], depth))
            else:
                out.append(self._value(item, depth))
        return out


# --- the checks -------------------------------------------------------------------------------
def _split(presentation: Any) -> tuple[str, list[str], str]:
    if not isinstance(presentation, str):
        raise FormatError("presentation must be a string", reason="malformed-compact")
    if len(presentation) > PRESENTATION_CHARS_MAX:
        raise FormatError("presentation exceeds the size limit", reason="too-large")
    if not presentation.isascii():
        raise FormatError("presentation must be ASCII", reason="malformed-compact")
    parts = presentation.split(SEPARATOR)
    if len(parts) < 2:
        raise FormatError("no '~' separator", reason="malformed-compact")
    jwt, disclosures, kb = parts[0], parts[1:-1], parts[-1]
    if len(disclosures) > DISCLOSURES_MAX:
        raise FormatError("too many disclosures", reason="too-large")
    for encoded in disclosures:
        if not encoded:
            raise FormatError("empty disclosure", reason="malformed-compact")
        if len(encoded) > DISCLOSURE_CHARS_MAX:
            raise FormatError("disclosure exceeds the size limit", reason="too-large")
    return jwt, disclosures, kb


def _check_issuer(jws: jose.Jws, issuer_keys: IssuerKeyResolver) -> IssuerKey:
    if jws.header.get("typ") != TYP_SD_JWT_VC:
        raise FormatError(f"typ must be {TYP_SD_JWT_VC}", reason="wrong-typ")
    iss, vct = jws.payload.get("iss"), jws.payload.get("vct")
    if not isinstance(iss, str) or not isinstance(vct, str):
        raise FormatError("iss and vct must be strings", reason="missing-vc-claim")
    issuer = issuer_keys.resolve(iss, jws.header)
    if not jws.verify(issuer.key):
        raise IssuerError("issuer signature does not verify", reason="bad-signature")
    if issuer.vct is not None and vct not in issuer.vct:
        raise IssuerError(f"issuer is not accredited for {vct!r}", reason="issuer-not-accredited")
    sd_alg = jws.payload.get(SD_ALG_KEY, SD_ALG)
    if sd_alg != SD_ALG:
        raise DisclosureError(f"_sd_alg {sd_alg!r} is not supported", reason="unsupported-sd-alg")
    return issuer


def _check_type(issuer: IssuerKey, payload: Mapping[str, Any], claims: JsonObject) -> None:
    """The credential against the published definition of its ``vct`` (when the issuer
    key comes with types); ``iss``/``vct`` are strings (checked by :func:`_check_issuer`)."""
    if issuer.types is not None:
        issuer.types.definition(payload["vct"]).check_credential(payload["iss"], payload, claims)


def _int_claim(payload: Mapping[str, Any], name: str) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidityError(f"{name} must be an integer NumericDate", reason="bad-time-claim")
    return value


def _check_times(payload: Mapping[str, Any], now: int) -> None:
    exp, nbf, iat = _int_claim(payload, "exp"), _int_claim(payload, "nbf"), _int_claim(payload, "iat")
    if exp is not None and now >= exp + CLOCK_SKEW_S:
        raise ValidityError("credential expired", reason="expired")
    if nbf is not None and now + CLOCK_SKEW_S < nbf:
        raise ValidityError("credential not yet valid", reason="not-yet-valid")
    if iat is not None and iat > now + CLOCK_SKEW_S:
        raise ValidityError("credential issued in the future", reason="issued-in-future")


def _parse_kb(token: str) -> jose.Jws:
    try:
        return jose.parse(token, chars_max=KB_JWT_CHARS_MAX)
    except FormatError as exc:
        raise KeyBindingError(f"KB-JWT: {exc}", reason="kb-" + exc.reason) from exc


def _check_key_binding(
    kb_token: str,
    expected_sd_hash: str,
    payload: Mapping[str, Any],
    holder_keys: HolderKeyResolver,
    request: PresentationRequest,
    now: int,
) -> None:
    cnf = payload.get("cnf")
    if not isinstance(cnf, dict):
        raise KeyBindingError("credential has no cnf holder key", reason="no-holder-key")
    holder = holder_keys.resolve(cnf)
    kb = _parse_kb(kb_token)
    if kb.header.get("typ") != TYP_KB_JWT:
        raise KeyBindingError(f"KB-JWT typ must be {TYP_KB_JWT}", reason="kb-wrong-typ")
    if not kb.verify(holder):
        raise KeyBindingError("KB-JWT not signed by the holder key", reason="kb-bad-signature")
    iat = kb.payload.get("iat")
    if not isinstance(iat, int) or isinstance(iat, bool):
        raise KeyBindingError("KB-JWT iat must be an integer", reason="kb-bad-iat")
    if iat < now - KB_IAT_WINDOW_S:
        raise KeyBindingError("KB-JWT is too old", reason="kb-stale")
    if iat > now + CLOCK_SKEW_S:
        raise KeyBindingError("KB-JWT is from the future", reason="kb-future")
    if kb.payload.get("nonce") != request.nonce:
        raise KeyBindingError("KB-JWT nonce does not match", reason="kb-wrong-nonce")
    if kb.payload.get("aud") != request.aud:
        raise KeyBindingError("KB-JWT aud does not match", reason="kb-wrong-aud")
    if kb.payload.get("sd_hash") != expected_sd_hash:
        raise KeyBindingError("KB-JWT sd_hash does not match", reason="kb-wrong-sd-hash")


def _check_status(payload: Mapping[str, Any], status: StatusChecker, now: int) -> None:
    claim = payload.get("status")
    if claim is None:
        return
    status_list = claim.get("status_list") if isinstance(claim, dict) else None
    if not isinstance(status_list, dict):
        raise StatusError("status claim has no status_list", reason="bad-status-claim")
    idx, uri = status_list.get("idx"), status_list.get("uri")
    if not isinstance(idx, int) or isinstance(idx, bool) or idx < 0 or not isinstance(uri, str):
        raise StatusError("status_list needs idx (int >= 0) and uri", reason="bad-status-claim")
    result = status.check(StatusReference(idx, uri), now=now)
    if result is CredentialStatus.INVALID:
        raise StatusError("credential is revoked", reason="revoked")
    if result is CredentialStatus.SUSPENDED:
        raise StatusError("credential is suspended", reason="suspended")


def check_presentation(
    presentation: str,
    request: PresentationRequest,
    *,
    issuer_keys: IssuerKeyResolver,
    holder_keys: HolderKeyResolver,
    status: StatusChecker,
    now: int,
    cache: VerifierCache | None = None,
) -> JsonObject:
    """Run every check; return the disclosed claims or raise VerificationError."""
    checked = None
    if cache is not None and presentation.__class__ is str and len(presentation) <= PRESENTATION_CHARS_MAX \
            and presentation.isascii():
        # what _split checks of the whole; the SD-JWT part passed the rest when it was cached
        cut = presentation.rfind(SEPARATOR) + 1
        if cut:
            checked = cache.checked(presentation[:cut])
    if checked is not None:
        jws, kb_token, expected_sd_hash = checked.jws, presentation[cut:], checked.sd_hash
        issuer = _check_issuer(jws, issuer_keys)
        claims: JsonObject = marshal.loads(checked.claims)
    else:
        jws, issuer, claims, kb_token, expected_sd_hash = _check_sd_jwt(presentation, issuer_keys, cache)
    payload = jws.payload
    if checked is None:
        _check_type(issuer, payload, claims)
    elif issuer.types is not None:
        definition = issuer.types.definition(payload["vct"])
        if checked.typed is not definition:
            definition.check_credential(payload["iss"], payload, claims)
            checked.typed = definition
    _check_times(payload, now)
    if kb_token:
        _check_key_binding(kb_token, expected_sd_hash, payload, holder_keys, request, now)
    elif request.require_key_binding:
        raise KeyBindingError("key binding is required", reason="kb-missing")
    _check_status(payload, status, now)
    check_answer(request, claims, now=now)
    return claims


def _check_sd_jwt(
    presentation: str, issuer_keys: IssuerKeyResolver, cache: VerifierCache | None
) -> tuple[jose.Jws, IssuerKey, JsonObject, str, str]:
    """Parse, check the issuer and apply the disclosures: ``(jws, issuer, claims, kb_token,
    sd_hash)``. With a cache, the pure result is remembered for the SD-JWT text (from its
    second sighting)."""
    jwt, encoded, kb_token = _split(presentation)
    jws = jose.parse(jwt, chars_max=JWS_CHARS_MAX)
    issuer = _check_issuer(jws, issuer_keys)
    # digest → (name, value); every disclosure is decoded (and may fail) before a
    # repeated one is reported, as the reason table orders it.
    pending = disclosed_by_digest(encoded)
    if len(pending) != len(encoded):
        raise DisclosureError("disclosure presented twice", reason="duplicate-disclosure")
    claims = _Processor(pending).run(jws.payload)
    sd_jwt = presentation[: len(presentation) - len(kb_token)]
    expected_sd_hash = sd_hash(sd_jwt)
    if cache is not None and cache.seen_before(expected_sd_hash):
        cache.put_checked(sd_jwt, _Checked(jws, marshal.dumps(claims, _CLAIMS_MARSHAL_VERSION), expected_sd_hash))
    return jws, issuer, claims, kb_token, expected_sd_hash


def verify_presentation(
    presentation: str,
    request: PresentationRequest,
    *,
    issuer_keys: IssuerKeyResolver,
    holder_keys: HolderKeyResolver,
    status: StatusChecker,
    now: int,
    cache: VerifierCache | None = None,
) -> VerificationResult:
    """Verify a compact SD-JWT(+KB) against ``request`` at ``now`` (seconds). Never raises
    for bad input: the result says valid, or why not. ``cache`` (optional) spares
    re-parsing a credential seen before; the verdict is the same with or without it."""
    try:
        claims = check_presentation(
            presentation, request, issuer_keys=issuer_keys, holder_keys=holder_keys,
            status=status, now=now, cache=cache,
        )
    except VerificationError as exc:
        return VerificationResult(False, None, exc.reason, str(exc))
    return VerificationResult(True, claims, "ok")


__all__ = [
    "CnfHolderKeys",
    "CredentialStatus",
    "CredentialTypes",
    "FixedIssuerKey",
    "HolderKeyResolver",
    "InMemoryStatusLists",
    "IssuerKey",
    "IssuerKeyResolver",
    "NoStatus",
    "StatusChecker",
    "StatusListSnapshot",
    "StatusReference",
    "VerificationResult",
    "VerifierCache",
    "check_presentation",
    "verify_presentation",
]
