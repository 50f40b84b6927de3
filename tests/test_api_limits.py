"""The REST API's limits against a real server on real sockets: request head and body
deadlines (slowloris), connection caps per client and in total, keep-alive, the
per-client rate limit, the bounded CPU pool, readiness, and their configuration."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from cli._consortium import free_ports
from ledger.validators import ValidatorSet
from node.api.app import create_app
from node.api.limits import ApiLimits
from node.api.offload import CpuPool
from node.api.ops import readiness
from node.api.ratelimit import TokenBuckets
from node.api.reader import ChainReader
from node.api.server import ConnectionStats, make_server
from node.errors import ConfigError, Overloaded
from node.service import NodeConfig
from tests.factories import Consortium, consortium, note_tx
from tests.test_node_api_support import InProcessNode, check_inclusion, cpu_pool_held

START_TIMEOUT_S = 10.0
# Generous margins: the machine is shared and slow; a test never depends on timing luck
# in the direction of passing (a deadline missed by the server fails it).
MARGIN_S = 4.0
HONEST = "127.0.0.1"
ATTACKER = "127.0.0.3"  # any 127/8 address is loopback on Linux: a second client address


@contextmanager
def serving(limits: ApiLimits, node: Any = None) -> Iterator[tuple[int, ConnectionStats, Any]]:
    """The node's API under :func:`node.api.server.make_server` in a daemon thread."""
    app = create_app(node or InProcessNode(), limits=limits)
    stats = ConnectionStats()
    port = free_ports(1)[0]
    server = make_server(app, "127.0.0.1", port, limits, stats)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield port, stats, app
    finally:
        server.should_exit = True
        thread.join(timeout=START_TIMEOUT_S)
        app.state.api.cpu.close()


def _connect(port: int, source: str = HONEST) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=START_TIMEOUT_S, source_address=(source, 0))
    sock.settimeout(0.05)
    return sock


def _closed_within(sock: socket.socket, seconds: float, *, trickle: bytes = b"") -> tuple[bool, bytes]:
    """Send ``trickle`` one byte every 0.25 s (slowloris) while reading; True once the server
    closed the connection (EOF or reset) within ``seconds``; and what it sent."""
    got = b""
    deadline = time.monotonic() + seconds
    sent = 0
    next_send = time.monotonic()
    while time.monotonic() < deadline:
        if sent < len(trickle) and time.monotonic() >= next_send:
            try:
                sock.sendall(trickle[sent:sent + 1])
            except OSError:
                return True, got
            sent += 1
            next_send = time.monotonic() + 0.25
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return True, got
        if not chunk:
            return True, got
        got += chunk
    return False, got


def _get(port: int, path: str, source: str = HONEST) -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=START_TIMEOUT_S) as client:
        return client.get(f"http://127.0.0.1:{port}{path}")


SLOW = ApiLimits(header_timeout_s=1.0, body_timeout_s=1.5, keep_alive_s=1.0)


def test_a_slowloris_head_is_cut_off_at_the_header_timeout() -> None:
    with serving(SLOW) as (port, stats, _):
        sock = _connect(port)
        started = time.monotonic()
        head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
        closed, got = _closed_within(sock, SLOW.header_timeout_s + MARGIN_S, trickle=head)
        took = time.monotonic() - started
        sock.close()
        assert closed, f"a request head trickling for {took:.1f} s still held its connection"
        assert took < SLOW.header_timeout_s + MARGIN_S
        assert got.startswith(b"HTTP/1.1 408") and b'"reason":"request-timeout"' in got
        assert stats.head_timeouts_total == 1


def test_a_silent_connection_is_closed_at_the_header_timeout() -> None:
    with serving(SLOW) as (port, stats, _):
        sock = _connect(port)
        closed, _ = _closed_within(sock, SLOW.header_timeout_s + MARGIN_S)
        sock.close()
        assert closed and stats.head_timeouts_total == 1


