"""The root of every error of ours, and the typed errors of the ledger package.

    ImiError                         root: a stable ``reason`` and the ``context`` it came from
    ├── LimitError                   a relation between named limits does not hold (a bad edit)
    ├── node.errors.NodeError        (its tree in node/errors.py; consensus errors are ledger errors)
    ├── identity.errors.IdentityError  (its tree in identity/errors.py)
    ├── node.api.problems.ApiProblem an answer a route chose, with its HTTP status
    ├── cli.audit.AuditError, cli.demo.errors.ScenarioError  (the CLI's own)
    └── LedgerError
        ├── EncodingError            bytes or values that are not canonical
        ├── KeyError_                malformed key material or JWK
        ├── SignatureError           a signature does not verify / threshold not met
        ├── TransactionError         an envelope that is malformed or not admissible
        │   ├── UnknownFieldError    a field the schema does not define
        │   ├── ReplayError          a transaction id seen before or expired
        │   └── identity.errors.IdentityTxError  an identity transaction the rules reject
        ├── BlockError               header, link or certificate that does not check
        │   └── CertificateError     commit certificate with too little valid power
        ├── ProofError               Merkle inclusion/consistency or state proof fails
        ├── StorageError             the store is corrupt or was left inconsistent
        └── node.consensus.errors.ConsensusError  a consensus message or record that does not parse

Every error carries a stable machine-readable ``reason`` (kebab-case) that the
API and CLI expose, and a read-only ``context`` (what it was about: a height, a
key, a module); the message is for humans. Every package's base derives from
:class:`ImiError` (``ledger`` imports nothing of ours, so the root lives here), so
a caller that handles "any error of ours" catches one class, and the REST API maps
any of them to a problem document in one place (:func:`node.api.problems.problem_for`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

_NO_CONTEXT: Mapping[str, object] = MappingProxyType({})


class ImiError(Exception):
    """Root of every error of ours: a message, a stable ``reason``, a ``context``."""

    reason: str = "error"
    context: Mapping[str, object]

    def __init__(self, message: str, *, reason: str | None = None,
                 context: Mapping[str, object] | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        self.context = MappingProxyType(dict(context)) if context else _NO_CONTEXT


class LimitError(ImiError):
    """Named limits that contradict each other (``context``: the module, the broken relations).

    Raised at import by each constants module's ``check_limits``: a limit edited
    without the others must stop the program at once, also under ``python -O``."""

    reason = "limits-inconsistent"


class LedgerError(ImiError):
    """Base of every ledger error."""

    reason = "ledger-error"


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
    "ImiError",
    "KeyError_",
    "LedgerError",
    "LimitError",
    "ProofError",
    "ReplayError",
    "SignatureError",
    "StorageError",
    "TransactionError",
    "UnknownFieldError",
]
