"""Limits and defaults of the identity HTTP services, in one place (times in seconds)."""

from __future__ import annotations

from typing import Final

from identity.constants import OID4VP_REQUEST_LIFETIME_S_MAX, OID4VP_VP_TOKEN_CHARS_MAX

# --- verifier service (OpenID4VP) -------------------------------------------------------
VERIFIER_REQUEST_TTL_S: Final = 300  # a request (and its nonce) is good this long
VERIFIER_REQUESTS_MAX: Final = 10_000  # open requests held at once
VERIFIER_BODY_BYTES_MAX: Final = OID4VP_VP_TOKEN_CHARS_MAX + 4 * 1024  # form overhead and state
VERIFIER_CALLBACK_TIMEOUT_S: Final = 5.0

# --- staff sessions of the pages (counter, console) ---------------------------------------
STAFF_SESSION_TTL_S: Final = 8 * 3600  # one working day
STAFF_SESSIONS_MAX: Final = 256  # signed-in browsers per service; the oldest is dropped beyond

# --- the wallet app (loopback only) --------------------------------------------------------
WALLET_APP_BODY_BYTES_MAX: Final = 16 * 1024  # forms: a password, a link, a choice
WALLET_SESSION_IDLE_S: Final = 600  # the open wallet locks itself after this long unused


def check_limits() -> None:
    """Raise ValueError if the limits above contradict each other (runs under ``-O`` too)."""
    if not 0 < VERIFIER_REQUEST_TTL_S <= OID4VP_REQUEST_LIFETIME_S_MAX:
        raise ValueError("VERIFIER_REQUEST_TTL_S must lie within a request object's lifetime")
    if VERIFIER_BODY_BYTES_MAX < OID4VP_VP_TOKEN_CHARS_MAX:
        raise ValueError("VERIFIER_BODY_BYTES_MAX must hold the largest vp_token")


check_limits()
