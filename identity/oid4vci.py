"""OpenID for Verifiable Credential Issuance 1.0 — the issuer's protocol state, sans IO.

What :mod:`identity.http.issuer_service` serves, reduced to data and checks (no network,
no clock: ``now`` is an argument, integer seconds, or float seconds for rate limits):

* **Metadata** — :func:`issuer_metadata` (``/.well-known/openid-credential-issuer``: one
  ``dc+sd-jwt`` configuration per vct the issuer is accredited for, its id being the vct
  itself) and :func:`authorization_server_metadata` (RFC 8414; the credential issuer is its
  own authorization server).
* **Credential offers** — :class:`OfferBook` keeps the pre-authorized codes staff create:
  each is single-use, expires after :data:`OFFER_TTL_S`, carries a numeric ``tx_code``
  (burnt after :data:`TX_CODE_ATTEMPTS_MAX` wrong tries) and is bounded per subject and
  overall. :func:`offer_uri` / :func:`offer_uri_by_reference` / :func:`parse_offer_uri`
  handle ``openid-credential-offer://``.
* **Token** — :func:`parse_token_request` and :class:`TokenBook` (access tokens, short-lived,
  bounded; a credential request consumes its token only when it succeeds).
* **Nonces** — :class:`NonceMint`: a ``c_nonce`` is an HMAC over its expiry and 16 random
  bytes, so the unauthenticated nonce endpoint stores nothing and cannot be filled up (no
  global lockout); only nonces *used* in an authorised credential request are remembered,
  until they expire, to make each single-use.
* **Credential request** — :func:`parse_credential_request` (``credential_configuration_id``,
  ``proofs.jwt``) and :func:`holder_of` (who a proof binds to).

Errors are :class:`OAuthError`: ``reason`` is the OAuth / OpenID4VCI error code of the spec
(``invalid_grant``, ``invalid_token``, ``invalid_proof``, ``invalid_nonce``,
``invalid_credential_request``, ``unknown_credential_configuration``,
``credential_request_denied``...) and ``status`` its HTTP status.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final
from urllib.parse import parse_qs, quote, urlsplit

from identity.constants import (
    ACCESS_TOKEN_TTL_S,
    ACCESS_TOKENS_MAX,
    ALLOWED_ALGS,
    BATCH_SIZE_MAX,
    C_NONCE_TTL_S,
    CODE_BYTES,
    CREDENTIAL_FORMAT,
    OFFER_CHARS_MAX,
    OFFER_SCHEME,
    OFFER_TTL_S,
    OFFER_URI_CHARS_MAX,
    OFFERS_MAX,
    OFFERS_PER_SUBJECT_MAX,
    PRE_AUTHORIZED_GRANT,
    TX_CODE_ATTEMPTS_MAX,
    TX_CODE_LENGTH,
    USED_NONCES_MAX,
)
from identity.errors import IssuanceError
from identity.issuance import PROOF_CHARS_MAX, IssuanceRequestError, Proof
from ledger.errors import KeyError_
from ledger.keys import b64url_decode, b64url_encode

TOKEN_PATH: Final = "/token"
NONCE_PATH: Final = "/nonce"
CREDENTIAL_PATH: Final = "/credential"
OFFER_PATH: Final = "/offers/"
ISSUER_METADATA_PATH: Final = "/.well-known/openid-credential-issuer"
AS_METADATA_PATH: Final = "/.well-known/oauth-authorization-server"
DISPLAY_LOCALES: Final = ("zh-CN", "en")
_NONCE_RANDOM_BYTES: Final = 16
_NONCE_MAC_BYTES: Final = 16

# OAuth 2.0 (RFC 6749 §5.2, RFC 6750 §3.1) and OpenID4VCI 1.0 §8.3.1.2 error codes.
INVALID_REQUEST: Final = "invalid_request"
INVALID_GRANT: Final = "invalid_grant"
UNSUPPORTED_GRANT_TYPE: Final = "unsupported_grant_type"
INVALID_TOKEN: Final = "invalid_token"
INSUFFICIENT_SCOPE: Final = "insufficient_scope"  # RFC 6750 §3.1
INVALID_CREDENTIAL_REQUEST: Final = "invalid_credential_request"
UNKNOWN_CREDENTIAL_CONFIGURATION: Final = "unknown_credential_configuration"
INVALID_PROOF: Final = "invalid_proof"
INVALID_NONCE: Final = "invalid_nonce"
CREDENTIAL_REQUEST_DENIED: Final = "credential_request_denied"
SLOW_DOWN: Final = "slow_down"


class OAuthError(IssuanceRequestError):
    """Remote: a wallet's request refused with an OAuth error code (``reason``) and an HTTP status."""

    reason = INVALID_REQUEST

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(description, reason=error)
        self.status = status


