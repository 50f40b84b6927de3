"""Keys and signatures: Ed25519 (ledger signatures) and ES256 (P-256, for identity).

Public keys travel as JWKs (RFC 7517; OKP/Ed25519 per RFC 8037). A key id is
the RFC 7638 JWK thumbprint (base64url SHA-256 of the required members), so it
is derived from the key and means the same in every part of the system.

``verify`` returns a bool and never raises on a bad signature: verification
recipes above this layer turn ``False`` into one opaque, typed error.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field

import nacl.bindings
import nacl.exceptions
import nacl.signing
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from ledger.constants import (
    ED25519_PUBLIC_KEY_BYTES,
    ED25519_SIGNATURE_BYTES,
    ES256_SIGNATURE_BYTES,
)
from ledger.errors import KeyError_, SignatureError
from ledger.hashing import sha256

ALG_EDDSA = "EdDSA"
ALG_ES256 = "ES256"
ALGS = (ALG_EDDSA, ALG_ES256)


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# base64url → standard alphabet in one C pass; "+", "/" and "=" are not base64url, so they
# become "*", which the strict standard decoder refuses.
_URL_TO_STD = bytes.maketrans(b"-_+/=", b"+/***")
_PADDING = (b"", b"", b"==", b"=")  # by len % 4 (1 is refused before)
_B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# The last characters whose bits beyond the final byte are zero, by len % 4: canonical.
_CANONICAL_LAST = {
    2: frozenset(c for i, c in enumerate(_B64URL_ALPHABET) if not i & 0x0F),
    3: frozenset(c for i, c in enumerate(_B64URL_ALPHABET) if not i & 0x03),
}


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding; raises :class:`KeyError_` on anything else
    (padding, another alphabet, a length no encoding has, set bits after the last byte).
    Checks the alphabet and the unused bits directly rather than re-encoding."""
    if not isinstance(text, str) or "=" in text:
        raise KeyError_("base64url value must be an unpadded string")
    rest = len(text) % 4
    try:
        if rest == 1:
            raise ValueError("no base64url text has this length")
        raw = binascii.a2b_base64(text.encode("ascii").translate(_URL_TO_STD) + _PADDING[rest], strict_mode=True)
    except ValueError as exc:  # binascii.Error and UnicodeEncodeError are ValueErrors
        raise KeyError_("invalid base64url") from exc
    if rest and text[-1] not in _CANONICAL_LAST[rest]:
        raise KeyError_("non-canonical base64url")
    return raw


_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_P256 = ec.SECP256R1()


