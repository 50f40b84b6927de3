"""Server-rendered pages of the identity services: Jinja2 templates, zh-CN and en, QR codes as SVG.

No asset comes from elsewhere (counters and validators may be air-gapped): the one
stylesheet is served by the service itself, QR codes are drawn on the server as inline
SVG (segno), and the pages work without JavaScript (a waiting page refreshes itself).
Every response carries a Content-Security-Policy that allows only the service's own
stylesheet and images, no script and no framing.

The language is ``?lang=`` when given (then remembered in a cookie), else the cookie,
else the browser's ``Accept-Language``, else zh-CN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import segno
from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from identity.http.i18n import DEFAULT_LANGUAGE, LANGUAGES, MESSAGES, claim_label

TEMPLATES_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")
LANG_COOKIE = "imi_lang"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_ENV = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)


def language(request: Request) -> str:
    """The page language for ``request`` (see the module docstring)."""
    chosen = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    if chosen in LANGUAGES:
        return str(chosen)
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT_LANGUAGE


def render(request: Request, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The page ``template`` in the request's language, with the security headers. The
    language link goes to ``path`` (default: this request's path; a page answering a POST
    names a page that answers GET)."""
    lang = language(request)
    words = MESSAGES[lang]
    other = next(code for code in LANGUAGES if code != lang)
    html = _ENV.get_template(template).render(
        lang=lang, t=words, other_lang=other, label=lambda path: claim_label(path, words),
        **{"path": request.url.path, **context})
    response = HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 24 * 3600, httponly=True, samesite="strict")
    return response


def qr_svg(data: str, title: str) -> Markup:
    """``data`` as a QR code, an inline SVG element with an accessible title."""
    code = segno.make(data, error="m")
    svg = code.svg_inline(scale=5, border=2, title=title, dark="#000", light="#fff", omitsize=True)
    return Markup(svg)


def MESSAGES_FOR(request: Request) -> dict[str, str]:
    """The words table of the request's language."""
    return MESSAGES[language(request)]


def stylesheet() -> Response:
    """The one stylesheet (``GET /static/style.css``)."""
    return Response((STATIC_DIR / "style.css").read_text(encoding="utf-8"), media_type="text/css",
                    headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"})


__all__ = ["LANG_COOKIE", "MESSAGES_FOR", "SECURITY_HEADERS", "language", "qr_svg", "render", "stylesheet"]
