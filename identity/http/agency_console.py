"""The agency console: the issuer service's page for staff (server-rendered, zh-CN and en).

Staff sign in with the staff token into an HttpOnly, SameSite=Strict session cookie (bounded,
expiring); every form carries a CSRF token bound to the session. No script; the offer's QR
code is an inline SVG drawn on the server.

==========================================  ===============================================
``GET /console``                            sign-in, or: the issuer's health (ledger
                                            reachable, status list fill) and the subjects
``GET /console/subjects/{subject}``         enrolment, credentials issued (type, date,
                                            status on the ledger, a short reference —
                                            never the raw status index), and the forms
``POST /console/subjects/{subject}/enrol``  bind the subject to a holder DID
``POST /console/subjects/{subject}/offer``  an offer: QR code, link and PIN
``POST /console/subjects/{subject}/status`` suspend / reinstate / revoke one credential
==========================================  ===============================================
"""

from __future__ import annotations

import hmac
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from identity import oid4vci as vci
from identity.errors import IdentityError
from identity.http import pages
from identity.http.constants import STAFF_SESSION_TTL_S
from identity.http.i18n import LANGUAGES
from identity.http.verifier_service import StaffSessions
from identity.issuer_agent import STATUS_ACTIONS, IssuerAgent
from identity.status_list import STATUS_NAMES
from node.api.problems import ApiProblem

CONSOLE_COOKIE: Final = "imi_console"
CONSOLE_SUBJECTS_SHOWN_MAX: Final = 50
CREDENTIAL_REF_CHARS: Final = 12  # a credential's reference on the page: the start of its anchor digest

WORDS: Final[dict[str, dict[str, str]]] = {
    "zh-CN": {
        "title": "签发机构工作台", "health": "运行状况", "ledger": "账本", "reachable": "可访问",
        "unreachable": "无法访问", "list_fill": "状态列表已用", "subjects": "登记对象", "find": "查找",
        "subject": "登记号", "enrolled": "已绑定", "not_enrolled": "未绑定", "holder": "持有人",
        "open": "打开", "enrol_title": "绑定持有人（身份核验之后）", "holder_did": "持有人 DID",
        "enrol": "绑定", "offer_title": "签发证件", "credential_type": "证件类型", "batch": "份数",
        "with_pin": "需要 PIN", "make_offer": "生成二维码", "offer_ready": "请持有人扫码领取",
        "pin": "PIN（当面告知，不要放进二维码）", "open_link": "领取链接", "expires": "有效期至",
        "issued": "已签发证件", "none_issued": "尚未签发。", "issued_at": "签发时间", "status": "状态",
        "reference": "编号", "action": "操作", "suspend": "暂停", "reinstate": "恢复", "revoke": "吊销",
        "valid": "有效", "invalid": "已吊销", "suspended": "已暂停", "unknown": "未知",
        "back": "返回", "error": "操作未完成", "enrol_offer": "首次领取即绑定持有人（需要 PIN）",
    },
    "en": {
        "title": "Agency console", "health": "Health", "ledger": "Ledger", "reachable": "reachable",
        "unreachable": "unreachable", "list_fill": "Status list used", "subjects": "Subjects", "find": "Find",
        "subject": "Subject id", "enrolled": "Enrolled", "not_enrolled": "Not enrolled", "holder": "Holder",
        "open": "Open", "enrol_title": "Enrol a holder (after identity proofing)", "holder_did": "Holder DID",
        "enrol": "Enrol", "offer_title": "Issue a credential", "credential_type": "Credential type",
        "batch": "Copies", "with_pin": "Require a PIN", "make_offer": "Show QR code",
        "offer_ready": "Ask the holder to scan", "pin": "PIN (tell the holder; never in the QR code)",
        "open_link": "Offer link", "expires": "Valid until", "issued": "Credentials issued",
        "none_issued": "Nothing issued yet.", "issued_at": "Issued", "status": "Status", "reference": "Ref",
        "action": "Action", "suspend": "Suspend", "reinstate": "Reinstate", "revoke": "Revoke",
        "valid": "Valid", "invalid": "Revoked", "suspended": "Suspended", "unknown": "Unknown",
        "back": "Back", "error": "Not done", "enrol_offer": "The first redemption enrols the holder (PIN needed)",
    },
}


