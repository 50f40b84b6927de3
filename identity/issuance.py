"""The issuance protocol between a wallet and an issuer service: nonces and proofs of possession.

Shaped after OpenID4VCI, reduced to what imi needs:

1. ``POST /v1/issuance/nonce`` → ``{nonce, expires_at, aud}``: a fresh, single-use nonce.
2. The holder signs a **proof** (compact JWS) with the key the credential will be bound to::

       header  {"typ": "openid4vci-proof+jwt", "alg": "EdDSA"|"ES256",
                "jwk": <holder public JWK>}            -- binding by key (cnf.jwk)
            or {"kid": "did:imi:<suffix>#<key id>"}    -- binding by DID (cnf.kid = the DID)
       payload {"aud": <issuer DID>, "nonce": <nonce>, "iat": <seconds>}

3. ``POST /v1/issuance/credential {vct, proof, subject?}`` → the SD-JWT VC.

With a DID ``kid`` the key must be the DID's *current* controller key on the ledger
(read with the light client), and the credential gets ``cnf: {"kid": "<did>"}`` — the bare
DID, which :class:`identity.ledger_trust.LedgerHolderKeys` resolves to whatever key is
current when a presentation is checked, so the credential survives ``did.rotate`` and
``did.recover``.

This module is pure: no network, no clock (``now`` is an argument, integer seconds).
Failures are :class:`IssuanceRequestError` with a stable reason:

=======================  ==========================================================
reason                   when
=======================  ==========================================================
bad-proof                not a compact JWS of an allowed alg, payload fields missing
wrong-proof-typ          header ``typ`` is not ``openid4vci-proof+jwt``
bad-proof-key            neither or both of ``jwk``/``kid``, a bad JWK, private JWK
proof-wrong-aud          ``aud`` is not this issuer
proof-stale              ``iat`` older than ``PROOF_IAT_WINDOW_S``
proof-future             ``iat`` more than ``PROOF_SKEW_S`` ahead
proof-bad-signature      not signed by the key it names
nonce-unknown            this issuer never gave out that nonce (or forgot it)
nonce-used               the nonce was already consumed (a replay)
nonce-expired            the nonce is past its expiry
too-many-nonces          the bounded nonce store is full of live nonces
=======================  ==========================================================
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from identity import did as didmod
from identity import jose
from identity.errors import FormatError, IdentityError
from ledger.constants import require_limits
from ledger.errors import KeyError_
from ledger.keys import PublicKey, SigningKey

# --- limits and fixed parameters ------------------------------------------------------
PROOF_TYP: Final = "openid4vci-proof+jwt"
PROOF_CHARS_MAX: Final = 4 * 1024
PROOF_IAT_WINDOW_S: Final = 300  # a proof older than this is stale
PROOF_SKEW_S: Final = 60  # tolerated clock difference for a proof's iat
NONCE_BYTES: Final = 16
NONCE_TTL_S_DEFAULT: Final = 300
NONCES_MAX: Final = 10_000  # live + recently used nonces kept by one issuer
SUBJECT_CHARS_MAX: Final = 256
VCT_REQUEST_CHARS_MAX: Final = 256


def check_limits() -> None:
    """Raise :class:`~ledger.errors.LimitError` naming every relation between these limits
    that does not hold. Called at import: unlike an ``assert`` it also runs under ``python -O``."""
    require_limits(__name__, (
        ("PROOF_SKEW_S < PROOF_IAT_WINDOW_S", PROOF_SKEW_S < PROOF_IAT_WINDOW_S),
        ("NONCE_BYTES >= 16", NONCE_BYTES >= 16),
    ))


check_limits()


class IssuanceRequestError(IdentityError):
    """Remote: a holder's issuance request that must be refused (reason in the module table)."""

    reason = "bad-issuance-request"


# --- nonces -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Nonce:
    """A single-use nonce and its expiry (seconds since the epoch)."""

    value: str
    expires_at: int


class NonceStore:
    """Bounded, thread-safe store of issued nonces; each can be consumed once.

    Consumed nonces are remembered until their expiry so a replay reads ``nonce-used``
    rather than ``nonce-unknown``. Entries past expiry are dropped on every call.
    """

    __slots__ = ("_entries", "_lock", "_max", "ttl_s")

    def __init__(self, *, ttl_s: int = NONCE_TTL_S_DEFAULT, entries_max: int = NONCES_MAX) -> None:
        if ttl_s <= 0 or entries_max <= 0:
            raise ValueError("ttl_s and entries_max must be positive")
        self.ttl_s = ttl_s
        self._max = entries_max
        # value -> (expires_at, used); insertion order is expiry order (ttl is constant)
        self._entries: OrderedDict[str, tuple[int, bool]] = OrderedDict()
        self._lock = threading.Lock()

    def _purge(self, now: int) -> None:
        while self._entries:
            value, (expires_at, _) = next(iter(self._entries.items()))
            if expires_at > now:
                break
            del self._entries[value]

    def issue(self, now: int) -> Nonce:
        """A fresh nonce valid for ``ttl_s`` seconds from ``now``."""
        with self._lock:
            self._purge(now)
            if len(self._entries) >= self._max:
                raise IssuanceRequestError("too many outstanding nonces; retry later", reason="too-many-nonces")
            nonce = Nonce(secrets.token_urlsafe(NONCE_BYTES), now + self.ttl_s)
            self._entries[nonce.value] = (nonce.expires_at, False)
            return nonce

    def consume(self, value: str, now: int) -> None:
        """Mark ``value`` used; raise IssuanceRequestError (nonce-unknown/-used/-expired)."""
        with self._lock:
            entry = self._entries.get(value)
            if entry is None:
                raise IssuanceRequestError("nonce was not issued by this issuer", reason="nonce-unknown")
            expires_at, used = entry
            if used:
                raise IssuanceRequestError("nonce was already used", reason="nonce-used")
            if now >= expires_at:
                del self._entries[value]
                raise IssuanceRequestError("nonce has expired", reason="nonce-expired")
            self._entries[value] = (expires_at, True)
            self._purge(now)


