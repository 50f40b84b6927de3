"""The wallet app's recovery kit and key rotation pages, for the wallet's did:imi.

A did:imi commits on the ledger to the digest of its *next* key (pre-rotation). That next
key lives only in the recovery kit — an encrypted file in the wallet's format
(:func:`identity.wallet.write_recovery_kit`) under its own password, kept away from the
phone. With it (and only with it) the person can rotate the DID's key, also on a new
phone after losing the old one.

* ``/recovery``: a wallet without a DID creates one here: a next key is made and sealed
  in a kit, the person downloads the kit, and only then (``POST /recovery/confirm``) is
  the DID registered (:func:`identity.holder.create_did`), so no DID ever exists whose
  next key was not saved. A wallet with a DID is told where its kit stands; a kit is
  refreshed by rotating (the old one is then used up).
* ``/rotate``: the person uploads the kit and types its password; the wallet checks on
  the ledger that this kit holds the DID's committed next key, makes a new next key in a
  new kit (same kit password) to download, and on ``POST /recovery/confirm`` rotates
  (:func:`identity.holder.rotate_did`): the kit's key becomes the current key.

Each state change is a POST with the CSRF token; the kit download is a GET of the pending
kit of this session. Errors (wrong kit password, a kit of another DID, the ledger refusing)
end on the friendly error page with a stable reason; nothing is half-done.
"""

from __future__ import annotations

import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from identity import did as didmod
from identity import holder
from identity.errors import IdentityError, WalletError
from identity.http import pages
from identity.http.constants import WALLET_KIT_PASSWORD_CHARS_MAX, WALLET_KIT_PASSWORD_CHARS_MIN
from identity.http.wallet_session import WalletContext, failed, render
from identity.wallet import Wallet, read_recovery_kit, write_recovery_kit
from ledger.keys import SigningKey

KIT_FILENAME: Final = "imi-recovery-kit.json"
KIT_ALG: Final = "ES256"


@dataclass(slots=True)
class PendingKit:
    """A kit made and waiting to be saved before the ledger changes. ``create``: ``key`` is the
    new DID's next key. ``rotate``: ``key`` (from the old kit) becomes current, ``new_next``
    is in the new kit."""

    kind: str
    did: str | None
    key: SigningKey
    new_next: SigningKey | None
    kit: bytes
    downloaded: bool = False


def add_routes(app: FastAPI, ctx: WalletContext) -> None:
    _recovery_routes(app, ctx)
    _rotate_routes(app, ctx)
    _confirm_routes(app, ctx)


def _keys_form(request: Request, ctx: WalletContext, template: str) -> Response:
    """The recovery-kit or rotation form: the wallet's DIDs, and whether a node is there to send to."""
    return ctx.form_page(request, template, dids=ctx.require_wallet(request).dids(), node=ctx.node is not None)


def _recovery_routes(app: FastAPI, ctx: WalletContext) -> None:
    @app.get("/recovery")
    async def recovery(request: Request) -> Response:
        return _keys_form(request, ctx, "wallet_recovery.html")

    @app.post("/recovery/new")
    async def recovery_new(request: Request) -> Response:
        wallet = ctx.require_wallet(request)
        fields = await ctx.form(request)
        if wallet.dids():
            return failed(request, "did-exists", "this wallet already has its ID; rotate its key to get a new kit",
                          409)
        password = fields.get("kit_password", "")
        problem = _password_problem(password, fields.get("kit_password2", ""))
        if problem is not None:
            return failed(request, *problem)
        key = SigningKey.generate(KIT_ALG)
        kit = await run_in_threadpool(_seal, ctx, password, key)
        return _kit_page(request, ctx, PendingKit("create", None, key, None, kit))


def _rotate_routes(app: FastAPI, ctx: WalletContext) -> None:
    @app.get("/rotate")
    async def rotate_form(request: Request) -> Response:
        return _keys_form(request, ctx, "wallet_rotate.html")

    @app.post("/rotate")
    async def rotate_check(request: Request) -> Response:
        wallet = ctx.require_wallet(request)
        fields = await ctx.multipart(request)
        did = fields.get("did", b"").decode("utf-8", "replace") or next(iter(wallet.dids()), "")
        if did not in wallet.dids():
            return failed(request, "no-did", "this wallet has no such ID; create one on the recovery kit page")
        password = fields.get("kit_password", b"").decode("utf-8", "replace")
        try:
            pending = await run_in_threadpool(_prepare_rotation, ctx, did, fields.get("kit", b""), password)
        except IdentityError as exc:
            return failed(request, exc.reason, str(exc))
        return _kit_page(request, ctx, pending)


