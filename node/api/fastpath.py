"""``POST /v1/transactions`` served as plain ASGI, in front of FastAPI's routing.

Submitting a transaction is the API's hot path: every citizen action, every
issuance, every revocation arrives through it. FastAPI's per-request machinery
(route matching over every router, dependency solving, parameter and model
validation) costs several times the work of admitting a transaction on a small
machine (``GET /health`` alone cost ~370 µs of server CPU here). This middleware
serves the *ordinary* request itself and hands everything else to the FastAPI
route, untouched:

- it answers only a well-formed request: ``Content-Type: application/json``
  (UTF-8), a body that is exactly ``{"tx": "<base64url>"}`` with no duplicate
  member, and a query of at most ``wait=none|commit`` and an in-range
  ``timeout_ms``, each once;
- it admits the transaction with the route's own functions
  (:func:`node.api.tx.parse_transaction`, :func:`node.api.tx.admit`,
  :func:`node.api.tx.committed_answer`);
- if anything is unusual, or admission fails, the request (body replayed) goes to
  the FastAPI route, which answers with its own problem document and metrics —
  so every error keeps exactly one implementation, and a rejected transaction is
  simply checked twice.

It sits inside :class:`node.api.guard.BodyLimit` and :class:`~node.api.guard.CatchAll`
and the metrics middleware, so body limits, the 500 guard and request metrics
apply to it as to any route. The contract (``docs/api.md``) is the route's; the
API tests run through this path because it is part of the app.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from ledger.errors import ImiError
from node.api.constants import (
    API_COMMIT_WAIT_MS_DEFAULT,
    API_COMMIT_WAIT_MS_MAX,
    PROBLEM_CONTENT_TYPE,
)
from node.api.context import ApiContext
from node.api.guard import reject_duplicate_members, replaying
from node.api.problems import ApiProblem, problem_for
from node.api.tx import admit, committed_answer, parse_transaction

SUBMIT_PATH = "/v1/transactions"
_JSON_MEDIA_TYPES = frozenset({b"application/json", b"application/json; charset=utf-8",
                               b"application/json;charset=utf-8"})


class _RouteLabel:
    """What the metrics middleware reads from ``scope["route"]``: the path template."""

    path = SUBMIT_PATH


def _query(raw: bytes) -> tuple[bool, int] | None:
    """(wait for commit?, timeout ms) from an ordinary query string; None if unusual."""
    wait, timeout_ms, seen = False, API_COMMIT_WAIT_MS_DEFAULT, set()
    if not raw:
        return wait, timeout_ms
    for pair in raw.split(b"&"):
        name, equals, value = pair.partition(b"=")
        if not equals or name in seen:
            return None
        seen.add(name)
        if name == b"wait" and value in (b"none", b"commit"):
            wait = value == b"commit"
        elif name == b"timeout_ms" and value.isdigit() and len(value) <= 9 \
                and 1 <= int(value) <= API_COMMIT_WAIT_MS_MAX:
            timeout_ms = int(value)
        else:
            return None
    return wait, timeout_ms


def _tx_text(body: bytes) -> str | None:
    """The ``tx`` member of a body that is exactly ``{"tx": str}``; None if unusual."""
    try:
        value = json.loads(body.decode("utf-8"), object_pairs_hook=reject_duplicate_members)
    except (UnicodeDecodeError, ValueError, RecursionError, ApiProblem):
        return None
    if not isinstance(value, dict) or len(value) != 1:
        return None
    text = value.get("tx")
    return text if type(text) is str else None


def _content_type(scope: Scope) -> bytes | None:
    found = None
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            if found is not None:
                return None
            found = value.lower()
    return found


async def _send_json(send: Send, status: int, payload: dict[str, Any], content_type: str) -> None:
    body = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class SubmitFastPath:
    """ASGI middleware: serves ordinary ``POST /v1/transactions``; see the module docstring."""

    def __init__(self, app: ASGIApp, ctx: ApiContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != SUBMIT_PATH:
            await self.app(scope, receive, send)
            return
        query = _query(scope.get("query_string", b""))
        if query is None or _content_type(scope) not in _JSON_MEDIA_TYPES:
            await self.app(scope, receive, send)
            return
        more = True
        chunks: list[bytes] = []
        while more:  # BodyLimit (outside us) already bounded the body
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nobody to answer
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        text = _tx_text(body)
        if text is None:
            await self.app(scope, replaying(body, receive), send)
            return
        ctx = self.ctx
        try:
            tx = parse_transaction(text)
            await admit(ctx, tx)
        except ImiError:
            # The route checks it again and answers with its problem (and counts it).
            await self.app(scope, replaying(body, receive), send)
            return
        scope["route"] = _RouteLabel
        ctx.metrics.tx_submitted.inc()
        if not query[0]:
            await _send_json(send, 202, {"id": tx.tx_id.hex(), "status": "pending"}, "application/json")
            return
        try:
            answer = await committed_answer(ctx, tx, query[1])
        except ApiProblem as exc:
            problem = problem_for(exc)
            await _send_json(send, problem.status, problem.to_json(), PROBLEM_CONTENT_TYPE)
            return
        await _send_json(send, 200, answer, "application/json")


__all__ = ["SUBMIT_PATH", "SubmitFastPath"]