def der_signature(signature: bytes) -> bytes:
    """ECDSA-Sig-Value DER of a 64-byte JWS/ledger ``r || s`` (RFC 7518 §3.4); precondition:
    ``len(signature) == 64``. The same bytes as ``encode_dss_signature`` (minimal
    INTEGERs: leading zeros dropped, a zero prepended when the high bit is set),
    built without the two int conversions."""
    r = signature[:32].lstrip(b"\0")
    s = signature[32:].lstrip(b"\0")
    if not r or r[0] & 0x80:
        r = b"\0" + r
    if not s or s[0] & 0x80:
        s = b"\0" + s
    # each INTEGER ≤ 33 bytes, so every length fits the one-byte short form
    return b"\x30" + bytes((len(r) + len(s) + 4, 2, len(r))) + r + bytes((2, len(s))) + s


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A verification key. ``raw`` is 32 bytes (Ed25519) or 65 bytes uncompressed SEC1 (P-256)."""

    alg: str
    raw: bytes
    # A P-256 key's library object, built (and the point validated) at construction.
    _ec: ec.EllipticCurvePublicKey | None = field(init=False, default=None, repr=False, compare=False)
    # The key id, computed when first asked and then kept: a verifier that meets a new
    # holder key per presentation (one-time credentials) never asks for it.
    _key_id: str | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check()

    @property
    def key_id(self) -> str:
        """The RFC 7638 thumbprint (:meth:`thumbprint`), computed once."""
        key_id = self._key_id
        if key_id is None:
            key_id = self.thumbprint()
            object.__setattr__(self, "_key_id", key_id)  # the same value whichever thread wins
        return key_id

    def _check(self) -> None:
        if self.alg == ALG_EDDSA:
            if len(self.raw) != ED25519_PUBLIC_KEY_BYTES:
                raise KeyError_("Ed25519 public key must be 32 bytes")
        elif self.alg == ALG_ES256:
            try:
                object.__setattr__(self, "_ec", ec.EllipticCurvePublicKey.from_encoded_point(_P256, self.raw))
            except ValueError as exc:
                raise KeyError_("invalid P-256 point") from exc
            if len(self.raw) != 65:
                raise KeyError_("P-256 key must be an uncompressed point")
        else:
            raise KeyError_(f"unsupported algorithm {self.alg!r}")

    # --- verification -------------------------------------------------------
    def verify(self, message: bytes, signature: bytes) -> bool:
        """True iff ``signature`` is a valid signature of ``message`` by this key."""
        if not isinstance(signature, (bytes, bytearray)):
            return False
        if self.alg == ALG_EDDSA:
            if len(signature) != ED25519_SIGNATURE_BYTES:
                return False
            try:
                # libsodium's crypto_sign_open directly: a VerifyKey object per call
                # cost ~15-20 % of each verification (the key length is checked at
                # construction).
                nacl.bindings.crypto_sign_open(bytes(signature) + bytes(message), self.raw)
                return True
            except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
                return False
        if len(signature) != ES256_SIGNATURE_BYTES:
            return False
        assert self._ec is not None  # set by _check for every ES256 key
        try:
            self._ec.verify(der_signature(bytes(signature)), message, _ECDSA_SHA256)
            return True
        except InvalidSignature:
            return False

    # --- JWK -------------------------------------------------------------------
    def to_jwk(self) -> dict[str, str]:
        """Public JWK with only the required members (RFC 7517, RFC 8037)."""
        if self.alg == ALG_EDDSA:
            return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(self.raw)}
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url_encode(self.raw[1:33]),
            "y": b64url_encode(self.raw[33:65]),
        }

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, object]) -> PublicKey:
        """Parse a public JWK; private members (``d``) are ignored. Raises :class:`KeyError_`."""
        if not isinstance(jwk, Mapping):
            raise KeyError_("JWK must be an object")
        kty, crv = jwk.get("kty"), jwk.get("crv")
        try:
            if kty == "OKP" and crv == "Ed25519":
                return cls(ALG_EDDSA, b64url_decode(str(jwk["x"])))
            if kty == "EC" and crv == "P-256":
                x = b64url_decode(str(jwk["x"]))
                y = b64url_decode(str(jwk["y"]))
                if len(x) != 32 or len(y) != 32:
                    raise KeyError_("P-256 coordinates must be 32 bytes")
                return cls(ALG_ES256, b"\x04" + x + y)
        except KeyError as exc:
            raise KeyError_(f"JWK misses member {exc.args[0]!r}") from exc
        raise KeyError_(f"unsupported JWK kty={kty!r} crv={crv!r}")

    def thumbprint(self) -> str:
        """RFC 7638 JWK thumbprint (SHA-256, base64url) — our key id."""
        # What json.dumps(self.to_jwk(), sort_keys=True, separators=(",", ":")) gives,
        # built directly: the members sort as crv, kty, x, y and base64url needs no escaping.
        if self.alg == ALG_EDDSA:
            canonical = '{"crv":"Ed25519","kty":"OKP","x":"' + b64url_encode(self.raw) + '"}'
        else:
            canonical = ('{"crv":"P-256","kty":"EC","x":"' + b64url_encode(self.raw[1:33])
                         + '","y":"' + b64url_encode(self.raw[33:65]) + '"}')
        return b64url_encode(sha256(canonical.encode("ascii")))



class SigningKey:
    """A private key that signs. Ed25519 via pynacl, ES256 via cryptography."""

    __slots__ = ("_ec", "_ed", "alg", "public_key")

    def __init__(self, alg: str, secret: bytes) -> None:
        self.alg = alg
        self._ed: nacl.signing.SigningKey | None = None
        self._ec: ec.EllipticCurvePrivateKey | None = None
        if alg == ALG_EDDSA:
            if len(secret) != 32:
                raise KeyError_("Ed25519 seed must be 32 bytes")
            self._ed = nacl.signing.SigningKey(secret)
            self.public_key = PublicKey(alg, bytes(self._ed.verify_key))
        elif alg == ALG_ES256:
            if len(secret) != 32:
                raise KeyError_("P-256 private scalar must be 32 bytes")
            try:
                self._ec = ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1())
            except ValueError as exc:
                raise KeyError_("invalid P-256 private scalar") from exc
            from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

            raw = self._ec.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
            self.public_key = PublicKey(alg, raw)
        else:
            raise KeyError_(f"unsupported algorithm {alg!r}")

    @classmethod
    def generate(cls, alg: str = ALG_EDDSA) -> SigningKey:
        if alg == ALG_EDDSA:
            return cls(alg, bytes(nacl.signing.SigningKey.generate()))
        if alg == ALG_ES256:
            key = ec.generate_private_key(ec.SECP256R1())
            return cls(alg, key.private_numbers().private_value.to_bytes(32, "big"))
        raise KeyError_(f"unsupported algorithm {alg!r}")

    @property
    def key_id(self) -> str:
        return self.public_key.key_id

    def secret_bytes(self) -> bytes:
        if self._ed is not None:
            return bytes(self._ed)
        assert self._ec is not None
        return self._ec.private_numbers().private_value.to_bytes(32, "big")

    def sign(self, message: bytes) -> bytes:
        """Sign ``message``: 64 bytes (Ed25519, or ES256 as r || s)."""
        if self._ed is not None:
            return self._ed.sign(message).signature
        assert self._ec is not None
        der = self._ec.sign(message, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def to_private_jwk(self) -> dict[str, str]:
        jwk = dict(self.public_key.to_jwk())
        jwk["d"] = b64url_encode(self.secret_bytes())
        return jwk

    @classmethod
    def from_private_jwk(cls, jwk: Mapping[str, object]) -> SigningKey:
        public = PublicKey.from_jwk(jwk)
        if "d" not in jwk:
            raise KeyError_("private JWK misses member 'd'")
        key = cls(public.alg, b64url_decode(str(jwk["d"])))
        if key.public_key != public:
            raise KeyError_("private JWK 'd' does not match its public part")
        return key


def verify_threshold(
    message: bytes,
    signatures: Mapping[str, bytes],
    keys: Mapping[str, PublicKey],
    threshold: int,
) -> set[str]:
    """Check a k-of-n multi-signature and return the key ids whose signatures verified.

    ``signatures`` maps key id → signature; ``keys`` is the authorised set (key id →
    key). Signatures from keys outside the set are an error, not ignored, so a
    transaction cannot carry unexplained material. Raises :class:`SignatureError`
    if any signature is invalid or fewer than ``threshold`` distinct keys signed.
    """
    if threshold < 1:
        raise SignatureError("threshold must be at least 1")
    signers: set[str] = set()
    for key_id, signature in signatures.items():
        key = keys.get(key_id)
        if key is None:
            raise SignatureError(f"signature by a key outside the authorised set: {key_id}")
        if not key.verify(message, signature):
            raise SignatureError(f"invalid signature by {key_id}")
        signers.add(key_id)
    if len(signers) < threshold:
        raise SignatureError(
            f"{len(signers)} valid signatures, {threshold} required", reason="threshold-not-met"
        )
    return signers


__all__ = [
    "ALGS",
    "ALG_EDDSA",
    "ALG_ES256",
    "PublicKey",
    "SigningKey",
    "b64url_decode",
    "b64url_encode",
    "verify_threshold",
]