def _confirm_routes(app: FastAPI, ctx: WalletContext) -> None:
    @app.get("/recovery/kit")
    async def download(request: Request) -> Response:
        ctx.require_wallet(request)
        pending = ctx.state.pending.get(request.query_params.get("k", ""))
        if not isinstance(pending, PendingKit):
            return RedirectResponse("/recovery", status_code=303)
        pending.downloaded = True
        return Response(pending.kit, media_type="application/json", headers={
            **pages.SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{KIT_FILENAME}"'})

    @app.post("/recovery/confirm")
    async def confirm(request: Request) -> Response:
        wallet = ctx.require_wallet(request)
        fields = await ctx.form(request)
        token = fields.get("consent", "")
        pending = ctx.state.pending.get(token)
        if not isinstance(pending, PendingKit):
            return RedirectResponse("/recovery", status_code=303)
        if not pending.downloaded:  # the kit must be saved before the ledger changes
            return _kit_page(request, ctx, pending, token, not_saved=True)
        ctx.take(token, PendingKit)
        try:
            result = await run_in_threadpool(_apply, ctx, wallet, pending)
        except IdentityError as exc:
            return failed(request, exc.reason, str(exc), 502)
        return render(request, "wallet_keys_done.html", kind=pending.kind, **result)


def _password_problem(password: str, again: str) -> tuple[str, str] | None:
    if password != again:
        return "password-mismatch", "the two kit passwords differ"
    if not WALLET_KIT_PASSWORD_CHARS_MIN <= len(password) <= WALLET_KIT_PASSWORD_CHARS_MAX:
        return "bad-password", f"the kit password needs {WALLET_KIT_PASSWORD_CHARS_MIN} to {WALLET_KIT_PASSWORD_CHARS_MAX} characters"
    return None


def _seal(ctx: WalletContext, password: str, key: SigningKey) -> bytes:
    """The kit file's bytes: ``key`` encrypted under ``password`` (the wallet's format)."""
    with tempfile.TemporaryDirectory(prefix="imi-kit-") as directory:
        path = Path(directory) / KIT_FILENAME
        write_recovery_kit(path, password, key, kdf=ctx.kit_kdf)
        return path.read_bytes()


def _prepare_rotation(ctx: WalletContext, did: str, kit: bytes, password: str) -> PendingKit:
    """Open the uploaded kit, check it holds ``did``'s committed next key, seal a new one."""
    if not kit:
        raise WalletError("choose your recovery kit file", reason="no-kit")
    with tempfile.TemporaryDirectory(prefix="imi-kit-") as directory:
        path = Path(directory) / KIT_FILENAME
        path.write_bytes(kit)
        key = read_recovery_kit(path, password)
    committed = ctx.light.resolve_did(did, ctx.now_ms())["didDocumentMetadata"]["nextKeyCommitment"]
    if didmod.key_commitment(key.public_key.to_jwk()).hex() != committed:
        raise WalletError("this kit does not hold your ID's next key (an old, used kit?)", reason="kit-not-for-did")
    new_next = SigningKey.generate(key.alg)
    return PendingKit("rotate", did, key, new_next, _seal(ctx, password, new_next))


def _apply(ctx: WalletContext, wallet: Wallet, pending: PendingKit) -> dict[str, Any]:
    """Change the ledger as the saved kit allows, then save the wallet; the result to show."""
    if ctx.node is None:
        raise WalletError("this wallet app has no node to send transactions to", reason="node-unavailable")
    try:
        if pending.kind == "create":
            did, _ = holder.create_did(wallet, ctx.node, alg=KIT_ALG, next_key=pending.key)
        else:
            assert pending.did is not None and pending.new_next is not None
            did = pending.did
            holder.rotate_did(wallet, ctx.node, did, pending.key, pending.new_next)
    except IdentityError:
        ctx.discard_changes(wallet)
        raise
    wallet.save()
    resolved = ctx.light.resolve_did(did, ctx.now_ms())
    return {"did": did, "key": wallet.dids()[did], "version": resolved["didDocumentMetadata"]["versionId"],
            "height": resolved["didResolutionMetadata"]["height"]}


def _kit_page(request: Request, ctx: WalletContext, pending: PendingKit, token: str | None = None, *,
              not_saved: bool = False) -> Response:
    if token is None:
        token = secrets.token_urlsafe(16)
        ctx.put(token, pending)
    return ctx.form_page(request, "wallet_kit.html", consent=token, kind=pending.kind,
                         did=pending.did, filename=KIT_FILENAME, not_saved=not_saved,
                         status_code=409 if not_saved else 200)


__all__ = ["KIT_FILENAME", "PendingKit", "add_routes"]
