"""The wallet app's receive pages: an ``openid-credential-offer://`` link → who the issuer is
(checked on the ledger) and what it offers → the PIN and consent → the new credentials.

``POST /receive`` only reads (:func:`identity.oid4vci_client.preview`: the offer, the
issuer's metadata, and the ledger, whose DID document of the accredited issuer must name
that endpoint); nothing is signed before the person agrees on ``POST /receive/accept``,
which redeems the offer (:func:`identity.oid4vci_client.receive`) for a batch of up to
:data:`~identity.http.constants.WALLET_RECEIVE_BATCH_MAX` one-time credentials, each bound to its own new key. A wrong PIN,
an expired offer or an issuer the ledger does not name ends on the friendly error page
with the issuer's OAuth error code or our stable reason, and nothing is stored.
"""

from __future__ import annotations

import secrets
from collections import Counter
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from identity.errors import IdentityError
from identity.http import pages
from identity.http.constants import WALLET_RECEIVE_BATCH_MAX, WALLET_TX_CODE_CHARS_MAX
from identity.http.wallet_session import WalletContext, failed, render
from identity.oid4vci_client import Offered, preview, receive
from identity.wallet import Wallet


def add_routes(app: FastAPI, ctx: WalletContext) -> None:
    @app.get("/receive")
    async def receive_form(request: Request) -> Response:
        ctx.require_wallet(request)
        return ctx.form_page(request, "wallet_receive.html", uri=request.query_params.get("uri", ""))

    @app.post("/receive")
    async def receive_check(request: Request) -> Response:
        ctx.require_wallet(request)
        fields = await ctx.form(request)
        try:
            offered = await run_in_threadpool(preview, fields.get("uri", "").strip(), http=ctx.http,
                                              ledger=ctx.light, now=ctx.now(), allow_http=ctx.allow_http)
        except IdentityError as exc:
            return failed(request, exc.reason, str(exc))
        consent = secrets.token_urlsafe(16)
        ctx.put(consent, offered)
        return await _confirm_page(request, ctx, offered, consent)

    @app.post("/receive/accept")
    async def receive_accept(request: Request) -> Response:
        wallet = ctx.require_wallet(request)
        fields = await ctx.form(request)
        offered = ctx.take(fields.get("consent", ""), Offered)
        if offered is None or fields.get("choice") != "agree":
            return RedirectResponse("/" if offered is not None else "/receive", status_code=303)
        tx_code = fields.get("tx_code", "").strip()[:WALLET_TX_CODE_CHARS_MAX] or None
        try:
            ids = await run_in_threadpool(_redeem, ctx, wallet, offered, tx_code)
        except IdentityError as exc:
            return failed(request, exc.reason, str(exc))
        lang = pages.language(request)
        names = wallet.display_names(lang)
        counts = Counter(names.get(s.vct, s.vct) for s in wallet.credentials() if s.id in ids)
        received = [{"name": name, "count": n} for name, n in counts.items()]
        return render(request, "wallet_received.html", received=received, count=len(ids),
                      issuer=await run_in_threadpool(_issuer_name, ctx, offered))


def _redeem(ctx: WalletContext, wallet: Wallet, offered: Offered, tx_code: str | None) -> list[str]:
    """Receive and save; on any failure the wallet is reopened from disk, so nothing half-made stays."""
    try:
        ids = receive(wallet, offered, http=ctx.http, ledger=ctx.light, now=ctx.now(), tx_code=tx_code,
                      batch=_batch(offered), allow_http=ctx.allow_http)
    except IdentityError:
        ctx.discard_changes(wallet)
        raise
    wallet.save()
    return ids


def _batch(offered: Offered) -> int:
    issuance = offered.issuer.metadata.get("batch_credential_issuance")
    size = issuance.get("batch_size") if isinstance(issuance, dict) else None
    return max(1, min(WALLET_RECEIVE_BATCH_MAX, size)) if isinstance(size, int) else 1


def _issuer_name(ctx: WalletContext, offered: Offered) -> str:
    try:
        return str(ctx.light.issuer(offered.issuer.did, ctx.now_ms()).get("name") or offered.issuer.did)
    except IdentityError:
        return offered.issuer.did


async def _confirm_page(request: Request, ctx: WalletContext, offered: Offered, consent: str) -> Response:
    lang = pages.language(request)
    tx = offered.offer.tx_code
    offers: list[dict[str, Any]] = [{"name": offered.display(c).get(lang) or offered.vct(c), "vct": offered.vct(c)}
                                    for c in offered.offer.configuration_ids]
    return ctx.form_page(request, "wallet_receive_confirm.html", consent=consent,
                         issuer=await run_in_threadpool(_issuer_name, ctx, offered), did=offered.issuer.did,
                         endpoint=offered.issuer.credential_issuer, offers=offers, needs_pin=tx is not None,
                         pin_length=tx.get("length") if tx is not None and isinstance(tx.get("length"), int) else None,
                         pin_numeric=tx is None or tx.get("input_mode", "numeric") == "numeric")


__all__ = ["add_routes"]
