"""Limits and fixed parameters of the identity rules on the ledger, in one place.

These govern what the ledger accepts in identity transactions (DIDs, governance,
credential types, anchors, status lists) and how the light client judges an
answer. Credential-format limits live in :mod:`identity.constants`. Names put the
qualifier last; relations are checked at import (:func:`check_limits`). Times are milliseconds.
"""

from __future__ import annotations

from typing import Final

from ledger.constants import DID_CHARS_MAX, STATE_VALUE_BYTES_MAX, TX_SIGNATURES_MAX, require_limits

# --- did:imi ---------------------------------------------------------------------
DID_METHOD: Final = "imi"
DID_PREFIX: Final = "did:imi:"
DID_SUFFIX_CHARS_MAX: Final = 50  # base58btc of 32 bytes is at most 44 characters
DID_KEYS_MAX: Final = 8  # controller key plus extra keys in one document
DID_SERVICES_MAX: Final = 8
SERVICE_ID_CHARS_MAX: Final = 64
SERVICE_TYPE_CHARS_MAX: Final = 64
SERVICE_ENDPOINT_CHARS_MAX: Final = 512
DID_VERSIONS_MAX: Final = 100_000  # rotations/updates of one DID over its life
GOV_SENDER: Final = "gov"  # the sender of every governance transaction

# --- governance ------------------------------------------------------------------
TRUSTEES_MAX: Final = TX_SIGNATURES_MAX
ISSUER_NAME_CHARS_MAX: Final = 128
ISSUER_VCTS_MAX: Final = 64
VCT_CHARS_MAX: Final = 128
RECOVERY_VCT_DEFAULT: Final = "imi:recovery"

# --- services (relying parties) --------------------------------------------------
SERVICE_NAME_CHARS_MAX: Final = 128  # each language
SERVICE_PURPOSE_CHARS_MAX: Final = 512  # each language
SERVICE_VCTS_MAX: Final = 16  # credential types one service may ask for
SERVICE_CLAIMS_PER_VCT_MAX: Final = 64  # claims paths registered per type

# --- credential types ------------------------------------------------------------
VCT_CLAIMS_MAX: Final = 128
CLAIM_NAME_CHARS_MAX: Final = 64
PREDICATE_THRESHOLDS_MAX: Final = 16
PREDICATE_THRESHOLD_MAX: Final = 200  # e.g. an age in years

# --- anchors -----------------------------------------------------------------------
ANCHORS_PER_TX_MAX: Final = 64
ANCHOR_SALT_BYTES: Final = 16

# --- status lists ------------------------------------------------------------------
STATUS_LIST_BITS: Final = (1, 2)  # draft-ietf-oauth-status-list also allows 4, 8
STATUS_LIST_SIZE_MAX: Final = 1 << 17  # entries; 32 KiB at 2 bits
STATUS_LIST_SIZE_MIN: Final = 8
STATUS_LIST_ID_CHARS_MAX: Final = 96
STATUS_UPDATES_PER_TX_MAX: Final = 256
STATUS_LIST_ENCODED_CHARS_MAX: Final = 4 * STATUS_LIST_SIZE_MAX  # base64url of zlib, generous
ZLIB_LEVEL: Final = 9  # the draft's examples are zlib level 9
STATUS_ALLOCATE_DRAWS_MAX: Final = 64  # expected random draws for a free index before a scan instead

# --- light client ----------------------------------------------------------------
FRESHNESS_MS_DEFAULT: Final = 60_000
CLOCK_SKEW_MS: Final = 5_000  # a header may be this far ahead of the client's clock
# Following is incremental: one call follows at most this many changes and keeps them;
# the next call resumes (``valset-catching-up`` in between), so this bounds a call's
# work, never how many changes a long-lived client can follow.
VALSET_CHANGES_FOLLOW_MAX: Final = 64
LIGHT_CLIENT_FETCHES_MAX: Final = 4096  # fetches spent following changes in one call
READ_REUSE_KEYS_MAX: Final = 4096  # state keys whose last read a client with reuse_ms keeps
VALSET_HISTORY_MAX: Final = 4096  # validator sets a light client keeps (the oldest go first)
# A one-shot client (a command) catches up in rounds of VALSET_CHANGES_FOLLOW_MAX changes,
# each kept; this many rounds is 65,536 changes before it gives up (refresh the genesis).
CATCH_UP_ROUNDS_MAX: Final = 1024

# --- relations -----------------------------------------------------------------------
def check_limits() -> None:
    """Raise :class:`~ledger.errors.LimitError` naming every relation between these limits
    that does not hold. Called at import: unlike an ``assert`` it also runs under ``python -O``."""
    require_limits(__name__, (
        ("len(DID_PREFIX) + DID_SUFFIX_CHARS_MAX <= DID_CHARS_MAX",
         len(DID_PREFIX) + DID_SUFFIX_CHARS_MAX <= DID_CHARS_MAX),
        ("STATUS_LIST_SIZE_MAX * max(STATUS_LIST_BITS) // 8 + 1024 <= STATE_VALUE_BYTES_MAX",
         STATUS_LIST_SIZE_MAX * max(STATUS_LIST_BITS) // 8 + 1024 <= STATE_VALUE_BYTES_MAX),
        ("STATUS_LIST_SIZE_MIN % 8 == 0", STATUS_LIST_SIZE_MIN % 8 == 0),
        ("ANCHOR_SALT_BYTES >= 16", ANCHOR_SALT_BYTES >= 16),
        ("TRUSTEES_MAX <= TX_SIGNATURES_MAX", TRUSTEES_MAX <= TX_SIGNATURES_MAX),
        ("VALSET_HISTORY_MAX > VALSET_CHANGES_FOLLOW_MAX", VALSET_HISTORY_MAX > VALSET_CHANGES_FOLLOW_MAX),
    ))


check_limits()
