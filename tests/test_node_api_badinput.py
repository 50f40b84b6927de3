"""Bad input gets a 4xx problem with the right reason, and changes nothing.

Every case checks the status, the ``reason``, the problem+json content type and
that neither the store nor the mempool changed. Hypothesis then throws random
bodies and path parameters at the API: never a 5xx.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.loadgen import note_transaction
from ledger.encoding import encode
from ledger.keys import SigningKey, b64url_encode
from ledger.kv import MemoryKV
from ledger.tx import Transaction
from node.api.app import create_app
from node.api.constants import API_BODY_BYTES_MAX
from tests.test_node_api_support import InProcessNode

PROBLEM = "application/problem+json"


def _now_ms() -> int:
    return int(time.time() * 1000)


class Harness:
    """A client over an in-process node, with a snapshot of everything the node stores."""

    def __init__(self, *, auto_commit: bool = True) -> None:
        self.kv = MemoryKV()
        self.node = InProcessNode(self.kv, auto_commit=auto_commit)
        self.client = TestClient(create_app(self.node), raise_server_exceptions=False)
        self.committed = self.post_tx(self.tx()).json()["id"]  # one block, so lookups have data

    def tx(self, **changes: Any) -> Transaction:
        key = changes.pop("key", None) or SigningKey.generate()
        base = note_transaction(key, self.node.genesis.chain_id, _now_ms())
        if not changes:
            return base
        fields = {"chain_id": base.chain_id, "type": base.type, "sender": base.sender,
                  "payload": base.payload, "expires_at_ms": base.expires_at_ms, **changes}
        return Transaction.create(**fields).sign(key)

    def post_tx(self, tx: Transaction, wait: bool = True) -> Any:
        return self.client.post("/v1/transactions", params={"wait": "commit"} if wait else {},
                                json={"tx": tx.to_b64()})

    def snapshot(self) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
        return list(self.kv.iterate(b"")), list(self.node.mempool)


@pytest.fixture(scope="module")
def h() -> Harness:
    """Shared by the cases that only get rejected (each checks that nothing changed)."""
    return Harness()


def expect_problem(h: Harness, send: Callable[[], Any], status: int, reason: str) -> dict[str, Any]:
    before = h.snapshot()
    response = send()
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["reason"] == reason, body
    assert body["status"] == status and body["type"].endswith("/" + reason) and body["title"]
    assert "Traceback" not in response.text
    assert h.snapshot() == before, "bad input changed the store or the mempool"
    return body


def raw_post(h: Harness, content: bytes | Iterator[bytes], content_type: str | None = "application/json",
             **headers: str) -> Callable[[], Any]:
    hdrs = dict(headers)
    if content_type is not None:
        hdrs["content-type"] = content_type
    return lambda: h.client.post("/v1/transactions", content=content, headers=hdrs)


def b64_body(data: bytes) -> bytes:
    return json.dumps({"tx": b64url_encode(data)}).encode()


# --- the HTTP envelope ---------------------------------------------------------------


@pytest.mark.parametrize("content", [b"{", b"", b"[1,2", b"\xff\xfe", b'{"tx": NaN}',
                                     b'{"tx": "a", "tx": "b"}', b"[" * 5000 + b"]" * 5000])
def test_malformed_json(h: Harness, content: bytes) -> None:
    expect_problem(h, raw_post(h, content), 400, "malformed-json")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "application/json; charset=latin-1", None])
def test_wrong_content_type(h: Harness, content_type: str | None) -> None:
    expect_problem(h, raw_post(h, b'{"tx": "AA"}', content_type), 415, "unsupported-media-type")


def test_oversized_body_declared(h: Harness) -> None:
    body = b'{"tx": "' + b"A" * API_BODY_BYTES_MAX + b'"}'
    expect_problem(h, raw_post(h, body), 413, "body-too-large")


def test_oversized_body_streamed_without_length(h: Harness) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"tx": "'
        for _ in range(API_BODY_BYTES_MAX // 4096 + 2):
            yield b"A" * 4096
        yield b'"}'

    expect_problem(h, raw_post(h, chunks()), 413, "body-too-large")


@pytest.mark.parametrize("body,reason", [
    ({"tx": "AA", "extra": 1}, "unknown-field"),
    ({}, "missing-field"),
    ({"tx": 5}, "bad-field"),
    ({"tx": None}, "bad-field"),
])
def test_body_schema(h: Harness, body: dict[str, Any], reason: str) -> None:
    expect_problem(h, lambda: h.client.post("/v1/transactions", json=body), 422, reason)


def test_body_must_be_an_object(h: Harness) -> None:
    expect_problem(h, raw_post(h, b'["tx"]'), 422, "bad-field")


# --- the transaction bytes -------------------------------------------------------------


@pytest.mark.parametrize("text", ["!!!!", "AA==", "AB", "A", "a b", "AAAA\n"])
def test_bad_base64(h: Harness, text: str) -> None:
    expect_problem(h, lambda: h.client.post("/v1/transactions", json={"tx": text}), 400, "bad-encoding")


def test_non_canonical_cbor(h: Harness) -> None:
    good = h.tx().to_bytes()
    longer_int = good.replace(b"\x61v\x01", b"\x61v\x18\x01", 1)  # v: 1 in a non-shortest head
    assert longer_int != good
    for data in (good + b"\x00", longer_int, b"", b"\xa0\xa0"):
        expect_problem(h, raw_post(h, b64_body(data)), 400, "non-canonical-encoding")


def test_unknown_field_in_transaction(h: Harness) -> None:
    value = h.tx().to_value()
    value["extra"] = 1
    expect_problem(h, raw_post(h, b64_body(encode(value))), 422, "unknown-field")


def test_transaction_too_large(h: Harness) -> None:
    value = h.tx().to_value()
    value["payload"] = {"data": b"x" * 65_600}  # over TX_BYTES_MAX, under the body limit
    expect_problem(h, raw_post(h, b64_body(encode(value))), 413, "too-large")


def test_bad_signature(h: Harness) -> None:
    value = h.tx().to_value()
    sig = bytearray(value["sigs"][0]["sig"])  # type: ignore[index]
    sig[0] ^= 1
    value["sigs"][0]["sig"] = bytes(sig)  # type: ignore[index]
    expect_problem(h, raw_post(h, b64_body(encode(value))), 422, "bad-signature")


def test_unsigned(h: Harness) -> None:
    tx = h.tx()
    unsigned = Transaction(tx.chain_id, tx.type, tx.sender, tx.payload, tx.nonce, tx.expires_at_ms)
    expect_problem(h, lambda: h.post_tx(unsigned), 422, "missing-signature")


def test_wrong_chain(h: Harness) -> None:
    expect_problem(h, lambda: h.post_tx(h.tx(chain_id="another-chain")), 422, "wrong-chain")


def test_expired(h: Harness) -> None:
    expect_problem(h, lambda: h.post_tx(h.tx(expires_at_ms=_now_ms() - 1000)), 422, "expired-transaction")


def test_expiry_too_far(h: Harness) -> None:
    far = _now_ms() + 48 * 3600 * 1000
    expect_problem(h, lambda: h.post_tx(h.tx(expires_at_ms=far)), 422, "expiry-too-far")


def test_replayed_committed_transaction(h: Harness) -> None:
    tx = h.tx()
    assert h.post_tx(tx).status_code == 200
    expect_problem(h, lambda: h.post_tx(tx), 409, "replayed-transaction")
    expect_problem(h, lambda: h.post_tx(tx, wait=False), 409, "replayed-transaction")


def test_resubmitting_a_pending_transaction_is_idempotent() -> None:
    h = Harness(auto_commit=False)
    tx = h.tx()
    assert h.post_tx(tx, wait=False).status_code == 202
    before = h.snapshot()
    again = h.post_tx(tx, wait=False)
    assert again.status_code == 202 and again.json()["id"] == tx.tx_id.hex()
    assert h.snapshot() == before


def test_execution_rules(h: Harness) -> None:
    expect_problem(h, lambda: h.post_tx(h.tx(type="no.such.type")), 422, "unknown-type")
    expect_problem(h, lambda: h.post_tx(h.tx(payload={"data": "text"})), 422, "bad-payload")
    expect_problem(h, lambda: h.post_tx(h.tx(sender="did:imi:someone-else")), 403, "unauthorized")


def test_commit_timeout_is_504_with_the_id() -> None:
    h = Harness(auto_commit=False)
    tx = h.tx()
    response = h.client.post("/v1/transactions", params={"wait": "commit", "timeout_ms": 5},
                             json={"tx": tx.to_b64()})
    assert response.status_code == 504 and response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["reason"] == "commit-timeout" and response.json()["id"] == tx.tx_id.hex()


# --- paths and queries ---------------------------------------------------------------------


@pytest.mark.parametrize("method,path,status,reason", [
    ("GET", "/v1/transactions/xyz", 400, "bad-request"),
    ("GET", "/v1/transactions/" + "A" * 64, 400, "bad-request"),
    ("GET", "/v1/transactions/" + "0" * 64, 404, "unknown-transaction"),
    ("GET", "/v1/blocks/abc", 400, "bad-request"),
    ("GET", "/v1/blocks/0", 400, "bad-request"),
    ("GET", "/v1/blocks/-1", 400, "bad-request"),
    ("GET", "/v1/blocks/99999999999999999999999", 400, "bad-request"),
    ("GET", "/v1/blocks/7", 404, "unknown-block"),
    ("GET", "/v1/state/" + "k" * 300, 400, "bad-request"),
    ("GET", "/v1/state/note%2Fx?height=9", 404, "unknown-block"),
    ("GET", "/v1/state/note%2Fx?height=zero", 400, "bad-request"),
    ("GET", "/v1/proofs/consistency", 400, "bad-request"),
    ("GET", "/v1/proofs/consistency?from=1&to=9", 404, "unknown-block"),
    ("GET", "/v1/validators?height=5", 404, "unknown-block"),
    ("GET", "/v1/nothing-here", 404, "not-found"),
    ("DELETE", "/v1/transactions", 405, "method-not-allowed"),
    ("PUT", "/v1/blocks/1", 405, "method-not-allowed"),
    ("POST", "/v1/transactions?wait=sometimes", 400, "bad-request"),
    ("POST", "/v1/transactions?wait=commit&timeout_ms=0", 400, "bad-request"),
    ("POST", "/v1/transactions?wait=commit&timeout_ms=999999999", 400, "bad-request"),
])
def test_bad_paths_and_queries(h: Harness, method: str, path: str, status: int, reason: str) -> None:
    body = json.dumps({"tx": h.tx().to_b64()}).encode()
    send = lambda: h.client.request(method, path, content=body,
                                    headers={"content-type": "application/json"})
    expect_problem(h, send, status, reason)


def test_consistency_from_above_to_is_bad_request(h: Harness) -> None:
    h.node.commit()
    expect_problem(h, lambda: h.client.get("/v1/proofs/consistency?from=2&to=1"), 400, "bad-request")


def test_unexpected_exception_is_a_500_problem_without_traceback() -> None:
    h = Harness()
    reader = h.client.app.state.api.reader  # type: ignore[attr-defined]

    class Exploding:
        """The real store, except that looking up a transaction fails unexpectedly."""

        def tx_position(self, tx_id: bytes) -> tuple[int, int, int]:
            return (1, 0, 0)  # indexed, so the lookup goes on to the worker that reads it

        def tx(self, tx_id: bytes) -> None:
            raise RuntimeError("disk on fire")

        def __getattr__(self, name: str) -> Any:
            return getattr(h.node.store, name)

    reader.store = Exploding()
    response = h.client.get("/v1/transactions/" + "0" * 64)
    assert response.status_code == 500 and response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["reason"] == "internal-error"
    assert "disk on fire" not in response.text and "Traceback" not in response.text
    assert 'status="500"' in h.client.get("/metrics").text


def test_rejections_are_counted_by_reason() -> None:
    h = Harness()
    h.post_tx(h.tx(chain_id="elsewhere"))
    h.client.post("/v1/transactions", json={"tx": "!!"})
    text = h.client.get("/metrics").text
    assert 'imi_api_tx_rejected_total{reason="wrong-chain"} 1.0' in text
    assert 'imi_api_tx_rejected_total{reason="bad-encoding"} 1.0' in text


# --- fuzzing: never a 5xx ------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
fuzz_settings = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))


@fuzz_settings
@given(content=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()),
       content_type=st.sampled_from(["application/json", "text/plain", "application/problem+json"]))
def test_fuzz_post_bodies_never_5xx(h: Harness, content: bytes, content_type: str) -> None:
    before = h.snapshot()
    response = h.client.post("/v1/transactions", content=content, headers={"content-type": content_type})
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert h.snapshot() == before


@fuzz_settings
@given(data=st.data())
def test_fuzz_mutated_transactions_never_5xx(h: Harness, data: st.DataObject) -> None:
    good = bytearray(h.tx(key=_FUZZ_KEY, nonce=b"\x00" * 16).to_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(good) - 1))
        good[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(good)))
    mutated = bytes(good[:cut]) if data.draw(st.booleans()) else bytes(good)
    response = h.client.post("/v1/transactions", json={"tx": b64url_encode(mutated)})
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith(PROBLEM)


_FUZZ_KEY = SigningKey("EdDSA", bytes(32))
path_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)


@fuzz_settings
@given(segment=path_text, query=path_text,
       route=st.sampled_from(["/v1/transactions/{}", "/v1/blocks/{}", "/v1/state/{}",
                              "/v1/validators?height={}", "/v1/proofs/consistency?from={}&to={}",
                              "/v1/state/note%2Fx?height={}", "/{}", "/v1/{}"]))
def test_fuzz_path_params_never_5xx(h: Harness, segment: str, query: str, route: str) -> None:
    path = route.replace("{}", quote(segment, safe=""), 1).replace("{}", quote(query, safe=""))
    response = h.client.get(path)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith(PROBLEM)


def test_a_corrupt_store_is_a_500_problem_that_hides_the_detail() -> None:
    from ledger.errors import StorageError

    h = Harness()
    reader = h.client.app.state.api.reader  # type: ignore[attr-defined]

    class Corrupt:
        def tx_position(self, tx_id: bytes) -> tuple[int, int, int]:
            return (1, 0, 0)

        def tx(self, tx_id: bytes) -> None:
            raise StorageError("transaction record deadbeef is malformed")

        def __getattr__(self, name: str) -> Any:
            return getattr(h.node.store, name)

    reader.store = Corrupt()
    response = h.client.get("/v1/transactions/" + "0" * 64)
    assert response.status_code == 500 and response.json()["reason"] == "storage-corrupt"
    assert "deadbeef" not in response.text
