"""Serve an ASGI app on a loopback port for a test: uvicorn in a daemon thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from cli._consortium import free_ports
from identity.http.node_routes import ROUTERS
from identity.rules import IDENTITY_HANDLERS
from ledger.execution import DEVNET_HANDLERS
from node.api.app import create_app
from tests.test_node_api_support import InProcessNode

START_TIMEOUT_S = 10.0


@contextmanager
def serve_in_thread(app: Any, port: int | None = None) -> Iterator[int]:
    """Run ``app`` on 127.0.0.1 at ``port`` (default: a free one); yields the port, stops the
    server on exit."""
    port = port or free_ports(1)[0]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=START_TIMEOUT_S)


@contextmanager
def served_identity_node() -> Iterator[tuple[str, InProcessNode]]:
    """An in-process node with the identity transactions and routes, past its first block,
    served on a free loopback port: yields (its URL, the node)."""
    node = InProcessNode(handlers={**DEVNET_HANDLERS, **IDENTITY_HANDLERS})
    node.commit()
    with serve_in_thread(create_app(node, extra_routers=ROUTERS)) as port:
        yield f"http://127.0.0.1:{port}", node