def _status_word(code: int | None) -> str:
    name = STATUS_NAMES.get(code, "unknown") if code is not None else "unknown"
    return name if name in ("valid", "invalid", "suspended") else "unknown"


class _Console:
    """The console's state and its page builders (the routes are in :func:`install_console`)."""

    def __init__(self, issuer: IssuerAgent, admin_token: str, clock_s: Callable[[], int]) -> None:
        self.issuer, self.token, self.clock_s = issuer, admin_token, clock_s
        self.staff = StaffSessions()

    def signed_in(self, request: Request) -> str | None:
        session = request.cookies.get(CONSOLE_COOKIE)
        return session if self.staff.valid(session, self.clock_s()) else None

    def form(self, request: Request, body: bytes, session: str) -> dict[str, str]:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            raise ApiProblem("unsupported-media-type", "forms are application/x-www-form-urlencoded", status=415)
        fields = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if not hmac.compare_digest(fields.get("csrf", ""), self.staff.csrf(session)):
            raise ApiProblem("csrf-mismatch", "the form is stale; reload the page", status=403)
        return fields

    def render(self, request: Request, template: str, *, status_code: int = 200, **context: Any) -> Response:
        words = WORDS[pages.language(request)]
        return pages.render(request, template, c=words, status_code=status_code, **context)

    def health(self) -> dict[str, Any]:
        now = self.clock_s()
        try:
            self.issuer.metadata(now)
            reachable = True
        except IdentityError:
            reachable = False
        used, capacity = self.issuer.status_fill()
        return {"reachable": reachable, "used": used, "capacity": capacity}

    def home(self, request: Request, session: str, query: str) -> Response:
        subjects = [s for s in self.issuer.register.subjects() if query in s][:CONSOLE_SUBJECTS_SHOWN_MAX]
        rows = [{"subject": s, "enrolment": self.issuer.records.enrolment(s)} for s in subjects]
        return self.render(request, "console_home.html", csrf=self.staff.csrf(session), health=self.health(),
                           rows=rows, query=query)

    def subject_page(self, request: Request, session: str, subject: str, error: str | None = None) -> Response:
        if subject not in self.issuer.register:
            return self.render(request, "console_error.html", error=f"unknown-subject: {subject}", status_code=404)
        now = self.clock_s()
        issued = []
        for record in self.issuer.records.for_subject(subject):
            try:
                code: int | None = self.issuer.credential_status(int(record["idx"]), now)
            except IdentityError:
                code = None
            issued.append({"vct": record["vct"], "ref": str(record["anchor"])[:CREDENTIAL_REF_CHARS],
                           "at": time.strftime("%Y-%m-%d %H:%M", time.localtime(int(record["iat"]))),
                           "status": _status_word(code)})
        try:
            vcts = sorted(self.issuer.metadata(now)["credential_configurations_supported"])
        except IdentityError:
            vcts = []
        return self.render(request, "console_subject.html", csrf=self.staff.csrf(session), subject=subject,
                           enrolment=self.issuer.records.enrolment(subject), issued=issued, vcts=vcts,
                           error=error, status_code=400 if error else 200)

    def change_status(self, subject: str, ref: str, action: str) -> None:
        """Suspend / reinstate / revoke the subject's credential whose reference is ``ref``."""
        if action not in STATUS_ACTIONS:
            raise IdentityError("no such action", reason="bad-action")
        matches = [r for r in self.issuer.records.for_subject(subject)
                   if len(ref) >= CREDENTIAL_REF_CHARS and str(r["anchor"]).startswith(ref)]
        if len(matches) != 1:
            raise IdentityError("no such credential of this subject", reason="unknown-credential")
        self.issuer.set_status(int(matches[0]["idx"]), action)


