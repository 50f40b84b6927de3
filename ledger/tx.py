"""Signed transactions: the envelope every change to the ledger travels in.

A transaction body is ``{v, chain_id, type, sender, payload, nonce, expires_at_ms}``;
its id is ``tagged_hash(TX, encode(body))``. Each signature signs the 32-byte id
and carries the signer's public JWK, so signatures verify without state; whether a
signer is *authorised* for the sender is decided by execution against the state.

Replay guard: a random 16-byte nonce makes every id unique, the executor rejects an
id that is already committed, and ``expires_at_ms`` bounds how long a signed
transaction stays admissible (``block time < expires_at_ms <= block time + TTL``).
"""

from __future__ import annotations

import base64
import functools
import re
import secrets
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ledger.constants import (
    CHAIN_ID_CHARS_MAX,
    DID_CHARS_MAX,
    ENCODING_BYTES_MAX,
    PROTOCOL_VERSION,
    TX_BYTES_MAX,
    TX_KEY_CACHE_ENTRIES_MAX,
    TX_NONCE_BYTES,
    TX_PARSE_MEMO_BYTES_MAX,
    TX_PARSE_MEMO_ENTRIES_MAX,
    TX_SIGNATURES_MAX,
    TX_TTL_MS_MAX,
    TX_TYPE_CHARS_MAX,
)
from ledger.encoding import Value, decode_map_entries, encode, map_without
from ledger.errors import (
    EncodingError,
    KeyError_,
    LedgerError,
    ReplayError,
    SignatureError,
    TransactionError,
    UnknownFieldError,
)
from ledger.hashing import HashTag, tagged_hash
from ledger.keys import PublicKey, SigningKey
from ledger.lru import BoundedLRU

_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
_BODY_FIELDS = frozenset({"v", "chain_id", "type", "sender", "payload", "nonce", "expires_at_ms"})
_TX_FIELDS = _BODY_FIELDS | {"sigs"}
_SIG_FIELDS = frozenset({"jwk", "sig"})


@dataclass(frozen=True, slots=True)
class TxSignature:
    """One signature over the transaction id, with the signer's public key."""

    public_key: PublicKey
    signature: bytes

    @property
    def key_id(self) -> str:
        return self.public_key.key_id

    def to_value(self) -> dict[str, Value]:
        return {"jwk": dict(self.public_key.to_jwk()), "sig": self.signature}

    @classmethod
    def from_value(cls, value: Value) -> TxSignature:
        if not isinstance(value, dict):
            raise TransactionError("signature must be a map")
        unknown = set(value) - _SIG_FIELDS
        if unknown:
            raise UnknownFieldError(f"signature: unknown field(s) {sorted(unknown)}")
        jwk, sig = value.get("jwk"), value.get("sig")
        if not isinstance(jwk, dict) or not isinstance(sig, bytes):
            raise TransactionError("signature needs jwk (map) and sig (bytes)")
        members = tuple(jwk.items())
        if all(type(member) is str for member in jwk.values()):
            return cls(_exact_public_key(members), sig)
        return cls(_exact_public_key.__wrapped__(members), sig)  # unhashable: not cached


# The body's first entry, "v": the only key that sorts before "sigs" (keys sort by their
# encoded bytes: shorter first, then bytewise; "type" is the other four-letter key).
_VERSION_ENTRY = encode("v") + encode(PROTOCOL_VERSION)
_SIGS_KEY = encode("sigs")


def _with_signatures(body: bytes, sigs: list[Value]) -> bytes:
    """The transaction's canonical bytes from its body's and its signature list: a map's
    encoding is its head followed by its entries in key order, so "sigs" is spliced in
    after the first entry and the head counts one entry more.

    Requires ``body`` = ``encode(body_value())`` (seven entries, "v" first)."""
    assert body[0] == 0xA7 and body.startswith(_VERSION_ENTRY, 1)
    split = 1 + len(_VERSION_ENTRY)
    full = b"".join((b"\xa8", body[1:split], _SIGS_KEY, encode(sigs), body[split:]))
    if len(full) > ENCODING_BYTES_MAX:
        raise EncodingError(f"encoded value is {len(full)} bytes, limit {ENCODING_BYTES_MAX}")
    return full


