"""Identity endpoints of a validator: ``ROUTERS`` for ``node.api.app.create_app(extra_routers=...)``.

=============================================  ==============================================
``GET /v1/dids/{did}``                          DID document + metadata (``?height``, ``?version``)
``GET /v1/issuers/{did}``                       accreditation record (status, name, vcts)
``GET /v1/services/{did}``                      registered service (names, purpose, claims it may ask)
``GET /v1/credential-types/{vct}``              credential type definition (vct URL-encoded)
``GET /v1/status-lists/{list_id}``              Token Status List ``{bits, lst}`` + metadata
``POST /v1/verify``                             verdict on a presentation, from THIS node's state
=============================================  ==============================================

Every read is the node's state answer (value, proof, header, certificate — built
by :meth:`node.api.reader.ChainReader.state_json`, as ``GET /v1/state``) plus
members interpreting the value (:mod:`identity.views`), so a client holding
only the genesis can verify it (:class:`identity.fetcher.IdentityHttpFetcher`
feeds these answers to :class:`identity.light_client.LightClient`). An absent
record is a 404 problem whose extension members are that same state answer
with ``value: null``: a verifiable proof of absence.

``POST /v1/verify`` runs :func:`identity.verifier.verify_presentation` with the
ledger trust adapters (:mod:`identity.ledger_trust`) over a light client that
reads this node's own store, every read pinned to one committed height. The
validator sets it has followed live as long as the router (one
:class:`~identity.light_client.ValidatorSetHistory`, thread-safe), so each request
follows only the changes committed since the last one; after more than
:data:`~identity.ledger_constants.VALSET_CHANGES_FOLLOW_MAX` changes at once a
request answers ``503 valset-catching-up`` and the next one resumes. The
verdict trusts this node; a verifier that must not runs the same library
locally against any node (the zero-visit flow).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, Path, Query, Request

from identity import did as didmod
from identity import jose
from identity.constants import PREPARED_KEYS_MAX
from identity.errors import LightClientError
from identity.http.models import (
    CredentialTypeResponse,
    DidResponse,
    IssuerResponse,
    ServiceResponse,
    StatusListResponse,
    VerifyRequest,
    VerifyResponse,
)
from identity.ledger_constants import (
    DID_VERSIONS_MAX,
    FRESHNESS_MS_DEFAULT,
    STATUS_LIST_ID_CHARS_MAX,
    VCT_CHARS_MAX,
)
from identity.ledger_trust import (
    LedgerHolderKeys,
    LedgerIssuerKeys,
    LedgerStatusLists,
)
from identity.light_client import LightClient, ValidatorSetHistory
from identity.request import PresentationRequest
from identity.verifier import VerificationResult, verify_presentation
from identity.views import view
from ledger import statekeys
from ledger.errors import LedgerError
from ledger.keys import b64url_decode
from node.api.constants import API_HEIGHT_MAX
from node.api.context import ApiContext, RouterFactory
from node.api.guard import read_json_body
from node.api.models import problem_responses
from node.api.problems import ApiProblem
from node.api.reader import ChainReader

_HEIGHT_QUERY = Query(None, ge=1, le=API_HEIGHT_MAX, description="Committed height; default the head.")
_REQUEST_MEMBERS = frozenset({"nonce", "aud", "vct", "claims", "predicates", "trusted_issuers",
                              "max_age_s", "require_key_binding"})

VERIFY_DESCRIPTION = """\
Verifies a compact SD-JWT VC presentation (with Key Binding JWT) against the verifier's
question (`request`, the JSON of `identity.request.PresentationRequest`) and this node's
certified state at its head: the issuer's key from its did:imi document, its accreditation
for the `vct`, the holder key (`cnf.jwk`, or `cnf.kid` naming a did:imi), the Token Status
List entry, then every RFC 9901 check and the request (claims, predicates, nonce, aud, age).

An invalid presentation is a verdict, not an error: `200` with `valid: false` and a stable
`reason` (see `identity.verifier`). A malformed body is a 4xx problem. `503 stale-state`
when this node's head is older than the freshness bound (it is behind or the chain stalls);
`503 valset-catching-up` while the verifier is still following a long run of validator-set
changes (each request follows a bounded number and keeps them: retry).

