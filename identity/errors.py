"""Typed errors of the identity package (credentials, presentations, wallet).

    IdentityError
    ├── IssuanceError             local: the issuer asked for something we cannot issue
    ├── PresentationError         local: the holder cannot build the presentation asked for
    ├── WalletError               local: wallet file, password or content problem
    ├── DcqlError                 remote: a DCQL query that is malformed or unsupported
    ├── Oid4vpError               remote: an OpenID4VP request or response we refuse
    └── VerificationError         remote: a presentation that must be rejected
        ├── FormatError           compact serialization, JWS, JSON or size limits
        ├── IssuerError           unknown issuer, not accredited, bad issuer signature
        ├── DisclosureError       a disclosure or digest that breaks RFC 9901 §7.1
        ├── ValidityError         exp / nbf / iat outside the allowed window
        ├── KeyBindingError       KB-JWT missing or failing RFC 9901 §7.3
        ├── StatusError           revoked, suspended, or status unknown/stale
        └── RequestError          valid credential that does not answer the request

Local errors mean our caller misused the library; a :class:`VerificationError`
means the peer sent something invalid. Every error carries a stable kebab-case
``reason`` (the table is in :mod:`identity.verifier`); the message is for humans.
"""

from __future__ import annotations


class IdentityError(Exception):
    """Base of every identity error."""

    reason: str = "identity-error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class IssuanceError(IdentityError):
    reason = "cannot-issue"


class PresentationError(IdentityError):
    reason = "cannot-present"


class WalletError(IdentityError):
    reason = "wallet-error"


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


class DcqlError(IdentityError):
    """A DCQL query (OpenID4VP 1.0 §6) that is malformed or unsupported."""

    reason = "invalid-dcql"


class Oid4vpError(IdentityError):
    """An OpenID4VP request or response that cannot be processed (``reason``: the
    OpenID4VP / OAuth error code where one applies, e.g. ``invalid_request_object``)."""

    reason = "invalid_request"


class RequestError(VerificationError):
    reason = "request-not-satisfied"


__all__ = [
    "DcqlError",
    "DisclosureError",
    "FormatError",
    "IdentityError",
    "IssuanceError",
    "IssuerError",
    "KeyBindingError",
    "Oid4vpError",
    "PresentationError",
    "RequestError",
    "StatusError",
    "ValidityError",
    "VerificationError",
    "WalletError",
]
