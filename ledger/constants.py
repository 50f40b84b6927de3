"""Every limit and fixed parameter of the ledger, in one place.

Names put the qualifier last (``tx_bytes_max``). Relations between limits are
checked at import (:func:`check_limits`, also under ``python -O``), so an
inconsistent edit fails at once rather than in production.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from ledger.errors import LimitError

# --- protocol ----------------------------------------------------------------
PROTOCOL_VERSION: Final = 1
HASH_BYTES: Final = 32  # SHA-256

# --- canonical encoding --------------------------------------------------------
ENCODING_BYTES_MAX: Final = 4 * 1024 * 1024  # any single encoded value
ENCODING_DEPTH_MAX: Final = 32  # nesting of lists/maps
ENCODING_ITEMS_MAX: Final = 100_000  # elements in one list or map
ENCODING_INT_MIN: Final = -(2**64)
ENCODING_INT_MAX: Final = 2**64 - 1
ENCODING_MAP_PLANS_MAX: Final = 4_096  # key sets whose canonical order the encoder remembers
ENCODING_MAP_PLAN_KEYS_MAX: Final = 32  # ... each of at most this many keys

# --- transactions --------------------------------------------------------------
TX_BYTES_MAX: Final = 64 * 1024  # encoded signed transaction
TX_TYPE_CHARS_MAX: Final = 64
TX_SIGNATURES_MAX: Final = 32  # multi-signature governance transactions
TX_KEY_CACHE_ENTRIES_MAX: Final = 4096  # parsed signer keys remembered (a pure function's cache)
# Parsed transactions remembered by their exact bytes, so a block whose transactions
# a validator already received by gossip is not parsed again (a pure function's cache).
TX_PARSE_MEMO_ENTRIES_MAX: Final = 4096
TX_PARSE_MEMO_BYTES_MAX: Final = 8 * 1024 * 1024  # encoded bytes held by those entries
TX_NONCE_BYTES: Final = 16
TX_TTL_MS_MAX: Final = 24 * 3600 * 1000  # expires_at_ms - block time
DID_CHARS_MAX: Final = 256
KEY_ID_CHARS_MAX: Final = 128
CHAIN_ID_CHARS_MAX: Final = 64

# --- blocks ----------------------------------------------------------------------
BLOCK_TXS_MAX: Final = 2_000
BLOCK_BYTES_MAX: Final = 8 * 1024 * 1024
VALIDATORS_MAX: Final = 100
# Proposer choice (ledger.validators): a member whose precommit is in none of the commit
# certificates carried by the last this-many headers is skipped as the round-0 proposer.
PROPOSER_WINDOW_HEIGHTS: Final = 4
VALIDATOR_NAME_CHARS_MAX: Final = 64
VALIDATOR_SET_CHANGE_DELAY_HEIGHTS: Final = 2  # a committed change takes effect at h + delay
VALIDATOR_SETS_PARSED_MAX: Final = 8  # parsed validator sets remembered by their stored bytes
CERTIFICATES_VERIFIED_MAX: Final = 256  # commit certificates remembered as verified (a pure function's cache)
BLOCK_TIME_DRIFT_MS_MAX: Final = 30_000  # proposer clock vs validator clock

# --- Merkle log & state ---------------------------------------------------------
MERKLE_PROOF_HASHES_MAX: Final = 128  # 2**64 leaves need at most 64 for inclusion, 2x for consistency
STATE_KEY_BYTES_MAX: Final = 256
STATE_VALUE_BYTES_MAX: Final = 256 * 1024
STATE_PROOF_NODES_MAX: Final = 256  # depth of the radix tree over 256-bit paths
STATE_CACHE_BYTES: Final = 32 * 1024 * 1024  # branch records kept per open tree (immutable, so never stale)
LEVELDB_CACHE_BYTES: Final = 32 * 1024 * 1024  # LevelDB block cache: fixed, whatever the ledger's size
LEVELDB_BLOOM_BITS: Final = 10  # bits per key of LevelDB's bloom filter (fewer disk reads on misses)
# No block compression: ledger records are mostly hashes, which do not compress, and an
# uncompressed table is read in place through LevelDB's memory map instead of being
# decompressed into the block cache on every miss (bench ledger: a state-node read at 1M
# entries costs ~24 instead of ~43 µs of CPU, and private memory halves; disk +20 %).
LEVELDB_COMPRESSION: Final = None

# --- signatures -------------------------------------------------------------------
ED25519_PUBLIC_KEY_BYTES: Final = 32
ED25519_SIGNATURE_BYTES: Final = 64
ES256_SIGNATURE_BYTES: Final = 64  # r || s, JWS style

# --- relations ---------------------------------------------------------------------
def require_limits(module: str, relations: Iterable[tuple[str, bool]]) -> None:
    """Raise :class:`LimitError` if any of ``relations`` (its text, whether it holds) is
    false; the error names them all, and its context holds ``module`` and their texts.
    Each constants module lists its relations in a ``check_limits`` called at import."""
    broken = [text for text, holds in relations if not holds]
    if broken:
        raise LimitError(f"{module}: limits contradict each other: {'; '.join(broken)}",
                         context={"module": module, "relations": tuple(broken)})


def check_limits() -> None:
    """Raise :class:`~ledger.errors.LimitError` naming every relation between these limits
    that does not hold. Called at import: unlike an ``assert`` it also runs under ``python -O``."""
    require_limits(__name__, (
        ("TX_BYTES_MAX * BLOCK_TXS_MAX // 16 <= BLOCK_BYTES_MAX",
         TX_BYTES_MAX * BLOCK_TXS_MAX // 16 <= BLOCK_BYTES_MAX),
        ("TX_BYTES_MAX <= ENCODING_BYTES_MAX", TX_BYTES_MAX <= ENCODING_BYTES_MAX),
        ("STATE_VALUE_BYTES_MAX <= ENCODING_BYTES_MAX", STATE_VALUE_BYTES_MAX <= ENCODING_BYTES_MAX),
        ("BLOCK_BYTES_MAX <= 2 * ENCODING_BYTES_MAX", BLOCK_BYTES_MAX <= 2 * ENCODING_BYTES_MAX),
        ("VALIDATORS_MAX >= 4", VALIDATORS_MAX >= 4),
        ("PROPOSER_WINDOW_HEIGHTS >= 1", PROPOSER_WINDOW_HEIGHTS >= 1),
        ("STATE_PROOF_NODES_MAX >= 8 * HASH_BYTES", STATE_PROOF_NODES_MAX >= 8 * HASH_BYTES),
    ))


check_limits()
