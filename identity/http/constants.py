"""Limits and defaults of the identity HTTP services, in one place (times in seconds)."""

from __future__ import annotations

from typing import Final

from identity.constants import (
    BATCH_SIZE_MAX,
    OID4VP_REQUEST_LIFETIME_S_MAX,
    OID4VP_VP_TOKEN_CHARS_MAX,
)
from identity.ledger_constants import FRESHNESS_MS_DEFAULT

# --- verifier service (OpenID4VP) -------------------------------------------------------
VERIFIER_REQUEST_TTL_S: Final = 300  # a request (and its nonce) is good this long
VERIFIER_REQUESTS_MAX: Final = 10_000  # open requests held at once
VERIFIER_BODY_BYTES_MAX: Final = OID4VP_VP_TOKEN_CHARS_MAX + 4 * 1024  # form overhead and state
VERIFIER_CALLBACK_TIMEOUT_S: Final = 5.0
# A ledger read (issuer DID and accreditation, status list, the service's registration) is
# answered again for this long instead of fetched and verified per presentation: a
# revocation or suspension reaches the verdicts at most this much later (milliseconds).
VERIFIER_READ_REUSE_MS: Final = 1_000

# --- staff sessions of the pages (counter, console) ---------------------------------------
STAFF_SESSION_TTL_S: Final = 8 * 3600  # one working day
STAFF_SESSIONS_MAX: Final = 256  # signed-in browsers per service; the oldest is dropped beyond

# --- the wallet app (loopback only) --------------------------------------------------------
WALLET_APP_BODY_BYTES_MAX: Final = 16 * 1024  # forms: a password, a link, a choice, a recovery kit file
WALLET_SESSION_IDLE_S: Final = 600  # the open wallet locks itself after this long unused
WALLET_RECEIVE_BATCH_MAX: Final = 10  # one-time credentials asked per type (the issuer may give fewer)
WALLET_TX_CODE_CHARS_MAX: Final = 32  # a PIN typed by the person
WALLET_KIT_PASSWORD_CHARS_MIN: Final = 8  # the kit is the key to the person's identity
WALLET_KIT_PASSWORD_CHARS_MAX: Final = 256


def check_limits() -> None:
    """Raise ValueError if the limits above contradict each other (runs under ``-O`` too)."""
    if not 0 < VERIFIER_REQUEST_TTL_S <= OID4VP_REQUEST_LIFETIME_S_MAX:
        raise ValueError("VERIFIER_REQUEST_TTL_S must lie within a request object's lifetime")
    if not 0 <= VERIFIER_READ_REUSE_MS <= FRESHNESS_MS_DEFAULT:
        raise ValueError("VERIFIER_READ_REUSE_MS must lie within the light client's freshness bound")
    if VERIFIER_BODY_BYTES_MAX < OID4VP_VP_TOKEN_CHARS_MAX:
        raise ValueError("VERIFIER_BODY_BYTES_MAX must hold the largest vp_token")
    if not 1 <= WALLET_RECEIVE_BATCH_MAX <= BATCH_SIZE_MAX:
        raise ValueError("WALLET_RECEIVE_BATCH_MAX must be a batch the issuer protocol allows")
    if not 0 < WALLET_KIT_PASSWORD_CHARS_MIN <= WALLET_KIT_PASSWORD_CHARS_MAX < WALLET_APP_BODY_BYTES_MAX:
        raise ValueError("the kit password bounds must be ordered and fit a form")


check_limits()
