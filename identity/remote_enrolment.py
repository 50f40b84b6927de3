"""Remote (zero-visit) enrolment: another accredited agency's identity credential, presented
over OpenID4VP, as the proof of who a person is (sans-IO).

An agency (here: an :class:`~identity.issuer_agent.IssuerAgent`) acts as an OpenID4VP
verifier under its own did:imi (``client_id`` ``decentralized_identifier:<did>``, request
object signed by its assertion key, :mod:`identity.oid4vp`). It asks, by DCQL, for the
claims its configuration names from the identity credential types it accepts; the wallet
answers by ``direct_post``. Then, in :meth:`RemoteEnrolment.respond`:

1. the ``state`` is one this agency started and has not seen answered (a response is
   taken once: a replayed ``vp_token`` is refused, ``response-already-received``);
2. the ``vp_token`` passes the strict verifier over the ledger (``verify_one``, the light
   client): signature by an assertion key of an accredited issuer for that vct, status
   valid (not revoked, not suspended), KB-JWT by the credential's ``cnf`` key over this
   request's nonce and ``client_id`` — and the issuer is one the configuration accepts
   for that vct (``issuer-not-trusted`` otherwise);
3. the disclosed claims identify exactly ONE subject of the agency's register (every
   configured register field equals its claim: ``no-matching-subject`` /
   ``ambiguous-subject`` otherwise);
4. that subject is not enrolled to another holder (``subject-enrolled-elsewhere``); it is
   enrolled to the SAME holder that presented — the credential's ``cnf.jwk`` thumbprint,
   or its DID when ``cnf.kid`` names one — atomically with the check;
5. the answer is a ``redirect_uri`` (OpenID4VP 1.0 §8.2): a credential offer by reference
   (pre-authorized code, no PIN: the code goes to the presenting wallet directly). The
   credential endpoint still demands a proof by the enrolled holder.

Nothing presented is kept: the claims are compared in memory and dropped; the enrolment
record (subject, holder, ``via`` ``remote:<issuer DID>``, time) is all that remains.

Starting costs the agency no state (no global lockout): a ``state`` is minted like a
``c_nonce`` (:class:`~identity.oid4vci.NonceMint`: expiry, random bytes and an HMAC), the
request's nonce is an HMAC of the state, and the request object is rebuilt from the
state when the wallet fetches it. Only *answered* states are remembered, until they
expire (:data:`~identity.constants.REMOTE_ENROLMENT_ANSWERED_MAX`). The keys are per
process: after a restart, a started enrolment must be started again.

Configuration (:class:`RemoteEnrolmentConfig`, JSON)::

    {"accept": [{"issuer": "did:imi:…", "vct": "urn:…:resident-id:1",
                 "match": {"<register field>": "<claim path>"}}, …],
     "offer": ["<vct>", …]?,   # what to offer once enrolled (default: all this issuer offers)
     "batch": 1..10?}          # credentials (holder keys) per request (default 10)

Paths are dotted (``national_id``, ``address.locality``). Several issuers may be accepted
for one vct if they share its ``match``. Errors are :class:`~identity.errors.Oid4vpError`
with the stable reasons above; a configuration fault is ``ValueError``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from identity import dcql, oid4vp
from identity import did as didmod
from identity import oid4vci as vci
from identity.constants import (
    BATCH_SIZE_MAX,
    DCQL_PATH_DEPTH_MAX,
    DCQL_PATH_ELEMENT_CHARS_MAX,
    REMOTE_ENROLMENT_ANSWERED_MAX,
    REMOTE_ENROLMENT_CONFIG_BYTES_MAX,
    REMOTE_ENROLMENT_MATCH_FIELDS_MAX,
    REMOTE_ENROLMENT_REQUEST_TTL_S,
    REMOTE_ENROLMENT_SOURCES_MAX,
)
from identity.errors import Oid4vpError
from identity.issuer_agent import IssuerAgent
from identity.issuer_store import Enrolment
from identity.request import PresentationRequest
from ledger.errors import KeyError_
from ledger.keys import PublicKey, b64url_encode

VIA_PREFIX: Final = "remote:"
_NONCE_BYTES: Final = 24
_CONFIG_KEYS: Final = frozenset({"accept", "offer", "batch"})
_SOURCE_KEYS: Final = frozenset({"issuer", "vct", "match"})

VerifyOne = Callable[[str, PresentationRequest, int], Any]  # -> identity.verifier.VerificationResult


# --- configuration -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Source:
    """One accepted identity credential type: its issuers and ``match`` as (register field,
    claim path) pairs, both dotted."""

    vct: str
    issuers: frozenset[str]
    match: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class RemoteEnrolmentConfig:
    """What an agency accepts as proof of who a person is (module doc)."""

    sources: tuple[Source, ...]
    offer: tuple[str, ...] | None = None
    batch: int = BATCH_SIZE_MAX

    @classmethod
    def load(cls, path: Path) -> RemoteEnrolmentConfig:
        """Read and check the JSON file; ValueError with a readable message on any fault."""
        try:
            with open(path, "rb") as handle:
                raw = handle.read(REMOTE_ENROLMENT_CONFIG_BYTES_MAX + 1)
        except OSError as exc:
            raise ValueError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from exc
        if len(raw) > REMOTE_ENROLMENT_CONFIG_BYTES_MAX:
            raise ValueError(f"{str(path)!r} exceeds {REMOTE_ENROLMENT_CONFIG_BYTES_MAX} bytes")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ValueError(f"{str(path)!r} is not JSON: {exc}") from exc
        return cls.from_json(data)

    @classmethod
    def from_json(cls, data: object) -> RemoteEnrolmentConfig:
        if not isinstance(data, dict) or "accept" not in data or set(data) - _CONFIG_KEYS:
            raise ValueError('remote enrolment config must be {"accept": [...], "offer"?: [...], "batch"?: n}')
        accept = data["accept"]
        if not isinstance(accept, list) or not 0 < len(accept) <= REMOTE_ENROLMENT_SOURCES_MAX:
            raise ValueError(f"accept must list 1..{REMOTE_ENROLMENT_SOURCES_MAX} sources")
        by_vct: dict[str, Source] = {}
        for index, item in enumerate(accept):
            source = _source(item, f"accept[{index}]")
            known = by_vct.get(source.vct)
            if known is not None and known.match != source.match:
                raise ValueError(f"accept[{index}]: vct {source.vct} is accepted elsewhere with another match")
            if known is not None and source.issuers <= known.issuers:
                raise ValueError(f"accept[{index}]: {next(iter(source.issuers))} is listed twice for {source.vct}")
            by_vct[source.vct] = replace(source, issuers=source.issuers | (known.issuers if known else frozenset()))
        offer = data.get("offer")
        if offer is not None and (not isinstance(offer, list) or not 0 < len(offer) <= REMOTE_ENROLMENT_SOURCES_MAX
                                  or not all(isinstance(v, str) and v and not any(c.isspace() for c in v)
                                             for v in offer)):
            raise ValueError(f"offer must list 1..{REMOTE_ENROLMENT_SOURCES_MAX} credential types")
        batch = data.get("batch", BATCH_SIZE_MAX)
        if type(batch) is not int or not 1 <= batch <= BATCH_SIZE_MAX:
            raise ValueError(f"batch must be an integer 1..{BATCH_SIZE_MAX}")
        return cls(tuple(by_vct.values()), tuple(dict.fromkeys(offer)) if offer is not None else None, batch)

    def query(self) -> dcql.DcqlQuery:
        """The DCQL query: one credential query per accepted vct asking for its match claims;
        any one of them will do (``credential_sets``)."""
        credentials = [{"id": _query_id(i), "format": "dc+sd-jwt", "meta": {"vct_values": [s.vct]},
                        "claims": [{"path": _path(claim)} for _, claim in s.match]}
                       for i, s in enumerate(self.sources)]
        query: dict[str, Any] = {"credentials": credentials}
        if len(credentials) > 1:
            query["credential_sets"] = [{"options": [[c["id"]] for c in credentials], "required": True}]
        return dcql.parse_query(query)

    def registration_queries(self) -> list[dict[str, Any]]:
        """The ``queries`` of the ``gov.service_register`` payload this configuration needs."""
        return [{"vct": s.vct, "claims": [_path(claim) for _, claim in s.match]} for s in self.sources]


def _source(item: object, where: str) -> Source:
    if not isinstance(item, dict) or set(item) != _SOURCE_KEYS:
        raise ValueError(f"{where} must be {{issuer, vct, match}}")
    issuer, vct, match = item["issuer"], item["vct"], item["match"]
    if not isinstance(issuer, str) or not didmod.is_did(issuer):
        raise ValueError(f"{where}.issuer must be a did:imi")
    if not isinstance(vct, str) or not vct or any(c.isspace() for c in vct):
        raise ValueError(f"{where}.vct must be a non-empty string without spaces")
    if not isinstance(match, dict) or not 0 < len(match) <= REMOTE_ENROLMENT_MATCH_FIELDS_MAX:
        raise ValueError(f"{where}.match must map 1..{REMOTE_ENROLMENT_MATCH_FIELDS_MAX} register fields "
                         "to claim paths")
    pairs = []
    for field, claim in match.items():
        for name, value in (("register field", field), ("claim path", claim)):
            if not isinstance(value, str):
                raise ValueError(f"{where}.match: a {name} must be a dotted path")  # noqa: TRY004 - one type for bad JSON
            _path(value, f"{where}.match {name}")
        pairs.append((field, claim))
    if len({claim for _, claim in pairs}) != len(pairs):
        raise ValueError(f"{where}.match names a claim path twice")
    return Source(vct, frozenset({issuer}), tuple(sorted(pairs)))


def _path(dotted: str, where: str = "path") -> list[str]:
    segments = dotted.split(".")
    if not 0 < len(segments) <= DCQL_PATH_DEPTH_MAX or not all(
            0 < len(s) <= DCQL_PATH_ELEMENT_CHARS_MAX and s == s.strip() for s in segments):
        raise ValueError(f"{where} {dotted!r} must be 1..{DCQL_PATH_DEPTH_MAX} dot-separated names")
    return segments


def _query_id(index: int) -> str:
    return f"identity{index}"


# --- the flow ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Started:
    """A started enrolment: the ``openid4vp://`` URI for the wallet (QR code or link)."""

    state: str
    request_uri: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class Enrolled:
    """A verified presentation turned into an enrolment and an offer for the same holder."""

    enrolment: Enrolment
    redirect_uri: str  # openid-credential-offer://?credential_offer_uri=…
    offer_id: str


