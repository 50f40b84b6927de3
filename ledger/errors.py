"""Typed errors of the ledger package.

    LedgerError
    ├── EncodingError            bytes or values that are not canonical
    ├── KeyError_                malformed key material or JWK
    ├── SignatureError           a signature does not verify / threshold not met
    ├── TransactionError         an envelope that is malformed or not admissible
    │   ├── UnknownFieldError    a field the schema does not define
    │   └── ReplayError          a transaction id seen before or expired
    ├── BlockError               header, link or certificate that does not check
    │   └── CertificateError     commit certificate with too little valid power
    ├── ProofError               Merkle inclusion/consistency or state proof fails
    └── StorageError             the store is corrupt or was left inconsistent

Every error carries a stable machine-readable ``reason`` (kebab-case) that the
API and CLI expose; the message is for humans.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every ledger error."""

    reason: str = "ledger-error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class EncodingError(LedgerError):
    reason = "non-canonical-encoding"


class KeyError_(LedgerError):  # named so as not to shadow the builtin KeyError
    reason = "bad-key"


class SignatureError(LedgerError):
    reason = "bad-signature"


class TransactionError(LedgerError):
    reason = "bad-transaction"


class UnknownFieldError(TransactionError):
    reason = "unknown-field"


class ReplayError(TransactionError):
    reason = "replayed-transaction"


class BlockError(LedgerError):
    reason = "bad-block"


class CertificateError(BlockError):
    reason = "bad-certificate"


class ProofError(LedgerError):
    reason = "bad-proof"


class StorageError(LedgerError):
    reason = "storage-corrupt"


__all__ = [
    "BlockError",
    "CertificateError",
    "EncodingError",
    "KeyError_",
    "LedgerError",
    "ProofError",
    "ReplayError",
    "SignatureError",
    "StorageError",
    "TransactionError",
    "UnknownFieldError",
]
