"""Typed errors of the identity package (credentials, presentations, wallet, the ledger).

    ledger.errors.ImiError
    └── IdentityError
        ├── IssuanceError             local: the issuer asked for something we cannot issue
        ├── PresentationError         local: the holder cannot build the presentation asked for
        ├── WalletError               local: wallet file, password or content problem
        ├── DcqlError                 remote: a DCQL query that is malformed or unsupported
        ├── Oid4vpError               remote: an OpenID4VP request or response we refuse
        ├── StatusListError           a status list that cannot be encoded or decoded
        ├── SubmitError               the node refused or did not commit a transaction
        ├── LightClientError          remote: an answer from a node that does not verify
        │   └── NotFoundError         a verified absence (the key is provably not in state)
        └── VerificationError         remote: a presentation that must be rejected
            ├── FormatError           compact serialization, JWS, JSON or size limits
            ├── IssuerError           unknown issuer, not accredited, bad issuer signature
            ├── DisclosureError       a disclosure or digest that breaks RFC 9901 §7.1
            ├── ValidityError         exp / nbf / iat outside the allowed window
            ├── KeyBindingError       KB-JWT missing or failing RFC 9901 §7.3
            ├── StatusError           revoked, suspended, or status unknown/stale
            ├── CredentialTypeError   the credential does not match its published type
            └── RequestError          valid credential that does not answer the request

    ledger.errors.TransactionError
    └── IdentityTxError               an identity transaction the rules reject
        ├── UnauthorizedError         the signatures do not satisfy the authorization table
        ├── TransitionError           a lifecycle move the transition table forbids
        ├── NotFoundTxError           the DID, issuer, vct or list it refers to is absent
        └── PayloadError              a payload that is malformed or over a limit

Local errors mean our caller misused the library; a :class:`VerificationError`
means the peer sent something invalid. Every error carries a stable kebab-case
``reason`` (the table is in :mod:`identity.verifier`); the message is for humans.

Handlers of identity transactions raise only :class:`IdentityTxError` subclasses:
they are ledger transaction errors, so the executor turns them into a rejected
transaction with a stable ``reason`` like any other. A :class:`LightClientError`
is never a result: the caller gets a verified answer or this error.
"""

from __future__ import annotations

from ledger.errors import ImiError, TransactionError


class IdentityError(ImiError):
    """Base of every identity error."""

    reason = "identity-error"


class IssuanceError(IdentityError):
    reason = "cannot-issue"


class PresentationError(IdentityError):
    reason = "cannot-present"


class WalletError(IdentityError):
    reason = "wallet-error"


class StatusListError(IdentityError):
    reason = "bad-status-list"


class SubmitError(IdentityError):
    reason = "not-committed"


class LightClientError(IdentityError):
    reason = "unverified-answer"


class NotFoundError(LightClientError):
    reason = "not-found"


class VerificationError(IdentityError):
    reason = "invalid"


class FormatError(VerificationError):
    reason = "malformed"


class IssuerError(VerificationError):
    reason = "unknown-issuer"


class DisclosureError(VerificationError):
    reason = "bad-disclosure"


class ValidityError(VerificationError):
    reason = "bad-time-claim"


class KeyBindingError(VerificationError):
    reason = "kb-invalid"


class StatusError(VerificationError):
    reason = "status-unavailable"


class CredentialTypeError(VerificationError):
    """A credential whose ``vct`` is not published by its issuer, or whose claims, predicate
    members or disclosures are not what the published definition says (identity.credtypes)."""

    reason = "not-in-type-definition"


class DcqlError(IdentityError):
    """A DCQL query (OpenID4VP 1.0 §6) that is malformed or unsupported."""

    reason = "invalid-dcql"


class Oid4vpError(IdentityError):
    """An OpenID4VP request or response that cannot be processed (``reason``: the
    OpenID4VP / OAuth error code where one applies, e.g. ``invalid_request_object``)."""

    reason = "invalid_request"


class RequestError(VerificationError):
    reason = "request-not-satisfied"


# --- identity transactions on the ledger ---------------------------------------------
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


__all__ = [
    "CredentialTypeError",
    "DcqlError",
    "DisclosureError",
    "FormatError",
    "IdentityError",
    "IdentityTxError",
    "IssuanceError",
    "IssuerError",
    "KeyBindingError",
    "LightClientError",
    "NotFoundError",
    "NotFoundTxError",
    "Oid4vpError",
    "PayloadError",
    "PresentationError",
    "RequestError",
    "StatusError",
    "StatusListError",
    "SubmitError",
    "TransitionError",
    "UnauthorizedError",
    "ValidityError",
    "VerificationError",
    "WalletError",
]
