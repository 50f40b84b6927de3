"""The citizen's wallet as a local web app: :func:`create_wallet_app` (``imi wallet serve``).

For a person without a terminal — often elderly, on a phone, with family helping. It
runs on the person's own device, on loopback only, and is unlocked with the wallet
password; the open wallet lives in this process's memory until it is locked.

==============================  ===========================================================
``GET /``                       unlock form, or the credentials held (display names from the
                                issuer's metadata, else the ledger) and their one-time use
``POST /unlock``, ``/lock``     open the wallet with its password / forget it
``GET /present``                paste (or scan and paste) an ``openid4vp://`` link
``POST /present``               check the request (ledger) and show who asks, why, and exactly
                                what would be shared → consent
``POST /present/answer``        agree (send) or decline
``GET|POST /receive``,          an ``openid-credential-offer://`` link → the issuer checked on
``POST /receive/accept``        the ledger, what it offers, the PIN → consent → the new
                                credentials (:mod:`identity.http.wallet_receive`)
``GET /recovery``, ``/rotate``  the recovery kit and key rotation of the wallet's did:imi
  and their POSTs               (:mod:`identity.http.wallet_keys`)
``GET /history``                what was shared with whom and when, what was received;
                                ``/history.json`` exports it
==============================  ===========================================================

Who may call, and what if they lie: see :mod:`identity.http.wallet_session` (loopback
only, CSRF on every POST). A service that lies is refused by :mod:`identity.presenter`
(signature, registration, what it may ask), an issuer that is not the one the ledger names
by :mod:`identity.oid4vci_client`, before the person is even asked.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from identity import presenter
from identity.errors import IdentityError, WalletError
from identity.http import pages, wallet_keys, wallet_receive
from identity.http.constants import WALLET_APP_BODY_BYTES_MAX, WALLET_SESSION_IDLE_S
from identity.http.wallet_session import (
    LOOPBACK_HOSTS,
    WALLET_COOKIE,
    Locked,
    LoopbackOnly,
    Refused,
    WalletContext,
    date,
    failed,
    render,
)
from identity.ledger_client import NodeClient
from identity.light_client import LightClient
from identity.wallet import REUSE, CredentialSummary, KdfParams, Wallet
from node.api.guard import BodyLimit


def create_wallet_app(
    wallet_path: Path,
    *,
    light: LightClient,
    http: Any,
    node: NodeClient | None = None,
    clock_ms: Callable[[], int] | None = None,
    idle_s: float = WALLET_SESSION_IDLE_S,
    kit_kdf: KdfParams | None = None,
    allow_http: bool = False,
) -> FastAPI:
    """The wallet app for the wallet file at ``wallet_path``, checking requests and issuers
    through ``light``, reaching services and issuers with ``http`` (an httpx-like client) and
    submitting DID transactions through ``node``. ``kit_kdf``: the recovery kits' KDF cost
    (tests only; default: the wallet default). ``allow_http``: plain-http issuers (tests)."""
    ctx = WalletContext(light, http, node, clock_ms or (lambda: int(time.time() * 1000)), idle_s,
                        kit_kdf=kit_kdf, allow_http=allow_http)
    app = FastAPI(title="imi wallet", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        return Response("refused", status_code=exc.status)

    @app.exception_handler(Locked)
    async def locked(request: Request, exc: Exception) -> Response:
        return RedirectResponse("/", status_code=303)

    @app.get("/static/style.css", include_in_schema=False)
    async def style() -> Response:
        return pages.stylesheet()

    _session_routes(app, ctx, wallet_path)
    _present_routes(app, ctx)
    wallet_receive.add_routes(app, ctx)
    wallet_keys.add_routes(app, ctx)
    _history_routes(app, ctx)
    app.add_middleware(BodyLimit, body_bytes_max=WALLET_APP_BODY_BYTES_MAX)
    app.add_middleware(LoopbackOnly)
    return app


def _session_routes(app: FastAPI, ctx: WalletContext, wallet_path: Path) -> None:
    state = ctx.state

    def locked_page(request: Request, error: str | None = None, status_code: int = 200) -> Response:
        return render(request, "wallet_unlock.html", error=error, status_code=status_code)

    @app.get("/")
    async def home(request: Request) -> Response:
        wallet = ctx.open_wallet(request)
        if wallet is None:
            return locked_page(request)
        cards = await run_in_threadpool(_cards, ctx, wallet, pages.language(request))
        return render(request, "wallet_home.html", credentials=cards, csrf=state.csrf,
                      refuse_when_used_up=wallet.when_used_up != REUSE)

    @app.post("/unlock")
    async def unlock(request: Request) -> Response:
        fields = await ctx.form(request, check_csrf=False)
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
        if ctx.open_wallet(request) is not None:
            await ctx.form(request)
            with state.lock:
                state.forget()
                state.session = secrets.token_urlsafe(24)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(WALLET_COOKIE)
        return response


def _cards(ctx: WalletContext, wallet: Wallet, lang: str) -> list[dict[str, Any]]:
    """One card per batch (an issuance's credentials), with its one-time use."""
    summaries = wallet.credentials()
    names = {**_type_names(ctx, {c.vct for c in summaries}, lang), **wallet.display_names(lang)}
    issuers = _issuer_names(ctx, {c.iss for c in summaries})
    seen: set[tuple[str, ...]] = set()
    cards = []
    for c in summaries:
        if c.batch in seen:
            continue
        seen.add(c.batch)
        cards.append(_card(c, names, issuers))
    return cards


def _card(c: CredentialSummary, names: dict[str, str], issuers: dict[str, str]) -> dict[str, Any]:
    return {"vct": c.vct, "name": names.get(c.vct), "iss": issuers.get(c.iss, c.iss), "exp": date(c.exp),
            "unused": c.batch_unused, "total": len(c.batch)}


def _type_names(ctx: WalletContext, vcts: set[str], lang: str) -> dict[str, str]:
    """Display names of credential types, as published on the ledger (certified reads)."""
    out: dict[str, str] = {}
    for vct in vcts:
        try:
            definition = ctx.light.credential_type(vct, ctx.now_ms())
        except IdentityError:
            continue  # unknown or unreachable: the page shows the vct itself
        name = definition.get("display", {}).get(lang) if isinstance(definition.get("display"), dict) else None
        out[vct] = str(name or definition.get("name") or vct)
    return out


def _issuer_names(ctx: WalletContext, dids: set[str]) -> dict[str, str]:
    """Issuers' accredited names, as recorded on the ledger (certified reads)."""
    out: dict[str, str] = {}
    for did in dids:
        try:
            out[did] = str(ctx.light.issuer(did, ctx.now_ms()).get("name") or did)
        except IdentityError:
            continue
    return out


def _present_routes(app: FastAPI, ctx: WalletContext) -> None:
    @app.get("/present")
    async def present_form(request: Request) -> Response:
        ctx.require_wallet(request)
        return ctx.form_page(request, "wallet_present.html", uri=request.query_params.get("uri", ""))

    @app.post("/present")
    async def present(request: Request) -> Response:
        wallet = ctx.require_wallet(request)
        fields = await ctx.form(request)
        try:
            prepared = await run_in_threadpool(presenter.prepare, fields.get("uri", "").strip(), wallet=wallet,
                                               light=ctx.light, http=ctx.http, now_ms=ctx.now_ms())
        except IdentityError as exc:
            await run_in_threadpool(wallet.save)  # the refusal is in the history
            return failed(request, exc.reason, str(exc), outcome="refused")
        consent = secrets.token_urlsafe(16)
        ctx.put(consent, prepared)  # one consent at a time
        lang = pages.language(request)
        names = await run_in_threadpool(_type_names, ctx, {d.vct for d in prepared.disclosures}, lang)
        return ctx.form_page(request, "wallet_consent.html", consent=consent,
                             type_names={**names, **wallet.display_names(lang)},
                             name=prepared.name(lang), purpose=prepared.purpose(lang),
                             did=prepared.request.service_did, disclosures=prepared.disclosures,
                             reused=any(d.reused for d in prepared.disclosures))

    @app.post("/present/answer")
    async def answer(request: Request) -> Response:
        wallet = ctx.require_wallet(request)
        fields = await ctx.form(request)
        prepared = ctx.take(fields.get("consent", ""), presenter.Prepared)
        if prepared is None:
            return RedirectResponse("/present", status_code=303)
        lang = pages.language(request)
        agreed = fields.get("choice") == "agree"
        step = presenter.send if agreed else presenter.decline
        try:
            await run_in_threadpool(step, prepared, wallet=wallet, http=ctx.http, now=ctx.now(), lang=lang)
        except IdentityError as exc:
            return failed(request, exc.reason, str(exc), 502, outcome="refused")
        finally:
            await run_in_threadpool(wallet.save)
        return render(request, "wallet_done.html", outcome="sent" if agreed else "declined",
                      name=prepared.name(lang))


def _history_routes(app: FastAPI, ctx: WalletContext) -> None:
    @app.get("/history")
    async def history(request: Request) -> Response:
        wallet = ctx.require_wallet(request)
        lang = pages.language(request)
        rows = [{"when": date(h.at, with_time=True), "to": h.verifier_name(lang), "shared": list(h.disclosed),
                 "refused": h.refused} for h in reversed(wallet.history())]
        received = await run_in_threadpool(_received_rows, ctx, wallet, lang)
        return render(request, "wallet_history.html", rows=rows, received=received)

    @app.get("/history.json")
    async def history_json(request: Request) -> Response:
        wallet = ctx.require_wallet(request)
        body = {"shared": [h.to_json() for h in wallet.history()],
                "received": [{k: v for k, v in i.items() if k != "holder"} for i in wallet.issuances()]}
        return JSONResponse(json.loads(json.dumps(body, ensure_ascii=False)), headers={
            "Content-Disposition": 'attachment; filename="imi-history.json"', **pages.SECURITY_HEADERS})


def _received_rows(ctx: WalletContext, wallet: Wallet, lang: str) -> list[dict[str, Any]]:
    records = wallet.issuances()
    issuers = _issuer_names(ctx, {r["iss"] for r in records})
    return [{"when": date(r["at"], with_time=True), "from": issuers.get(r["iss"], r["iss"]),
             "what": r.get("display", {}).get(lang) or r["vct"], "count": len(r["credentials"])}
            for r in reversed(records)]


__all__ = ["LOOPBACK_HOSTS", "WALLET_COOKIE", "LoopbackOnly", "create_wallet_app"]
