"""An issuer's HTTP service: OpenID4VCI 1.0 over an :class:`~identity.issuer_agent.IssuerAgent`.

An agency runs it beside (not inside) its validator, with the issuer DID's assertion key;
it talks to the ledger as any client does (writes through ``POST /v1/transactions``,
reads through the light client). Behind TLS its public URL is the Credential Issuer
Identifier (``credential_issuer``), which the issuer's DID document names.

Wallets (no authentication but what the protocol carries):

==============================================  ==============================================
``GET /.well-known/openid-credential-issuer``   Credential Issuer metadata (a ``dc+sd-jwt``
                                                configuration per accredited vct)
``GET /.well-known/oauth-authorization-server`` RFC 8414 metadata (pre-authorized code grant)
``GET /offers/{id}``                            a credential offer by reference
``POST /token``                                 form: ``grant_type``, ``pre-authorized_code``,
                                                ``tx_code`` → access token (rate-limited)
``POST /nonce``                                 ``{"c_nonce"}``
``POST /credential``                            Bearer token; ``{credential_configuration_id,
                                                proofs: {jwt: [...]}}`` → ``{credentials}``
==============================================  ==============================================

Staff (always ``Authorization: Bearer <admin token>``, compared in constant time; never
"any loopback client", and no proxy header is ever read for authentication):

==============================================  ==============================================
``POST /v1/admin/enrol``                        ``{subject, did | jwk}``: bind a subject
``POST /v1/admin/offers``                       ``{subject, vcts, batch?, tx_code?}`` → offer
                                                URIs (by value and by reference) and the PIN
``POST /v1/issuance/{revoke,suspend,reinstate}`` ``{idx}`` → ``status.set`` on the ledger
``/console``                                    the agency console page
                                                (:mod:`identity.http.agency_console`)
==============================================  ==============================================

With a remote enrolment configuration, wallets may also enrol without a visit by presenting
another accredited agency's identity credential (``/remote-enrolment``,
:mod:`identity.http.remote_enrolment`).

Errors of the OAuth endpoints are ``application/json`` with the spec's ``error`` code (and
``error_description``); the problem members ``reason`` (the same code), ``status`` and
``detail`` ride along. Other errors are RFC 9457 problems built by the node's one mapping
(:func:`node.api.problems.problem_for`) with the stable reasons of
:mod:`identity.issuer_agent` and their statuses from :func:`issuer_status`; the ledger's own
reason is kept when it refuses a status change (``409 status-final``).

Rate limits key on the TCP peer; ``X-Forwarded-For`` is used only when the peer is one
of ``trusted_proxies`` (then its right-most entry is the client).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from identity import oid4vci as vci
from identity.constants import (
    BATCH_SIZE_MAX,
    RATE_CLIENTS_MAX,
    TOKEN_REQUESTS_BURST,
    TOKEN_REQUESTS_PER_S,
)
from identity.errors import IdentityError, IssuanceError
from identity.http.agency_console import install_console
from identity.http.remote_enrolment import install_remote_enrolment, remote_enrolment_for
from identity.issuance import IssuanceRequestError
from identity.issuer_agent import SUBJECT_CHARS_MAX, IssuerAgent, IssuerLedgerError
from identity.remote_enrolment import RemoteEnrolmentConfig
from ledger.buckets import TokenBuckets
from ledger.errors import ImiError
from node.api.guard import BodyLimit, CatchAll, install_problem_handlers, read_json_body
from node.api.problems import ApiProblem

ISSUER_BODY_BYTES_MAX: Final = 64 * 1024  # a batch of BATCH_SIZE_MAX proofs fits
ADMIN_TOKEN_CHARS_MIN: Final = 12
VCT_CHARS_MAX: Final = 256
OAUTH_DESCRIPTION_CHARS_MAX: Final = 300
_UNAVAILABLE: Final = frozenset({"node-unavailable", "ledger-unavailable", "commit-timeout", "node-error",
                                 "malformed-response", "unavailable", "mempool-full", "too-many-waiters"})
_STATUS_BY_REASON: Final[dict[str, int]] = {
    "unknown-subject": 404,
    "too-many-nonces": 503,
    "too-many-offers": 503,
    "issuer-not-accredited": 503,
    "list-full": 503,
    "not-list-owner": 503,
    "records-full": 503,
    "index-taken": 503,
    # the register's record does not fit the published credential type (identity.credtypes)
    "claims-not-in-type": 422,
    "predicate-not-derivable": 422,
    "predicate-source-missing": 422,
    "bad-predicate-source": 422,
    "vct-not-published": 409,
    "vct-other-issuer": 409,
}
_NO_STORE: Final = {"Cache-Control": "no-store"}


class EnrolRequest(BaseModel):
    """``POST /v1/admin/enrol``: bind a subject to a holder DID or public JWK."""

    model_config = ConfigDict(extra="forbid", strict=True)

    subject: str = Field(min_length=1, max_length=SUBJECT_CHARS_MAX, description="The agency's subject id.")
    did: str | None = Field(None, max_length=256, description="The holder's did:imi.")
    jwk: dict[str, str] | None = Field(None, description="The holder's public JWK.")


class OfferRequest(BaseModel):
    """``POST /v1/admin/offers``: a credential offer for a subject."""

    model_config = ConfigDict(extra="forbid", strict=True)

    subject: str = Field(min_length=1, max_length=SUBJECT_CHARS_MAX, description="The agency's subject id.")
    vcts: list[str] = Field(min_length=1, max_length=16, description="Credential types (configuration ids).")
    batch: int = Field(1, ge=1, le=BATCH_SIZE_MAX, description="Credentials (holder keys) per request.")
    tx_code: bool = Field(True, description="Require a PIN (always, for an enrolment offer).")


class StatusRequest(BaseModel):
    """``POST /v1/issuance/{revoke,suspend,reinstate}``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    idx: int = Field(ge=0, description="The credential's status list index (status.status_list.idx).")


