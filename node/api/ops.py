"""Operations: ``/health`` and ``/metrics`` (Prometheus text format)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from node.api.context import ApiContext
from node.api.models import HealthResponse


def ops_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health", response_model=HealthResponse, summary="Liveness and height")
    async def health() -> Any:
        return {
            "status": "ok",
            "name": ctx.node.name,
            "chain_id": ctx.node.genesis.chain_id,
            "height": ctx.reader.head_height(),
        }

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response,
                responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    async def metrics() -> Response:
        return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


__all__ = ["ops_router"]
