"""Every limit and default of the REST API, in one place.

Names put the qualifier last (``body_bytes_max``). Relations are checked at
import (:func:`check_limits`), so an inconsistent edit fails at once.
"""

from __future__ import annotations

from typing import Final

from ledger.constants import STATE_KEY_BYTES_MAX, TX_BYTES_MAX, require_limits

API_VERSION: Final = "v1"

# --- request bodies --------------------------------------------------------------
# base64url of the largest transaction, plus room for the JSON envelope.
API_BODY_BYTES_MAX: Final = (TX_BYTES_MAX * 4) // 3 + 1024
API_JSON_DEPTH_MAX: Final = 8  # nesting of request JSON (the envelope is flat)
# transactions in one POST /v1/transactions/batch (its body is bounded by the same byte limit)
API_BATCH_TXS_MAX: Final = 256

# --- waiting for a commit ----------------------------------------------------------
API_COMMIT_WAIT_MS_DEFAULT: Final = 10_000
API_COMMIT_WAIT_MS_MAX: Final = 60_000

# --- path and query parameters -----------------------------------------------------
API_TX_ID_HEX_CHARS: Final = 64
API_STATE_KEY_BYTES_MAX: Final = STATE_KEY_BYTES_MAX
API_HEIGHT_MAX: Final = 2**63 - 1
API_ANCHORS_CACHED_MAX: Final = 64  # header + certificate JSON of recent heights (immutable once committed)

# --- connections (node.api.server; each configurable, see node.api.limits) --------------
# A request's head (request line and headers) must arrive within this, counted from the
# connection's start or the request's first byte: a slowloris client sending a byte a
# second is cut off here. uvicorn alone bounds only the idle wait between requests.
API_HEADER_TIMEOUT_S_DEFAULT: Final = 10.0
# Once the head is in, the whole body must arrive within this (the largest body at a
# slow but honest 40 KiB/s).
API_BODY_TIMEOUT_S_DEFAULT: Final = 30.0
# Idle keep-alive connections are closed after this; longer than clients keep idle
# connections (httpx: 5 s), so they never reuse one the server just closed.
API_KEEP_ALIVE_S_DEFAULT: Final = 75.0
API_CONNECTIONS_MAX_DEFAULT: Final = 1_024  # open connections; more are answered 503 and closed
API_CLIENT_CONNECTIONS_MAX_DEFAULT: Final = 256  # open connections from one client address
API_TIMEOUT_S_MAX: Final = 3_600.0  # bound on any configured timeout

# --- per-client request rate (node.api.ratelimit) -------------------------------------
# A token bucket per client address: this many requests a second on average, bursts up
# to API_CLIENT_BURST_DEFAULT. 0 switches the limit off. /health, /ready and /metrics
# are not counted (monitoring must always get through).
API_CLIENT_RATE_PER_S_DEFAULT: Final = 1_000.0
API_CLIENT_BURST_DEFAULT: Final = 2_000
API_CLIENTS_TRACKED_MAX: Final = 10_000  # buckets kept; the least recently seen go first

# --- CPU-heavy work off the event loop (node.api.offload) ----------------------------
# POST /v1/verify and proof building run on this many worker threads, with at most
# API_CPU_QUEUE_MAX_DEFAULT more waiting; beyond that, 503 ``overloaded`` at once.
API_CPU_WORKERS_DEFAULT: Final = 2
API_CPU_QUEUE_MAX_DEFAULT: Final = 64
API_CPU_WORKERS_MAX: Final = 64

# --- readiness (GET /ready) -----------------------------------------------------------
# Ready: not catching up, connected to enough peers for a quorum, and the head no older
# than this many heartbeat intervals (the chain commits at least one block per heartbeat).
API_READY_HEAD_AGE_HEARTBEATS_MAX: Final = 3

# --- problem documents (RFC 9457) ----------------------------------------------------
# ``type`` of every problem is this base followed by the reason; the URI identifies the
# problem kind and is documented in docs/api.md (it need not be dereferenceable).
API_PROBLEM_TYPE_BASE: Final = "https://imi.example/problems/"
API_PROBLEM_DETAIL_CHARS_MAX: Final = 500
PROBLEM_CONTENT_TYPE: Final = "application/problem+json"


def check_limits() -> None:
    """Raise :class:`~ledger.errors.LimitError` naming every relation between these limits
    that does not hold. Called at import: unlike an ``assert`` it also runs under ``python -O``."""
    require_limits(__name__, (
        ("API_BODY_BYTES_MAX > (TX_BYTES_MAX * 4) // 3", API_BODY_BYTES_MAX > (TX_BYTES_MAX * 4) // 3),
        ("0 < API_BATCH_TXS_MAX", 0 < API_BATCH_TXS_MAX),
        ("0 < API_COMMIT_WAIT_MS_DEFAULT <= API_COMMIT_WAIT_MS_MAX",
         0 < API_COMMIT_WAIT_MS_DEFAULT <= API_COMMIT_WAIT_MS_MAX),
        ("API_STATE_KEY_BYTES_MAX <= 1024", API_STATE_KEY_BYTES_MAX <= 1024),
        ("0 < API_HEADER_TIMEOUT_S_DEFAULT <= API_BODY_TIMEOUT_S_DEFAULT <= API_TIMEOUT_S_MAX",
         0 < API_HEADER_TIMEOUT_S_DEFAULT <= API_BODY_TIMEOUT_S_DEFAULT <= API_TIMEOUT_S_MAX),
        ("0 < API_KEEP_ALIVE_S_DEFAULT <= API_TIMEOUT_S_MAX", 0 < API_KEEP_ALIVE_S_DEFAULT <= API_TIMEOUT_S_MAX),
        ("0 < API_CLIENT_CONNECTIONS_MAX_DEFAULT <= API_CONNECTIONS_MAX_DEFAULT",
         0 < API_CLIENT_CONNECTIONS_MAX_DEFAULT <= API_CONNECTIONS_MAX_DEFAULT),
        ("API_CLIENT_BURST_DEFAULT >= API_CLIENT_RATE_PER_S_DEFAULT > 0",
         API_CLIENT_BURST_DEFAULT >= API_CLIENT_RATE_PER_S_DEFAULT > 0),
        ("0 < API_CPU_WORKERS_DEFAULT <= API_CPU_WORKERS_MAX", 0 < API_CPU_WORKERS_DEFAULT <= API_CPU_WORKERS_MAX),
    ))


check_limits()
