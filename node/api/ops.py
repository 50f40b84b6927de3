"""Operations: ``/health`` (liveness), ``/ready`` (readiness) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ledger.execution import read_validator_set
from node.api.constants import API_READY_HEAD_AGE_HEARTBEATS_MAX, PROBLEM_CONTENT_TYPE
from node.api.context import ApiContext
from node.api.models import HealthResponse, ReadyResponse, problem_responses
from node.api.problems import Problem
from node.constants import HEARTBEAT_MS_DEFAULT


def _wall_ms() -> int:
    return int(time.time() * 1000)


def readiness(ctx: ApiContext, now_ms: int) -> dict[str, Any]:
    """The ``/ready`` answer: not catching up, this node and the validators it is connected
    to hold more than 2/3 of the current set's voting power (so they can commit without the
    others; with unequal powers a count of peers says nothing), and a head younger than
    ``API_READY_HEAD_AGE_HEARTBEATS_MAX`` heartbeats (the chain commits at least one block
    per heartbeat, so an older head means this node or the chain is stuck).

    Reads ``key_id`` (this node's consensus key) and ``peers_connected_ids`` (the key ids
    of the validators connected) from :meth:`NodeView.status`; without them nobody is
    connected."""
    status = ctx.node.status()
    syncing = bool(status.get("syncing", False))
    connected = _key_ids(status.get("peers_connected_ids"))
    me = status.get("key_id")
    store = ctx.node.store
    validators = read_validator_set(store.state_reader())
    holders = [*connected, *([me] if isinstance(me, str) else [])]
    power = validators.power_of(holders)
    heartbeat = ctx.node.genesis.policy.get("heartbeat_ms", HEARTBEAT_MS_DEFAULT)
    age_max = API_READY_HEAD_AGE_HEARTBEATS_MAX * (heartbeat if type(heartbeat) is int else HEARTBEAT_MS_DEFAULT)
    head = store.head()
    age = None if head is None else now_ms - int(head.time_ms)
    why = []
    if syncing:
        why.append("catching up from peers")
    if not validators.has_quorum(holders):
        why.append(f"this node and {len(connected)} connected peers hold {power} of {validators.total_power} "
                   f"voting power, {validators.quorum_power} needed for a quorum")
    if age is None:
        why.append("no block committed yet")
    elif age > age_max:
        why.append(f"head is {age} ms old (limit {age_max})")
    return {"ready": not why, "syncing": syncing, "peers_connected": len(connected),
            "power_connected": power, "power_needed": validators.quorum_power,
            "power_total": validators.total_power,
            "height": ctx.reader.head_height(), "head_age_ms": age, "head_age_ms_max": age_max, "why": why,
            "sync_target_height": int(status.get("sync_target_height", 0)),
            "sync_blocks_per_s": float(status.get("sync_blocks_per_s", 0.0)),
            "sync_tx_per_s": float(status.get("sync_tx_per_s", 0.0))}


def _key_ids(value: object) -> list[str]:
    return [k for k in value if isinstance(k, str)] if isinstance(value, list) else []


def ops_router(ctx: ApiContext, *, clock_ms: Callable[[], int] = _wall_ms) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health", response_model=HealthResponse, summary="Liveness and height")
    async def health() -> Any:
        return {
            "status": "ok",
            "name": ctx.node.name,
            "chain_id": ctx.node.genesis.chain_id,
            "height": ctx.reader.head_height(),
        }

    @router.get("/ready", response_model=ReadyResponse, summary="Readiness: syncing, peers, head age",
                responses=problem_responses(503))
    async def ready() -> Any:
        """`200` when this node should get traffic; otherwise `503 not-ready`, a problem
        document carrying the same members (`why` says what is missing). Liveness is
        `/health`: a node that is alive but not ready should be left running."""
        answer = readiness(ctx, clock_ms())
        if answer["ready"]:
            return answer
        problem = Problem(503, "not-ready", "; ".join(answer["why"]), answer)
        return JSONResponse(problem.to_json(), status_code=503, media_type=PROBLEM_CONTENT_TYPE,
                            headers={"retry-after": "1"})

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response,
                responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    async def metrics() -> Response:
        return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


__all__ = ["ops_router", "readiness"]
