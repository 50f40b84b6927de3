"""Every limit and default of a running validator, in one place.

Names put the qualifier last (``frame_bytes_max``). Units are in the names
(``_ms``, ``_s``, ``_bytes``). Relations are checked at import (:func:`check_limits`).
"""

from __future__ import annotations

from typing import Final

from ledger.constants import BLOCK_TXS_MAX, ENCODING_BYTES_MAX, TX_BYTES_MAX, require_limits

# --- transport -------------------------------------------------------------------
FRAME_BYTES_MAX: Final = ENCODING_BYTES_MAX  # one length-prefixed CBOR frame
FRAME_HEADER_BYTES: Final = 4  # big-endian unsigned length
SEND_QUEUE_FRAMES_MAX: Final = 4_096  # per peer; the oldest frame is dropped when full
SEND_QUEUE_BYTES_MAX: Final = 4 * ENCODING_BYTES_MAX  # per peer, likewise (a few full proposals)
PEER_PENALTY_MS: Final = 10_000  # a peer past its budget is disconnected and refused this long
# A peer unreachable this long has its send queue emptied (and again on each failed dial):
# the frames are stale (consensus re-sends, catch-up fetches blocks), they pin memory, and a
# restarted peer would first have to read through thousands of them before the current ones.
SEND_QUEUE_STALE_MS: Final = 5_000
RECONNECT_BACKOFF_MS_MIN: Final = 50
RECONNECT_BACKOFF_MS_MAX: Final = 2_000
CONNECT_TIMEOUT_MS: Final = 2_000
HANDSHAKE_TIMEOUT_MS: Final = 3_000
TLS_CERT_DAYS: Final = 3_650
TLS_TRUST_REFRESH_MS: Final = 5_000  # how often a running validator looks for new certificates in certs/

# --- driver / consensus clock ----------------------------------------------------------
TICK_MS_DEFAULT: Final = 20
HEARTBEAT_MS_DEFAULT: Final = 2_000
BLOCK_INTERVAL_MS_DEFAULT: Final = 100  # wait after a commit when the last block was full (see below; docs/node.md)
BLOCK_INTERVAL_MS_MIN: Final = 5  # ... and when it was (nearly) empty; the wait scales with its fill

BATCH_TXS_MIN: Final = 250  # this many pending txs start a block at once
# Consensus timeouts in milliseconds (converted to ticks of tick_ms); round r waits base + r * delta.
# The propose timeout must cover building, sending and re-executing a full proposal
# (PROPOSE_BATCH_TXS_MAX transactions) on a loaded machine, or rounds fail one after another.
PROPOSE_TIMEOUT_MS: Final = 2_000
PROPOSE_TIMEOUT_DELTA_MS: Final = 500
VOTE_TIMEOUT_MS: Final = 500  # prevote and precommit
VOTE_TIMEOUT_DELTA_MS: Final = 250
REBROADCAST_MS: Final = 1_000
WAL_RECORD_BYTES_MAX: Final = ENCODING_BYTES_MAX
WAL_SEGMENT_RECORDS_MAX: Final = 500  # compacted to the current height past this many records