@functools.lru_cache(maxsize=TX_KEY_CACHE_ENTRIES_MAX)
def _exact_public_key(members: tuple[tuple[str, str], ...]) -> PublicKey:
    """The public key a signature's JWK members denote, if they are exactly its public JWK.

    A pure function of ``members`` (same members, same key or same error), cached
    because the same signers sign many transactions and parsing a key (base64url,
    point checks, the thumbprint) costs more than the rest of a signature's parse.
    """
    jwk = dict(members)
    try:
        key = PublicKey.from_jwk(jwk)
    except KeyError_ as exc:
        raise TransactionError(f"signature key: {exc}", reason="bad-key") from exc
    if dict(key.to_jwk()) != jwk:
        raise UnknownFieldError("signature jwk carries members beyond the public key")
    return key


@dataclass(frozen=True, slots=True)
class Transaction:
    """A signed ledger transaction. Construct with :meth:`create`, then :meth:`sign`."""

    chain_id: str
    type: str
    sender: str
    payload: dict[str, Value]
    nonce: bytes
    expires_at_ms: int
    signatures: tuple[TxSignature, ...] = ()
    # Memos (not part of the value): the canonical bytes, the body's canonical bytes
    # (the id's preimage; parsing splices them out of the bytes rather than encoding
    # the body again), the id, and the chain id for which check_stateless already
    # passed on this very object.
    _encoded: bytes | None = field(init=False, default=None, repr=False, compare=False)
    _body: bytes | None = field(init=False, default=None, repr=False, compare=False)
    _tx_id: bytes | None = field(init=False, default=None, repr=False, compare=False)
    _checked_for: str | None = field(init=False, default=None, repr=False, compare=False)

    @property
    def tx_id(self) -> bytes:
        """``tagged_hash(TX, encode(body))``: the id every signature signs."""
        if self._tx_id is None:
            object.__setattr__(self, "_tx_id", tagged_hash(HashTag.TX, self._body_bytes()))
        assert self._tx_id is not None
        return self._tx_id

    def _body_bytes(self) -> bytes:
        if self._body is None:
            object.__setattr__(self, "_body", encode(self.body_value()))
        assert self._body is not None
        return self._body

    # --- construction -------------------------------------------------------
    @classmethod
    def create(
        cls,
        *,
        chain_id: str,
        type: str,  # the field's name in the format
        sender: str,
        payload: Mapping[str, Value],
        expires_at_ms: int,
        nonce: bytes | None = None,
    ) -> Transaction:
        return cls(
            chain_id=chain_id,
            type=type,
            sender=sender,
            payload=dict(payload),
            nonce=nonce if nonce is not None else secrets.token_bytes(TX_NONCE_BYTES),
            expires_at_ms=expires_at_ms,
        )

    def sign(self, *keys: SigningKey) -> Transaction:
        """Return a copy with signatures by ``keys`` added (each over the tx id)."""
        added = tuple(TxSignature(k.public_key, k.sign(self.tx_id)) for k in keys)
        return Transaction(
            self.chain_id, self.type, self.sender, self.payload, self.nonce,
            self.expires_at_ms, self.signatures + added,
        )

    # --- canonical forms ----------------------------------------------------
    def body_value(self) -> dict[str, Value]:
        return {
            "v": PROTOCOL_VERSION,
            "chain_id": self.chain_id,
            "type": self.type,
            "sender": self.sender,
            "payload": self.payload,
            "nonce": self.nonce,
            "expires_at_ms": self.expires_at_ms,
        }

    def to_value(self) -> dict[str, Value]:
        value = self.body_value()
        value["sigs"] = [s.to_value() for s in self.signatures]
        return value

    def to_bytes(self) -> bytes:
        """``encode(self.to_value())``, built from the kept body bytes."""
        if self._encoded is None:
            object.__setattr__(self, "_encoded",
                               _with_signatures(self._body_bytes(), [s.to_value() for s in self.signatures]))
        assert self._encoded is not None
        return self._encoded

    @classmethod
    def from_value(cls, value: Value) -> Transaction:
        """Strictly parse a transaction value; unknown fields are rejected."""
        if not isinstance(value, dict):
            raise TransactionError("transaction must be a map")
        unknown = set(value) - _TX_FIELDS
        if unknown:
            raise UnknownFieldError(f"transaction: unknown field(s) {sorted(unknown)}")
        missing = _TX_FIELDS - set(value)
        if missing:
            raise TransactionError(f"transaction: missing field(s) {sorted(missing)}", reason="missing-field")
        if value["v"] != PROTOCOL_VERSION:
            raise TransactionError(f"unsupported version {value['v']!r}", reason="unsupported-version")
        fields: dict[str, Any] = {}
        for name, kind in (("chain_id", str), ("type", str), ("sender", str), ("payload", dict),
                           ("nonce", bytes), ("expires_at_ms", int)):
            item = value[name]
            if not isinstance(item, kind) or isinstance(item, bool):
                raise TransactionError(f"transaction.{name}: wrong type", reason="bad-field")
            fields[name] = item
        sigs = value["sigs"]
        if not isinstance(sigs, list):
            raise TransactionError("transaction.sigs must be a list", reason="bad-field")
        if len(sigs) > TX_SIGNATURES_MAX:
            raise TransactionError(f"more than {TX_SIGNATURES_MAX} signatures", reason="too-many-signatures")
        return cls(signatures=tuple(TxSignature.from_value(s) for s in sigs), **fields)

    @classmethod
    def from_bytes(cls, data: bytes) -> Transaction:
        """Strictly parse canonical transaction bytes. The same bytes parse to the same
        (immutable) transaction, so a recent parse is reused: a validator sees each
        transaction by gossip first, then again inside the proposed block."""
        if len(data) > TX_BYTES_MAX:
            raise TransactionError(f"transaction is {len(data)} bytes, limit {TX_BYTES_MAX}", reason="too-large")
        data = bytes(data)
        known = _PARSED.peek(data)  # oldest out first: a hit need not be marked
        if known is not None:
            return known
        tx = cls._parse(data)
        _PARSED.put(data, tx)
        return tx

    @classmethod
    def _parse(cls, data: bytes) -> Transaction:
        try:
            value, spans = decode_map_entries(data)
        except EncodingError as exc:
            raise TransactionError(f"transaction bytes: {exc}", reason="non-canonical-encoding") from exc
        tx = cls.from_value(value)
        # Only canonical bytes decode, so encode(value) == data: keep them, and the body
        # (the same map less "sigs", which from_value required) is spliced out of them.
        object.__setattr__(tx, "_encoded", data)
        object.__setattr__(tx, "_body", map_without(data, spans, "sigs"))
        return tx

    def to_b64(self) -> str:
        return base64.urlsafe_b64encode(self.to_bytes()).rstrip(b"=").decode("ascii")

    @classmethod
    def from_b64(cls, text: str) -> Transaction:
        if not isinstance(text, str) or len(text) > (TX_BYTES_MAX * 4) // 3 + 4:
            raise TransactionError("transaction text missing or too large", reason="too-large")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (ValueError, TypeError) as exc:
            raise TransactionError("transaction is not base64url", reason="bad-encoding") from exc
        return cls.from_bytes(raw)

    # --- checks -------------------------------------------------------------
    @property
    def signer_ids(self) -> tuple[str, ...]:
        return tuple(s.key_id for s in self.signatures)

    def check_stateless(self, chain_id: str) -> None:
        """Checks that need no state: shape, sizes, chain, signatures over the id.

        Raises :class:`TransactionError` or :class:`SignatureError`. A pass is
        remembered on this object (it is immutable), so admission and execution
        of the same object verify signatures once.
        """
        if self._checked_for == chain_id:
            return
        if self.chain_id != chain_id:
            raise TransactionError(f"chain id {self.chain_id!r} is not {chain_id!r}", reason="wrong-chain")
        if len(self.chain_id) > CHAIN_ID_CHARS_MAX:
            raise TransactionError("chain id too long", reason="bad-field")
        if len(self.type) > TX_TYPE_CHARS_MAX or not _TYPE_RE.match(self.type):
            raise TransactionError(f"bad transaction type {self.type[:64]!r}", reason="bad-type")
        if not self.sender or len(self.sender) > DID_CHARS_MAX:
            raise TransactionError("sender missing or too long", reason="bad-sender")
        if len(self.nonce) != TX_NONCE_BYTES:
            raise TransactionError(f"nonce must be {TX_NONCE_BYTES} bytes", reason="bad-nonce")
        if not 0 < self.expires_at_ms < 2**63:
            raise TransactionError("expires_at_ms out of range", reason="bad-field")
        size = len(self.to_bytes())
        if size > TX_BYTES_MAX:
            raise TransactionError(f"transaction is {size} bytes, limit {TX_BYTES_MAX}", reason="too-large")
        if not self.signatures:
            raise SignatureError("transaction is not signed", reason="missing-signature")
        if len(self.signatures) > TX_SIGNATURES_MAX:
            raise TransactionError("too many signatures", reason="too-many-signatures")
        if len(set(self.signer_ids)) != len(self.signatures):
            raise SignatureError("the same key signed twice", reason="duplicate-signature")
        for sig in self.signatures:
            if not sig.public_key.verify(self.tx_id, sig.signature):
                raise SignatureError(f"invalid signature by {sig.key_id}")
        object.__setattr__(self, "_checked_for", chain_id)

    def check_expiry(self, block_time_ms: int) -> None:
        """Admissible at ``block_time_ms`` only if not expired and not too far ahead."""
        if self.expires_at_ms <= block_time_ms:
            raise ReplayError("transaction expired", reason="expired-transaction")
        if self.expires_at_ms - block_time_ms > TX_TTL_MS_MAX:
            raise TransactionError("expiry too far in the future", reason="expiry-too-far")

    def to_view(self) -> dict[str, Any]:
        """A human-readable JSON view (bytes as hex); not a signing form."""
        return {
            "id": self.tx_id.hex(),
            "chain_id": self.chain_id,
            "type": self.type,
            "sender": self.sender,
            "payload": _view(self.payload),
            "nonce": self.nonce.hex(),
            "expires_at_ms": self.expires_at_ms,
            "signers": list(self.signer_ids),
        }


