"""A registered service's OpenID4VP 1.0 verifier: :func:`create_verifier_app`.

A service (a community platform, another agency's counter) runs it beside its
systems with its did:imi key. Staff (or the service's own back end) create a request
from a DCQL query; the wallet fetches the signed request object, answers by
``direct_post``; the verdict is held for the service to fetch, and pushed to a
callback if one was given.

=============================================  ===========================================  ==============
route                                          what                                         who may call
=============================================  ===========================================  ==============
``POST /v1/requests``                          ``{dcql_query, callback_uri?}`` → ``{id,     staff (bearer)
                                               request_uri: "openid4vp://…", expires_at}``
``GET /v1/requests/{id}``                      ``{state: pending|done|expired, valid,       staff (bearer)
                                               reason, claims}``
``GET /v1/request-objects/{id}``               the signed request object                    anyone (a wallet)
                                               (``application/oauth-authz-req+jwt``)
``POST /v1/responses``                         ``direct_post``: form ``vp_token``, ``state``  anyone (a wallet)
``GET /health``                                ``{"status": "ok"}``                         anyone
=============================================  ===========================================  ==============

Who may call, and what if they lie or flood: staff routes need the bearer token
(constant-time comparison; no address is trusted). A query beyond the service's
registration on the ledger is refused before anything is signed (``403
beyond-registration``), so the service cannot even ask for more than it may. The
public routes are bounded: pending requests expire after
:data:`VERIFIER_REQUEST_TTL_S` and are capped (:data:`VERIFIER_REQUESTS_MAX`,
``503 too-many-requests``); a response is accepted once per request (a replayed
``vp_token`` is ``400 response-already-received``, and the first verdict stands);
bodies are capped; the verdict only ever carries the requested claims.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from identity import dcql, oid4vp, services
from identity.errors import DcqlError, IdentityError, Oid4vpError
from identity.http.constants import (
    VERIFIER_BODY_BYTES_MAX,
    VERIFIER_CALLBACK_TIMEOUT_S,
    VERIFIER_REQUEST_TTL_S,
    VERIFIER_REQUESTS_MAX,
)
from identity.request import PresentationRequest
from node.api.guard import BodyLimit, CatchAll, install_problem_handlers, read_json_body
from node.api.problems import ApiProblem

REQUEST_OBJECT_MEDIA_TYPE = "application/oauth-authz-req+jwt"

VerifyOne = Callable[[str, PresentationRequest, int], Any]  # (presentation, question, now) -> result
RegistrationReader = Callable[[], Mapping[str, Any] | None]  # the service's record on the ledger


@dataclass(frozen=True, slots=True)
class VerifierConfig:
    """Who the service is and where it is reachable (``public_url``: what wallets use)."""

    did: str
    signing_key: Any  # ledger.keys.SigningKey: an assertion key of ``did``
    kid: str  # "<did>#<fragment>"
    public_url: str
    admin_token: str


@dataclass(slots=True)
class _Pending:
    request: oid4vp.AuthorizationRequest
    request_object: str
    callback_uri: str | None
    verdict: oid4vp.Verdict | None = None
    done_at: int | None = None


@dataclass(slots=True)
class Sessions:
    """Pending and answered requests, by id and by ``state``; bounded and expiring.

    Thread-safe: the verdict of one response is decided under the lock, so two
    concurrent posts of the same ``vp_token`` cannot both be accepted.
    """

    ttl_s: int = VERIFIER_REQUEST_TTL_S
    entries_max: int = VERIFIER_REQUESTS_MAX
    _by_id: OrderedDict[str, _Pending] = field(default_factory=OrderedDict)
    _by_state: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request_id: str, pending: _Pending, now: int) -> None:
        with self._lock:
            self._expire(now)
            if len(self._by_id) >= self.entries_max:
                raise ApiProblem("too-many-requests", "too many open requests; try again later", status=503)
            self._by_id[request_id] = pending
            self._by_state[pending.request.state] = request_id

    def get(self, request_id: str, now: int) -> _Pending | None:
        with self._lock:
            self._expire(now)
            return self._by_id.get(request_id)

    def claim(self, state: str, now: int) -> _Pending:
        """The pending request for ``state``, marked answered so no second response is taken."""
        with self._lock:
            self._expire(now)
            request_id = self._by_state.get(state)
            pending = None if request_id is None else self._by_id.get(request_id)
            if pending is None:
                raise ApiProblem("unknown-state", "no open request has this state", status=400)
            if pending.done_at is not None or now > pending.request.exp:
                raise ApiProblem("response-already-received", "this request was already answered or expired",
                                 status=400)
            pending.done_at = now
            return pending

    def _expire(self, now: int) -> None:
        # Entries are in creation order; an answered one is kept for ttl after creation too.
        while self._by_id:
            request_id, oldest = next(iter(self._by_id.items()))
            if now - oldest.request.iat <= self.ttl_s and len(self._by_id) <= self.entries_max:
                return
            del self._by_id[request_id]
            self._by_state.pop(oldest.request.state, None)


class CreateRequest(BaseModel):
    """``POST /v1/requests``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    dcql_query: dict[str, Any] = Field(description="A DCQL query (OpenID4VP 1.0 §6) within the registration.")
    callback_uri: str | None = Field(None, max_length=2048,
                                     description="Where to POST the verdict (https, or http on loopback).")


