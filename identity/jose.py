"""Compact JWS (RFC 7515) with EdDSA and ES256 only, and strict JSON for JOSE.

Parsing is strict: exactly three dot-separated canonical base64url parts, a
protected header and payload that are JSON objects without duplicate member
names, NaN/Infinity or excessive nesting, an ``alg`` from the allow-list
(``EdDSA``, ``ES256``; never ``none`` or ``HS*``) and no ``crit``. JSON here is
RFC 8259 text; canonical CBOR (``ledger.encoding``) is for the ledger only.

Every failure raises :class:`identity.errors.FormatError` (reason
``malformed-jws``, ``malformed-json``, ``too-large``) or, for the algorithm,
reason ``alg-not-allowed``. ``verify`` returns a bool; callers decide the error.
"""

from __future__ import annotations

import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from identity.constants import (
    ALLOWED_ALGS,
    JOSE_HEADERS_CACHED_MAX,
    JSON_DEPTH_MAX,
    JWS_CHARS_MAX,
    PREPARED_KEYS_MAX,
)
from identity.errors import FormatError
from ledger.errors import KeyError_
from ledger.keys import PublicKey, SigningKey, b64url_encode
from ledger.lru import BoundedLRU

JsonObject = dict[str, Any]


# --- JSON -----------------------------------------------------------------------------
def _no_duplicates(pairs: list[tuple[str, Any]]) -> JsonObject:
    obj = dict(pairs)
    if len(obj) != len(pairs):  # a repeated member name collapsed into one key
        raise FormatError("duplicate JSON member name", reason="malformed-json")
    return obj


def _reject_constant(name: str) -> Any:
    raise FormatError(f"JSON constant {name} is not allowed", reason="malformed-json")


