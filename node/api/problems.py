"""RFC 9457 problem details: the one error format of the REST API.

Every error response is ``application/problem+json``::

    {"type": "https://imi.example/problems/<reason>", "title": "...",
     "status": 4xx/5xx, "detail": "...", "reason": "<reason>"}

``reason`` is a stable kebab-case code (the extension member clients should
switch on); ``type`` is the same code under :data:`API_PROBLEM_TYPE_BASE`;
``title`` is fixed per reason; ``detail`` is for humans and may change.

:func:`problem_for` is the one mapping from our errors (:class:`ledger.errors.ImiError`)
to problem documents, used by the exception handlers, the batch endpoint, the
fast path and the identity services. Errors keep their own ``reason``; the HTTP
status is the one an :class:`ApiProblem` or the caller names, else the one of
:data:`REASONS`, falling back on the error's class. Reasons unknown to the table
(a new rule of an identity handler, say) still get a sensible status; an error
outside the ledger and node trees reaching a route is our bug: ``500 internal-error``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from starlette.responses import Response

from ledger.errors import (
    BlockError,
    EncodingError,
    ImiError,
    KeyError_,
    LedgerError,
    ProofError,
    ReplayError,
    SignatureError,
    StorageError,
    TransactionError,
)
from node.api.constants import (
    API_PROBLEM_DETAIL_CHARS_MAX,
    API_PROBLEM_TYPE_BASE,
    PROBLEM_CONTENT_TYPE,
)
from node.errors import MempoolError, MempoolFull, NodeError


@dataclass(frozen=True, slots=True)
class ReasonInfo:
    status: int
    title: str


# reason -> (HTTP status, fixed title). Kept as data so docs/api.md is generated from it.
REASONS: Mapping[str, ReasonInfo] = MappingProxyType({
    # --- the HTTP request itself ---------------------------------------------------
    "malformed-json": ReasonInfo(400, "Request body is not valid JSON"),
    "bad-request": ReasonInfo(400, "Bad request parameter"),
    "bad-field": ReasonInfo(422, "A field has the wrong type or value"),
    "missing-field": ReasonInfo(422, "A required field is missing"),
    "unknown-field": ReasonInfo(422, "A field the schema does not define"),
    "not-found": ReasonInfo(404, "No such resource"),
    "method-not-allowed": ReasonInfo(405, "Method not allowed on this resource"),
    "not-acceptable": ReasonInfo(406, "Not acceptable"),
    "body-too-large": ReasonInfo(413, "Request body too large"),
    "unsupported-media-type": ReasonInfo(415, "Request body must be application/json"),
    # --- lookups ------------------------------------------------------------------
    "unknown-transaction": ReasonInfo(404, "Transaction not known to this node"),
    "unknown-block": ReasonInfo(404, "Block not committed (yet)"),
    "no-blocks": ReasonInfo(404, "No block committed yet"),
    # --- transaction envelope (ledger.tx) -------------------------------------------
    "bad-encoding": ReasonInfo(400, "Transaction is not base64url"),
    "non-canonical-encoding": ReasonInfo(400, "Transaction is not canonical CBOR"),
    "too-large": ReasonInfo(413, "Transaction too large"),
    "bad-transaction": ReasonInfo(422, "Malformed transaction"),
    "unsupported-version": ReasonInfo(422, "Unsupported protocol version"),
    "too-many-signatures": ReasonInfo(422, "Too many signatures"),
    "bad-key": ReasonInfo(422, "Malformed signer key"),
    "bad-type": ReasonInfo(422, "Malformed transaction type"),
    "bad-sender": ReasonInfo(422, "Malformed sender"),
    "bad-nonce": ReasonInfo(422, "Malformed nonce"),
    "wrong-chain": ReasonInfo(422, "Transaction is for another chain"),
    "missing-signature": ReasonInfo(422, "Transaction is not signed"),
    "duplicate-signature": ReasonInfo(422, "The same key signed twice"),
    "bad-signature": ReasonInfo(422, "Invalid signature"),
    "threshold-not-met": ReasonInfo(422, "Not enough valid signatures"),
    # --- admission against state (ledger.execution) -------------------------------------
    "expired-transaction": ReasonInfo(422, "Transaction expired"),
    "expiry-too-far": ReasonInfo(422, "Transaction expiry too far in the future"),
    "replayed-transaction": ReasonInfo(409, "Transaction already committed"),
    "unknown-type": ReasonInfo(422, "Unknown transaction type"),
    "bad-payload": ReasonInfo(422, "Transaction payload rejected"),
    "unauthorized": ReasonInfo(403, "Signer not authorised for this sender"),
    "key-too-long": ReasonInfo(422, "State key too long"),
    "mempool-full": ReasonInfo(503, "Node is overloaded, retry later"),
    "mempool-rejected": ReasonInfo(422, "The mempool refused the transaction"),
    "sender-quota": ReasonInfo(429, "This sender holds its share of the mempool, retry later"),
    "too-many-waiters": ReasonInfo(503, "Too many clients waiting for commits, retry later"),
    # --- waiting and the node ---------------------------------------------------------
    "commit-timeout": ReasonInfo(504, "Not committed within the timeout"),
    "unavailable": ReasonInfo(503, "Node not ready"),
    "not-ready": ReasonInfo(503, "Node not ready to serve (syncing, few peers, or a stale head)"),
    "overloaded": ReasonInfo(503, "Too many CPU-heavy requests in progress, retry later"),
    "rate-limited": ReasonInfo(429, "Too many requests from this client, retry later"),
    "too-many-connections": ReasonInfo(503, "Too many open connections, retry later"),
    "request-timeout": ReasonInfo(408, "Request not received in time"),
    "storage-corrupt": ReasonInfo(500, "Node storage is inconsistent"),
    "internal-error": ReasonInfo(500, "Internal error"),
})


class ApiProblem(ImiError):
    """Raise anywhere in a request to answer with a problem document (``status``
    defaults to the reason's in :data:`REASONS`; ``extra`` adds members)."""

    def __init__(
        self,
        reason: str,
        detail: str = "",
        *,
        status: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or reason, reason=reason)
        self.detail = detail
        self.status = status if status is not None else status_for_reason(reason)
        self.extra = dict(extra or {})


def status_for_reason(reason: str, error: BaseException | None = None) -> int:
    """HTTP status of ``reason``; for reasons outside the table, judge by the error class."""
    info = REASONS.get(reason)
    if info is not None:
        return info.status
    if isinstance(error, StorageError):
        return 500
    if isinstance(error, ReplayError):
        return 409
    if isinstance(error, (TransactionError, SignatureError, KeyError_, BlockError)):
        return 422
    if isinstance(error, (EncodingError, ProofError)):
        return 400
    if isinstance(error, MempoolError) and not isinstance(error, MempoolFull):
        return 422  # the pool's own admission rule refused this transaction
    if isinstance(error, NodeError):
        return 503  # the node cannot take work now
    return 400 if error is not None else 500


def title_for_reason(reason: str, status: int) -> str:
    info = REASONS.get(reason)
    if info is not None:
        return info.title
    # An unlisted reason: a readable title from the code itself.
    return reason.replace("-", " ").capitalize() if status < 500 else "Internal error"


@dataclass(frozen=True, slots=True)
class Problem:
    """One RFC 9457 problem document."""

    status: int
    reason: str
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": API_PROBLEM_TYPE_BASE + self.reason,
            "title": title_for_reason(self.reason, self.status),
            "status": self.status,
            "detail": self.detail[:API_PROBLEM_DETAIL_CHARS_MAX],
            "reason": self.reason,
        }
        for key, value in self.extra.items():
            body.setdefault(key, value)
        return body

    def response(self, headers: Mapping[str, str] | None = None) -> Response:
        return Response(
            content=json.dumps(self.to_json(), separators=(",", ":")),
            status_code=self.status,
            media_type=PROBLEM_CONTENT_TYPE,
            headers=dict(headers or {}),
        )


