"""Committed chain data with proofs: blocks, state, log consistency, validators.

Every answer carries the header and commit certificate it is anchored to, so a
client holding the genesis can check it against the consortium's signatures
without trusting this node. Proofs (state, consistency, validator set) are built
on the API's CPU pool (:class:`node.api.offload.CpuPool`), off the event loop, at
a height fixed before they leave it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query

from node.api.constants import API_HEIGHT_MAX, API_STATE_KEY_BYTES_MAX
from node.api.context import ApiContext
from node.api.models import (
    BlockResponse,
    ConsistencyResponse,
    StateResponse,
    ValidatorsResponse,
    problem_responses,
)
from node.api.problems import ApiProblem


def _state_key(key: str) -> bytes:
    raw = key.encode("utf-8", errors="strict") if key else b""
    if not 0 < len(raw) <= API_STATE_KEY_BYTES_MAX:
        raise ApiProblem("bad-request", f"state key must be 1..{API_STATE_KEY_BYTES_MAX} UTF-8 bytes")
    return raw


def chain_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix="/v1")
    reader = ctx.reader

    def head() -> int:
        height = reader.head_height()
        if height == 0:
            raise ApiProblem("no-blocks", "no block has been committed yet")
        return height

    @router.get("/blocks/latest", response_model=BlockResponse, tags=["blocks"],
                summary="The last committed block", responses=problem_responses(404))
    async def latest_block() -> Any:
        return reader.block_json(head())

    @router.get("/blocks/{height}", response_model=BlockResponse, tags=["blocks"],
                summary="A committed block by height", responses=problem_responses(400, 404))
    async def block_at(height: int = Path(ge=1, le=API_HEIGHT_MAX)) -> Any:
        return reader.block_json(height)

    @router.get("/state/{key:path}", response_model=StateResponse, tags=["state"],
                summary="A state entry with its membership or absence proof",
                responses=problem_responses(400, 404))
    async def state(
        key: str = Path(description="UTF-8 state key path (URL-encoded), e.g. `valset/current`."),
        height: int | None = Query(None, ge=1, le=API_HEIGHT_MAX, description="Committed height; default the head."),
    ) -> Any:
        """Value (base64url of canonical CBOR, or null) at `height`, with a proof against that
        header's `state_root` and the header's commit certificate."""
        raw = _state_key(key)
        at = height if height is not None else head()
        return await ctx.cpu.run(lambda: reader.state_json(raw, at))

    @router.get("/proofs/consistency", response_model=ConsistencyResponse, tags=["proofs"],
                summary="RFC 9162 consistency proof of the transaction log between two heights",
                responses=problem_responses(400, 404))
    async def consistency(
        from_height: int = Query(alias="from", ge=1, le=API_HEIGHT_MAX),
        to_height: int | None = Query(None, alias="to", ge=1, le=API_HEIGHT_MAX, description="Default: the head."),
    ) -> Any:
        to = to_height if to_height is not None else head()
        return await ctx.cpu.run(lambda: reader.consistency_json(from_height, to))

    @router.get("/validators", response_model=ValidatorsResponse, tags=["validators"],
                summary="The validator set certifying a height, proven at the height before",
                responses=problem_responses(400, 404))
    async def validators(
        height: int | None = Query(None, ge=1, le=API_HEIGHT_MAX, description="Default: the next height (head + 1)."),
    ) -> Any:
        at = height if height is not None else reader.head_height() + 1
        return await ctx.cpu.run(lambda: reader.validators_json(at))

    return router


__all__ = ["chain_router"]
