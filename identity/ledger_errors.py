"""Typed errors of identity on the ledger: rejected transactions and light-client answers.

    ledger.errors.TransactionError
    └── IdentityTxError            an identity transaction the rules reject
        ├── UnauthorizedError      the signatures do not satisfy the authorization table
        ├── TransitionError        a lifecycle move the transition table forbids
        ├── NotFoundTxError        the DID, issuer, vct or list it refers to is absent
        └── PayloadError           a payload that is malformed or over a limit

    identity.errors.IdentityError
    ├── StatusListError            a status list that cannot be encoded or decoded
    ├── LightClientError           remote: an answer from a node that does not verify
    │   └── NotFoundError          a verified absence (the key is provably not in state)
    └── SubmitError                the node refused or did not commit a transaction

Handlers raise only :class:`IdentityTxError` subclasses, so the executor turns them
into a rejected transaction with a stable ``reason``. A :class:`LightClientError`
is never a result: the caller gets a verified answer or this error.
"""

from __future__ import annotations

from identity.errors import IdentityError
from ledger.errors import TransactionError


class IdentityTxError(TransactionError):
    reason = "identity-rejected"


class UnauthorizedError(IdentityTxError):
    reason = "unauthorized"


class TransitionError(IdentityTxError):
    reason = "invalid-transition"


class NotFoundTxError(IdentityTxError):
    reason = "not-found"


class PayloadError(IdentityTxError):
    reason = "bad-payload"


class StatusListError(IdentityError):
    reason = "bad-status-list"


class LightClientError(IdentityError):
    reason = "unverified-answer"


class NotFoundError(LightClientError):
    reason = "not-found"


class SubmitError(IdentityError):
    reason = "not-committed"


__all__ = [
    "IdentityTxError",
    "LightClientError",
    "NotFoundError",
    "NotFoundTxError",
    "PayloadError",
    "StatusListError",
    "SubmitError",
    "TransitionError",
    "UnauthorizedError",
]
