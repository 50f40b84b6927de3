"""What stands between the network and the route handlers.

- :class:`BodyLimit` (ASGI): reads a request body into memory up to a limit
  *before* any handler parses it; anything larger is answered 413 at once, so an
  oversized body is never parsed or buffered beyond the limit.
- :class:`CatchAll` (ASGI): an exception no handler expected becomes a logged
  500 problem with reason ``internal-error`` and no traceback on the wire.
- :func:`install_problem_handlers`: FastAPI's validation, 404 and 405 errors and
  every error of ours (:class:`~ledger.errors.ImiError`: ledger and node errors,
  :class:`~node.api.problems.ApiProblem`) answer with RFC 9457 problem documents,
  the latter through :func:`~node.api.problems.problem_for`.
- :func:`read_json_body`: strict JSON for request bodies (content type, UTF-8,
  no duplicate keys, no NaN, bounded depth, unknown fields rejected).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.errors import ImiError, LedgerError
from node.api.constants import API_JSON_DEPTH_MAX, PROBLEM_CONTENT_TYPE
from node.api.problems import (
    INTERNAL_DETAIL,
    REASONS,
    ApiProblem,
    Problem,
    problem_bytes,
    problem_for,
)
from node.errors import NodeError

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
Model = TypeVar("Model", bound=BaseModel)


async def _send_problem(send: Send, status: int, reason: str, detail: str) -> None:
    body = problem_bytes(status, reason, detail)
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    })
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Buffer request bodies of POST/PUT/PATCH up to ``body_bytes_max``; 413 beyond.

    A declared ``Content-Length`` over the limit is refused without reading; a
    streamed (chunked) body is refused as soon as it crosses the limit. The
    handler then reads the buffered body through the usual ``receive``.
    """

    def __init__(self, app: ASGIApp, body_bytes_max: int) -> None:
        self.app = app
        self.body_bytes_max = body_bytes_max

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared == -1:
            await _send_problem(send, 400, "bad-request", "Content-Length is not a number")
            return
        if declared is not None and declared > self.body_bytes_max:
            await _send_problem(send, 413, "body-too-large",
                                f"body of {declared} bytes, limit {self.body_bytes_max}")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away; nothing to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.body_bytes_max:
                await _send_problem(send, 413, "body-too-large",
                                    f"body over the limit of {self.body_bytes_max} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, replaying(b"".join(chunks), receive), send)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields ``body`` whole once, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _content_length(scope: Scope) -> int | None:
    """Declared length, ``None`` if absent, -1 if malformed."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) < 19 else -1
    return None


class CatchAll:
    """Turn an unexpected exception into a 500 problem (logged, no traceback sent)."""

    def __init__(self, app: ASGIApp, logger: logging.Logger) -> None:
        self.app = app
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            self.logger.exception("unexpected error serving %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise  # half a response is out: let the server drop the connection
            await _send_problem(send, 500, "internal-error", INTERNAL_DETAIL)


# --- FastAPI exception handlers ------------------------------------------------------


def _validation_problem(errors: list[Any]) -> Problem:
    """Map pydantic/FastAPI errors to one problem: the first error decides the reason."""
    first = errors[0] if errors else {}
    kind = str(first.get("type", ""))
    loc = [str(p) for p in first.get("loc", ())]
    where = ".".join(loc) or "request"
    in_body = bool(loc) and loc[0] == "body"
    if kind in ("json_invalid", "json_type"):
        return Problem(400, "malformed-json", "request body is not valid JSON")
    if kind == "extra_forbidden":
        reason = "unknown-field"
    elif kind == "missing":
        reason = "missing-field"
    else:
        reason = "bad-field"
    if not in_body:
        # Path and query parameters: the request names a resource badly.
        reason = "bad-request"
    message = str(first.get("msg", "invalid value"))[:200]
    return Problem(REASONS[reason].status, reason, f"{where}: {message}")


def install_problem_handlers(
    app: FastAPI,
    logger: logging.Logger,
    *,
    status_of: Callable[[ImiError], int | None] | None = None,
) -> None:
    """Register problem+json handlers for every error a route can raise; 5xx of ours are logged.

    ``status_of`` lets a service name the HTTP status of errors of its own (the issuer
    service's reasons); it answers None for the rest, which keep the node's statuses.
    """

    async def on_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ImiError)
        problem = problem_for(exc, status=None if status_of is None else status_of(exc))
        if problem.reason == "internal-error" or (problem.status >= 500 and isinstance(exc, LedgerError)):
            logger.error("%s %s: %s (%s)", request.method, request.url.path, exc, exc.reason)
        # A node that cannot take work now (full, over quota, rate-limited) asks the client to retry.
        headers = {"retry-after": "1"} if problem.status in (429, 503) and isinstance(exc, NodeError) else None
        return problem.response(headers)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, (RequestValidationError, ValidationError))
        return _validation_problem(list(exc.errors())).response()

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        reason = {404: "not-found", 405: "method-not-allowed", 406: "not-acceptable",
                  413: "body-too-large", 415: "unsupported-media-type"}.get(exc.status_code)
        if reason is None:
            reason = "bad-request" if exc.status_code < 500 else "internal-error"
        detail = exc.detail if isinstance(exc.detail, str) else ""
        headers = dict(exc.headers or {})
        return Problem(exc.status_code, reason, detail).response(headers)

    async def on_anything(request: Request, exc: Exception) -> Response:
        # Backstop behind CatchAll (which sees nearly everything first): Starlette's
        # ServerErrorMiddleware calls this for errors in the outermost middleware.
        logger.error("%s %s: unexpected %r", request.method, request.url.path, exc)
        return Problem(500, "internal-error", INTERNAL_DETAIL).response()

    app.add_exception_handler(Exception, on_anything)
    app.add_exception_handler(ImiError, on_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(ValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)


# --- strict JSON bodies ----------------------------------------------------------------


def reject_duplicate_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ApiProblem("malformed-json", f"duplicate member {key[:64]!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ApiProblem("malformed-json", f"{name} is not JSON")


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a decoded JSON value, stopping once past ``limit``."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def check_json_content_type(request: Request) -> None:
    """Require ``application/json`` (or ``application/*+json``), UTF-8 if a charset is given."""
    raw = request.headers.get("content-type", "")
    media, _, params = raw.partition(";")
    media = media.strip().lower()
    json_like = media == "application/json" or (media.startswith("application/") and media.endswith("+json"))
    charset_ok = True
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset_ok = value.strip().strip('"').lower() in ("utf-8", "utf8")
    if not json_like or not charset_ok:
        raise ApiProblem("unsupported-media-type",
                         f"content type {raw[:80]!r}; send application/json (UTF-8)")


async def read_json_body(request: Request, model: type[Model]) -> Model:
    """Parse the request body strictly into ``model`` (which should forbid extra fields).

    Raises :class:`ApiProblem` (415 wrong content type, 400 malformed JSON) or
    pydantic's :class:`ValidationError` (answered 422 by the handlers above).
    """
    check_json_content_type(request)
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
        value = json.loads(text, object_pairs_hook=reject_duplicate_members, parse_constant=_reject_constant)
    except ApiProblem:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ApiProblem("malformed-json", f"request body is not JSON: {str(exc)[:120]}") from exc
    if _depth(value, API_JSON_DEPTH_MAX) > API_JSON_DEPTH_MAX:
        raise ApiProblem("malformed-json", f"JSON nested deeper than {API_JSON_DEPTH_MAX}")
    if not isinstance(value, dict):
        raise ApiProblem("bad-field", "request body must be a JSON object")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise ApiProblem(**_validation_kwargs(exc)) from exc


def _validation_kwargs(exc: ValidationError) -> dict[str, Any]:
    errors = [dict(e, loc=("body", *e.get("loc", ()))) for e in exc.errors()]
    problem = _validation_problem(errors)
    return {"reason": problem.reason, "detail": problem.detail, "status": problem.status}


__all__ = [
    "BodyLimit",
    "CatchAll",
    "check_json_content_type",
    "install_problem_handlers",
    "read_json_body",
    "reject_duplicate_members",
    "replaying",
]