def _depth(value: Any, limit: int) -> None:
    """Raise if ``value`` nests deeper than ``limit`` containers."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                raise FormatError("JSON nests too deeply", reason="malformed-json")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


# Built once: json.loads with keyword arguments would build a decoder per call.
_DECODER: Final = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
# The decoder's C scanner: one value from an index, without decode()'s two regex
# whitespace matches in Python; used when the value spans the whole text.
_SCAN_ONCE: Final = _DECODER.scan_once  # type: ignore[attr-defined]
# Parsed JOSE headers by their exact base64url text. A verifier meets few distinct
# headers (one per issuer key, one KB-JWT header per holder algorithm). The memo of a
# pure function (text in, header out), as functools.lru_cache would be, so it is
# parse()'s own: a hit returns what parsing would, and callers that keep no object
# between verifications (the node's /v1/verify, a cold verify_presentation) still
# skip ~5 µs per header. Only headers that passed every check and hold no container
# are kept; each parse gets its own (shallow) copy.
_HEADERS: Final[BoundedLRU[str, JsonObject]] = BoundedLRU(JOSE_HEADERS_CACHED_MAX)
_B64URL_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# base64url → standard alphabet in one C pass; "+", "/" and "=" are not base64url,
# so they become "*", which the strict standard decoder refuses.
URL_TO_STD: Final = bytes.maketrans(b"-_+/=", b"+/***")
STD_TO_URL: Final = bytes.maketrans(b"+/", b"-_")
PADDING: Final = (b"", b"", b"==", b"=")  # by len % 4 (1 is refused before)
# A last character whose bits beyond the final byte are zero, by len % 4: canonical.
CANONICAL_LAST: Final = {
    2: frozenset(c for i, c in enumerate(_B64URL_ALPHABET) if not i & 0x0F),
    3: frozenset(c for i, c in enumerate(_B64URL_ALPHABET) if not i & 0x03),
}


def json_loads(data: bytes) -> Any:
    """Parse UTF-8 JSON strictly (no duplicate names, no NaN, depth ≤ JSON_DEPTH_MAX)."""
    try:
        text = data.decode("utf-8")
        try:
            value, end = _SCAN_ONCE(text, 0)
        except StopIteration:  # leading whitespace or nothing: the full decoder decides
            end = -1
        if end != len(text):  # whitespace around the value, or trailing data
            value = _DECODER.decode(text)
    except FormatError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FormatError("not valid JSON", reason="malformed-json") from exc
    # Nesting deeper than the limit needs more opening brackets than the limit;
    # counting them in C spares the walk for the many small values we parse.
    if data.count(b"[") + data.count(b"{") > JSON_DEPTH_MAX:
        _depth(value, JSON_DEPTH_MAX)
    return value


def b64url_decode_strict(text: str) -> bytes:
    """Canonical unpadded base64url (RFC 7515 §2) → bytes; FormatError otherwise.

    Same contract as ``ledger.keys.b64url_decode`` but checks the alphabet and the
    unused trailing bits directly instead of re-encoding, as it runs on every part.
    """
    rest = len(text) % 4
    if rest == 1:
        raise FormatError("not base64url", reason="malformed-base64url")
    try:
        standard = text.encode("ascii").translate(URL_TO_STD) + PADDING[rest]
        raw = binascii.a2b_base64(standard, strict_mode=True)
    except (ValueError, TypeError) as exc:  # UnicodeEncodeError is a ValueError
        raise FormatError("not base64url", reason="malformed-base64url") from exc
    if rest and text[-1] not in CANONICAL_LAST[rest]:
        raise FormatError("non-canonical base64url", reason="malformed-base64url")
    return raw


def b64url_sha256(data: bytes) -> str:
    """base64url(SHA-256(data)), unpadded: SD-JWT digests and ``sd_hash``."""
    encoded = binascii.b2a_base64(hashlib.sha256(data).digest(), newline=False)
    return encoded[:43].translate(STD_TO_URL).decode("ascii")  # 32 bytes: 43 chars + "="


def json_dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON for JOSE objects and disclosures."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def b64_json(part: str) -> Any:
    """Decode one base64url part into JSON; FormatError on any defect."""
    try:
        raw = b64url_decode_strict(part)
    except FormatError as exc:
        raise FormatError("not canonical base64url", reason="malformed-jws") from exc
    return json_loads(raw)


# --- keys -----------------------------------------------------------------------------
class PreparedKey:
    """A public key for repeated JWS checks. Its library object is prepared once by
    :class:`ledger.keys.PublicKey` (which does the verification).

    With ``memo_max > 0`` it also remembers up to that many (message, signature)
    pairs that verified, so the identical issuer-signed JWT presented again is
    not re-checked with elliptic-curve arithmetic. Only successes are kept, keyed
    by the exact bytes, so the memo can never turn a bad signature into a good one.
    """

    __slots__ = ("_memo", "public_key")

    def __init__(self, public_key: PublicKey, *, memo_max: int = 0) -> None:
        self.public_key = public_key
        self._memo: BoundedLRU[tuple[bytes, bytes], bool] | None = (
            BoundedLRU(memo_max) if memo_max > 0 else None)

    @property
    def alg(self) -> str:
        return self.public_key.alg

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True iff ``signature`` (64 bytes, JWS form) signs ``message`` under this key."""
        if len(signature) != 64:
            return False
        memo = self._memo
        if memo is None:
            return self.public_key.verify(message, signature)
        entry = (message, signature)
        if memo.get(entry) is None:
            if not self.public_key.verify(message, signature):
                return False
            memo.put(entry, True)
        return True


class PreparedKeys:
    """A bounded LRU of :class:`PreparedKey` by public JWK content, for resolvers
    that meet the same keys again and again (ledger-resolved issuer and holder keys,
    ``cnf.jwk``): a hit skips point validation, the thumbprint and the library key
    object. The cache key is the JWK's required members (``kty``, ``crv``, ``x``,
    ``y``: what the RFC 7638 thumbprint hashes, compared as they are rather than
    hashed), so JWKs that share an entry are the same key. Safe to share between
    threads (:class:`~ledger.lru.BoundedLRU`)."""

    __slots__ = ("_entries",)

    def __init__(self, entries_max: int = PREPARED_KEYS_MAX) -> None:
        self._entries: BoundedLRU[tuple[object, ...], PreparedKey] = BoundedLRU(entries_max)

    def from_jwk(self, jwk: Mapping[str, object]) -> PreparedKey:
        """The prepared key of a public JWK; raises :class:`KeyError_` like
        ``PublicKey.from_jwk`` (private members are ignored here too)."""
        if not isinstance(jwk, Mapping):
            raise KeyError_("JWK must be an object")
        get = jwk.get
        members: tuple[object, ...] = (get("kty"), get("crv"), get("x"), get("y"))
        try:
            prepared = self._entries.get(members)
        except TypeError:  # an unhashable member: not a JWK from_jwk accepts either
            prepared = None
            members = ()
        if prepared is None:
            prepared = PreparedKey(PublicKey.from_jwk(jwk))
            if members:
                self._entries.put(members, prepared)
        return prepared

    def get(self, public_key: PublicKey) -> PreparedKey:
        """The prepared key of an already parsed public key."""
        return self.from_jwk(public_key.to_jwk())

    def __len__(self) -> int:
        return len(self._entries)