def _random() -> str:
    return secrets.token_urlsafe(CODE_BYTES)


# --- metadata -----------------------------------------------------------------------------
def _display(names: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": names[locale], "locale": locale} for locale in DISPLAY_LOCALES if locale in names]


def credential_configuration(definition: Mapping[str, Any], display: Mapping[str, str],
                             issuer_alg: str) -> dict[str, Any]:
    """One ``credential_configurations_supported`` entry for a published vct definition: its
    claims description lists every claim, each predicate claim and each of its published
    members (``["age_equal_or_over", "21"]``), which is all a credential of the type carries."""
    claims = [{"path": [name]} for name in definition.get("claims", [])]
    for name, thresholds in sorted(definition.get("predicates", {}).items()):
        claims += [{"path": [name]}, *({"path": [name, str(t)]} for t in thresholds)]
    metadata: dict[str, Any] = {"display": _display(display)}
    if claims:
        metadata["claims"] = claims
    return {
        "format": CREDENTIAL_FORMAT,
        "vct": definition["vct"],
        "credential_signing_alg_values_supported": [issuer_alg],
        "cryptographic_binding_methods_supported": ["jwk", "did:imi"],
        "proof_types_supported": {"jwt": {"proof_signing_alg_values_supported": sorted(ALLOWED_ALGS)}},
        "credential_metadata": metadata,
    }


def issuer_metadata(credential_issuer: str, *, issuer_did: str, issuer_name: Mapping[str, str],
                    configurations: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Credential Issuer metadata (OpenID4VCI 1.0 §12.2). ``configurations`` maps a
    configuration id (the vct) to :func:`credential_configuration`. ``imi_issuer_did``
    is our extension: the accredited DID whose document names this endpoint."""
    return {
        "credential_issuer": credential_issuer,
        "credential_endpoint": credential_issuer + CREDENTIAL_PATH,
        "nonce_endpoint": credential_issuer + NONCE_PATH,
        "batch_credential_issuance": {"batch_size": BATCH_SIZE_MAX},
        "display": _display(issuer_name),
        "credential_configurations_supported": dict(configurations),
        "imi_issuer_did": issuer_did,
    }


def authorization_server_metadata(credential_issuer: str) -> dict[str, Any]:
    """RFC 8414 metadata: the pre-authorized code grant only, anonymous wallets allowed."""
    return {
        "issuer": credential_issuer,
        "token_endpoint": credential_issuer + TOKEN_PATH,
        "grant_types_supported": [PRE_AUTHORIZED_GRANT],
        "token_endpoint_auth_methods_supported": ["none"],
        "pre-authorized_grant_anonymous_access_supported": True,
    }


# --- offers and pre-authorized codes ----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Grant:
    """What a pre-authorized code (then its access token) allows: ``configuration_ids`` for
    ``subject``, at most ``batch_max`` credentials per request. ``enrol``: redeeming binds
    the subject to the holder of the request's first proof (the counter's one door)."""

    subject: str
    configuration_ids: tuple[str, ...]
    batch_max: int
    enrol: bool


@dataclass(frozen=True, slots=True)
class CreatedOffer:
    offer: dict[str, Any]
    offer_id: str
    code: str
    tx_code: str | None
    expires_at: int
    enrol: bool


@dataclass(slots=True)
class _Code:
    grant: Grant
    tx_code: str | None
    offer: dict[str, Any]
    offer_id: str
    expires_at: int
    attempts: int = 0


def _tx_code() -> str:
    return str(secrets.randbelow(10**TX_CODE_LENGTH)).zfill(TX_CODE_LENGTH)


class OfferBook:
    """Live pre-authorized codes: single-use, expiring, bounded per subject and overall.

    Only staff create codes, so a full book refuses *staff* (``too-many-offers``), never a
    wallet. Thread-safe.
    """

    __slots__ = ("_by_id", "_codes", "_lock", "credential_issuer", "ttl_s")

    def __init__(self, credential_issuer: str, *, ttl_s: int = OFFER_TTL_S) -> None:
        self.credential_issuer = credential_issuer
        self.ttl_s = ttl_s
        self._codes: OrderedDict[str, _Code] = OrderedDict()  # insertion order = expiry order
        self._by_id: dict[str, str] = {}
        self._lock = threading.Lock()

    def _drop(self, code: str) -> None:
        entry = self._codes.pop(code, None)
        if entry is not None:
            self._by_id.pop(entry.offer_id, None)

    def _purge(self, now: int) -> None:
        while self._codes:
            code, entry = next(iter(self._codes.items()))
            if entry.expires_at > now:
                break
            self._drop(code)

    def create(self, grant: Grant, now: int, *, tx_code: bool = True) -> CreatedOffer:
        """A new code for ``grant``; beyond :data:`OFFERS_PER_SUBJECT_MAX` live codes of the
        same subject the oldest is dropped. Raises IssuanceError(too-many-offers)."""
        with self._lock:
            self._purge(now)
            mine = [c for c, e in self._codes.items() if e.grant.subject == grant.subject]
            for code in mine[:max(0, len(mine) - OFFERS_PER_SUBJECT_MAX + 1)]:
                self._drop(code)
            if len(self._codes) >= OFFERS_MAX:
                raise IssuanceError("too many live offers; retry later", reason="too-many-offers")
            code, offer_id, pin = _random(), _random(), _tx_code() if tx_code else None
            grant_json: dict[str, Any] = {"pre-authorized_code": code}
            if pin is not None:
                grant_json["tx_code"] = {"input_mode": "numeric", "length": TX_CODE_LENGTH,
                                         "description": "PIN given to you by the agency's staff"}
            offer = {"credential_issuer": self.credential_issuer,
                     "credential_configuration_ids": list(grant.configuration_ids),
                     "grants": {PRE_AUTHORIZED_GRANT: grant_json}}
            entry = _Code(grant, pin, offer, offer_id, now + self.ttl_s)
            self._codes[code] = entry
            self._by_id[offer_id] = code
            return CreatedOffer(offer, offer_id, code, pin, entry.expires_at, grant.enrol)

    def by_reference(self, offer_id: str, now: int) -> dict[str, Any] | None:
        """The offer behind ``credential_offer_uri`` (None once redeemed or expired)."""
        with self._lock:
            self._purge(now)
            code = self._by_id.get(offer_id)
            return dict(self._codes[code].offer) if code is not None else None

    def redeem(self, code: str, tx_code: str | None, now: int) -> Grant:
        """Spend ``code`` (single use). ``invalid_grant``: unknown, used, expired or a wrong PIN
        (the code is burnt after :data:`TX_CODE_ATTEMPTS_MAX`); ``invalid_request``: a PIN
        missing where one is expected, or sent where none is."""
        with self._lock:
            self._purge(now)
            entry = self._codes.get(code)
            if entry is None:
                raise OAuthError(INVALID_GRANT, "the pre-authorized code is unknown, used or expired")
            if (entry.tx_code is None) != (tx_code is None):
                raise OAuthError(INVALID_REQUEST, "tx_code is required for this offer" if tx_code is None
                                 else "this offer takes no tx_code")
            if entry.tx_code is not None and not hmac.compare_digest(entry.tx_code.encode(),
                                                                     str(tx_code).encode()):
                entry.attempts += 1
                if entry.attempts >= TX_CODE_ATTEMPTS_MAX:
                    self._drop(code)
                raise OAuthError(INVALID_GRANT, "wrong tx_code")
            self._drop(code)
            return entry.grant

    def __len__(self) -> int:
        return len(self._codes)


def offer_uri(offer: Mapping[str, Any]) -> str:
    """``openid-credential-offer://?credential_offer=<url-encoded JSON>`` (by value)."""
    return OFFER_SCHEME + "?credential_offer=" + quote(json.dumps(offer, separators=(",", ":")), safe="")


def offer_uri_by_reference(url: str) -> str:
    """``openid-credential-offer://?credential_offer_uri=<url-encoded URL>`` (by reference)."""
    return OFFER_SCHEME + "?credential_offer_uri=" + quote(url, safe="")


@dataclass(frozen=True, slots=True)
class CredentialOffer:
    """A parsed credential offer with a pre-authorized code grant."""

    credential_issuer: str
    configuration_ids: tuple[str, ...]
    code: str
    tx_code: Mapping[str, Any] | None = field(default=None)


def parse_offer_uri(uri: str) -> tuple[dict[str, Any] | None, str | None]:
    """``(offer, None)`` for an offer by value, ``(None, url)`` by reference.
    Raises IssuanceRequestError(bad-offer)."""
    if not isinstance(uri, str) or len(uri) > OFFER_URI_CHARS_MAX or not uri.startswith(OFFER_SCHEME):
        raise IssuanceRequestError(f"an offer URI starts with {OFFER_SCHEME}", reason="bad-offer")
    query = parse_qs(urlsplit(uri).query, strict_parsing=False)
    by_value, by_ref = query.get("credential_offer"), query.get("credential_offer_uri")
    if (by_value is None) == (by_ref is None) or len(by_value or by_ref or []) != 1:
        raise IssuanceRequestError("exactly one credential_offer or credential_offer_uri", reason="bad-offer")
    if by_ref is not None:
        return None, by_ref[0]
    assert by_value is not None
    if len(by_value[0]) > OFFER_CHARS_MAX:
        raise IssuanceRequestError("credential offer too large", reason="bad-offer")
    try:
        offer = json.loads(by_value[0])
    except ValueError as exc:
        raise IssuanceRequestError("credential_offer is not JSON", reason="bad-offer") from exc
    if not isinstance(offer, dict):
        raise IssuanceRequestError("credential_offer must be a JSON object", reason="bad-offer")
    return offer, None


def check_offer(offer: object) -> CredentialOffer:
    """Validate a credential offer object; only the pre-authorized code grant is supported."""
    if not isinstance(offer, dict):
        raise IssuanceRequestError("credential offer must be an object", reason="bad-offer")
    issuer, ids, grants = (offer.get(n) for n in ("credential_issuer", "credential_configuration_ids", "grants"))
    if not isinstance(issuer, str) or not issuer.startswith(("https://", "http://")):
        raise IssuanceRequestError("credential_issuer must be an http(s) URL", reason="bad-offer")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise IssuanceRequestError("credential_configuration_ids must be a non-empty list", reason="bad-offer")
    grant = grants.get(PRE_AUTHORIZED_GRANT) if isinstance(grants, dict) else None
    code = grant.get("pre-authorized_code") if isinstance(grant, dict) else None
    if not isinstance(code, str) or not code:
        raise IssuanceRequestError("the offer has no pre-authorized code grant", reason="unsupported-offer")
    assert isinstance(grant, dict)
    tx_code = grant.get("tx_code")
    if tx_code is not None and not isinstance(tx_code, dict):
        raise IssuanceRequestError("tx_code must be an object", reason="bad-offer")
    return CredentialOffer(issuer.rstrip("/"), tuple(ids), code, tx_code)


# --- token ------------------------------------------------------------------------------------
def parse_token_request(form: Mapping[str, str]) -> tuple[str, str | None]:
    """``(pre-authorized code, tx_code or None)`` from a token request's form fields."""
    if form.get("grant_type") != PRE_AUTHORIZED_GRANT:
        raise OAuthError(UNSUPPORTED_GRANT_TYPE, f"grant_type must be {PRE_AUTHORIZED_GRANT}")
    code = form.get("pre-authorized_code")
    if not code:
        raise OAuthError(INVALID_REQUEST, "pre-authorized_code is required")
    tx_code = form.get("tx_code")
    return code, tx_code if tx_code is not None else None


class TokenBook:
    """Access tokens → their grant; short-lived, bounded (the oldest is dropped when full:
    tokens come only from staff-made codes, so nobody can be locked out). Thread-safe."""

    __slots__ = ("_lock", "_tokens", "ttl_s")

    def __init__(self, *, ttl_s: int = ACCESS_TOKEN_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._tokens: OrderedDict[str, tuple[Grant, int]] = OrderedDict()
        self._lock = threading.Lock()

    def issue(self, grant: Grant, now: int) -> str:
        with self._lock:
            while self._tokens and (next(iter(self._tokens.values()))[1] <= now
                                    or len(self._tokens) >= ACCESS_TOKENS_MAX):
                self._tokens.popitem(last=False)
            token = _random()
            self._tokens[token] = (grant, now + self.ttl_s)
            return token

    def get(self, token: str, now: int) -> Grant:
        """The grant of a live token; ``invalid_token`` (401) otherwise."""
        with self._lock:
            entry = self._tokens.get(token)
            if entry is None or entry[1] <= now:
                raise OAuthError(INVALID_TOKEN, "the access token is unknown, used or expired", status=401)
            return entry[0]

    def take(self, token: str, configuration_id: str, now: int) -> tuple[Grant, int]:
        """Atomically spend ``configuration_id`` of a live token: one access token redeems each
        configuration its offer names once (OpenID4VCI 1.0 lets one token cover every
        configuration of the offer); the token is gone with its last. Returns the grant as it
        was and its expiry, for :meth:`give_back`. ``invalid_token`` (401) for a dead token,
        ``insufficient_scope`` (403) for a configuration it does not cover (or no longer)."""
        with self._lock:
            entry = self._tokens.get(token)
            if entry is None or entry[1] <= now:
                raise OAuthError(INVALID_TOKEN, "the access token is unknown, used or expired", status=401)
            grant, expires = entry
            if configuration_id not in grant.configuration_ids:
                raise OAuthError(INSUFFICIENT_SCOPE, "the access token does not cover this configuration "
                                 "(or it was issued under this token already)", status=403)
            left = tuple(c for c in grant.configuration_ids if c != configuration_id)
            if left:
                self._tokens[token] = (replace(grant, configuration_ids=left), expires)
            else:
                del self._tokens[token]
            return grant, expires

    def give_back(self, token: str, configuration_id: str, taken: tuple[Grant, int], now: int) -> None:
        """Undo :meth:`take` when the issuer failed on its side (ledger unreachable, subject left
        the register): the configuration may be asked for again while the token lives."""
        grant, expires = taken
        if expires <= now:
            return
        with self._lock:
            entry = self._tokens.get(token)
            current = entry[0] if entry is not None else replace(grant, configuration_ids=())
            if configuration_id not in current.configuration_ids:
                current = replace(current, configuration_ids=(*current.configuration_ids, configuration_id))
            self._tokens[token] = (current, expires)

    def mark_enrolled(self, token: str) -> None:
        """The token's enrolment happened: later requests under it need the enrolled holder."""
        with self._lock:
            entry = self._tokens.get(token)
            if entry is not None:
                self._tokens[token] = (replace(entry[0], enrol=False), entry[1])


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header; ``invalid_token`` (401) otherwise."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise OAuthError(INVALID_TOKEN, "an access token is required (Authorization: Bearer)", status=401)
    return token.strip()


# --- nonces -----------------------------------------------------------------------------------
class NonceMint:
    """Stateless ``c_nonce`` values, single use once spent.

    A nonce is ``b64url(expiry (8 bytes) || random (16) || HMAC-SHA256(key, both)[:16])``:
    minting stores nothing. :meth:`consume` checks MAC and expiry, then remembers the nonce
    until it expires (at most ``used_max``; only authorised credential requests get there).
    The key is per process: after a restart old nonces read ``invalid_nonce``, and the
    wallet fetches a fresh one. Thread-safe.
    """

    __slots__ = ("_key", "_lock", "_used", "_used_max", "ttl_s")

    def __init__(self, *, ttl_s: int = C_NONCE_TTL_S, used_max: int = USED_NONCES_MAX,
                 key: bytes | None = None) -> None:
        if ttl_s <= 0 or used_max <= 0:
            raise ValueError("ttl_s and used_max must be positive")
        self.ttl_s = ttl_s
        self._key = key if key is not None else secrets.token_bytes(32)
        self._used: OrderedDict[str, int] = OrderedDict()
        self._used_max = used_max
        self._lock = threading.Lock()

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_NONCE_MAC_BYTES]

    def issue(self, now: int) -> str:
        body = (now + self.ttl_s).to_bytes(8, "big") + secrets.token_bytes(_NONCE_RANDOM_BYTES)
        return b64url_encode(body + self._mac(body))

    def check(self, value: str, now: int) -> int:
        """The nonce's expiry if it is ours and live; ``invalid_nonce`` otherwise."""
        try:
            raw = b64url_decode(value)
        except (KeyError_, ValueError, TypeError):  # not base64url at all: not ours either
            raw = b""
        body, mac = raw[:-_NONCE_MAC_BYTES], raw[-_NONCE_MAC_BYTES:]
        if len(body) != 8 + _NONCE_RANDOM_BYTES or not hmac.compare_digest(mac, self._mac(body)):
            raise OAuthError(INVALID_NONCE, "c_nonce was not issued by this issuer")
        expires_at = int.from_bytes(body[:8], "big")
        if expires_at <= now:
            raise OAuthError(INVALID_NONCE, "c_nonce has expired")
        with self._lock:
            if value in self._used:
                raise OAuthError(INVALID_NONCE, "c_nonce was already used")
        return expires_at

    def used(self, value: str, now: int) -> bool:
        """Whether ``value`` was consumed and has not expired at ``now`` (an expired one is
        no longer live, whether it was used or not)."""
        with self._lock:
            expires_at = self._used.get(value)
        return expires_at is not None and expires_at > now

    def consume(self, value: str, now: int) -> None:
        """Check ``value`` and mark it used."""
        expires_at = self.check(value, now)
        with self._lock:
            if value in self._used:
                raise OAuthError(INVALID_NONCE, "c_nonce was already used")
            while self._used and next(iter(self._used.values())) <= now:
                self._used.popitem(last=False)
            if len(self._used) >= self._used_max:
                raise IssuanceError("too many nonces in use; retry later", reason="too-many-nonces")
            self._used[value] = expires_at


# --- credential request -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CredentialRequest:
    configuration_id: str
    proofs: tuple[str, ...]


def parse_credential_request(body: object) -> CredentialRequest:
    """``credential_configuration_id`` and ``proofs.jwt`` (1..:data:`BATCH_SIZE_MAX` JWTs)."""
    if not isinstance(body, dict):
        raise OAuthError(INVALID_CREDENTIAL_REQUEST, "the credential request must be a JSON object")
    if "credential_identifier" in body:
        raise OAuthError(INVALID_CREDENTIAL_REQUEST, "credential_identifier is not used by this issuer")
    config_id = body.get("credential_configuration_id")
    if not isinstance(config_id, str) or not config_id:
        raise OAuthError(INVALID_CREDENTIAL_REQUEST, "credential_configuration_id is required")
    proofs = body.get("proofs")
    if not isinstance(proofs, dict) or set(proofs) != {"jwt"}:
        raise OAuthError(INVALID_PROOF, "proofs must hold exactly one proof type, jwt")
    jwts = proofs["jwt"]
    if not isinstance(jwts, list) or not jwts or not all(isinstance(p, str) and len(p) <= PROOF_CHARS_MAX
                                                         for p in jwts):
        raise OAuthError(INVALID_PROOF, "proofs.jwt must be a non-empty list of compact JWTs")
    if len(jwts) > BATCH_SIZE_MAX:
        raise OAuthError(INVALID_CREDENTIAL_REQUEST, f"at most {BATCH_SIZE_MAX} proofs in one request")
    return CredentialRequest(config_id, tuple(jwts))


def holder_of(proof: Proof) -> tuple[str, str]:
    """Who a proof binds the credential to: ``("did", did)`` or ``("jwk", RFC 7638 thumbprint)``."""
    if proof.did is not None:
        return "did", proof.did
    assert proof.jwk is not None
    return "jwk", proof.jwk.thumbprint()


# --- rate limits ------------------------------------------------------------------------------
__all__ = [
    "AS_METADATA_PATH",
    "CREDENTIAL_PATH",
    "CREDENTIAL_REQUEST_DENIED",
    "INVALID_CREDENTIAL_REQUEST",
    "INVALID_GRANT",
    "INVALID_NONCE",
    "INVALID_PROOF",
    "INVALID_REQUEST",
    "INVALID_TOKEN",
    "ISSUER_METADATA_PATH",
    "NONCE_PATH",
    "OFFER_PATH",
    "SLOW_DOWN",
    "TOKEN_PATH",
    "UNKNOWN_CREDENTIAL_CONFIGURATION",
    "UNSUPPORTED_GRANT_TYPE",
    "CreatedOffer",
    "CredentialOffer",
    "CredentialRequest",
    "Grant",
    "NonceMint",
    "OAuthError",
    "OfferBook",
    "TokenBook",
    "authorization_server_metadata",
    "bearer_token",
    "check_offer",
    "credential_configuration",
    "holder_of",
    "issuer_metadata",
    "offer_uri",
    "offer_uri_by_reference",
    "parse_credential_request",
    "parse_offer_uri",
    "parse_token_request",
]