def _wall_s() -> int:
    return int(time.time())


def create_verifier_app(
    config: VerifierConfig,
    *,
    registration: RegistrationReader,
    verify_one: VerifyOne,
    clock_s: Callable[[], int] = _wall_s,
    post_callback: Callable[[str, Mapping[str, Any]], None] | None = None,
    logger: logging.Logger | None = None,
) -> FastAPI:
    """The verifier service. ``registration`` reads the service's record through the light
    client; ``verify_one`` is the strict verifier over the ledger (see :func:`ledger_verify_one`)."""
    log = logger or logging.getLogger("imi.verifier")
    sessions = Sessions()
    app = FastAPI(title="imi verifier service", version="1",
                  description="Asks citizens' wallets a registered question over OpenID4VP 1.0 and tells the "
                              "service only the answer.", docs_url="/docs", redoc_url=None,
                  openapi_url="/openapi.json")
    install_problem_handlers(app, log)
    send_callback = post_callback or _post_callback

    def staff(request: Request) -> None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {config.admin_token}".encode()):
            raise ApiProblem("admin-unauthorized", "a valid staff bearer token is required", status=401)

    def make(body: CreateRequest) -> dict[str, Any]:
        try:
            query = dcql.parse_query(body.dcql_query)
        except DcqlError as exc:
            raise ApiProblem(exc.reason, str(exc), status=400) from exc
        if body.callback_uri is not None:
            _check_callback(body.callback_uri)
        faults = services.may_ask(registration(), query)
        if faults:
            raise ApiProblem("beyond-registration", "; ".join(faults), status=403)
        now = clock_s()
        request_id = secrets.token_urlsafe(16)
        try:
            request = oid4vp.new_request(config.did, f"{config.public_url}/v1/responses", query,
                                         nonce=secrets.token_urlsafe(24), state=secrets.token_urlsafe(24),
                                         now=now, lifetime_s=VERIFIER_REQUEST_TTL_S)
        except Oid4vpError as exc:
            raise ApiProblem(exc.reason, str(exc), status=400) from exc
        signed = oid4vp.sign_request(request, config.signing_key, config.kid)
        sessions.add(request_id, _Pending(request, signed, body.callback_uri), now)
        request_uri = oid4vp.authorization_uri(request.client_id, f"{config.public_url}/v1/request-objects/{request_id}")
        return {"id": request_id, "request_uri": request_uri, "expires_at": request.exp}

    @app.get("/health", tags=["verifier"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/requests", tags=["verifier"], summary="Ask a question (staff)")
    async def create(request: Request) -> dict[str, Any]:
        staff(request)
        body = await read_json_body(request, CreateRequest)
        try:
            return await run_in_threadpool(make, body)
        except IdentityError as exc:  # the ledger could not be read
            raise ApiProblem("ledger-unavailable", str(exc), status=502) from exc

    @app.get("/v1/requests/{request_id}", tags=["verifier"], summary="The verdict (staff)")
    async def result(request_id: str, request: Request) -> dict[str, Any]:
        staff(request)
        pending = sessions.get(request_id, clock_s())
        if pending is None:
            return {"state": "expired", "valid": False, "reason": "unknown-or-expired", "claims": {}}
        if pending.verdict is None:
            return {"state": "pending", "valid": False, "reason": None, "claims": {}}
        return {"state": "done", **pending.verdict.to_json()}

    @app.get("/v1/request-objects/{request_id}", tags=["wallet"], summary="The signed request object")
    async def request_object(request_id: str) -> Response:
        pending = sessions.get(request_id, clock_s())
        if pending is None or pending.done_at is not None:
            raise ApiProblem("unknown-request", "no open request has this id", status=404)
        return Response(pending.request_object, media_type=REQUEST_OBJECT_MEDIA_TYPE)

    @app.post("/v1/responses", tags=["wallet"], summary="direct_post: the wallet's vp_token")
    async def response(request: Request) -> dict[str, Any]:
        form = _form(request.headers.get("content-type", ""), await request.body())
        now = clock_s()
        pending = sessions.claim(form.get("state", ""), now)
        if "error" in form:
            pending.verdict = oid4vp.Verdict(False, form["error"][:64], {}, "the wallet declined")
        else:
            try:
                token = oid4vp.parse_vp_token(form.get("vp_token"))
            except Oid4vpError as exc:
                pending.verdict = oid4vp.Verdict(False, exc.reason, {}, str(exc))
            else:
                pending.verdict = await run_in_threadpool(
                    oid4vp.check_response, pending.request, token,
                    lambda presentation, question: verify_one(presentation, question, now))
        if pending.callback_uri is not None:
            await run_in_threadpool(_safe_callback, send_callback, pending.callback_uri, pending.verdict, log)
        return {}

    app.add_middleware(CatchAll, logger=log)
    app.add_middleware(BodyLimit, body_bytes_max=VERIFIER_BODY_BYTES_MAX)
    return app


def _form(content_type: str, body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body, each field once; 400 otherwise."""
    if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise ApiProblem("unsupported-media-type", "direct_post is application/x-www-form-urlencoded", status=415)
    try:
        fields = urllib.parse.parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiProblem("invalid_request", "the body is not a form", status=400) from exc
    if any(len(values) != 1 for values in fields.values()):
        raise ApiProblem("invalid_request", "each form field must appear once", status=400)
    return {name: values[0] for name, values in fields.items()}


def _check_callback(uri: str) -> None:
    parts = urllib.parse.urlsplit(uri)
    loopback = parts.hostname in {"127.0.0.1", "localhost", "::1"}
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise ApiProblem("bad-callback", "callback_uri must be https (or http on loopback)", status=400)


def _post_callback(uri: str, verdict: Mapping[str, Any]) -> None:
    import httpx

    httpx.post(uri, json=dict(verdict), timeout=VERIFIER_CALLBACK_TIMEOUT_S).raise_for_status()


def _safe_callback(send: Callable[[str, Mapping[str, Any]], None], uri: str, verdict: oid4vp.Verdict | None,
                   log: logging.Logger) -> None:
    """Push the verdict; a failing callback is logged, never fails the wallet's post (the
    service can still fetch the verdict)."""
    assert verdict is not None
    try:
        send(uri, {"state": "done", **verdict.to_json()})
    except Exception as exc:  # noqa: BLE001 - any failure of the service's endpoint
        log.warning("verdict callback to %s failed: %s", uri, exc)


def ledger_verify_one(client: Any) -> VerifyOne:
    """The strict verifier (RFC 9901 §7, SD-JWT VC, status) over the ledger through ``client``
    (an :class:`identity.light_client.LightClient`): issuer keys and accreditation, holder
    keys (``cnf.jwk`` or a did:imi), Token Status Lists, each proven by the light client."""
    from identity.ledger_trust import LedgerHolderKeys, LedgerIssuerKeys, LedgerStatusLists
    from identity.verifier import VerifierCache, verify_presentation

    checked_at_ms = [0]  # the ledger is judged at the verdict's own time, not the wall clock's
    issuer_keys = LedgerIssuerKeys(client, clock_ms=lambda: checked_at_ms[0])
    holder_keys = LedgerHolderKeys(client, clock_ms=lambda: checked_at_ms[0])
    status, cache = LedgerStatusLists(client), VerifierCache()
    lock = threading.Lock()  # one light client and cache, used from the service's worker threads

    def verify_one(presentation: str, question: PresentationRequest, now: int) -> Any:
        with lock:
            checked_at_ms[0] = now * 1000
            return verify_presentation(presentation, question, issuer_keys=issuer_keys,
                                       holder_keys=holder_keys, status=status, now=now, cache=cache)
    return verify_one


__all__ = ["REQUEST_OBJECT_MEDIA_TYPE", "CreateRequest", "Sessions", "VerifierConfig", "create_verifier_app",
           "ledger_verify_one"]
