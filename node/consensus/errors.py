"""Typed errors of the consensus package.

    ledger.errors.LedgerError
    └── ConsensusError
        ├── RemoteError          a peer broke the protocol (we drop its message, count it)
        │   └── MessageError     bytes or values that are not a well-formed consensus message
        └── LocalError           we misused the core or our own state is inconsistent (a bug)
            └── RestoreError     persisted records that cannot rebuild a core

Under LedgerError (not NodeError): messages and records are made of ledger values
(blocks, votes, certificates), and whoever decodes one handles a bad block inside
it and a malformed message around it alike.

The core never raises a :class:`RemoteError` out of ``step``: a bad message is
counted (``Core.dropped``) and ignored. A :class:`LocalError` is raised: it means
the driver or the application broke the contract and must not be ignored.
Every error carries a stable kebab-case ``reason``.
"""

from __future__ import annotations

from ledger.errors import LedgerError


class ConsensusError(LedgerError):
    reason = "consensus-error"


class RemoteError(ConsensusError):
    reason = "remote-error"


class MessageError(RemoteError):
    reason = "bad-message"


class LocalError(ConsensusError):
    reason = "local-error"


class RestoreError(LocalError):
    reason = "bad-restore-records"


__all__ = ["ConsensusError", "LocalError", "MessageError", "RemoteError", "RestoreError"]