INTERNAL_DETAIL: Final = "the node could not serve this request"  # the detail of every 500


def problem_for(error: ImiError, *, status: int | None = None) -> Problem:
    """The problem document of one of our errors, keeping its stable reason.

    ``status`` is the caller's choice (a service with its own table of reasons);
    without it an :class:`ApiProblem` answers with its own, ledger and node errors
    with :func:`status_for_reason`. A ledger error answered 5xx is the store
    failing: its message names internals, so the detail is a fixed sentence. Any
    other error reaching this point unmapped is our bug: ``500 internal-error``.
    """
    if isinstance(error, ApiProblem):
        return Problem(error.status if status is None else status, error.reason, error.detail, error.extra)
    if status is None and not isinstance(error, (LedgerError, NodeError)):
        return Problem(500, "internal-error", INTERNAL_DETAIL)
    if status is None:
        status = status_for_reason(error.reason, error)
    internal = status >= 500 and isinstance(error, LedgerError)
    return Problem(status, error.reason, INTERNAL_DETAIL if internal else str(error))


def problem_bytes(status: int, reason: str, detail: str) -> bytes:
    """Encoded problem body, for middleware that answers before the app runs."""
    return json.dumps(Problem(status, reason, detail).to_json(), separators=(",", ":")).encode()


__all__ = [
    "INTERNAL_DETAIL",
    "REASONS",
    "ApiProblem",
    "Problem",
    "ReasonInfo",
    "problem_bytes",
    "problem_for",
    "status_for_reason",
    "title_for_reason",
]