def install_console(app: FastAPI, issuer: IssuerAgent, *, admin_token: str, clock_s: Callable[[], int]) -> None:
    """Add the console's routes (and the stylesheet) to the issuer service ``app``."""
    console = _Console(issuer, admin_token, clock_s)
    assert set(WORDS) == set(LANGUAGES)

    def subject_url(subject: str) -> str:
        return "/console/subjects/" + urllib.parse.quote(subject, safe="")

    @app.get("/static/style.css", include_in_schema=False)
    async def style() -> Response:
        return pages.stylesheet()

    @app.get("/console", include_in_schema=False)
    async def home(request: Request) -> Response:
        session = console.signed_in(request)
        if session is None:
            return console.render(request, "console_login.html", error=None)
        return await run_in_threadpool(console.home, request, session, request.query_params.get("q", "")[:256])

    @app.post("/console/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        fields = dict(urllib.parse.parse_qsl((await request.body()).decode("utf-8", "replace")))
        if not hmac.compare_digest(fields.get("token", "").encode(), admin_token.encode()):
            return console.render(request, "console_login.html", error=pages.MESSAGES_FOR(request)["bad_token"],
                                  status_code=401)
        response = RedirectResponse("/console", status_code=303)
        response.set_cookie(CONSOLE_COOKIE, console.staff.start(clock_s()), httponly=True, samesite="strict",
                            max_age=STAFF_SESSION_TTL_S, path="/console")
        return response

    @app.post("/console/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        session = console.signed_in(request)
        if session is not None:
            console.form(request, await request.body(), session)
            console.staff.end(session)
        response = RedirectResponse("/console", status_code=303)
        response.delete_cookie(CONSOLE_COOKIE, path="/console")
        return response

    @app.get("/console/subjects/{subject}", include_in_schema=False)
    async def subject_page(subject: str, request: Request) -> Response:
        session = console.signed_in(request)
        if session is None:
            return RedirectResponse("/console", status_code=303)
        return await run_in_threadpool(console.subject_page, request, session, subject)

    @app.post("/console/subjects/{subject}/{action}", include_in_schema=False)
    async def act(subject: str, action: str, request: Request) -> Response:
        session = console.signed_in(request)
        if session is None:
            return RedirectResponse("/console", status_code=303)
        fields = console.form(request, await request.body(), session)
        now = clock_s()
        try:
            if action == "enrol":
                await run_in_threadpool(lambda: issuer.enrol(subject, did=fields.get("did", "").strip(), now=now))
            elif action == "status":
                await run_in_threadpool(console.change_status, subject, fields.get("ref", ""),
                                        fields.get("change", ""))
            elif action == "offer":
                batch = int(fields.get("batch", "1")) if fields.get("batch", "1").isdigit() else 0
                made = await run_in_threadpool(lambda: issuer.create_offer(
                    subject, [fields.get("vct", "")], now, batch=batch, tx_code="pin" in fields or
                    issuer.records.enrolment(subject) is None))
                uri = vci.offer_uri(made.offer)
                return console.render(request, "console_offer.html", subject=subject, offer_uri=uri,
                                      qr=pages.qr_svg(uri, "openid-credential-offer"), pin=made.tx_code,
                                      enrol=made.enrol,
                                      expires=time.strftime("%H:%M:%S", time.localtime(made.expires_at)))
            else:
                return console.render(request, "console_error.html", error=f"no such action: {action}",
                                      status_code=404)
        except IdentityError as exc:
            return await run_in_threadpool(console.subject_page, request, session, subject,
                                           f"{exc.reason}: {exc}")
        return RedirectResponse(subject_url(subject), status_code=303)


__all__ = ["CONSOLE_COOKIE", "WORDS", "install_console"]