# --- JWS ------------------------------------------------------------------------------
class Jws(NamedTuple):
    """A parsed (not yet verified) compact JWS. Immutable; a NamedTuple rather than a
    frozen dataclass because it is built twice per verification and a frozen
    dataclass's ``__init__`` costs three times as much."""

    header: JsonObject
    payload: JsonObject
    signing_input: bytes  # ASCII ``b64(header) . b64(payload)``
    signature: bytes

    @property
    def alg(self) -> str:
        return str(self.header["alg"])

    def verify(self, key: PreparedKey) -> bool:
        """True iff the key's algorithm is the header's and the signature checks."""
        return key.alg == self.alg and key.verify(self.signing_input, self.signature)


def parse(token: str, *, chars_max: int = JWS_CHARS_MAX) -> Jws:
    """Parse a compact JWS strictly. Precondition: ``token`` is a str."""
    if len(token) > chars_max:
        raise FormatError("JWS exceeds the size limit", reason="too-large")
    parts = token.split(".")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise FormatError("JWS must have three parts", reason="malformed-jws")
    encoded_header, encoded_payload, encoded_signature = parts
    cached = _HEADERS.peek(encoded_header)  # oldest out first: a hit need not be marked
    header = _parse_header(encoded_header) if cached is None else dict(cached)
    payload = b64_json(encoded_payload)
    if not isinstance(payload, dict):
        raise FormatError("JWS payload must be a JSON object", reason="malformed-jws")
    try:
        signature = b64url_decode_strict(encoded_signature)
    except FormatError as exc:
        raise FormatError("JWS signature is not base64url", reason="malformed-jws") from exc
    signing_input = (encoded_header + "." + encoded_payload).encode("ascii")
    return Jws(header, payload, signing_input, signature)


def _parse_header(encoded: str) -> JsonObject:
    header = b64_json(encoded)
    if not isinstance(header, dict):
        raise FormatError("JWS header must be a JSON object", reason="malformed-jws")
    # The algorithm is judged before anything else, so "none" with its empty
    # signature is reported as a forbidden algorithm, not a format slip.
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGS:
        raise FormatError(f"algorithm {alg!r} is not allowed", reason="alg-not-allowed")
    if "crit" in header:
        # We understand no extension, so RFC 7515 §4.1.11 obliges us to reject.
        raise FormatError("critical header parameters are not supported", reason="malformed-jws")
    if not any(isinstance(v, (dict, list)) for v in header.values()):  # a copy is then a full copy
        _HEADERS.put(encoded, dict(header))
    return header


def sign(header: Mapping[str, Any], payload: Mapping[str, Any], key: SigningKey) -> str:
    """Compact JWS over ``payload``; ``alg`` is set from the key and overrides the header's."""
    full_header = dict(header)
    full_header["alg"] = key.alg
    signing_input = b64url_encode(json_dumps(full_header)) + "." + b64url_encode(json_dumps(payload))
    return signing_input + "." + b64url_encode(key.sign(signing_input.encode("ascii")))


__all__ = [
    "Jws",
    "PreparedKey",
    "PreparedKeys",
    "b64_json",
    "b64url_decode_strict",
    "b64url_sha256",
    "json_dumps",
    "json_loads",
    "parse",
    "sign",
]
