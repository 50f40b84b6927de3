"""``/v1/transactions``: submit a signed transaction (or a batch), look one up.

Admission runs, in order: strict JSON body → strict base64url → canonical CBOR
and the transaction schema → the node's own admission (``NodeView.submit``: not
already committed, chain, signatures, expiry, execution against the state). The
first failure answers a 4xx problem with the ledger's reason. The API leaves
the replay and signature checks to ``submit`` so that each is made once.

Resubmitting a transaction that is still pending is idempotent (202 again, the
same id); resubmitting a committed one is ``409 replayed-transaction``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from ledger.constants import TX_BYTES_MAX
from ledger.errors import ImiError, KeyError_, TransactionError
from ledger.keys import b64url_decode
from ledger.tx import Transaction
from node.api.constants import API_COMMIT_WAIT_MS_DEFAULT, API_COMMIT_WAIT_MS_MAX
from node.api.context import ApiContext
from node.api.guard import read_json_body
from node.api.models import (
    SubmitAccepted,
    SubmitBatchRequest,
    SubmitBatchResponse,
    SubmitCommitted,
    SubmitRequest,
    TxResponse,
    problem_responses,
)
from node.api.problems import ApiProblem, problem_for
from node.errors import NodeError

_TX_B64_CHARS_MAX = (TX_BYTES_MAX * 4) // 3 + 4
_TX_ID_PATTERN = r"^[0-9a-f]{64}$"


def parse_transaction(text: str) -> Transaction:
    """Strict base64url, canonical CBOR, known fields only. Raises :class:`TransactionError`."""
    if len(text) > _TX_B64_CHARS_MAX:
        raise TransactionError(f"transaction text over {_TX_B64_CHARS_MAX} characters", reason="too-large")
    try:
        raw = b64url_decode(text)
    except KeyError_ as exc:
        raise TransactionError(f"tx: {exc}", reason="bad-encoding") from exc
    tx = Transaction.from_bytes(raw)
    if tx.to_bytes() != raw:  # decode() is canonical; this guards the schema layer too
        raise TransactionError("transaction bytes are not its canonical encoding",
                               reason="non-canonical-encoding")
    return tx


async def admit(ctx: ApiContext, tx: Transaction) -> None:
    """Admit a parsed transaction: the node's own admission, which refuses a committed one
    (``replayed-transaction``) before any other check (:meth:`NodeView.submit`)."""
    await ctx.node.submit(tx)


async def committed_answer(ctx: ApiContext, tx: Transaction, timeout_ms: int) -> dict[str, Any]:
    """Wait up to ``timeout_ms`` for ``tx`` to commit; the ``SubmitCommitted`` answer, built
    by the chain reader in that model's shape (tests check it against the model).
    Raises ``ApiProblem("commit-timeout")``."""
    height = await ctx.node.wait_committed(tx.tx_id, timeout_ms / 1000)
    committed = ctx.reader.committed_tx_json(tx.tx_id, with_tx=False) if height is not None else None
    if committed is None:
        ctx.metrics.tx_commit_timeouts.inc()
        raise ApiProblem("commit-timeout", f"not committed within {timeout_ms} ms; it may still be",
                         extra={"id": tx.tx_id.hex()})
    return committed


async def _admit_one_of_batch(ctx: ApiContext, text: str) -> dict[str, Any]:
    """One result of a batch: ``pending`` with the id, or ``rejected`` with its problem."""
    tx_id: str | None = None
    try:
        tx = parse_transaction(text)
        tx_id = tx.tx_id.hex()
        await admit(ctx, tx)
    except ImiError as exc:
        problem = problem_for(exc)
    else:
        ctx.metrics.tx_submitted.inc()
        return {"id": tx_id, "status": "pending"}
    ctx.metrics.tx_rejected.labels(problem.reason).inc()
    return {"id": tx_id, "status": "rejected", "problem": problem.to_json()}


async def _wait_for_batch(ctx: ApiContext, results: list[dict[str, Any]], timeout_ms: int) -> None:
    """Mark each ``pending`` result ``committed`` (with height and index) once it is, all
    waits sharing one deadline of ``timeout_ms``; those still waiting then stay ``pending``."""
    pending = [result for result in results if result["status"] == "pending"]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_ms / 1000

    async def one(result: dict[str, Any]) -> None:
        tx_id = bytes.fromhex(result["id"])
        try:
            height = await ctx.node.wait_committed(tx_id, max(0.0, deadline - loop.time()))
        except NodeError:  # too many waiters: it was admitted; it stays "pending"
            return
        if height is None:
            ctx.metrics.tx_commit_timeouts.inc()
            return
        location = ctx.reader.tx_location(tx_id)
        if location is not None:
            result.update(status="committed", height=location[0], index=location[1])

    await asyncio.gather(*(one(result) for result in pending))


def transactions_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix="/v1/transactions", tags=["transactions"])

    @router.post(
        "",
        status_code=202,
        response_model=SubmitAccepted,
        summary="Submit a signed transaction",
        responses={
            200: {"model": SubmitCommitted, "description": "Committed (with ?wait=commit)"},
            **problem_responses(400, 403, 409, 413, 415, 422, 503, 504),
        },
        openapi_extra={"requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SubmitRequest.model_json_schema()}},
        }},
    )
    async def submit(
        request: Request,
        wait: Literal["none", "commit"] = Query("none", description="`commit`: answer once committed."),
        timeout_ms: int = Query(API_COMMIT_WAIT_MS_DEFAULT, ge=1, le=API_COMMIT_WAIT_MS_MAX,
                                description="Bound on the wait for ?wait=commit."),
    ) -> Any:
        """Admit a transaction to the mempool: 202 with its id, or with `?wait=commit` 200 once
        committed (height, RFC 9162 inclusion proof, header and certificate) or 504 on timeout."""
        try:
            body = await read_json_body(request, SubmitRequest)
            tx = parse_transaction(body.tx)
            await admit(ctx, tx)
        except ImiError as exc:
            ctx.metrics.tx_rejected.labels(exc.reason).inc()
            raise
        ctx.metrics.tx_submitted.inc()
        if wait != "commit":
            return SubmitAccepted(id=tx.tx_id.hex())
        return JSONResponse(await committed_answer(ctx, tx, timeout_ms), status_code=200)

    @router.post(
        "/batch",
        status_code=200,
        response_model=SubmitBatchResponse,
        summary="Submit several signed transactions",
        responses=problem_responses(400, 413, 415, 422),
        openapi_extra={"requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SubmitBatchRequest.model_json_schema()}},
        }},
    )
    async def submit_batch(
        request: Request,
        wait: Literal["none", "commit"] = Query("none", description="`commit`: answer once every admitted "
                                                "transaction is committed, or the wait ends."),
        timeout_ms: int = Query(API_COMMIT_WAIT_MS_DEFAULT, ge=1, le=API_COMMIT_WAIT_MS_MAX,
                                description="Bound on the wait for ?wait=commit (one bound for the batch)."),
    ) -> Any:
        """Admit each transaction on its own, as `POST /v1/transactions` would: the answer
        lists, in order, its id and `pending`, or `rejected` with the problem that refused it
        (a `503` one may be retried). One refusal does not stop the others. With
        `?wait=commit` the answer waits (up to `timeout_ms` for the whole batch) and each
        admitted transaction is `committed` with its `height` and `index` (its proofs:
        `GET /v1/transactions/{id}`), or still `pending` if the wait ended first."""
        body = await read_json_body(request, SubmitBatchRequest)
        results = [await _admit_one_of_batch(ctx, text) for text in body.txs]
        if wait == "commit":
            await _wait_for_batch(ctx, results, timeout_ms)
        return JSONResponse({"results": results}, status_code=200)

    @router.get(
        "/{tx_id}",
        response_model=TxResponse,
        response_model_exclude_none=True,
        summary="A transaction: committed (with proofs) or pending",
        responses=problem_responses(400, 404, 503),
    )
    async def get_tx(
        tx_id: str = Path(pattern=_TX_ID_PATTERN, description="Transaction id, 64 lowercase hex."),
    ) -> Any:
        """Committed: height, index, the transaction, its inclusion proof in the global log at
        that height, header and certificate. Pending: only id and status.

        Reading and parsing the transaction and building its inclusion proof (log nodes read
        from disk) run on the API's CPU pool, off the event loop that runs consensus (`503
        overloaded` when it is full); an unknown or pending id is answered on the loop from
        the index and the mempool, without taking a place in the pool."""
        raw_id = bytes.fromhex(tx_id)
        if ctx.reader.tx_location(raw_id) is not None:
            # A committed transaction's height, log index and the header it is proven
            # against never change: the worker reads what the loop found here.
            committed = await ctx.cpu.run(lambda: ctx.reader.committed_tx_json(raw_id))
            if committed is not None:
                return committed
        if ctx.node.is_pending(raw_id):
            return {"id": tx_id, "status": "pending"}
        raise ApiProblem("unknown-transaction", f"transaction {tx_id} is neither committed nor pending here")

    return router


__all__ = ["admit", "committed_answer", "parse_transaction", "transactions_router"]
