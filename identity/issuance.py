"""OpenID4VCI key proofs (``proofs.jwt``): build and check, pure.

A wallet proves possession of the key a credential will be bound to with a compact JWS::

    header  {"typ": "openid4vci-proof+jwt", "alg": "EdDSA"|"ES256",
             "jwk": <holder public JWK>}            -- binding by key (cnf.jwk)
         or {"kid": "did:imi:<suffix>#<key id>"}    -- binding by DID (cnf.kid = the DID)
    payload {"aud": <Credential Issuer Identifier>, "nonce": <c_nonce>, "iat": <seconds>}

With a DID ``kid`` the key must be the DID's *current* controller key on the ledger
(read with the light client), and the credential gets ``cnf: {"kid": "<did>"}`` — the bare
DID, which :class:`identity.ledger_trust.LedgerHolderKeys` resolves to whatever key is
current when a presentation is checked, so the credential survives ``did.rotate`` and
``did.recover``. The protocol around the proofs (offers, token, nonces, credential
endpoint) is :mod:`identity.oid4vci`.

No network, no clock (``now`` is an argument, integer seconds). Failures are
:class:`IssuanceRequestError` with a stable reason (the issuer answers them as
``invalid_proof``):

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
=======================  ==========================================================
"""

from __future__ import annotations

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



def check_limits() -> None:
    """Raise :class:`~ledger.errors.LimitError` naming every relation between these limits
    that does not hold. Called at import: unlike an ``assert`` it also runs under ``python -O``."""
    require_limits(__name__, (
        ("PROOF_SKEW_S < PROOF_IAT_WINDOW_S", PROOF_SKEW_S < PROOF_IAT_WINDOW_S),
    ))


check_limits()


class IssuanceRequestError(IdentityError):
    """Remote: a holder's issuance request that must be refused (reason in the module table)."""

    reason = "bad-issuance-request"


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
    nonce (:class:`identity.oid4vci.NonceMint`) and the signature (:meth:`Proof.verify_with`)."""
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
    "PROOF_TYP",
    "IssuanceRequestError",
    "Proof",
    "check_limits",
    "make_proof",
    "parse_proof",
]
