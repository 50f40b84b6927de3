"""What every page of the wallet app shares: the one open wallet, its session and CSRF
token, the loopback guard, form parsing, and the friendly error page.

Who may call, and what if they lie: only this device (the client address and the ``Host``
header must both be loopback, which also defeats DNS rebinding); every state change is a
POST carrying a CSRF token bound to the session (compared in constant time), and the
session cookie is HttpOnly and SameSite=Strict. Forms are small (the app's body limit):
``application/x-www-form-urlencoded``, or ``multipart/form-data`` for the one file a person
uploads (a recovery kit), parsed with the standard library's MIME parser.
"""

from __future__ import annotations

import email.parser
import email.policy
import hmac
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from fastapi import Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from identity.http import pages
from identity.ledger_client import NodeClient
from identity.light_client import LightClient
from identity.wallet import KdfParams, Wallet

WALLET_COOKIE = "imi_wallet"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


@dataclass(slots=True)
class Unlocked:
    """The one open wallet: its session, CSRF secret, pending consents and last use.
    ``pending`` maps a one-time consent token to what the person is asked to agree to
    (a prepared presentation, a previewed offer, a recovery kit waiting to be saved)."""

    wallet: Wallet | None = None
    session: str = ""
    csrf: str = ""
    used_at: float = 0.0
    pending: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def forget(self) -> None:
        self.wallet, self.pending = None, {}


class Refused(Exception):
    """A request refused before any page logic (bad form type, bad CSRF token): bare status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Locked(Exception):
    """The request carries no open wallet's session (never unlocked, locked, or idle too
    long): the app answers with the unlock page (303 to ``/``)."""


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


@dataclass(slots=True)
class WalletContext:
    """The app's collaborators: ledger reads (``light``), HTTP to services and issuers
    (``http``), transactions (``node``, None: DID pages unavailable), the clock, and the
    recovery kits' KDF cost (``kit_kdf``; None: the default)."""

    light: LightClient
    http: Any
    node: NodeClient | None
    now_ms: Callable[[], int]
    idle_s: float
    kit_kdf: KdfParams | None = None
    allow_http: bool = False
    state: Unlocked = field(default_factory=Unlocked)

    def now(self) -> int:
        return self.now_ms() // 1000

    def open_wallet(self, request: Request) -> Wallet | None:
        """The open wallet if this request carries its session and it is not idle too long."""
        state = self.state
        with state.lock:
            cookie = request.cookies.get(WALLET_COOKIE, "")
            if state.wallet is None or not hmac.compare_digest(cookie, state.session):
                return None
            if time.monotonic() - state.used_at > self.idle_s:  # idle too long: lock it
                state.forget()
                return None
            state.used_at = time.monotonic()
            return state.wallet

    def require_wallet(self, request: Request) -> Wallet:
        """:meth:`open_wallet`, or :class:`Locked` (the app sends the person to unlock)."""
        wallet = self.open_wallet(request)
        if wallet is None:
            raise Locked()
        return wallet

    def form_page(self, request: Request, template: str, *, status_code: int = 200, **context: Any) -> Response:
        """:func:`render` of a page that posts a form: the session's CSRF token goes in."""
        return render(request, template, status_code=status_code, csrf=self.state.csrf, **context)

    async def form(self, request: Request, *, check_csrf: bool = True) -> dict[str, str]:
        """The urlencoded form of a POST; Refused(415) for another type, (403) without the token."""
        if _media_type(request) != FORM:
            raise Refused(415)
        fields = {k: v[0] for k, v in urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"),
                                                            keep_blank_values=True).items()}
        self._check_csrf(fields.get("csrf", ""), check_csrf)
        return fields

    async def multipart(self, request: Request) -> dict[str, bytes]:
        """The fields of a ``multipart/form-data`` POST (file contents as bytes); CSRF checked."""
        if _media_type(request) != MULTIPART:
            raise Refused(415)
        head = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode("latin-1", "replace")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + await request.body())
        if not message.is_multipart():
            raise Refused(400)
        fields: dict[str, bytes] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                fields.setdefault(name, payload)
        self._check_csrf(fields.get("csrf", b"").decode("utf-8", "replace"), True)
        return fields

    def _check_csrf(self, token: str, check: bool) -> None:
        if check and not hmac.compare_digest(token.encode(), self.state.csrf.encode()):
            raise Refused(403)

    def take(self, token: str, kind: type) -> Any:
        """Pop the pending consent ``token`` if it is of ``kind`` (a consent is good once)."""
        with self.state.lock:
            found = self.state.pending.get(token)
            if not isinstance(found, kind):
                return None
            del self.state.pending[token]
            return found

    def discard_changes(self, wallet: Wallet) -> None:
        """After a failed step: the open wallet becomes its saved state again (keys made for
        the step are dropped), so nothing half-made is saved later."""
        fresh = wallet.reopen()
        with self.state.lock:
            if self.state.wallet is wallet:
                self.state.wallet = fresh

    def put(self, token: str, item: Any) -> None:
        """Hold ``item`` for consent; one pending item of each kind at a time."""
        with self.state.lock:
            self.state.pending = {k: v for k, v in self.state.pending.items() if type(v) is not type(item)}
            self.state.pending[token] = item


AFTER_POST: Final = {"/unlock": "/", "/present/answer": "/history", "/receive/accept": "/",
                     "/recovery/new": "/recovery", "/recovery/confirm": "/recovery"}  # a POST's page → a GET page


def render(request: Request, template: str, *, status_code: int = 200, **context: Any) -> Response:
    """:func:`pages.render`, whose language link, on a page answering a POST, goes to a page
    that answers GET (:data:`AFTER_POST`) rather than to a route that would say 405."""
    if request.method != "GET":
        context["path"] = AFTER_POST.get(request.url.path, request.url.path)
    return pages.render(request, template, status_code=status_code, **context)


def failed(request: Request, reason: str, detail: str, status_code: int = 400, *,
           outcome: str = "error") -> Response:
    """The friendly error page: a plain sentence, the stable reason, the detail in small print.
    ``outcome`` "refused" says nothing was shared; "error" that nothing was changed."""
    return render(request, "wallet_done.html", outcome=outcome, reason=reason, detail=detail,
                        status_code=status_code)


def date(seconds: int | None, *, with_time: bool = False) -> str:
    if seconds is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d", time.localtime(seconds))


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


__all__ = ["AFTER_POST", "FORM", "LOOPBACK_HOSTS", "MULTIPART", "WALLET_COOKIE", "LoopbackOnly", "Refused", "Unlocked",
           "WalletContext", "date", "failed", "render"]
