"""Every limit of the consensus core, in one place (qualifier last, TigerBeetle style).

Each buffer, table and retry the core keeps is bounded by one of these, so a
Byzantine peer can make the core drop messages (counted) but never grow without
bound. Relations between them are checked at import (:func:`check_limits`).
"""

from __future__ import annotations

from typing import Final

from ledger.constants import BLOCK_BYTES_MAX, ENCODING_BYTES_MAX, VALIDATORS_MAX, require_limits

# --- wire ---------------------------------------------------------------------------
# A proposal or commit message carries one block plus a small envelope (signature,
# certificate of at most VALIDATORS_MAX signatures).
MESSAGE_OVERHEAD_BYTES_MAX: Final = 64 * 1024
MESSAGE_BYTES_MAX: Final = BLOCK_BYTES_MAX + MESSAGE_OVERHEAD_BYTES_MAX

# --- rounds -----------------------------------------------------------------------------
ROUNDS_AHEAD_MAX: Final = 8  # messages of rounds round+1 .. round+8 are stored, later ones only counted for skips
ROUNDS_KEPT_MAX: Final = 16  # rounds older than round-16 of the current height are forgotten
PROPOSALS_PER_ROUND_MAX: Final = 2  # distinct blocks kept per (height, round); more is equivocation
VALUES_PER_VOTER_MAX: Final = 3  # distinct values one (equivocating) validator is counted for per round and kind
ROUND_MAX: Final = 2**31  # a round number beyond this is malformed

# --- heights ------------------------------------------------------------------------------
FUTURE_HEIGHTS_MAX: Final = 8  # messages for height+1 .. height+8 are buffered
FUTURE_MESSAGES_MAX: Final = 4 * VALIDATORS_MAX * FUTURE_HEIGHTS_MAX
# Future-height messages are also bounded in bytes (their blocks' transactions plus an
# envelope), in all and per signer: a Byzantine validator may sign as many well-formed
# proposals as it likes, but holds at most two full-size ones here. Going past its
# share is counted as DROP_OVER_BUDGET, which the driver answers by disconnecting it.
FUTURE_BYTES_PER_SIGNER_MAX: Final = 2 * MESSAGE_BYTES_MAX
FUTURE_BYTES_MAX: Final = 4 * MESSAGE_BYTES_MAX  # commits from helpers count here too
HELD_MESSAGE_BYTES_MIN: Final = 1_024  # a held message's envelope and header, beyond its transactions
SIGNATURE_ENTRY_BYTES_MAX: Final = 256  # one (key id, signature) pair of a certificate
CATCHUP_BLOCKS_MAX: Final = FUTURE_HEIGHTS_MAX  # commit messages sent per help reply
HELP_PEERS_MAX: Final = VALIDATORS_MAX  # peers remembered for help rate limiting
EVIDENCE_PER_HEIGHT_MAX: Final = 2 * VALIDATORS_MAX * (ROUNDS_KEPT_MAX + ROUNDS_AHEAD_MAX)

# --- evaluation ------------------------------------------------------------------------------
RULE_FIRINGS_PER_EVENT_MAX: Final = 64  # upon-rules applied after one input; more is a bug


def check_limits() -> None:
    """Raise :class:`~ledger.errors.LimitError` naming every relation between these limits
    that does not hold. Called at import: unlike an ``assert`` it also runs under ``python -O``."""
    require_limits(__name__, (
        ("MESSAGE_BYTES_MAX <= 2 * ENCODING_BYTES_MAX + MESSAGE_OVERHEAD_BYTES_MAX",
         MESSAGE_BYTES_MAX <= 2 * ENCODING_BYTES_MAX + MESSAGE_OVERHEAD_BYTES_MAX),
        ("CATCHUP_BLOCKS_MAX <= FUTURE_HEIGHTS_MAX",  # every block of one help reply can be buffered
         CATCHUP_BLOCKS_MAX <= FUTURE_HEIGHTS_MAX),
        ("FUTURE_MESSAGES_MAX >= CATCHUP_BLOCKS_MAX", FUTURE_MESSAGES_MAX >= CATCHUP_BLOCKS_MAX),
        ("ROUNDS_AHEAD_MAX >= 1 and ROUNDS_KEPT_MAX >= 2", ROUNDS_AHEAD_MAX >= 1 and ROUNDS_KEPT_MAX >= 2),
        ("MESSAGE_BYTES_MAX <= FUTURE_BYTES_PER_SIGNER_MAX < FUTURE_BYTES_MAX",
         MESSAGE_BYTES_MAX <= FUTURE_BYTES_PER_SIGNER_MAX < FUTURE_BYTES_MAX),
    ))


check_limits()

__all__ = [
    "CATCHUP_BLOCKS_MAX",
    "EVIDENCE_PER_HEIGHT_MAX",
    "FUTURE_BYTES_MAX",
    "FUTURE_BYTES_PER_SIGNER_MAX",
    "FUTURE_HEIGHTS_MAX",
    "FUTURE_MESSAGES_MAX",
    "HELD_MESSAGE_BYTES_MIN",
    "HELP_PEERS_MAX",
    "MESSAGE_BYTES_MAX",
    "MESSAGE_OVERHEAD_BYTES_MAX",
    "PROPOSALS_PER_ROUND_MAX",
    "ROUNDS_AHEAD_MAX",
    "ROUNDS_KEPT_MAX",
    "ROUND_MAX",
    "RULE_FIRINGS_PER_EVENT_MAX",
    "SIGNATURE_ENTRY_BYTES_MAX",
    "VALUES_PER_VOTER_MAX",
    "check_limits",
]
