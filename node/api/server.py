"""The HTTP server of the REST API: uvicorn with the connection limits it lacks.

uvicorn bounds only the idle wait between two requests on a keep-alive connection
(``timeout_keep_alive``): once a client sends a first byte, or before it sends any,
nothing bounds how long it may take over the request head or body, so a client
sending one header byte a second (slowloris) holds a connection forever, and
enough of them hold every file descriptor. uvicorn's ``limit_concurrency`` does
not help: it counts those connections and answers *other* clients 503.

:func:`guarded_protocol` subclasses uvicorn's httptools protocol with, per
connection:

- a **head deadline** (``header_timeout_s``), armed when the connection opens and
  when a new request's first byte arrives, disarmed when the head is complete; on
  expiry the server answers ``408 request-timeout`` and closes;
- a **body deadline** (``body_timeout_s``), armed when the head is complete and
  disarmed when the body is; on expiry the connection is closed (the handler sees
  a disconnect);
- a **connection cap**: beyond ``connections_max`` open connections, or
  ``client_connections_max`` from one client address, a new connection is
  answered ``503 too-many-connections`` and closed at once, so one client's
  half-open connections cannot crowd out the others.

:func:`make_server` builds the uvicorn server with these and the keep-alive
timeout, leaving signal handling to the caller (the validator service).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from node.api.constants import PROBLEM_CONTENT_TYPE
from node.api.limits import ApiLimits
from node.api.problems import problem_bytes


def _raw_problem(status: int, phrase: str, reason: str, detail: str) -> bytes:
    """A complete HTTP/1.1 response carrying a problem document; the connection closes."""
    body = problem_bytes(status, reason, detail)
    head = (f"HTTP/1.1 {status} {phrase}\r\ncontent-type: {PROBLEM_CONTENT_TYPE}\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode("ascii") + body


@dataclass(slots=True)
class ConnectionStats:
    """Open connections (total and by client address) and what the guards refused.
    Touched only on the event loop thread."""

    open_total: int = 0
    by_client: dict[str, int] = field(default_factory=dict)
    refused_total: int = 0
    head_timeouts_total: int = 0
    body_timeouts_total: int = 0

    def admit(self, client: str, limits: ApiLimits) -> bool:
        held = self.by_client.get(client, 0)
        if self.open_total >= limits.connections_max or held >= limits.client_connections_max:
            self.refused_total += 1
            return False
        self.open_total += 1
        self.by_client[client] = held + 1
        return True

    def release(self, client: str) -> None:
        self.open_total -= 1
        held = self.by_client.get(client, 0) - 1
        if held > 0:
            self.by_client[client] = held
        else:
            self.by_client.pop(client, None)


def guarded_protocol(limits: ApiLimits, stats: ConnectionStats) -> type[Any]:
    """uvicorn's httptools protocol class with head/body deadlines and connection caps."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    refused = _raw_problem(503, "Service Unavailable", "too-many-connections",
                           "too many open connections; retry later")
    head_timeout = _raw_problem(408, "Request Timeout", "request-timeout",
                                f"request head not received within {limits.header_timeout_s:g} s")

    class GuardedProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._deadline: asyncio.TimerHandle | None = None
            self._counted: str | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            client = self.client[0] if self.client else ""
            if not stats.admit(client, limits):
                transport.write(refused)
                transport.close()
                return
            self._counted = client
            self._arm_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._counted is not None:
                stats.release(self._counted)
                self._counted = None
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._deadline is None:  # a request on a kept-alive connection
                self._arm_head()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()
            self._deadline = self.loop.call_later(limits.body_timeout_s, self._body_expired)

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def _arm_head(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(limits.header_timeout_s, self._head_expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _head_expired(self) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            stats.head_timeouts_total += 1
            if self.cycle is None or self.cycle.response_complete:
                self.transport.write(head_timeout)  # no response of the app is under way
            self.transport.close()

        def _body_expired(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                stats.body_timeouts_total += 1
                self.transport.close()

    return GuardedProtocol


def make_server(app: Any, host: str, port: int, limits: ApiLimits, stats: ConnectionStats) -> Any:
    """A uvicorn server for ``app`` with the guards above; it leaves signal handling to
    its owner (``serve()`` then ``should_exit = True``)."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            lifespan="off", timeout_graceful_shutdown=1,
                            timeout_keep_alive=limits.keep_alive_s,  # type: ignore[arg-type]
                            http=guarded_protocol(limits, stats),
                            # The API never reads X-Forwarded-*: the per-client limits key on
                            # the peer address, and parsing would cost a call per request.
                            proxy_headers=False)
    return Server(config)


__all__ = ["ConnectionStats", "guarded_protocol", "make_server"]