def test_a_stalled_body_is_cut_off_at_the_body_timeout() -> None:
    with serving(SLOW) as (port, stats, _):
        sock = _connect(port)
        sock.sendall(b"POST /v1/transactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"tx\": \"")
        closed, _ = _closed_within(sock, SLOW.body_timeout_s + MARGIN_S)
        sock.close()
        assert closed and stats.body_timeouts_total == 1


def test_an_idle_kept_alive_connection_is_closed_and_a_new_request_gets_a_fresh_head_deadline() -> None:
    with serving(SLOW) as (port, stats, _):
        sock = _connect(port)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + START_TIMEOUT_S
        got = b""
        while b'"status":"ok"' not in got and time.monotonic() < deadline:
            try:
                got += sock.recv(65536)
            except TimeoutError:
                continue
        assert got.startswith(b"HTTP/1.1 200")
        closed, _ = _closed_within(sock, SLOW.keep_alive_s + MARGIN_S)
        sock.close()
        assert closed and stats.head_timeouts_total == 0  # the keep-alive timeout closed it


def test_one_clients_half_open_connections_do_not_lock_out_the_others() -> None:
    limits = ApiLimits(header_timeout_s=30.0, client_connections_max=4, connections_max=64)
    with serving(limits) as (port, stats, _):
        held = [_connect(port, ATTACKER) for _ in range(4)]
        for sock in held:
            sock.sendall(b"GET /health HTTP/1.1\r\n")  # half a request each
        extra = [_connect(port, ATTACKER) for _ in range(6)]
        refused = [_closed_within(sock, MARGIN_S) for sock in extra]
        assert all(closed for closed, _ in refused)
        assert all(b"503" in got and b"too-many-connections" in got for _, got in refused)
        assert stats.refused_total == 6
        started = time.monotonic()
        answer = _get(port, "/health", HONEST)
        assert answer.status_code == 200 and time.monotonic() - started < MARGIN_S
        for sock in held + extra:
            sock.close()


def test_the_total_connection_cap_answers_503_and_frees_up() -> None:
    limits = ApiLimits(connections_max=3, client_connections_max=3)
    with serving(limits) as (port, stats, _):
        held = [_connect(port) for _ in range(3)]
        over = _connect(port, ATTACKER)
        closed, got = _closed_within(over, MARGIN_S)
        assert closed and b"too-many-connections" in got
        for sock in held:
            sock.close()
        deadline = time.monotonic() + MARGIN_S
        while stats.open_total and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _get(port, "/health", ATTACKER).status_code == 200


def test_the_per_client_rate_limit_answers_429_and_spares_other_clients() -> None:
    # one token back per 100 s: no refill within the test, however slow the machine
    limits = ApiLimits(client_rate_per_s=0.01, client_burst=3)
    with serving(limits) as (port, _, _app):
        codes = [_get(port, "/v1/validators", ATTACKER).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        limited = _get(port, "/v1/validators", ATTACKER)
        assert limited.json()["reason"] == "rate-limited" and int(limited.headers["retry-after"]) >= 1
        assert _get(port, "/health", ATTACKER).status_code == 200  # monitoring is not counted
        assert _get(port, "/v1/validators", HONEST).status_code == 200


def test_token_buckets_refill_at_the_rate_and_forget_the_least_recent_client() -> None:
    buckets = TokenBuckets(rate_per_s=2.0, burst=2, clients_max=2)
    assert [buckets.take("a", 0.0), buckets.take("a", 0.0)] == [0.0, 0.0]
    assert buckets.take("a", 0.0) == pytest.approx(0.5)
    assert buckets.take("a", 0.5) == 0.0  # one token back after 0.5 s at 2/s
    buckets.take("b", 1.0)
    buckets.take("c", 1.0)
    assert len(buckets) == 2  # "a" was the least recently seen


def test_the_cpu_pool_runs_off_the_loop_and_refuses_beyond_its_queue() -> None:
    pool = CpuPool(workers=1, queue_max=1)
    release = threading.Event()

    async def scenario() -> None:
        first = asyncio.ensure_future(pool.run(lambda: release.wait(START_TIMEOUT_S)))
        second = asyncio.ensure_future(pool.run(lambda: 7))
        await asyncio.sleep(0.05)  # the loop keeps running while a worker blocks
        with pytest.raises(Overloaded) as refused:
            await pool.run(lambda: 8)
        assert refused.value.reason == "overloaded" and pool.refused_total == 1
        first.cancel()  # a cancelled caller keeps its slot until the work really ends
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded):
            await pool.run(lambda: 9)
        release.set()
        assert await second == 7
        assert await pool.run(lambda: 10) == 10

    try:
        asyncio.run(scenario())
    finally:
        release.set()
        pool.close()
    assert pool.in_flight == 0