# --- proofs -----------------------------------------------------------------------------
def make_proof(key: SigningKey, *, aud: str, nonce: str, iat: int, did: str | None = None) -> str:
    """The holder's proof of possession of ``key``.

    Without ``did`` the header carries the public JWK (binding by key); with ``did`` it
    carries ``kid = did#<key id>`` and ``key`` must be the DID's current controller key.
    """
    header: dict[str, Any] = {"typ": PROOF_TYP}
    if did is None:
        header["jwk"] = dict(key.public_key.to_jwk())
    else:
        header["kid"] = f"{did}#{key.key_id}"
    return jose.sign(header, {"aud": aud, "nonce": nonce, "iat": iat}, key)


@dataclass(frozen=True, slots=True)
class Proof:
    """A parsed proof whose ``aud``, ``iat`` and shape are checked; signature NOT yet checked.

    Exactly one of ``jwk`` (binding by key) and ``did``/``key_id`` (binding by DID) is set.
    """

    jws: jose.Jws
    nonce: str
    jwk: PublicKey | None
    did: str | None
    key_id: str | None

    def verify_with(self, key: jose.PreparedKey) -> None:
        """Raise ``proof-bad-signature`` unless the proof is signed by ``key``."""
        if not self.jws.verify(key):
            raise IssuanceRequestError("proof is not signed by the holder key", reason="proof-bad-signature")


def _holder_key(header: Mapping[str, Any]) -> tuple[PublicKey | None, str | None, str | None]:
    jwk, kid = header.get("jwk"), header.get("kid")
    if (jwk is None) == (kid is None):
        raise IssuanceRequestError("proof header needs exactly one of jwk or kid", reason="bad-proof-key")
    if jwk is not None:
        if not isinstance(jwk, dict) or "d" in jwk:
            raise IssuanceRequestError("proof jwk must be a public JWK", reason="bad-proof-key")
        try:
            return PublicKey.from_jwk(jwk), None, None
        except (KeyError_, ValueError) as exc:
            raise IssuanceRequestError(f"proof jwk is not usable: {exc}", reason="bad-proof-key") from exc
    did, sep, fragment = str(kid).partition("#") if isinstance(kid, str) else ("", "", "")
    if not didmod.is_did(did) or not sep or not fragment:
        raise IssuanceRequestError("proof kid must be a did:imi URL did:imi:...#<key id>", reason="bad-proof-key")
    return None, did, fragment


def parse_proof(token: object, *, aud: str, now: int) -> Proof:
    """Check a proof's form, ``typ``, ``aud`` and ``iat`` at ``now``; the caller checks the
    nonce (:class:`NonceStore`) and the signature (:meth:`Proof.verify_with`)."""
    if not isinstance(token, str):
        raise IssuanceRequestError("proof must be a string", reason="bad-proof")
    try:
        jws = jose.parse(token, chars_max=PROOF_CHARS_MAX)
    except FormatError as exc:
        raise IssuanceRequestError(f"proof: {exc}", reason="bad-proof") from exc
    if jws.header.get("typ") != PROOF_TYP:
        raise IssuanceRequestError(f"proof typ must be {PROOF_TYP}", reason="wrong-proof-typ")
    jwk, did, key_id = _holder_key(jws.header)
    nonce, proof_aud, iat = (jws.payload.get(n) for n in ("nonce", "aud", "iat"))
    if not isinstance(nonce, str) or not isinstance(iat, int) or isinstance(iat, bool):
        raise IssuanceRequestError("proof needs a string nonce and an integer iat", reason="bad-proof")
    if proof_aud != aud:
        raise IssuanceRequestError("proof aud is not this issuer", reason="proof-wrong-aud")
    if iat < now - PROOF_IAT_WINDOW_S:
        raise IssuanceRequestError("proof is too old", reason="proof-stale")
    if iat > now + PROOF_SKEW_S:
        raise IssuanceRequestError("proof is from the future", reason="proof-future")
    return Proof(jws, nonce, jwk, did, key_id)


__all__ = [
    "NONCE_TTL_S_DEFAULT",
    "PROOF_TYP",
    "IssuanceRequestError",
    "Nonce",
    "NonceStore",
    "Proof",
    "check_limits",
    "make_proof",
    "parse_proof",
]
