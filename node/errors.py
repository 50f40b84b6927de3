"""Typed errors of the node package.

    ledger.errors.ImiError
    └── NodeError
        ├── ConfigError              node directory, keys or config file unusable (local)
        ├── TransportError           a connection-level failure
        │   ├── PeerRefused          the peer's TLS key is not pinned by the validator set (remote)
        │   └── FrameError           a frame too large, truncated or not canonical CBOR (remote)
        ├── WalError                 the write-ahead log is unreadable or was tampered with (local)
        ├── MempoolError             a transaction the mempool will not take
        │   ├── MempoolFull          the pool is at MEMPOOL_TXS_MAX
        │   └── SenderQuotaFull      the sender holds MEMPOOL_SENDER_TXS_MAX pending already
        ├── Overloaded               the API's pool for CPU-heavy requests is full (retry later)
        └── SyncError                a peer sent blocks that do not verify (remote)

Remote errors describe peer misbehaviour (drop the connection, log); local ones
are our own state (stop the node). Every error carries a stable ``reason``.
Transaction admission failures are raised as the ledger's own
TransactionError/ReplayError/SignatureError so the API can expose their reason.
The consensus package's errors (:mod:`node.consensus.errors`) sit under the ledger's
LedgerError: a consensus message or record is made of ledger values, and whoever
decodes one handles a bad block inside it and a bad message around it alike.
"""

from __future__ import annotations

from ledger.errors import ImiError


class NodeError(ImiError):
    """Base of every node error."""

    reason = "node-error"


class ConfigError(NodeError):
    reason = "bad-config"


class TransportError(NodeError):
    reason = "transport-error"


class PeerRefused(TransportError):
    reason = "peer-not-in-validator-set"


class FrameError(TransportError):
    reason = "bad-frame"


class WalError(NodeError):
    reason = "wal-corrupt"


class MempoolError(NodeError):
    reason = "mempool-rejected"


class MempoolFull(MempoolError):
    reason = "mempool-full"


class SenderQuotaFull(MempoolError):
    reason = "sender-quota"


class Overloaded(NodeError):
    reason = "overloaded"


class SyncError(NodeError):
    reason = "sync-failed"


__all__ = [
    "ConfigError",
    "FrameError",
    "MempoolError",
    "MempoolFull",
    "NodeError",
    "Overloaded",
    "PeerRefused",
    "SenderQuotaFull",
    "SyncError",
    "TransportError",
    "WalError",
]