This verdict trusts THIS node. A verifier that must not trust any single node runs the same
checks itself: `identity.light_client.LightClient` over any node (it verifies every answer
against the commit certificates from the genesis) with the adapters of
`identity.ledger_trust` and `identity.verifier.verify_presentation` — the zero-visit flow.
"""


def _wall_ms() -> int:
    return int(time.time() * 1000)


class PinnedFetcher:
    """A :class:`identity.light_client.Fetcher` over this node's store, every current read at
    ``height`` (so one verdict sees one state even if blocks commit meanwhile)."""

    __slots__ = ("_height", "_reader")

    def __init__(self, reader: ChainReader, height: int) -> None:
        self._reader = reader
        self._height = height

    def latest_block(self) -> Mapping[str, Any]:
        return self._reader.block_json(self._height)

    def state(self, key: bytes, height: int | None) -> Mapping[str, Any]:
        return self._reader.state_json(key, self._height if height is None else height)

    def validators(self, height: int | None) -> Mapping[str, Any]:
        return self._reader.validators_json(self._height + 1 if height is None else height)


def _head(reader: ChainReader) -> int:
    return reader.require_height(reader.head_height())


def _height(reader: ChainReader, height: int | None) -> int:
    return _head(reader) if height is None else reader.require_height(height)


def _check_name(text: str, what: str, chars_max: int) -> None:
    """Names longer than the ledger accepts cannot exist: refuse them before touching state."""
    if not 0 < len(text) <= chars_max:
        raise ApiProblem("bad-request", f"{what} must be 1..{chars_max} characters")


def _check_did(did: str) -> None:
    if not didmod.is_did(did):
        raise ApiProblem("bad-did", f"{did[:80]!r} is not a did:imi", status=400)


def identity_answer(reader: ChainReader, key: bytes, height: int, kind: str, missing: str) -> dict[str, Any]:
    """The state answer of ``key`` at ``height`` plus its view; a 404 problem ``missing``
    carrying the absence proof when there is no value."""
    answer = reader.state_json(key, height)
    if answer["value"] is None:
        raise ApiProblem(missing, f"{key.decode('utf-8')} is not on the ledger at height {height}",
                         status=404, extra=answer)
    try:
        return {**answer, **view(kind, b64url_decode(answer["value"]))}
    except LightClientError as exc:  # our own store holds a value of the wrong shape
        raise LedgerError(f"stored {kind} record is malformed: {exc}", reason="storage-corrupt") from exc


def identity_router(ctx: ApiContext) -> APIRouter:
    """Reads: DIDs, issuers, services, credential types, status lists, each with its proof (built on
    the API's CPU pool, off the event loop, at a height fixed before)."""
    router = APIRouter(prefix="/v1", tags=["identity"])
    reader = ctx.reader

    @router.get("/dids/{did}", response_model=DidResponse, summary="Resolve a did:imi, with its state proof",
                responses=problem_responses(400, 404))
    async def resolve_did(
        did: str = Path(description="did:imi:<base58btc>"),
        height: int | None = _HEIGHT_QUERY,
        version: int | None = Query(None, ge=1, le=DID_VERSIONS_MAX,
                                    description="A kept version (state key did/<did>#v<n>); default current."),
    ) -> Any:
        """The DID resolution result (DID Core `didDocument` + `didDocumentMetadata`) as of
        `height`, optionally a given `version`. `404 did-not-found` carries the absence proof."""
        _check_did(did)
        key = statekeys.did_key(did) if version is None else statekeys.did_version_key(did, version)
        at = _height(reader, height)
        return await ctx.cpu.run(lambda: identity_answer(reader, key, at, "did", "did-not-found"))

    @router.get("/issuers/{did}", response_model=IssuerResponse, summary="An issuer's accreditation record",
                responses=problem_responses(400, 404))
    async def issuer(did: str = Path(description="The issuer's did:imi"),
                     height: int | None = _HEIGHT_QUERY) -> Any:
        """Status (`accredited`, `suspended`, `removed`), name and the credential types (`vcts`)
        it may issue, with the state proof. `404 issuer-not-found` carries the absence proof."""
        _check_did(did)
        at = _height(reader, height)
        return await ctx.cpu.run(lambda: identity_answer(reader, statekeys.issuer_key(did), at, "issuer",
                                                         "issuer-not-found"))

    @router.get("/services/{did}", response_model=ServiceResponse, summary="A registered service (relying party)",
                responses=problem_responses(400, 404))
    async def service(did: str = Path(description="The service's did:imi"),
                      height: int | None = _HEIGHT_QUERY) -> Any:
        """Status (`registered`, `suspended`, `removed`), name and purpose in en and zh-CN, and
        the credential types and claims it may ask for, with the state proof. `404
        service-not-found` carries the absence proof. A wallet refuses a request beyond this."""
        _check_did(did)
        at = _height(reader, height)
        return await ctx.cpu.run(lambda: identity_answer(reader, statekeys.service_key(did), at, "service",
                                                         "service-not-found"))

    @router.get("/credential-types/{vct:path}", response_model=CredentialTypeResponse,
                summary="A published credential type", responses=problem_responses(400, 404))
    async def credential_type(vct: str = Path(description="The vct (a URI or name), URL-encoded."),
                              height: int | None = _HEIGHT_QUERY) -> Any:
        _check_name(vct, "vct", VCT_CHARS_MAX)
        at = _height(reader, height)
        return await ctx.cpu.run(lambda: identity_answer(reader, statekeys.vct_key(vct), at, "vct",
                                                         "vct-not-found"))

    @router.get("/status-lists/{list_id}", response_model=StatusListResponse,
                summary="A Token Status List (draft-ietf-oauth-status-list)", responses=problem_responses(400, 404))
    async def status_list(list_id: str = Path(description="The list id (status_list.uri is urn:imi:status:<id>)."),
                          height: int | None = _HEIGHT_QUERY) -> Any:
        """`status_list` is `{"bits": 1|2, "lst": base64url(zlib(bytes))}`; the proven value
        holds the uncompressed bytes. Fetching a whole list hides which entry a verifier checks."""
        _check_name(list_id, "list id", STATUS_LIST_ID_CHARS_MAX)
        at = _height(reader, height)
        return await ctx.cpu.run(lambda: identity_answer(reader, statekeys.status_list_key(list_id), at,
                                                         "status", "list-not-found"))

    return router


def verify_router(ctx: ApiContext, *, clock_ms: Callable[[], int] = _wall_ms,
                  freshness_ms: int = FRESHNESS_MS_DEFAULT) -> APIRouter:
    """``POST /v1/verify``; ``clock_ms`` is the verifier's clock (tests pass a fixed one)."""
    router = APIRouter(prefix="/v1", tags=["identity"])
    reader = ctx.reader
    # Keys prepared once for the router's life; every request still reads the ledger
    # (accreditation, DID documents) at its own height.
    prepared = jose.PreparedKeys(PREPARED_KEYS_MAX)
    # The validator sets followed so far, kept for the router's life: a request follows
    # only the changes since the last one (never again from the genesis).
    history = ValidatorSetHistory(ctx.node.genesis.validators)

    @router.post("/verify", response_model=VerifyResponse, summary="Verify a presentation against this node's state",
                 description=VERIFY_DESCRIPTION, responses=problem_responses(400, 404, 413, 415, 422, 503),
                 openapi_extra={"requestBody": {"required": True, "content": {
                     "application/json": {"schema": VerifyRequest.model_json_schema()}}}})
    async def verify(request: Request) -> Any:
        body = await read_json_body(request, VerifyRequest)
        question = _question(body.request)
        height = _head(reader)
        anchor = reader.anchor(height)
        now_ms = clock_ms()
        age_ms = now_ms - int(anchor["header"]["time_ms"])
        if age_ms > freshness_ms:
            raise ApiProblem("stale-state", f"this node's head is {age_ms} ms old (limit {freshness_ms})",
                             status=503)
        client = LightClient(ctx.node.genesis, PinnedFetcher(reader, height), freshness_ms=freshness_ms,
                             history=history)

        def check() -> VerificationResult:
            _follow_head(client, now_ms)
            return verify_presentation(
                body.presentation, question,
                issuer_keys=LedgerIssuerKeys(client, clock_ms=lambda: now_ms, keys=prepared),
                holder_keys=LedgerHolderKeys(client, clock_ms=lambda: now_ms, keys=prepared),
                status=LedgerStatusLists(client), now=now_ms // 1000)

        # Following validator-set changes and the verification proper (signatures,
        # disclosures, state proofs at the pinned height) run on the API's CPU pool, off the
        # consensus event loop; the history they share is thread-safe.
        result = await ctx.cpu.run(check)
        return {
            "valid": result.valid,
            "reason": None if result.valid else result.reason,
            "detail": result.detail,
            "disclosed": dict(result.claims or {}),
            "checked_at": now_ms // 1000,
            "checked_at_height": height,
            "block_hash": anchor["header"]["hash"],
            **anchor,
        }

    return router


def _follow_head(client: LightClient, now_ms: int) -> None:
    """Follow validator-set changes up to the pinned head (bounded per call): ``503
    valset-catching-up`` while more remain. Any other failure is left to the verdict, whose
    reads meet it again and answer ``valid: false`` with its reason."""
    try:
        client.latest_header(now_ms)
    except LightClientError as exc:
        if exc.reason == "valset-catching-up":
            raise ApiProblem("valset-catching-up", f"{exc}; retry", status=503) from exc


def _question(data: Mapping[str, Any]) -> PresentationRequest:
    unknown = set(data) - _REQUEST_MEMBERS
    if unknown:
        raise ApiProblem("unknown-field", f"request.{min(unknown)[:64]} is not a request member")
    try:
        return PresentationRequest.from_json(data)
    except ValueError as exc:
        raise ApiProblem("bad-field", f"request: {exc}") from exc


ROUTERS: tuple[RouterFactory, ...] = (identity_router, verify_router)

__all__ = ["ROUTERS", "VERIFY_DESCRIPTION", "PinnedFetcher", "identity_answer", "identity_router",
           "verify_router"]
