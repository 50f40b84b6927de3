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
    ))


check_limits()
