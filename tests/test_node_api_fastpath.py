"""The submit fast path: ordinary ``POST /v1/transactions`` is answered without the
FastAPI route; anything unusual reaches the route with its body intact.

Unit tests of one layer: the route behind the fast path is replaced by a recorder.
The full contract (every bad input, through the real app) is in
``test_node_api_badinput.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from cli.loadgen import note_transaction
from ledger.keys import SigningKey
from node.api.app import create_app
from node.api.fastpath import SubmitFastPath
from tests.test_node_api_support import InProcessNode


class _Route:
    """Stands for the FastAPI app behind the fast path: records what it was handed."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.calls.append((scope["query_string"].decode(), body))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def _call(app: Any, body: bytes, *, query: bytes = b"", content_type: bytes = b"application/json",
          chunks: int = 1) -> tuple[int, bytes]:
    scope = {"type": "http", "method": "POST", "path": "/v1/transactions", "query_string": query,
             "headers": [(b"content-type", content_type)]}
    parts = [body[i * len(body) // chunks:(i + 1) * len(body) // chunks] for i in range(chunks)]
    messages = [{"type": "http.request", "body": p, "more_body": i < chunks - 1} for i, p in enumerate(parts)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.fixture()
def setup() -> tuple[SubmitFastPath, _Route, InProcessNode]:
    node = InProcessNode(auto_commit=False)
    app = create_app(node)
    route = _Route()
    return SubmitFastPath(route, ctx=app.state.api), route, node


def _tx_body(node: InProcessNode) -> bytes:
    tx = note_transaction(SigningKey.generate(), node.genesis.chain_id, int(time.time() * 1000))
    return json.dumps({"tx": tx.to_b64()}).encode()


def test_an_ordinary_submission_is_answered_by_the_fast_path(setup: Any) -> None:
    fast, route, node = setup
    body = _tx_body(node)
    status, answer = _call(fast, body, chunks=3)
    assert status == 202 and route.calls == []
    tx_id = json.loads(answer)["id"]
    assert json.loads(answer) == {"id": tx_id, "status": "pending"}
    assert bytes.fromhex(tx_id) in node.mempool
    assert _call(fast, body, query=b"wait=none", content_type=b"application/json; charset=utf-8")[0] == 202


@pytest.mark.parametrize(("body", "query", "content_type"), [
    (b'{"tx": "AAAA", "tx": "AAAA"}', b"", b"application/json"),  # duplicate member
    (b'{"tx": "AAAA", "extra": 1}', b"", b"application/json"),  # unknown field
    (b'{"tx": 5}', b"", b"application/json"),  # wrong type
    (b'["tx"]', b"", b"application/json"),  # not an object
    (b'{"tx": "AAAA"', b"", b"application/json"),  # malformed JSON
    (b'\xff\xfe{"tx": "AAAA"}', b"", b"application/json"),  # not UTF-8
    (b'{"tx": "AAAA"}', b"", b"text/plain"),  # wrong content type
    (b'{"tx": "AAAA"}', b"wait=later", b"application/json"),  # bad query values
    (b'{"tx": "AAAA"}', b"timeout_ms=0", b"application/json"),
    (b'{"tx": "AAAA"}', b"timeout_ms=99999999999", b"application/json"),
    (b'{"tx": "AAAA"}', b"wait=commit&wait=none", b"application/json"),  # a parameter twice
    (b'{"tx": "AAAA"}', b"other=1", b"application/json"),  # a parameter the route does not know
    (b'{"tx": "AAAA"}', b"", b"application/json"),  # not a transaction: admission fails
])
def test_anything_unusual_goes_to_the_route_with_its_body(setup: Any, body: bytes, query: bytes,
                                                         content_type: bytes) -> None:
    fast, route, node = setup
    assert _call(fast, body, query=query, content_type=content_type, chunks=2)[0] == 299
    assert route.calls == [(query.decode(), body)]
    assert len(node.mempool) == 0


def test_a_rejected_transaction_is_left_to_the_route(setup: Any) -> None:
    fast, route, node = setup
    key = SigningKey.generate()
    tx = note_transaction(key, "another-chain", int(time.time() * 1000))
    body = json.dumps({"tx": tx.to_b64()}).encode()
    assert _call(fast, body)[0] == 299 and route.calls == [("", body)]
    assert len(node.mempool) == 0


def test_a_commit_timeout_is_a_504_problem_with_the_id(setup: Any) -> None:
    fast, route, node = setup
    status, answer = _call(fast, _tx_body(node), query=b"wait=commit&timeout_ms=5")
    problem = json.loads(answer)
    assert status == 504 and problem["reason"] == "commit-timeout" and len(problem["id"]) == 64
    assert route.calls == []


def test_other_requests_pass_through_untouched(setup: Any) -> None:
    fast, route, _node = setup
    sent: list[Any] = []
    scope = {"type": "http", "method": "GET", "path": "/v1/transactions", "query_string": b"", "headers": []}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(fast(scope, receive, send))
    assert route.calls == [("", b"")] and sent[0]["status"] == 299
