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
``GET /counter`` (and ``/counter/…``)           the counter page: pick a question from the   staff (signed
                                               registration, show its QR code, see the      in with the
                                               answer arrive                                token)
=============================================  ===========================================  ==============

Who may call, and what if they lie or flood: staff routes need the bearer token
(constant-time comparison; no address is trusted). A query beyond the service's
registration on the ledger is refused before anything is signed (``403
beyond-registration``), so the service cannot even ask for more than it may. The
public routes are bounded: pending requests expire after
:data:`VERIFIER_REQUEST_TTL_S` and are capped (:data:`VERIFIER_REQUESTS_MAX`,
``503 too-many-requests``); a response is accepted once per request (a replayed
``vp_token`` is ``400 response-already-received``, and the first verdict stands);
bodies are capped; the verdict only ever carries the requested claims. The counter
page signs staff in with the same token into an HttpOnly, SameSite=Strict session
cookie (bounded, expiring); its forms carry a CSRF token bound to the session.
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
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from identity import dcql, oid4vp, services
from identity.errors import DcqlError, IdentityError, Oid4vpError
from identity.http import pages
from identity.http.constants import (
    STAFF_SESSION_TTL_S,
    STAFF_SESSIONS_MAX,
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
        return open_request(query, body.callback_uri)

    def open_request(query: dcql.DcqlQuery, callback_uri: str | None) -> dict[str, Any]:
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
        sessions.add(request_id, _Pending(request, signed, callback_uri), now)
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
        form = direct_post_form(request.headers.get("content-type", ""), await request.body())
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

    _counter_routes(app, config, registration, sessions, open_request, clock_s)
    app.add_middleware(CatchAll, logger=log)
    app.add_middleware(BodyLimit, body_bytes_max=VERIFIER_BODY_BYTES_MAX)
    return app


# --- the counter page ------------------------------------------------------------------------------
COUNTER_COOKIE = "imi_counter"


@dataclass(slots=True)
class StaffSessions:
    """Signed-in counter sessions: random ids, bounded and expiring; a CSRF token per session."""

    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    ttl_s: int = STAFF_SESSION_TTL_S
    entries_max: int = STAFF_SESSIONS_MAX
    _started: OrderedDict[str, int] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, now: int) -> str:
        session = secrets.token_urlsafe(24)
        with self._lock:
            self._started[session] = now
            while len(self._started) > self.entries_max:
                self._started.popitem(last=False)  # the oldest sign-in makes room
        return session

    def valid(self, session: str | None, now: int) -> bool:
        with self._lock:
            started = self._started.get(session or "")
            if started is not None and now - started > self.ttl_s:
                del self._started[str(session)]
                return False
            return started is not None

    def end(self, session: str | None) -> None:
        with self._lock:
            self._started.pop(session or "", None)

    def csrf(self, session: str) -> str:
        return hmac.new(self.secret, session.encode(), "sha256").hexdigest()


