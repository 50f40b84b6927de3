"""Remote (zero-visit) enrolment routes of the issuer service (:mod:`identity.remote_enrolment`).

Mounted by :func:`identity.http.issuer_service.create_issuer_app` when the agency runs with
``--remote-enrolment FILE``. Every route is public (a wallet, nobody signed in):

=============================================  ===============================================
``POST /remote-enrolment``                     start: ``{request_uri: "openid4vp://…",
                                               expires_at}`` (rate-limited per client)
``GET /remote-enrolment/requests/{state}``     the signed request object of a live,
                                               unanswered state
                                               (``application/oauth-authz-req+jwt``)
``POST /remote-enrolment/responses``           ``direct_post``: form ``vp_token``, ``state`` →
                                               ``{redirect_uri: "openid-credential-offer://…"}``
=============================================  ===============================================

A refusal is a problem document with a stable ``reason``: ``400`` for a malformed post,
an unknown or expired ``state`` or a replayed one (``response-already-received``); ``403``
when the presentation is not accepted as proof (the strict verifier's reason:
``revoked``, ``suspended``, ``issuer-not-trusted``, ``kb-…``) or identifies nobody
(``no-matching-subject``); ``409`` for ``ambiguous-subject`` and
``subject-enrolled-elsewhere``; ``429`` ``slow_down`` beyond the rate. Nothing is
enrolled or offered on any refusal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from identity.constants import (
    RATE_CLIENTS_MAX,
    REMOTE_ENROLMENT_STARTS_BURST,
    REMOTE_ENROLMENT_STARTS_PER_S,
)
from identity.errors import Oid4vpError
from identity.http.verifier_service import (
    REQUEST_OBJECT_MEDIA_TYPE,
    direct_post_form,
    ledger_verify_one,
)
from identity.issuer_agent import IssuerAgent
from identity.light_client import LightClient
from identity.remote_enrolment import RemoteEnrolment, RemoteEnrolmentConfig
from ledger.buckets import TokenBuckets
from node.api.problems import ApiProblem

PATH: Final = "/remote-enrolment"
_NO_STORE: Final = {"Cache-Control": "no-store"}
_STATUS_BY_REASON: Final[dict[str, int]] = {
    "unknown-state": 400, "response-already-received": 400, "invalid-vp-token": 400, "invalid_request": 400,
    "ambiguous-subject": 409, "subject-enrolled-elsewhere": 409, "nothing-to-offer": 503,
}


def remote_enrolment_for(issuer: IssuerAgent, config: RemoteEnrolmentConfig) -> RemoteEnrolment:
    """The flow over ``issuer``, judging presentations with the strict verifier through its own
    light client (same node, genesis and validator-set history as the issuer's, own lock)."""
    light = issuer.client
    verify_one = ledger_verify_one(LightClient(light.genesis, light.fetcher, light.freshness_ms,
                                               history=light.history))
    base = issuer.credential_issuer + PATH
    return RemoteEnrolment(issuer, config, verify_one=verify_one, request_base=base + "/requests",
                           response_uri=base + "/responses")


def _problem(exc: Oid4vpError) -> ApiProblem:
    return ApiProblem(exc.reason, str(exc), status=_STATUS_BY_REASON.get(exc.reason, 403))


def install_remote_enrolment(app: FastAPI, enrolment: RemoteEnrolment, *, clock_s: Callable[[], int],
                             client_of: Callable[[Request], str],
                             rate: tuple[float, int] = (REMOTE_ENROLMENT_STARTS_PER_S,
                                                        REMOTE_ENROLMENT_STARTS_BURST)) -> None:
    """Add the routes above to ``app``; ``client_of`` names a request's client for the rate
    limit (the issuer service's rule: the TCP peer, or a trusted proxy's X-Forwarded-For)."""
    limit = TokenBuckets(*rate, clients_max=RATE_CLIENTS_MAX)

    def limited(request: Request) -> None:
        if not limit.allow(client_of(request), time.monotonic()):
            raise ApiProblem("slow_down", "too many enrolment requests; slow down", status=429)

    @app.post(PATH, tags=["remote enrolment"], summary="Start a remote enrolment (OpenID4VP request)")
    async def start(request: Request) -> JSONResponse:
        limited(request)
        started = enrolment.start(clock_s())
        return JSONResponse({"request_uri": started.request_uri, "expires_at": started.expires_at},
                            headers=_NO_STORE)

    @app.get(PATH + "/requests/{state}", tags=["remote enrolment"], summary="The signed request object")
    async def request_object(state: str) -> Response:
        try:
            signed = enrolment.request_object(state, clock_s())
        except Oid4vpError as exc:
            raise ApiProblem("unknown-request", str(exc), status=404) from exc
        return Response(signed, media_type=REQUEST_OBJECT_MEDIA_TYPE, headers=_NO_STORE)

    @app.post(PATH + "/responses", tags=["remote enrolment"],
              summary="direct_post: the identity credential's vp_token → a credential offer")
    async def response(request: Request) -> JSONResponse:
        form = direct_post_form(request.headers.get("content-type", ""), await request.body())
        try:
            enrolled = await run_in_threadpool(enrolment.respond, form, clock_s())
        except Oid4vpError as exc:
            raise _problem(exc) from exc
        body: dict[str, Any] = {} if enrolled is None else {"redirect_uri": enrolled.redirect_uri}
        return JSONResponse(body, headers=_NO_STORE)


__all__ = ["PATH", "install_remote_enrolment", "remote_enrolment_for"]