def _encoded_bytes(data: bytes, _tx: Transaction) -> int:
    return len(data)


# Recently parsed transactions by their exact canonical bytes, bounded in entries and
# in bytes; only successful parses are kept, so a rejected input is checked again
# every time. A memo of a pure function (same bytes, same immutable transaction), as
# functools.lru_cache would be, so it is the function's own and changes no result.
_PARSED: Final[BoundedLRU[bytes, Transaction]] = BoundedLRU(
    TX_PARSE_MEMO_ENTRIES_MAX, weigh=_encoded_bytes, weight_max=TX_PARSE_MEMO_BYTES_MAX)


def refuse_replay(tx_id: bytes, is_committed: Callable[[bytes], bool],
                  seen: Container[bytes] = frozenset()) -> None:
    """Raise :class:`ReplayError` if ``tx_id`` is committed (``is_committed``: a validator's
    :meth:`ledger.storage.LedgerStore.has_tx`) or came earlier in the same block (``seen``).
    The one replay rule: execution asks it for every transaction, mempool admission
    first of all (a replay is refused before a full pool is), the store before it writes."""
    if tx_id in seen or is_committed(tx_id):
        raise ReplayError("transaction already committed", reason="replayed-transaction")


def _view(value: Value) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _view(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_view(v) for v in value]
    return value


__all__ = ["LedgerError", "Transaction", "TxSignature", "refuse_replay"]
