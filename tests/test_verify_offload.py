"""POST /v1/verify verifies on the API's CPU pool, off the event loop: a full pool answers
503 overloaded at once (never queues without bound), and a free one gives the verdict."""

from __future__ import annotations

import asyncio
import functools
import threading
import time

from fastapi.testclient import TestClient

from identity.http.node_routes import identity_router, verify_router
from node.api.app import create_app
from node.api.limits import ApiLimits
from node.api.offload import CpuPool
from tests.test_identity_api_scene import REQUEST, build_scene

WAIT_S = 10.0


def test_verify_runs_on_the_cpu_pool_and_is_refused_when_it_is_full() -> None:
    scene = build_scene()
    app = create_app(scene.node, limits=ApiLimits(cpu_workers=1, cpu_queue_max=0),
                     extra_routers=[identity_router, functools.partial(verify_router, clock_ms=scene.clock)])
    pool: CpuPool = app.state.api.cpu
    client = TestClient(app, raise_server_exceptions=False)
    body = {"presentation": scene.presentation(scene.credential()), "request": REQUEST.to_json()}
    threads: list[str] = []
    release = threading.Event()

    def occupy() -> None:
        threads.append(threading.current_thread().name)
        release.wait(WAIT_S)

    holder = threading.Thread(target=lambda: asyncio.run(pool.run(occupy)))
    holder.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while pool.in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        refused = client.post("/v1/verify", json=body)
        assert refused.status_code == 503 and refused.json()["reason"] == "overloaded"
        assert refused.headers["retry-after"] == "1"
    finally:
        release.set()
        holder.join(WAIT_S)
    answer = client.post("/v1/verify", json=body)
    assert answer.status_code == 200 and answer.json()["valid"] is True, answer.text
    assert threads and threads[0].startswith("imi-api-cpu")
    pool.close()
