"""OpenID4VP 1.0: the signed request, the wallet's answer and the verifier's verdict (sans-IO).

A registered service (:mod:`identity.services`) asks its question as an
authorization request (OpenID4VP 1.0 §5) carried in a signed request object (JAR,
RFC 9101; header ``typ`` ``oauth-authz-req+jwt``) that the wallet fetches from
``request_uri``. The ``client_id`` uses the ``decentralized_identifier`` prefix: the
service's did:imi, whose key on the ledger signs the request object. The question
is a DCQL query (:mod:`identity.dcql`); the answer goes back by ``direct_post`` to
``response_uri`` as a ``vp_token``: a JSON object mapping each credential query id to
a list of SD-JWT VC presentations whose KB-JWT binds the request's ``nonce`` and, as
``aud``, the ``client_id``.

No IO here: the caller fetches and posts, and passes the clock (seconds) and a
resolver for the service's key (through the light client in a real wallet,
:class:`identity.ledger_trust.LedgerServiceKeys`). Errors are
:class:`~identity.errors.Oid4vpError` with a stable ``reason``.

Mapping DCQL onto the strict verifier: a claims query whose ``values`` is ``[true]``
is a predicate (``["age_equal_or_over", "18"]``: disclosed and true); any other is a
claim that must be disclosed. Claims path pointers with ``null`` (every array element)
are not supported for SD-JWT VC answers here and are refused when a request is made.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from identity import dcql, jose
from identity.constants import (
    CLOCK_SKEW_S,
    OID4VP_NONCE_CHARS_MAX,
    OID4VP_REQUEST_LIFETIME_S_MAX,
    OID4VP_REQUEST_OBJECT_CHARS_MAX,
    OID4VP_URI_CHARS_MAX,
    OID4VP_VP_TOKEN_CHARS_MAX,
)
from identity.errors import DcqlError, FormatError, Oid4vpError
from identity.request import PresentationRequest, lookup
from ledger.keys import PublicKey

SCHEME = "openid4vp"
CLIENT_ID_PREFIX = "decentralized_identifier:"
REQUEST_OBJECT_TYP = "oauth-authz-req+jwt"
RESPONSE_TYPE = "vp_token"
RESPONSE_MODE = "direct_post"
# RFC 9101 §4 / OpenID4VP 1.0 §5.8: a request object for a wallet found by static discovery.
REQUEST_OBJECT_AUD = "https://self-issued.me/v2"

ServiceKeyResolver = Callable[[str, str], PublicKey]  # (service DID, kid) -> its key


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """The parameters of one request (the request object's claims)."""

    client_id: str  # "decentralized_identifier:did:imi:…"
    response_uri: str
    nonce: str
    state: str
    dcql_query: dcql.DcqlQuery
    iat: int
    exp: int

    @property
    def service_did(self) -> str:
        return self.client_id.removeprefix(CLIENT_ID_PREFIX)

    def claims(self) -> dict[str, Any]:
        # No ``iss``: RFC 9101 makes it optional, OpenID4VP 1.0's own decentralized_identifier
        # example leaves it out, and wallets that still read it as the pre-1.0 bare DID (the
        # ``did`` scheme) refuse a request whose ``kid`` does not start with it.
        return {
            "aud": REQUEST_OBJECT_AUD, "client_id": self.client_id,
            "response_type": RESPONSE_TYPE, "response_mode": RESPONSE_MODE,
            "response_uri": self.response_uri, "nonce": self.nonce, "state": self.state,
            "dcql_query": self.dcql_query.to_json(), "iat": self.iat, "exp": self.exp,
        }


def client_id_for(did: str) -> str:
    return CLIENT_ID_PREFIX + did


def new_request(service_did: str, response_uri: str, query: dcql.DcqlQuery, *, nonce: str, state: str,
                now: int, lifetime_s: int) -> AuthorizationRequest:
    """A request; refuses what our verifier could not check (see the module docstring)."""
    if not 0 < lifetime_s <= OID4VP_REQUEST_LIFETIME_S_MAX:
        raise ValueError(f"lifetime_s must be 1..{OID4VP_REQUEST_LIFETIME_S_MAX}")
    for item in query.credentials:
        for claim in item.claims or ():
            if any(element is None for element in claim.path):
                raise Oid4vpError(f"{item.id}: claims path {list(claim.path)} selects every array element; "
                                  "ask for elements by index", reason="unsupported-path")
    request = AuthorizationRequest(client_id_for(service_did), response_uri, nonce, state, query, now,
                                   now + lifetime_s)
    _check_parameters(request.claims(), request.client_id)
    return request


def sign_request(request: AuthorizationRequest, key: Any, kid: str) -> str:
    """The compact request object, signed by ``key`` (a :class:`ledger.keys.SigningKey`)."""
    return jose.sign({"typ": REQUEST_OBJECT_TYP, "kid": kid}, request.claims(), key)


def authorization_uri(client_id: str, request_uri: str) -> str:
    """``openid4vp://?client_id=…&request_uri=…`` for a QR code or a same-device link."""
    query = urllib.parse.urlencode({"client_id": client_id, "request_uri": request_uri})
    return f"{SCHEME}://?{query}"


def parse_authorization_uri(uri: str) -> tuple[str, str]:
    """(client_id, request_uri) of an ``openid4vp://`` URI, or :class:`Oid4vpError`."""
    if not isinstance(uri, str) or len(uri) > OID4VP_URI_CHARS_MAX:
        raise Oid4vpError("not an openid4vp URI", reason="invalid_request")
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme != SCHEME:
        raise Oid4vpError(f"the URI scheme must be {SCHEME}", reason="invalid_request")
    params = urllib.parse.parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    if any(len(v) != 1 for v in params.values()) or set(params) - {"client_id", "request_uri",
                                                                   "request_uri_method"}:
        raise Oid4vpError("the URI must carry client_id and request_uri once each", reason="invalid_request")
    client_id, request_uri = params.get("client_id", [""])[0], params.get("request_uri", [""])[0]
    if params.get("request_uri_method", ["get"])[0] != "get":
        raise Oid4vpError("only request_uri_method get is supported", reason="invalid_request_uri_method")
    if not client_id.startswith(CLIENT_ID_PREFIX):
        raise Oid4vpError("client_id must use the decentralized_identifier prefix", reason="invalid_client")
    check_uri(request_uri, "request_uri")
    return client_id, request_uri


def open_request(request_object: str, *, client_id: str, service_key: ServiceKeyResolver,
                 now: int) -> AuthorizationRequest:
    """Verify a fetched request object for ``client_id`` and return its parameters.

    Checks, in order: the JWS and its ``typ``; that ``kid`` is a key of the service
    DID and the signature is by it; that the signed ``client_id`` is the one of the URI
    (§5.10, RFC 9101 §6.3); response type and mode; times; nonce and state; the DCQL query.
    """
    if not isinstance(request_object, str) or len(request_object) > OID4VP_REQUEST_OBJECT_CHARS_MAX:
        raise Oid4vpError("request object missing or too large", reason="invalid_request_object")
    try:
        jws = jose.parse(request_object, chars_max=OID4VP_REQUEST_OBJECT_CHARS_MAX)
    except FormatError as exc:
        raise Oid4vpError(f"request object: {exc}", reason="invalid_request_object") from exc
    if jws.header.get("typ") != REQUEST_OBJECT_TYP:
        raise Oid4vpError(f"request object typ must be {REQUEST_OBJECT_TYP}", reason="invalid_request_object")
    did = client_id.removeprefix(CLIENT_ID_PREFIX)
    kid = jws.header.get("kid")
    if not isinstance(kid, str) or not kid.startswith(did + "#"):
        raise Oid4vpError("request object kid is not a key of the client's DID", reason="invalid_request_object")
    key = service_key(did, kid)
    if not jws.verify(jose.PreparedKey(key)):
        raise Oid4vpError("request object not signed by the service's key", reason="invalid_request_object")
    claims = jws.payload
    _check_parameters(claims, client_id)
    iat, exp = claims.get("iat"), claims.get("exp")
    if type(iat) is not int or type(exp) is not int or not iat < exp <= iat + OID4VP_REQUEST_LIFETIME_S_MAX:
        raise Oid4vpError("request object iat/exp missing or out of bounds", reason="invalid_request_object")
    if iat > now + CLOCK_SKEW_S or exp <= now - CLOCK_SKEW_S:
        raise Oid4vpError("request object is expired or not yet valid", reason="request-expired")
    try:
        query = dcql.parse_query(claims.get("dcql_query"))
    except DcqlError as exc:
        raise Oid4vpError(f"dcql_query: {exc}", reason="invalid_request") from exc
    return AuthorizationRequest(client_id, claims["response_uri"], claims["nonce"], claims["state"], query,
                                iat, exp)


def _check_parameters(claims: Mapping[str, Any], client_id: str) -> None:
    if claims.get("client_id") != client_id:
        raise Oid4vpError("the signed client_id differs from the URI's", reason="invalid_client")
    if claims.get("response_type") != RESPONSE_TYPE or claims.get("response_mode") != RESPONSE_MODE:
        raise Oid4vpError("only response_type vp_token with response_mode direct_post is supported",
                          reason="invalid_request")
    if "presentation_definition" in claims or "scope" in claims:
        raise Oid4vpError("the query must be a dcql_query alone", reason="invalid_request")
    check_uri(claims.get("response_uri"), "response_uri")
    for name in ("nonce", "state"):
        value = claims.get(name)
        if not isinstance(value, str) or not 0 < len(value) <= OID4VP_NONCE_CHARS_MAX:
            raise Oid4vpError(f"{name} must be 1..{OID4VP_NONCE_CHARS_MAX} characters", reason="invalid_request")


def check_uri(value: object, name: str) -> None:
    """HTTPS, or plain HTTP to a loopback address (a local service, the tests)."""
    if not isinstance(value, str) or len(value) > OID4VP_URI_CHARS_MAX:
        raise Oid4vpError(f"{name} missing or too long", reason="invalid_request")
    parts = urllib.parse.urlsplit(value)
    loopback = parts.hostname in {"127.0.0.1", "localhost", "::1"}
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise Oid4vpError(f"{name} must be https (or http on loopback)", reason="invalid_request")


# --- from DCQL to the strict verifier's question ---------------------------------------------------
def dotted(path: dcql.ClaimPath) -> str:
    """A claims path pointer as the wallet's and verifier's dotted path (no nulls)."""
    if None in path:  # elements are str, int or None, and only None equals None
        raise Oid4vpError("claims paths with null are not supported", reason="unsupported-path")
    return ".".join(map(str, path))


def presentation_requests(request: AuthorizationRequest, query: dcql.CredentialQuery) -> list[PresentationRequest]:
    """The strict verifier's question for one credential query: one per ``claim_sets``
    option, most preferred first (a single one without ``claim_sets``)."""
    claims = {c.id: c for c in query.claims or ()}
    options: Iterable[Sequence[dcql.ClaimsQuery]]
    if query.claim_sets is None:
        options = [tuple(query.claims or ())]
    else:
        options = [tuple(claims[i] for i in option) for option in query.claim_sets]
    out = []
    for option in options:
        predicates = tuple(dotted(c.path) for c in option if c.values == (True,))
        plain = tuple(dotted(c.path) for c in option if c.values != (True,))
        out.append(PresentationRequest(
            nonce=request.nonce, aud=request.client_id, vct=frozenset(query.vct_values or ()),
            claims=plain, predicates=predicates,
            require_key_binding=query.require_cryptographic_holder_binding))
    return out


def required_query_ids(query: dcql.DcqlQuery, answerable: Callable[[str], bool]) -> list[str]:
    """The credential query ids a wallet must answer: all of them without
    ``credential_sets``; else, for each required set, its first option whose queries are
    all ``answerable`` (optional sets are left out: the fewest disclosures). Raises
    :class:`Oid4vpError` (``access_denied``) when a required set cannot be met."""
    if query.credential_sets is None:
        ids = [c.id for c in query.credentials]
        missing = [i for i in ids if not answerable(i)]
        if missing:
            raise Oid4vpError(f"nothing held answers {', '.join(missing)}", reason="access_denied")
        return ids
    chosen: list[str] = []
    for index, item in enumerate(query.credential_sets):
        if not item.required:
            continue
        option = next((o for o in item.options if all(answerable(i) for i in o)), None)
        if option is None:
            raise Oid4vpError(f"credential set {index} cannot be met", reason="access_denied")
        chosen += [i for i in option if i not in chosen]
    return chosen


# --- the wallet's side --------------------------------------------------------------------------
class Holder(Protocol):
    """What :func:`wallet_answer` needs of a wallet (:class:`identity.wallet.Wallet`)."""

    def candidates(self, request: PresentationRequest, *, now: int) -> list[str]: ...

    def answer(self, request: PresentationRequest, *, now: int, credential: str | None = None,
               verifier: str | None = None, verifier_names: Mapping[str, str] | None = None) -> str: ...


def wallet_answer(holder: Holder, request: AuthorizationRequest, *, now: int, verifier: str | None = None,
                  verifier_names: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """The ``vp_token`` for ``request``: for each credential query the wallet must answer
    (:func:`required_query_ids`), one presentation disclosing only the first ``claim_sets``
    option it can meet. ``verifier`` (the service's registered name) and ``verifier_names``
    (that name per language) go to the history.
    Raises :class:`Oid4vpError` (``access_denied``) when the wallet cannot answer."""
    query = request.dcql_query
    chosen: dict[str, PresentationRequest] = {}
    for item in query.credentials:
        for question in presentation_requests(request, item):
            if holder.candidates(question, now=now):
                chosen[item.id] = question
                break
    token: dict[str, list[str]] = {}
    for query_id in required_query_ids(query, lambda query_id: query_id in chosen):
        token[query_id] = [holder.answer(chosen[query_id], now=now, verifier=verifier,
                                         verifier_names=verifier_names)]
    return token


# --- the verifier's side ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Verdict:
    """``valid`` and, per credential query id, only the requested claims; or ``reason``."""

    valid: bool
    reason: str | None
    claims: dict[str, dict[str, Any]]
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"valid": self.valid, "reason": self.reason, "claims": self.claims, "detail": self.detail}


VerifyOne = Callable[[str, PresentationRequest], Any]  # -> identity.verifier.VerificationResult


def parse_vp_token(value: object) -> dict[str, list[str]]:
    """The ``vp_token`` parameter (a JSON text) as {credential query id: [presentation]}."""
    if not isinstance(value, str) or not 0 < len(value) <= OID4VP_VP_TOKEN_CHARS_MAX:
        raise Oid4vpError("vp_token missing or too large", reason="invalid-vp-token")
    try:
        token = jose.json_loads(value.encode())
    except FormatError as exc:
        raise Oid4vpError(f"vp_token is not JSON: {exc}", reason="invalid-vp-token") from exc
    if not isinstance(token, dict) or not token:
        raise Oid4vpError("vp_token must be a non-empty JSON object", reason="invalid-vp-token")
    for key, items in token.items():
        if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
            raise Oid4vpError(f"vp_token[{key!r}] must be a non-empty array of strings", reason="invalid-vp-token")
    return token


def check_response(request: AuthorizationRequest, vp_token: Mapping[str, list[str]],
                   verify_one: VerifyOne) -> Verdict:
    """Judge a ``vp_token`` against ``request``; never raises for bad input."""
    try:
        return _check_response(request, vp_token, verify_one)
    except Oid4vpError as exc:
        return Verdict(False, exc.reason, {}, str(exc))


def _check_response(request: AuthorizationRequest, vp_token: Mapping[str, list[str]],
                    verify_one: VerifyOne) -> Verdict:
    query = request.dcql_query
    known = {c.id for c in query.credentials}
    unknown = sorted(set(vp_token) - known)
    if unknown:
        raise Oid4vpError(f"vp_token answers unknown queries: {', '.join(unknown)}", reason="invalid-vp-token")
    required_query_ids(query, lambda query_id: query_id in vp_token)  # the sets are met, by id
    answers: dict[str, dict[str, Any]] = {}
    for query_id, presentations in vp_token.items():
        item = query.credential(query_id)
        if len(presentations) > 1 and not item.multiple:
            raise Oid4vpError(f"{query_id}: several presentations for a single credential",
                              reason="invalid-vp-token")
        for presentation in presentations:
            answers[query_id] = _verify_against_options(request, item, presentation, verify_one)
    return Verdict(True, None, answers)


def _verify_against_options(request: AuthorizationRequest, item: dcql.CredentialQuery, presentation: str,
                            verify_one: VerifyOne) -> dict[str, Any]:
    first_failure = None
    for question in presentation_requests(request, item):
        result = verify_one(presentation, question)
        if result.valid:
            return _asked(result.claims, question)
        first_failure = first_failure or result
    assert first_failure is not None
    raise Oid4vpError(f"{item.id}: {first_failure.detail}", reason=first_failure.reason)


def _asked(claims: Mapping[str, Any], question: PresentationRequest) -> dict[str, Any]:
    """Only the requested paths of the verified claims (dotted path -> value), plus the type
    and issuer: what the service is told, never what else happened to be disclosed."""
    out: dict[str, Any] = {"vct": claims.get("vct"), "iss": claims.get("iss")}
    for path in question.paths_to_disclose():
        out[path] = lookup(claims, path)
    return out


__all__ = [
    "CLIENT_ID_PREFIX",
    "REQUEST_OBJECT_TYP",
    "AuthorizationRequest",
    "Holder",
    "Verdict",
    "authorization_uri",
    "check_response",
    "check_uri",
    "client_id_for",
    "dotted",
    "new_request",
    "open_request",
    "parse_authorization_uri",
    "parse_vp_token",
    "presentation_requests",
    "required_query_ids",
    "sign_request",
    "wallet_answer",
]
