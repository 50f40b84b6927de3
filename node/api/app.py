"""The validator's REST API: ``create_app(node) -> FastAPI``.

Routers, one per area, each built by a factory from one :class:`ApiContext`:

==================  ===========================================================
``/v1/transactions``  submit (``?wait=commit``), look up with inclusion proof
``/v1/blocks``        blocks with header and commit certificate
``/v1/state``         state entries with membership / absence proofs
``/v1/proofs``        RFC 9162 consistency proofs between heights
``/v1/validators``    the set certifying a height, with its state proof
``/health``           liveness, chain id, height
``/ready``            readiness: not syncing, a quorum of voting power connected, a fresh head
``/metrics``          Prometheus text (a registry private to this app)
identity              ``/v1/dids``, ``/v1/issuers``, ``/v1/credential-types``,
                      ``/v1/status-lists``, ``POST /v1/verify``: passed in as
                      ``extra_routers`` by whoever composes the node with the
                      identity rules (``node`` does not import ``identity``)
==================  ===========================================================

Every error is an RFC 9457 problem document (:mod:`node.api.problems`), request
bodies are bounded before they are read (:class:`node.api.guard.BodyLimit`), each
client address is rate-limited (:class:`node.api.ratelimit.ClientRateLimit`),
CPU-heavy work runs on a bounded thread pool (:class:`node.api.offload.CpuPool`), and
no exception escapes as a bare 500. Connection-level limits (head and body
timeouts, connection caps) are the server's: :mod:`node.api.server`. OpenAPI is served at ``/openapi.json`` and
``/docs``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi import APIRouter, FastAPI
from fastapi.telemetry import TelemetryConfig

from node.api.chain import chain_router
from node.api.constants import API_BODY_BYTES_MAX
from node.api.context import ApiContext, RouterFactory
from node.api.fastpath import SubmitFastPath
from node.api.guard import BodyLimit, CatchAll, install_problem_handlers
from node.api.limits import ApiLimits
from node.api.metrics import ApiMetrics, MetricsMiddleware, NodeStatusCollector
from node.api.offload import CpuPool
from node.api.openapi import install_openapi
from node.api.ops import ops_router
from node.api.ratelimit import ClientRateLimit
from node.api.reader import ChainReader
from node.api.tx import transactions_router
from node.interfaces import NodeView

API_TITLE = "imi validator API"
API_SEMVER = "1.0.0"
_CORE_ROUTERS: tuple[RouterFactory, ...] = (transactions_router, chain_router, ops_router)
# FastAPI's native OpenTelemetry (>= 0.165) is on by default: every request asks the
# global OTel providers whether they are configured (~80 µs of CPU per request here).
# The API's observability is its own Prometheus registry (/metrics); switch it off.
_NO_OTEL: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(
    node: NodeView,
    *,
    extra_routers: Sequence[RouterFactory | APIRouter] = (),
    body_bytes_max: int = API_BODY_BYTES_MAX,
    logger: logging.Logger | None = None,
    limits: ApiLimits | None = None,
) -> FastAPI:
    """Build the API of ``node``; everything the app needs is created here, nothing is global.

    ``extra_routers`` (the identity endpoints) are routers, or factories
    ``ApiContext -> APIRouter`` when they need the node, the chain reader or metrics.
    Their errors may be raised as :class:`node.api.problems.ApiProblem` or as ledger
    errors with a ``reason``; either becomes a problem document. ``limits``: the
    per-client rate and the CPU pool's size (default :class:`ApiLimits`); the owner
    closes ``app.state.api.cpu`` when the app is done.
    """
    limits = limits or ApiLimits()
    log = logger or logging.getLogger(f"imi.api.{node.name}")
    reader = ChainReader(node.store, node.genesis)
    metrics = ApiMetrics(height=lambda: float(reader.head_height()))
    metrics.registry.register(NodeStatusCollector(node.status))
    ctx = ApiContext(node=node, reader=reader, metrics=metrics, logger=log,
                     cpu=CpuPool(limits.cpu_workers, limits.cpu_queue_max))
    app = FastAPI(
        title=API_TITLE,
        version=API_SEMVER,
        description=(
            "A validator of the imi identity ledger. Every answer about committed data carries "
            "the block header and commit certificate it is anchored to. Errors are RFC 9457 "
            "problem documents with a stable `reason` (see docs/api.md)."
        ),
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        telemetry=_NO_OTEL,
    )
    install_problem_handlers(app, log)
    install_openapi(app)
    for item in (*_CORE_ROUTERS, *extra_routers):
        app.include_router(item if isinstance(item, APIRouter) else item(ctx))
    # Added last = outermost: metrics see every answer, including 413s and 500s. The
    # submit fast path is innermost: inside the body limit and the 500 guard.
    app.add_middleware(SubmitFastPath, ctx=ctx)
    app.add_middleware(CatchAll, logger=log)
    app.add_middleware(BodyLimit, body_bytes_max=body_bytes_max)
    if limits.client_rate_per_s > 0:  # before any body is read or parsed
        app.add_middleware(ClientRateLimit, rate_per_s=limits.client_rate_per_s, burst=limits.client_burst)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.state.api = ctx
    return app


__all__ = ["ApiContext", "RouterFactory", "create_app"]
