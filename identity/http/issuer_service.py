"""An issuer's HTTP service: :func:`create_issuer_app` over an :class:`~identity.issuer_agent.IssuerAgent`.

An agency runs it beside (not inside) its validator, with the issuer DID's assertion key;
it talks to the ledger as any client does (writes through ``POST /v1/transactions``,
reads through the light client).

===========================================  ============================================
``POST /v1/issuance/nonce``                  ``{nonce, expires_at, aud}``: single-use nonce
``POST /v1/issuance/credential``             ``{vct, proof, subject?}`` → ``{credential,
                                             vct, status, anchor, anchor_salt, height}``
``POST /v1/issuance/revoke``                 ``{idx}`` → ``status.set`` invalid (final)
``POST /v1/issuance/suspend``                ``{idx}`` → ``status.set`` suspended
``POST /v1/issuance/reinstate``              ``{idx}`` → ``status.set`` valid
``GET /v1/issuance/metadata``                issuer DID, proof ``typ``, status list uri
``GET /health``                              ``{"status": "ok"}``
===========================================  ============================================

The proof is described in :mod:`identity.issuance`. The status endpoints are for the
agency's staff: with ``admin_token`` they need ``Authorization: Bearer <token>``
(``401 admin-unauthorized`` otherwise); without one they accept only loopback clients
(``403 admin-loopback-only``) — bind the service to a public address only with a token.

Errors are RFC 9457 problem documents built by the node's one mapping
(:func:`node.api.problems.problem_for`), with the stable reasons of :mod:`identity.issuance`
and :mod:`identity.issuer_agent` and their statuses from :func:`issuer_status`; the ledger's
own reason is kept when it refuses a status change (``409 status-final``).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from typing import Any, Final

from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from identity.errors import IdentityError, IssuanceError
from identity.issuance import (
    PROOF_CHARS_MAX,
    PROOF_TYP,
    SUBJECT_CHARS_MAX,
    VCT_REQUEST_CHARS_MAX,
    IssuanceRequestError,
)
from identity.issuer_agent import IssuerAgent, IssuerLedgerError
from identity.ledger_trust import status_uri
from ledger.errors import ImiError
from node.api.guard import BodyLimit, CatchAll, install_problem_handlers, read_json_body
from node.api.problems import ApiProblem

ISSUER_BODY_BYTES_MAX: Final = 16 * 1024
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost"})
_UNAVAILABLE: Final = frozenset({"node-unavailable", "ledger-unavailable", "commit-timeout", "node-error",
                                 "malformed-response", "unavailable", "mempool-full", "too-many-waiters"})
_STATUS_BY_REASON: Final[dict[str, int]] = {
    "unknown-subject": 404,
    "holder-key-not-allowed": 403,
    "too-many-nonces": 503,
    "issuer-not-accredited": 503,
    "list-full": 503,
    "not-list-owner": 503,
    "records-full": 503,
}


class CredentialRequest(BaseModel):
    """``POST /v1/issuance/credential``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    vct: str = Field(min_length=1, max_length=VCT_REQUEST_CHARS_MAX, description="Credential type.")
    proof: str = Field(min_length=1, max_length=PROOF_CHARS_MAX,
                       description=f"Compact JWS, typ {PROOF_TYP}, over {{aud, nonce, iat}}.")
    subject: str | None = Field(None, min_length=1, max_length=SUBJECT_CHARS_MAX,
                                description="The agency's subject id (binding by JWK only).")


class StatusRequest(BaseModel):
    """``POST /v1/issuance/{revoke,suspend,reinstate}``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    idx: int = Field(ge=0, description="The credential's status list index (status.status_list.idx).")


def issuer_status(exc: ImiError) -> int | None:
    """The HTTP status of an identity error in this service (None: the node's statuses)."""
    if not isinstance(exc, IdentityError):
        return None
    reason = exc.reason
    if isinstance(exc, IssuerLedgerError):
        return 502 if reason in _UNAVAILABLE else 409
    if reason in _STATUS_BY_REASON:
        return _STATUS_BY_REASON[reason]
    if isinstance(exc, IssuanceRequestError):
        return 400
    if isinstance(exc, IssuanceError):
        return 503
    return 400


def _wall_s() -> int:
    return int(time.time())


def create_issuer_app(
    issuer: IssuerAgent,
    *,
    admin_token: str | None = None,
    clock_s: Callable[[], int] = _wall_s,
    logger: logging.Logger | None = None,
) -> FastAPI:
    """The issuer service of ``issuer``. ``clock_s`` gives the service's time in seconds
    (tests pass a fixed one); ``admin_token`` guards the status endpoints (see module doc)."""
    log = logger or logging.getLogger("imi.issuer")
    app = FastAPI(title="imi issuer service", version="1",
                  description="Issues SD-JWT VCs of an accredited agency over the imi ledger "
                              "(nonce, proof of possession, credential; status changes).",
                  docs_url="/docs", redoc_url=None, openapi_url="/openapi.json")
    install_problem_handlers(app, log, status_of=issuer_status)

    def admin(request: Request) -> None:
        if admin_token is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {admin_token}".encode()):
                raise ApiProblem("admin-unauthorized", "a valid admin bearer token is required", status=401)
            return
        host = request.client.host if request.client is not None else ""
        if host not in LOOPBACK_HOSTS:
            raise ApiProblem("admin-loopback-only", "status changes are accepted from loopback only",
                             status=403)

    @app.get("/health", tags=["issuance"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/issuance/metadata", tags=["issuance"], summary="Who issues here, and how")
    async def metadata() -> dict[str, Any]:
        return {"issuer": issuer.did, "kid": issuer.kid, "proof_typ": PROOF_TYP,
                "status_list": status_uri(issuer.list_id), "nonce_ttl_s": issuer.nonces.ttl_s}

    @app.post("/v1/issuance/nonce", tags=["issuance"], summary="A fresh single-use nonce")
    async def nonce() -> dict[str, Any]:
        issued = await run_in_threadpool(issuer.new_nonce, clock_s())
        return {"nonce": issued.value, "expires_at": issued.expires_at, "aud": issuer.did}

    @app.post("/v1/issuance/credential", tags=["issuance"], summary="Issue an SD-JWT VC to the proof's key")
    async def credential(request: Request) -> dict[str, Any]:
        body = await read_json_body(request, CredentialRequest)
        issued = await run_in_threadpool(issuer.issue_with_proof, body.vct, body.proof, clock_s(), subject=body.subject)
        return dict(issued.to_json())

    def status_route(action: str) -> None:
        async def change(request: Request) -> dict[str, Any]:
            admin(request)
            body = await read_json_body(request, StatusRequest)
            height = await run_in_threadpool(issuer.set_status, body.idx, action)
            return {"idx": body.idx, "action": action, "list_id": issuer.list_id, "height": height}

        app.add_api_route(f"/v1/issuance/{action}", change, methods=["POST"], tags=["issuance"],
                          summary=f"{action.capitalize()} a credential (status.set on the ledger)")

    for action in ("revoke", "suspend", "reinstate"):
        status_route(action)

    app.add_middleware(CatchAll, logger=log)
    app.add_middleware(BodyLimit, body_bytes_max=ISSUER_BODY_BYTES_MAX)
    return app


__all__ = ["ISSUER_BODY_BYTES_MAX", "CredentialRequest", "StatusRequest", "create_issuer_app"]