def _counter_routes(app: FastAPI, config: VerifierConfig, registration: RegistrationReader, sessions: Sessions,
                    open_request: Callable[[dcql.DcqlQuery, str | None], dict[str, Any]],
                    clock_s: Callable[[], int]) -> None:
    staff = StaffSessions()

    def signed_in(request: Request) -> str | None:
        session = request.cookies.get(COUNTER_COOKIE)
        return session if staff.valid(session, clock_s()) else None

    def checked_form(request: Request, body: bytes, session: str) -> dict[str, list[str]]:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            raise ApiProblem("unsupported-media-type", "forms are application/x-www-form-urlencoded", status=415)
        fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        if not hmac.compare_digest(fields.get("csrf", [""])[0], staff.csrf(session)):
            raise ApiProblem("csrf-mismatch", "the form is stale; reload the page", status=403)
        return fields

    def ask_page(request: Request, session: str, error: str | None = None) -> Response:
        record = registration() or {}
        queries = [{"index": qi, "vct": q["vct"], "claims": [oid4vp.dotted(tuple(p)) for p in q["claims"]
                                                              if None not in p]}
                   for qi, q in enumerate(record.get("queries", []))]
        return pages.render(request, "counter_ask.html", csrf=staff.csrf(session), queries=queries, error=error,
                            service_name=_text(record.get("name"), pages.language(request)) or config.did,
                            purpose=_text(record.get("purpose"), pages.language(request)),
                            status_code=400 if error else 200)

    @app.get("/static/style.css", include_in_schema=False)
    async def style() -> Response:
        return pages.stylesheet()

    @app.get("/counter", include_in_schema=False)
    async def counter(request: Request) -> Response:
        session = signed_in(request)
        if session is None:
            return pages.render(request, "counter_login.html", error=None)
        return await run_in_threadpool(ask_page, request, session)

    @app.post("/counter/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        fields = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
        if not hmac.compare_digest(fields.get("token", [""])[0].encode(), config.admin_token.encode()):
            return pages.render(request, "counter_login.html", error=pages.MESSAGES_FOR(request)["bad_token"],
                                status_code=401)
        response = RedirectResponse("/counter", status_code=303)
        response.set_cookie(COUNTER_COOKIE, staff.start(clock_s()), httponly=True, samesite="strict",
                            max_age=STAFF_SESSION_TTL_S, path="/counter")
        return response

    @app.post("/counter/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        session = signed_in(request)
        if session is not None:
            checked_form(request, await request.body(), session)
            staff.end(session)
        response = RedirectResponse("/counter", status_code=303)
        response.delete_cookie(COUNTER_COOKIE, path="/counter")
        return response

    @app.post("/counter/ask", include_in_schema=False)
    async def ask(request: Request) -> Response:
        session = signed_in(request)
        if session is None:
            return RedirectResponse("/counter", status_code=303)
        fields = checked_form(request, await request.body(), session)
        record = await run_in_threadpool(registration) or {}
        query = _query_from_choices(record, fields.get("claim", []))
        if query is None:
            return await run_in_threadpool(ask_page, request, session, pages.MESSAGES_FOR(request)["nothing_chosen"])
        created = await run_in_threadpool(open_request, query, None)
        return RedirectResponse(f"/counter/requests/{created['id']}", status_code=303)

    @app.get("/counter/requests/{request_id}", include_in_schema=False)
    async def waiting(request_id: str, request: Request) -> Response:
        if signed_in(request) is None:
            return RedirectResponse("/counter", status_code=303)
        pending = sessions.get(request_id, clock_s())
        record = await run_in_threadpool(registration) or {}
        name = _text(record.get("name"), pages.language(request)) or config.did
        if pending is None:
            return pages.render(request, "counter_request.html", state="expired", service_name=name)
        if pending.verdict is None:
            uri = oid4vp.authorization_uri(pending.request.client_id,
                                           f"{config.public_url}/v1/request-objects/{request_id}")
            return pages.render(request, "counter_request.html", state="pending", service_name=name,
                                request_uri=uri, qr=pages.qr_svg(uri, "openid4vp"),
                                expires=time.strftime("%H:%M:%S", time.localtime(pending.request.exp)))
        verdict = pending.verdict
        return pages.render(request, "counter_request.html", state="done", service_name=name, valid=verdict.valid,
                            reason=verdict.reason, claims=verdict.claims)


def _text(value: Any, lang: str) -> str:
    return str(value.get(lang, "")) if isinstance(value, dict) else ""


def _query_from_choices(record: Mapping[str, Any], choices: list[str]) -> dcql.DcqlQuery | None:
    """The DCQL query for the claims staff ticked (``"<query index>|<dotted path>"``), only
    from the registration: a tampered form can name nothing else. Age thresholds are asked
    as predicates (``values: [true]``): the answer is yes or no, never the birth date."""
    registered = record.get("queries", [])
    chosen: dict[int, list[list[Any]]] = {}
    for choice in choices:
        index_text, _, dotted_path = choice.partition("|")
        if not index_text.isdigit() or int(index_text) >= len(registered):
            continue
        index = int(index_text)
        for path in registered[index]["claims"]:
            if None not in path and oid4vp.dotted(tuple(path)) == dotted_path:
                chosen.setdefault(index, []).append(list(path))
    if not chosen:
        return None
    credentials = []
    for index, paths in sorted(chosen.items()):
        claims = [{"path": p, **({"values": [True]} if p[0] == "age_equal_or_over" else {})} for p in paths]
        credentials.append({"id": f"q{index}", "format": "dc+sd-jwt",
                            "meta": {"vct_values": [registered[index]["vct"]]}, "claims": claims})
    return dcql.parse_query({"credentials": credentials})


def direct_post_form(content_type: str, body: bytes) -> dict[str, str]:
    """A ``direct_post`` body (OpenID4VP 1.0 §8.2): ``application/x-www-form-urlencoded``, each
    field once; 415 / 400 problems otherwise. Shared by every OpenID4VP verifier endpoint here."""
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
    """The same rule as a request's response_uri: https, or plain http to loopback."""
    try:
        oid4vp.check_uri(uri, "callback_uri")
    except Oid4vpError as exc:
        raise ApiProblem("bad-callback", str(exc), status=400) from exc


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
    keys (``cnf.jwk`` or a did:imi), Token Status Lists, each proven by the light client.
    A busy service passes a client that keeps its reads a moment (``LightClient(...,
    reuse_ms=VERIFIER_READ_REUSE_MS)``, as ``imi verifier serve`` does): otherwise every
    presentation fetches and verifies three ledger records, under this function's lock."""
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
           "direct_post_form", "ledger_verify_one"]