# Bucket upper bounds (seconds) of the consensus-path histograms (node.timings, /metrics).
CONSENSUS_SECONDS_BUCKETS: Final = (0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FSYNC_SECONDS_BUCKETS: Final = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

# --- mempool ------------------------------------------------------------------------
MEMPOOL_TXS_MAX: Final = 20_000
# One sender's share of the pool: a flood from one sender stops here, and filling the
# pool takes at least MEMPOOL_TXS_MAX // MEMPOOL_SENDER_TXS_MAX senders (on a closed
# chain, DIDs made through an accredited registrar).
MEMPOOL_SENDER_TXS_MAX: Final = 1_000
MEMPOOL_GOSSIP_BATCH_MAX: Final = 256  # txs in one gossip frame
MEMPOOL_GOSSIP_DELAY_MS: Final = 5  # coalescing window for gossip
COMMITTED_WAITERS_MAX: Final = 50_000  # concurrent wait_committed callers
PROPOSE_BATCH_TXS_MAX: Final = 500  # pure-Python execution: ~1 ms per tx per validator

# --- catch-up -------------------------------------------------------------------------
SYNC_BLOCKS_PER_REQUEST_MAX: Final = 64
# An answer to a sync request holds blocks up to this many bytes (a single larger block
# still goes alone): small answers spread a range over several peers and keep memory low.
SYNC_RESPONSE_BYTES_MAX: Final = 1024 * 1024
SYNC_REQUESTS_IN_FLIGHT_MAX: Final = 6  # catch-up requests outstanding, over all peers
SYNC_PEER_REQUESTS_IN_FLIGHT_MAX: Final = 2  # ... to one peer (it answers while the last answer travels)
# Requests in flight plus answers received and not yet applied. The range holding our next
# height may go one past it (else answers of later ranges could starve it), so at most
# SYNC_BYTES_AHEAD_MAX bytes of blocks are held or on their way: every answer is one frame.
SYNC_RESPONSES_AHEAD_MAX: Final = 8
SYNC_BYTES_AHEAD_MAX: Final = (SYNC_RESPONSES_AHEAD_MAX + 1) * FRAME_BYTES_MAX
# Fetched blocks applied in one atomic store write (node.staging): at most this many
# blocks, the batch closes after the block that takes it to SYNC_BATCH_TXS_MAX transactions
# (applying holds the event loop: about 0.25 ms per transaction, so well under a second),
# and after the block that takes its staged writes past the bytes.
SYNC_BATCH_BLOCKS_MAX: Final = 256
SYNC_BATCH_TXS_MAX: Final = 2_000
# Threads that check fetched transactions' signatures while the event loop applies earlier
# blocks (the checks run in C without the GIL): catch-up then uses a second core.
SYNC_VERIFY_THREADS: Final = 1
SYNC_BATCH_STAGED_BYTES_MAX: Final = 64 * 1024 * 1024
SYNC_REQUEST_TIMEOUT_MS: Final = 5_000
RESYNC_LAG_HEIGHTS: Final = 8  # further behind than the core buffers: pause it and catch up
STATUS_INTERVAL_MS: Final = 500  # how often a validator announces its height
STATUS_STALE_MS: Final = 5_000  # a peer silent this long no longer counts for catch-up
# A peer that failed a catch-up (no answer in time, nothing to give, blocks that do not
# verify) is not asked again for this long, doubling per failure; remembered across catch-ups.
SYNC_PEER_BACKOFF_MS_MIN: Final = 2_000
SYNC_PEER_BACKOFF_MS_MAX: Final = 60_000

# --- service --------------------------------------------------------------------------
WAIT_COMMITTED_S_MAX: Final = 60.0
SHUTDOWN_GRACE_S: Final = 3.0


def check_limits() -> None:
    """Raise :class:`~ledger.errors.LimitError` naming every relation between these limits
    that does not hold. Called at import: unlike an ``assert`` it also runs under ``python -O``."""
    require_limits(__name__, (
        ("TX_BYTES_MAX * MEMPOOL_GOSSIP_BATCH_MAX <= FRAME_BYTES_MAX * 4",
         TX_BYTES_MAX * MEMPOOL_GOSSIP_BATCH_MAX <= FRAME_BYTES_MAX * 4),
        ("PROPOSE_BATCH_TXS_MAX <= BLOCK_TXS_MAX", PROPOSE_BATCH_TXS_MAX <= BLOCK_TXS_MAX),
        ("RECONNECT_BACKOFF_MS_MIN < RECONNECT_BACKOFF_MS_MAX",
         RECONNECT_BACKOFF_MS_MIN < RECONNECT_BACKOFF_MS_MAX),
        ("FRAME_BYTES_MAX <= SEND_QUEUE_BYTES_MAX",  # a queue always takes one frame
         FRAME_BYTES_MAX <= SEND_QUEUE_BYTES_MAX),
        ("STATUS_INTERVAL_MS <= SYNC_PEER_BACKOFF_MS_MIN < SYNC_PEER_BACKOFF_MS_MAX",
         STATUS_INTERVAL_MS <= SYNC_PEER_BACKOFF_MS_MIN < SYNC_PEER_BACKOFF_MS_MAX),
        ("STATUS_STALE_MS > 2 * STATUS_INTERVAL_MS", STATUS_STALE_MS > 2 * STATUS_INTERVAL_MS),
        ("SYNC_PEER_REQUESTS_IN_FLIGHT_MAX <= SYNC_REQUESTS_IN_FLIGHT_MAX < SYNC_RESPONSES_AHEAD_MAX",
         SYNC_PEER_REQUESTS_IN_FLIGHT_MAX <= SYNC_REQUESTS_IN_FLIGHT_MAX < SYNC_RESPONSES_AHEAD_MAX),
        ("SYNC_RESPONSE_BYTES_MAX <= FRAME_BYTES_MAX // 2", SYNC_RESPONSE_BYTES_MAX <= FRAME_BYTES_MAX // 2),
        ("SYNC_BYTES_AHEAD_MAX <= 64 * 1024 * 1024", SYNC_BYTES_AHEAD_MAX <= 64 * 1024 * 1024),
        ("1 <= SYNC_BATCH_BLOCKS_MAX", 1 <= SYNC_BATCH_BLOCKS_MAX),
        ("MEMPOOL_TXS_MAX >= 4 * BLOCK_TXS_MAX", MEMPOOL_TXS_MAX >= 4 * BLOCK_TXS_MAX),
        ("MEMPOOL_TXS_MAX // MEMPOOL_SENDER_TXS_MAX >= 16", MEMPOOL_TXS_MAX // MEMPOOL_SENDER_TXS_MAX >= 16),
        ("BATCH_TXS_MIN <= PROPOSE_BATCH_TXS_MAX", BATCH_TXS_MIN <= PROPOSE_BATCH_TXS_MAX),
        ("VOTE_TIMEOUT_MS <= PROPOSE_TIMEOUT_MS", VOTE_TIMEOUT_MS <= PROPOSE_TIMEOUT_MS),
        ("BLOCK_INTERVAL_MS_MIN <= BLOCK_INTERVAL_MS_DEFAULT < HEARTBEAT_MS_DEFAULT",
         BLOCK_INTERVAL_MS_MIN <= BLOCK_INTERVAL_MS_DEFAULT < HEARTBEAT_MS_DEFAULT),
    ))


check_limits()
