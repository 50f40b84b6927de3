"""The citizen's wallet as a local web app: :func:`create_wallet_app` (``imi wallet serve``).

For a person without a terminal — often elderly, on a phone, with family helping. It
runs on the person's own device, on loopback only, and is unlocked with the wallet
password; the open wallet lives in this process's memory until it is locked.

==============================  ===========================================================
``GET /``                       unlock form, or the credentials held (with display names)
``POST /unlock``, ``/lock``     open the wallet with its password / forget it
``GET /present``                paste (or scan and paste) an ``openid4vp://`` link
``POST /present``               check the request (ledger) and show who asks, why, and exactly
                                what would be shared → consent
``POST /present/answer``        agree (send) or decline
``GET /history``                what was shared with whom and when; ``/history.json`` exports it
==============================  ===========================================================

Who may call, and what if they lie: only this device (the client address and the
``Host`` header must both be loopback, which also defeats DNS rebinding); every state
change is a POST carrying a CSRF token bound to the session, and the session cookie is
HttpOnly and SameSite=Strict. A service that lies is refused by
:mod:`identity.presenter` (signature, registration, what it may ask) before the person
is even asked.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from identity import presenter
from identity.errors import IdentityError, WalletError
from identity.http import pages
from identity.http.constants import WALLET_APP_BODY_BYTES_MAX, WALLET_SESSION_IDLE_S
from identity.light_client import LightClient
from identity.wallet import Wallet
from node.api.guard import BodyLimit

WALLET_COOKIE = "imi_wallet"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass(slots=True)
class _Unlocked:
    """The one open wallet: its session, CSRF secret, pending consent and last use."""

    wallet: Wallet | None = None
    session: str = ""
    csrf: str = ""
    used_at: float = 0.0
    pending: dict[str, presenter.Prepared] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class LoopbackOnly:
    """Refuse (403) any request whose client or ``Host`` is not loopback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            client = scope.get("client") or ("", 0)
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            hostname = urllib.parse.urlsplit("//" + host).hostname or ""
            if client[0] not in LOOPBACK_HOSTS or hostname not in LOOPBACK_HOSTS:
                response = Response("this wallet answers only on this device", status_code=403)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_wallet_app(
    wallet_path: Path,
    *,
    light: LightClient,
    http: Any,
    clock_ms: Callable[[], int] | None = None,
    idle_s: float = WALLET_SESSION_IDLE_S,
) -> FastAPI:
    """The wallet app for the wallet file at ``wallet_path``, checking requests through
    ``light`` and reaching services with ``http`` (an httpx-like client)."""
    now_ms = clock_ms or (lambda: int(time.time() * 1000))
    state = _Unlocked()
    app = FastAPI(title="imi wallet", docs_url=None, redoc_url=None, openapi_url=None)

    def open_wallet(request: Request) -> Wallet | None:
        with state.lock:
            cookie = request.cookies.get(WALLET_COOKIE, "")
            if state.wallet is None or not hmac.compare_digest(cookie, state.session):
                return None
            if time.monotonic() - state.used_at > idle_s:  # idle too long: lock it
                state.wallet, state.pending = None, {}
                return None
            state.used_at = time.monotonic()
            return state.wallet

    async def form(request: Request, *, check_csrf: bool = True) -> dict[str, str]:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            raise _Refused(415)
        fields = {k: v[0] for k, v in urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"),
                                                            keep_blank_values=True).items()}
        if check_csrf and not hmac.compare_digest(fields.get("csrf", ""), state.csrf):
            raise _Refused(403)
        return fields

    def type_names(vcts: set[str], lang: str) -> dict[str, str]:
        """Display names of credential types, as published on the ledger (certified reads)."""
        out: dict[str, str] = {}
        for vct in vcts:
            try:
                definition = light.credential_type(vct, now_ms())
            except IdentityError:
                continue  # unknown or unreachable: the page shows the vct itself
            name = definition.get("display", {}).get(lang) if isinstance(definition.get("display"), dict) else None
            out[vct] = str(name or definition.get("name") or vct)
        return out

    def issuer_names(dids: set[str]) -> dict[str, str]:
        """Issuers' accredited names, as recorded on the ledger (certified reads)."""
        out: dict[str, str] = {}
        for did in dids:
            try:
                out[did] = str(light.issuer(did, now_ms()).get("name") or did)
            except IdentityError:
                continue
        return out

    def locked_page(request: Request, error: str | None = None, status_code: int = 200) -> Response:
        return pages.render(request, "wallet_unlock.html", error=error, status_code=status_code)

    @app.exception_handler(_Refused)
    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _Refused)
        return Response("refused", status_code=exc.status)

    @app.get("/static/style.css", include_in_schema=False)
    async def style() -> Response:
        return pages.stylesheet()

    @app.get("/")
    async def home(request: Request) -> Response:
        wallet = open_wallet(request)
        if wallet is None:
            return locked_page(request)
        summaries = wallet.credentials()
        names = await run_in_threadpool(type_names, {c.vct for c in summaries}, pages.language(request))
        issuers = await run_in_threadpool(issuer_names, {c.iss for c in summaries})
        held = [{"vct": c.vct, "name": names.get(c.vct), "iss": issuers.get(c.iss, c.iss), "exp": _date(c.exp)}
                for c in summaries]
        return pages.render(request, "wallet_home.html", credentials=held, csrf=state.csrf)

    @app.post("/unlock")
    async def unlock(request: Request) -> Response:
        fields = await form(request, check_csrf=False)
        try:
            wallet = await run_in_threadpool(Wallet.open, wallet_path, fields.get("password", ""))
        except WalletError:
            return locked_page(request, pages.MESSAGES_FOR(request)["bad_password"], 401)
        with state.lock:
            state.wallet, state.pending = wallet, {}
            state.session, state.csrf = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
            state.used_at = time.monotonic()
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(WALLET_COOKIE, state.session, httponly=True, samesite="strict")
        return response

    @app.post("/lock")
    async def lock(request: Request) -> Response:
        if open_wallet(request) is not None:
            await form(request)
            with state.lock:
                state.wallet, state.pending, state.session = None, {}, secrets.token_urlsafe(24)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(WALLET_COOKIE)
        return response

    @app.get("/present")
    async def present_form(request: Request) -> Response:
        if open_wallet(request) is None:
            return RedirectResponse("/", status_code=303)
        return pages.render(request, "wallet_present.html", csrf=state.csrf, uri=request.query_params.get("uri", ""))

    @app.post("/present")
    async def present(request: Request) -> Response:
        wallet = open_wallet(request)
        if wallet is None:
            return RedirectResponse("/", status_code=303)
        fields = await form(request)
        try:
            prepared = await run_in_threadpool(presenter.prepare, fields.get("uri", "").strip(), wallet=wallet,
                                               light=light, http=http, now_ms=now_ms())
        except IdentityError as exc:
            await run_in_threadpool(wallet.save)  # the refusal is in the history
            return pages.render(request, "wallet_done.html", outcome="refused", reason=exc.reason,
                                detail=str(exc), status_code=400)
        consent = secrets.token_urlsafe(16)
        with state.lock:
            state.pending = {consent: prepared}  # one consent at a time
        lang = pages.language(request)
        return pages.render(request, "wallet_consent.html", csrf=state.csrf, consent=consent,
                            name=prepared.name(lang), purpose=prepared.purpose(lang),
                            did=prepared.request.service_did, disclosures=prepared.disclosures)

    @app.post("/present/answer")
    async def answer(request: Request) -> Response:
        wallet = open_wallet(request)
        if wallet is None:
            return RedirectResponse("/", status_code=303)
        fields = await form(request)
        with state.lock:
            prepared = state.pending.pop(fields.get("consent", ""), None)
        if prepared is None:
            return RedirectResponse("/present", status_code=303)
        lang = pages.language(request)
        agreed = fields.get("choice") == "agree"
        try:
            if agreed:
                await run_in_threadpool(presenter.send, prepared, wallet=wallet, http=http, now=now_ms() // 1000,
                                        lang=lang)
            else:
                await run_in_threadpool(presenter.decline, prepared, wallet=wallet, http=http,
                                        now=now_ms() // 1000, lang=lang)
        except IdentityError as exc:
            return pages.render(request, "wallet_done.html", outcome="refused", reason=exc.reason,
                                detail=str(exc), status_code=502)
        finally:
            await run_in_threadpool(wallet.save)
        return pages.render(request, "wallet_done.html", outcome="sent" if agreed else "declined",
                            name=prepared.name(lang))

    @app.get("/history")
    async def history(request: Request) -> Response:
        wallet = open_wallet(request)
        if wallet is None:
            return RedirectResponse("/", status_code=303)
        rows = [{"when": _date(h.at, with_time=True), "to": h.verifier or h.aud, "shared": list(h.disclosed),
                 "refused": h.refused} for h in reversed(wallet.history())]
        return pages.render(request, "wallet_history.html", rows=rows)

    @app.get("/history.json")
    async def history_json(request: Request) -> Response:
        wallet = open_wallet(request)
        if wallet is None:
            return RedirectResponse("/", status_code=303)
        body = json.dumps([h.to_json() for h in wallet.history()], ensure_ascii=False, indent=2)
        return JSONResponse(json.loads(body), headers={
            "Content-Disposition": 'attachment; filename="imi-history.json"', **pages.SECURITY_HEADERS})

    app.add_middleware(BodyLimit, body_bytes_max=WALLET_APP_BODY_BYTES_MAX)
    app.add_middleware(LoopbackOnly)
    return app


class _Refused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _date(seconds: int | None, *, with_time: bool = False) -> str:
    if seconds is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d", time.localtime(seconds))


__all__ = ["LOOPBACK_HOSTS", "WALLET_COOKIE", "LoopbackOnly", "create_wallet_app"]
