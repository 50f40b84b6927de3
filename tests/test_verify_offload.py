"""POST /v1/verify verifies, and the identity reads build their state proofs, on the API's
CPU pool, off the event loop: a full pool answers 503 overloaded at once (never queues
without bound), and a free one gives the answer."""

from __future__ import annotations

import functools
import threading

import pytest
from fastapi.testclient import TestClient

from identity.http import node_routes
from identity.http.node_routes import identity_router, verify_router
from node.api.app import create_app
from node.api.limits import ApiLimits
from node.api.offload import CpuPool
from tests.test_identity_api_scene import LIST_ID, REQUEST, VCT, build_scene
from tests.test_node_api_support import cpu_pool_held

WAIT_S = 10.0


def test_verify_runs_on_the_cpu_pool_and_is_refused_when_it_is_full() -> None:
    scene = build_scene()
    app = create_app(scene.node, limits=ApiLimits(cpu_workers=1, cpu_queue_max=0),
                     extra_routers=[identity_router, functools.partial(verify_router, clock_ms=scene.clock)])
    pool: CpuPool = app.state.api.cpu
    client = TestClient(app, raise_server_exceptions=False)
    body = {"presentation": scene.presentation(scene.credential()), "request": REQUEST.to_json()}
    threads: list[str] = []
    with cpu_pool_held(pool, WAIT_S, on_worker=lambda: threads.append(threading.current_thread().name)):
        refused = client.post("/v1/verify", json=body)
        assert refused.status_code == 503 and refused.json()["reason"] == "overloaded"
        assert refused.headers["retry-after"] == "1"
    answer = client.post("/v1/verify", json=body)
    assert answer.status_code == 200 and answer.json()["valid"] is True, answer.text
    assert threads and threads[0].startswith("imi-api-cpu")
    pool.close()


def test_identity_reads_build_their_proofs_on_the_cpu_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression (issue 19): state proofs of DIDs, issuers, services, credential types and
    status lists were built on the event loop that runs consensus."""
    scene = build_scene()
    app = create_app(scene.node, limits=ApiLimits(cpu_workers=1, cpu_queue_max=0), extra_routers=[identity_router])
    pool: CpuPool = app.state.api.cpu
    client = TestClient(app, raise_server_exceptions=False)
    threads: list[str] = []
    answer = node_routes.identity_answer

    def recording(*args: object, **kwargs: object) -> object:
        threads.append(threading.current_thread().name)
        return answer(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(node_routes, "identity_answer", recording)
    paths = {f"/v1/dids/{scene.alice.did}": 200, f"/v1/issuers/{scene.agency.did}": 200,
             f"/v1/services/{scene.agency.did}": 404, f"/v1/credential-types/{VCT}": 200,
             f"/v1/status-lists/{LIST_ID}": 200}
    with cpu_pool_held(pool, WAIT_S):
        for path in paths:
            refused = client.get(path)
            assert refused.status_code == 503 and refused.json()["reason"] == "overloaded", (path, refused.text)
    try:
        for path, status in paths.items():
            assert client.get(path).status_code == status, path
        assert len(threads) == len(paths) and all(name.startswith("imi-api-cpu") for name in threads), threads
    finally:
        pool.close()