class RemoteEnrolment:
    """The agency ``issuer``'s remote enrolment under ``config`` (module doc). ``verify_one``
    is the strict verifier over the ledger (:func:`identity.http.verifier_service.ledger_verify_one`);
    ``request_base`` is the URL under which ``<base>/<state>`` serves request objects,
    ``response_uri`` where wallets post. Thread-safe."""

    __slots__ = ("_key", "_states", "config", "issuer", "request_base", "response_uri", "verify_one")

    def __init__(self, issuer: IssuerAgent, config: RemoteEnrolmentConfig, *, verify_one: VerifyOne,
                 request_base: str, response_uri: str, key: bytes | None = None) -> None:
        oid4vp.check_uri(response_uri, "response_uri")
        self.issuer = issuer
        self.config = config
        self.verify_one = verify_one
        self.request_base = request_base.rstrip("/")
        self.response_uri = response_uri
        self._key = key if key is not None else secrets.token_bytes(32)
        self._states = vci.NonceMint(ttl_s=REMOTE_ENROLMENT_REQUEST_TTL_S, used_max=REMOTE_ENROLMENT_ANSWERED_MAX)

    @property
    def client_id(self) -> str:
        return oid4vp.client_id_for(self.issuer.did)

    def start(self, now: int) -> Started:
        """A new enrolment request; stores nothing."""
        state = self._states.issue(now)
        uri = oid4vp.authorization_uri(self.client_id, f"{self.request_base}/{state}")
        return Started(state, uri, now + REMOTE_ENROLMENT_REQUEST_TTL_S)

    def request_object(self, state: str, now: int) -> str:
        """The signed request object of a live, unanswered ``state`` (rebuilt from it)."""
        return oid4vp.sign_request(self._request(state, now), self.issuer.key, self.issuer.kid)

    def _request(self, state: str, now: int) -> oid4vp.AuthorizationRequest:
        if self._states.used(state, now):
            raise Oid4vpError("this enrolment request was already answered", reason="response-already-received")
        try:
            expires_at = self._states.check(state, now)
        except vci.OAuthError as exc:
            raise Oid4vpError("no live enrolment request has this state", reason="unknown-state") from exc
        nonce = b64url_encode(hmac.new(self._key, b"nonce|" + state.encode(), hashlib.sha256).digest()[:_NONCE_BYTES])
        return oid4vp.new_request(self.issuer.did, self.response_uri, self.config.query(), nonce=nonce,
                                  state=state, now=expires_at - REMOTE_ENROLMENT_REQUEST_TTL_S,
                                  lifetime_s=REMOTE_ENROLMENT_REQUEST_TTL_S)

    def respond(self, form: Mapping[str, str], now: int) -> Enrolled | None:
        """Judge a ``direct_post`` (``vp_token`` and ``state``, or ``error``); None when the wallet
        declined. Raises :class:`Oid4vpError` (module doc) — and then nothing is enrolled."""
        state = form.get("state", "")
        request = self._request(state, now)
        try:
            self._states.consume(state, now)  # once, before judging: a concurrent replay loses
        except vci.OAuthError as exc:
            raise Oid4vpError("this enrolment request was already answered",
                              reason="response-already-received") from exc
        if "error" in form:
            return None
        token = oid4vp.parse_vp_token(form.get("vp_token"))
        holders: list[Mapping[str, Any]] = []
        verdict = oid4vp.check_response(request, token, lambda p, q: self._verify(p, q, now, holders))
        if not verdict.valid:
            raise Oid4vpError(f"the identity credential is not accepted: {verdict.detail}",
                              reason=verdict.reason or "invalid-vp-token")
        ((query_id, claims),) = verdict.claims.items()  # one option of one set: exactly one answer
        source = next(s for i, s in enumerate(self.config.sources) if _query_id(i) == query_id)
        kind, holder = _holder(holders[-1])
        subject = self._match(source, claims)
        return self._enrol(subject, kind, holder, str(claims.get("iss")), now)

    def _verify(self, presentation: str, question: PresentationRequest, now: int,
                holders: list[Mapping[str, Any]]) -> Any:
        source = next(s for s in self.config.sources if question.vct == frozenset({s.vct}))
        result = self.verify_one(presentation, replace(question, trusted_issuers=source.issuers), now)
        if result.valid:
            holders.append(result.claims.get("cnf") or {})
        return result

    def _match(self, source: Source, claims: Mapping[str, Any]) -> str:
        """The one register subject whose fields equal the presented claims."""
        wanted = [(field, claims.get(claim)) for field, claim in source.match]
        if not all(type(v) in (str, int) for _, v in wanted):
            raise Oid4vpError("a matched claim is not a string or number", reason="no-matching-subject")
        found = self.issuer.register.find(wanted)
        if not found:
            raise Oid4vpError("the presented identity matches no one in this agency's register",
                              reason="no-matching-subject")
        if len(found) > 1:
            raise Oid4vpError("the presented identity matches several people in this agency's register",
                              reason="ambiguous-subject")
        return found[0]

    def _enrol(self, subject: str, kind: str, holder: str, iss: str, now: int) -> Enrolled:
        offered = self.issuer.metadata(now)["credential_configurations_supported"]
        vcts = list(self.config.offer or offered)
        if not vcts or any(v not in offered for v in vcts):  # checked before anyone is enrolled
            raise Oid4vpError("this agency does not offer the configured credential types now",
                              reason="nothing-to-offer")
        enrolment = self.issuer.records.enrol_first(subject, kind, holder, via=VIA_PREFIX + iss, at=now)
        if (enrolment.kind, enrolment.holder) != (kind, holder):
            raise Oid4vpError("this person is enrolled to another holder here; ask the agency's staff",
                              reason="subject-enrolled-elsewhere")
        made = self.issuer.create_offer(subject, vcts, now, batch=self.config.batch, tx_code=False)
        reference = self.issuer.credential_issuer + vci.OFFER_PATH + made.offer_id
        return Enrolled(enrolment, vci.offer_uri_by_reference(reference), made.offer_id)


def _holder(cnf: Mapping[str, Any]) -> tuple[str, str]:
    """Who presented: ``("jwk", thumbprint)`` or ``("did", did)`` from a verified ``cnf``."""
    jwk, kid = cnf.get("jwk"), cnf.get("kid")
    if isinstance(jwk, dict):
        try:
            return "jwk", PublicKey.from_jwk(jwk).thumbprint()
        except (KeyError_, ValueError, TypeError) as exc:
            raise Oid4vpError(f"the credential's cnf.jwk is not usable: {exc}", reason="bad-holder") from exc
    did = kid.partition("#")[0] if isinstance(kid, str) else ""
    if not didmod.is_did(did):
        raise Oid4vpError("the credential is bound to no key or did:imi", reason="bad-holder")
    return "did", did


__all__ = [
    "VIA_PREFIX",
    "Enrolled",
    "RemoteEnrolment",
    "RemoteEnrolmentConfig",
    "Source",
    "Started",
]