def test_proofs_answer_503_overloaded_when_the_pool_is_full() -> None:
    node = InProcessNode()
    node.commit()
    app = create_app(node, limits=ApiLimits(cpu_workers=1, cpu_queue_max=0))
    pool: CpuPool = app.state.api.cpu
    client = TestClient(app, raise_server_exceptions=False)
    try:
        with cpu_pool_held(pool, START_TIMEOUT_S):
            answer = client.get("/v1/state/valset/current")
            assert answer.status_code == 503 and answer.json()["reason"] == "overloaded"
            assert answer.headers["retry-after"] == "1"
        assert client.get("/v1/state/valset/current").status_code == 200
    finally:
        pool.close()


def test_a_transaction_lookup_builds_its_proof_on_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression (issue 19): GET /v1/transactions/{id} read, parsed and proved the
    transaction on the event loop. It runs on the CPU pool (503 overloaded when full); a
    pending or unknown id is answered without it."""
    node = InProcessNode(auto_commit=False)
    expires_ms = int(time.time() * 1000) + 600_000
    committed, pending = (note_tx(data=b"committed", expires_at_ms=expires_ms),
                          note_tx(data=b"pending", expires_at_ms=expires_ms))
    asyncio.run(node.submit(committed))
    node.commit()
    asyncio.run(node.submit(pending))
    app = create_app(node, limits=ApiLimits(cpu_workers=1, cpu_queue_max=0))
    pool: CpuPool = app.state.api.cpu
    threads: list[str] = []
    built = ChainReader.committed_tx_json

    def recording(self: ChainReader, tx_id: bytes, *, with_tx: bool = True) -> dict[str, Any] | None:
        threads.append(threading.current_thread().name)
        return built(self, tx_id, with_tx=with_tx)

    monkeypatch.setattr(ChainReader, "committed_tx_json", recording)
    client = TestClient(app, raise_server_exceptions=False)
    try:
        with cpu_pool_held(pool, START_TIMEOUT_S):
            full = client.get(f"/v1/transactions/{committed.tx_id.hex()}")
            assert full.status_code == 503 and full.json()["reason"] == "overloaded"
            assert client.get(f"/v1/transactions/{pending.tx_id.hex()}").json()["status"] == "pending"
            assert client.get("/v1/transactions/" + "0" * 64).json()["reason"] == "unknown-transaction"
        answer = client.get(f"/v1/transactions/{committed.tx_id.hex()}")
        assert answer.status_code == 200 and answer.json()["status"] == "committed", answer.text
        check_inclusion(answer.json())
        assert threads and all(name.startswith("imi-api-cpu") for name in threads), threads
    finally:
        pool.close()


class _StatusNode(InProcessNode):
    def __init__(self, members: Consortium | None = None, **status: Any) -> None:
        super().__init__(members=members)
        self.extra = status

    def status(self) -> dict[str, Any]:
        return {**super().status(), **self.extra}


def _ids(node: InProcessNode, *names: str) -> list[str]:
    return [v.key_id for v in node.consortium.validators.validators if v.name in names]


def _link_peers(node: _StatusNode, *names: str) -> None:
    """The status a validator connected to ``names`` reports (count and key ids)."""
    node.extra.update(peers_connected=len(names), peers_connected_ids=_ids(node, *names))


def test_ready_reports_syncing_peers_and_head_age() -> None:
    node = _StatusNode(syncing=False)
    node.extra.update(key_id=_ids(node, "v0")[0])
    _link_peers(node, "v1", "v2", "v3")
    app = create_app(node)
    client = TestClient(app, raise_server_exceptions=False)
    early = client.get("/ready")
    assert early.status_code == 503 and early.json()["reason"] == "not-ready"
    assert "no block committed yet" in early.json()["why"]
    node.commit()
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["ready"] is True and body["why"] == []
    assert (body["peers_connected"], body["power_connected"], body["power_needed"], body["power_total"]) == (3, 4, 3, 4)
    ctx = app.state.api
    head_ms = node.store.head().time_ms
    stale = readiness(ctx, head_ms + body["head_age_ms_max"] + 1)
    assert stale["ready"] is False and "old" in stale["why"][0]
    node.extra.update(syncing=True)
    _link_peers(node, "v1")
    lagging = client.get("/ready").json()
    assert lagging["syncing"] is True and len(lagging["why"]) == 2
    assert "hold 2 of 4 voting power, 3 needed" in lagging["why"][1]
    assert client.get("/health").status_code == 200  # alive all the same


def _unequal_consortium(powers: list[int]) -> Consortium:
    """The test consortium with the given voting powers (v0 first)."""
    base = consortium(len(powers))
    validators = ValidatorSet.of(dataclasses.replace(v, power=powers[int(v.name[1:])])
                                 for v in base.validators.validators)
    genesis = dataclasses.replace(base.genesis, validators=validators)
    return Consortium(base.keys, validators, base.trustee_keys, genesis)


def test_ready_weighs_the_connected_validators_by_voting_power() -> None:
    """Regression (issue 19): readiness counted peers, as if powers were equal. With v0
    holding 5 of 8, this node (v1) and the two small validators are 3 of 4 members but
    only 3 of 8 power: no quorum, not ready; this node and v0 alone are 6 of 8: ready."""
    node = _StatusNode(_unequal_consortium([5, 1, 1, 1]), syncing=False)
    node.commit()
    node.extra.update(key_id=_ids(node, "v1")[0])
    _link_peers(node, "v2", "v3")
    client = TestClient(create_app(node), raise_server_exceptions=False)
    small = client.get("/ready")
    assert small.status_code == 503, small.text
    body = small.json()
    assert (body["peers_connected"], body["power_connected"], body["power_needed"], body["power_total"]) == (2, 3, 6, 8)
    assert body["why"] == ["this node and 2 connected peers hold 3 of 8 voting power, 6 needed for a quorum"]
    _link_peers(node, "v0")
    big = client.get("/ready")
    assert big.status_code == 200, big.text
    assert (big.json()["peers_connected"], big.json()["power_connected"]) == (1, 6)
    node.extra.update(key_id="not-a-member", peers_connected_ids=[*_ids(node, "v1", "v2", "v3"), 7])
    assert client.get("/ready").json()["power_connected"] == 3  # a non-member holds nothing


def _node_dir(tmp_path: Path, **extra: Any) -> Path:
    config = {"name": "v0", "listen": "127.0.0.1:7000", "api": "127.0.0.1:7001", **extra}
    (tmp_path / "node.json").write_text(json.dumps(config))
    return tmp_path


def test_api_limits_are_configurable_in_node_json_and_the_environment(tmp_path: Path) -> None:
    assert NodeConfig.load(_node_dir(tmp_path), env={}).api_limits == ApiLimits()
    config = NodeConfig.load(_node_dir(tmp_path, api_header_timeout_s=2.5, api_client_connections_max=8),
                             env={"IMI_API_CLIENT_RATE_PER_S": "0", "IMI_API_HEADER_TIMEOUT_S": "4"})
    assert config.api_limits.header_timeout_s == 4.0
    assert config.api_limits.client_connections_max == 8 and config.api_limits.client_rate_per_s == 0
    for bad in ({"api_header_timeout_s": 0}, {"api_client_connections_max": 5000},
                {"api_cpu_workers": 0}, {"api_client_rate_per_s": -1}, {"api_connections_max": "many"},
                {"api_cpu_queue_max": 1.5}):
        with pytest.raises(ConfigError):
            NodeConfig.load(_node_dir(tmp_path, **bad), env={})