def issuer_status(exc: ImiError) -> int | None:
    """The HTTP status of an identity error in this service (None: the node's statuses)."""
    if isinstance(exc, vci.OAuthError):
        return exc.status
    if not isinstance(exc, IdentityError):
        return None
    reason = exc.reason
    if isinstance(exc, IssuerLedgerError):
        return 502 if reason in _UNAVAILABLE else 409
    if reason in _STATUS_BY_REASON:
        return _STATUS_BY_REASON[reason]
    if isinstance(exc, IssuanceRequestError):
        return 400
    if isinstance(exc, IssuanceError):
        return 503
    return 400


def oauth_error(exc: vci.OAuthError) -> JSONResponse:
    """An OAuth error response (RFC 6749 §5.2 / RFC 6750 §3 / OpenID4VCI §8.3.1)."""
    description = "".join(c for c in str(exc) if 0x20 <= ord(c) <= 0x7E and c not in '"\\')
    description = description[:OAUTH_DESCRIPTION_CHARS_MAX]
    headers = dict(_NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = f'Bearer error="{exc.reason}"'
    body = {"error": exc.reason, "error_description": description,
            "reason": exc.reason, "status": exc.status, "detail": description}
    return JSONResponse(body, status_code=exc.status, headers=headers)


def _wall_s() -> int:
    return int(time.time())


def client_key(request: Request, trusted_proxies: frozenset[str]) -> str:
    """Who a request is from, for rate limits: the TCP peer, or the right-most
    ``X-Forwarded-For`` entry when the peer is a configured proxy."""
    peer = request.client.host if request.client is not None else ""
    forwarded = request.headers.get("x-forwarded-for")
    if peer in trusted_proxies and forwarded:
        return forwarded.split(",")[-1].strip() or peer
    return peer


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body; a repeated parameter is ``invalid_request``."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise vci.OAuthError(vci.INVALID_REQUEST, "the token request is application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl((await request.body()).decode("ascii"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise vci.OAuthError(vci.INVALID_REQUEST, "the token request body is not a form") from exc
    form = dict(pairs)
    if len(form) != len(pairs):
        raise vci.OAuthError(vci.INVALID_REQUEST, "a parameter is repeated")
    return form


async def _json(request: Request) -> object:
    import json

    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise vci.OAuthError(vci.INVALID_CREDENTIAL_REQUEST, "the credential request is application/json")
    try:
        return json.loads(await request.body())
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise vci.OAuthError(vci.INVALID_CREDENTIAL_REQUEST, "the credential request is not JSON") from exc


def create_issuer_app(
    issuer: IssuerAgent,
    *,
    admin_token: str,
    clock_s: Callable[[], int] = _wall_s,
    logger: logging.Logger | None = None,
    trusted_proxies: frozenset[str] = frozenset(),
    token_rate: tuple[float, int] = (TOKEN_REQUESTS_PER_S, TOKEN_REQUESTS_BURST),
    remote_enrolment: RemoteEnrolmentConfig | None = None,
) -> FastAPI:
    """The issuer service of ``issuer``. ``clock_s`` gives the service's time in seconds
    (tests pass a fixed one); ``admin_token`` (at least :data:`ADMIN_TOKEN_CHARS_MIN`
    characters) guards every staff endpoint; ``token_rate`` is the token endpoint's
    (requests per second, burst) per client. With ``remote_enrolment`` the agency also
    enrols people remotely (:mod:`identity.http.remote_enrolment`)."""
    if not isinstance(admin_token, str) or len(admin_token) < ADMIN_TOKEN_CHARS_MIN:
        raise ValueError(f"the admin token must have at least {ADMIN_TOKEN_CHARS_MIN} characters")
    log = logger or logging.getLogger("imi.issuer")
    expected = _digest(f"Bearer {admin_token}")
    token_limit = TokenBuckets(*token_rate, clients_max=RATE_CLIENTS_MAX)
    app = FastAPI(title="imi issuer service", version="1",
                  description="OpenID4VCI 1.0 issuer of an accredited agency over the imi ledger "
                              "(offers, pre-authorized code, nonce, credential; enrolment and status "
                              "changes by staff).",
                  docs_url="/docs", redoc_url=None, openapi_url="/openapi.json")
    install_problem_handlers(app, log, status_of=issuer_status)

    @app.exception_handler(vci.OAuthError)
    async def on_oauth(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, vci.OAuthError)
        return oauth_error(exc)

    def staff(request: Request) -> None:
        given = _digest(request.headers.get("authorization", ""))
        if not hmac.compare_digest(given, expected):
            raise ApiProblem("admin-unauthorized", "a valid staff bearer token is required", status=401,
                             extra={"error": "invalid_token"})

    async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        # identity errors become problems (statuses from issuer_status), OAuth errors OAuth answers
        return await run_in_threadpool(fn, *args, **kwargs)

    @app.get("/health", tags=["issuance"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(vci.ISSUER_METADATA_PATH, tags=["openid4vci"], summary="Credential Issuer metadata")
    async def issuer_metadata() -> JSONResponse:
        return JSONResponse(await call(issuer.metadata, clock_s()))

    @app.get(vci.AS_METADATA_PATH, tags=["openid4vci"], summary="OAuth 2.0 authorization server metadata")
    async def as_metadata() -> dict[str, Any]:
        return vci.authorization_server_metadata(issuer.credential_issuer)

    @app.get(vci.OFFER_PATH + "{offer_id}", tags=["openid4vci"], summary="A credential offer by reference")
    async def offer_by_reference(offer_id: str) -> JSONResponse:
        offer = issuer.offers.by_reference(offer_id, clock_s())
        if offer is None:
            raise ApiProblem("offer-unknown", "no such live credential offer", status=404)
        return JSONResponse(offer, headers=_NO_STORE)

    @app.post(vci.TOKEN_PATH, tags=["openid4vci"], summary="Pre-authorized code (and tx_code) → access token")
    async def token(request: Request) -> JSONResponse:
        if not token_limit.allow(client_key(request, trusted_proxies), time.monotonic()):
            raise vci.OAuthError(vci.SLOW_DOWN, "too many token requests; slow down", status=429)
        form = await _form(request)
        return JSONResponse(issuer.token(form, clock_s()), headers=_NO_STORE)

    @app.post(vci.NONCE_PATH, tags=["openid4vci"], summary="A fresh c_nonce")
    async def nonce() -> JSONResponse:
        return JSONResponse({"c_nonce": issuer.new_nonce(clock_s())}, headers=_NO_STORE)

    @app.post(vci.CREDENTIAL_PATH, tags=["openid4vci"], summary="Issue one SD-JWT VC per proof")
    async def credential(request: Request) -> JSONResponse:
        authorization = request.headers.get("authorization")
        vci.bearer_token(authorization)  # 401 before the body is even read
        body = await _json(request)
        issued = await call(issuer.credential, authorization, body, clock_s())
        return JSONResponse({"credentials": [{"credential": c.credential} for c in issued]}, headers=_NO_STORE)

    @app.post("/v1/admin/enrol", tags=["staff"], summary="Bind a subject to a holder (staff)")
    async def enrol(request: Request) -> dict[str, Any]:
        staff(request)
        body = await read_json_body(request, EnrolRequest)
        done = await call(issuer.enrol, body.subject, did=body.did, jwk=body.jwk, now=clock_s())
        return {"subject": done.subject, "holder_kind": done.kind, "holder": done.holder, "at": done.at}

    @app.post("/v1/admin/offers", tags=["staff"], summary="Make a credential offer (staff)")
    async def offers(request: Request) -> JSONResponse:
        staff(request)
        body = await read_json_body(request, OfferRequest)
        made = await call(issuer.create_offer, body.subject, body.vcts, clock_s(), batch=body.batch,
                          tx_code=body.tx_code)
        reference = issuer.credential_issuer + vci.OFFER_PATH + made.offer_id
        return JSONResponse({"offer_uri": vci.offer_uri(made.offer),
                             "offer_uri_by_reference": vci.offer_uri_by_reference(reference),
                             "credential_offer": made.offer, "tx_code": made.tx_code,
                             "expires_at": made.expires_at, "enrol": made.enrol}, headers=_NO_STORE)

    def status_route(action: str) -> None:
        async def change(request: Request) -> dict[str, Any]:
            staff(request)
            body = await read_json_body(request, StatusRequest)
            height = await call(issuer.set_status, body.idx, action)
            return {"idx": body.idx, "action": action, "list_id": issuer.list_id, "height": height}

        app.add_api_route(f"/v1/issuance/{action}", change, methods=["POST"], tags=["staff"],
                          summary=f"{action.capitalize()} a credential (status.set on the ledger; staff)")

    for action in ("revoke", "suspend", "reinstate"):
        status_route(action)
    install_console(app, issuer, admin_token=admin_token, clock_s=clock_s)
    if remote_enrolment is not None:
        install_remote_enrolment(app, remote_enrolment_for(issuer, remote_enrolment), clock_s=clock_s,
                                 client_of=lambda request: client_key(request, trusted_proxies))

    app.add_middleware(CatchAll, logger=log)
    app.add_middleware(BodyLimit, body_bytes_max=ISSUER_BODY_BYTES_MAX)
    return app


__all__ = ["ADMIN_TOKEN_CHARS_MIN", "ISSUER_BODY_BYTES_MAX", "EnrolRequest", "OfferRequest", "StatusRequest",
           "client_key", "create_issuer_app", "issuer_status", "oauth_error"]
