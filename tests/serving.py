"""Serve an ASGI app on a loopback port for a test: uvicorn in a daemon thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from cli._consortium import free_ports

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
