"""Blocks, votes and commit certificates.

A block header commits to everything a verifier needs: the previous header,
the block's transactions (RFC 9162 Merkle root of tx ids), the append-only log
of every transaction so far (root and size), the state root *after* executing
the block (execute-then-vote), the validator set that certifies this block and
the one that certifies the next.

A commit certificate is a set of precommit signatures for one header hash, from
validators holding more than 2/3 of the power of the set named in that header.
Anyone holding the genesis can check the whole chain: see :mod:`ledger.chain`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.constants import BLOCK_TXS_MAX, HASH_BYTES, PROTOCOL_VERSION
from ledger.encoding import Canonical, Value, decode, encode, nesting_depth
from ledger.errors import BlockError, CertificateError, TransactionError
from ledger.hashing import HashTag, hash_value
from ledger.keys import PublicKey, SigningKey, b64url_decode, b64url_encode
from ledger.merkle import leaf_hash, root_of_leaf_hashes
from ledger.tx import Transaction
from ledger.validators import ValidatorSet

PREVOTE = "prevote"
PRECOMMIT = "precommit"
VOTE_KINDS = (PREVOTE, PRECOMMIT)

_HEADER_FIELDS = (
    "v", "chain_id", "height", "round", "prev_hash", "time_ms", "tx_root", "tx_count",
    "log_root", "log_size", "state_root", "validator_set_hash", "next_validator_set_hash",
    "proposer", "last_commit",
)
_HASH_FIELDS = frozenset({
    "prev_hash", "tx_root", "log_root", "state_root", "validator_set_hash", "next_validator_set_hash",
})
_INT_FIELDS = frozenset({"v", "height", "round", "time_ms", "tx_count", "log_size"})

KnownTxs = Callable[[bytes], Transaction | None]
"""Looks up an already parsed transaction by its exact canonical bytes (or None)."""

VoteCheck = Callable[[PublicKey, "Vote"], bool]
"""Checks one signed vote against its signer's key: ``(key, vote) -> valid?``."""


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 MTH over raw leaf data (small lists: a block's tx ids)."""
    return root_of_leaf_hashes([leaf_hash(d) for d in leaves])


@dataclass(frozen=True, slots=True)
class BlockHeader:
    chain_id: str
    height: int
    round: int
    prev_hash: bytes
    time_ms: int
    tx_root: bytes
    tx_count: int
    log_root: bytes
    log_size: int
    state_root: bytes
    validator_set_hash: bytes
    next_validator_set_hash: bytes
    proposer: str  # key id of the proposing validator
    # The proposer's certificate for block height - 1 (None at height 1). Its signer set is
    # what the proposer rule reads (ValidatorSet.inactive); validators check its signatures
    # before voting, so a committed header names only real signers.
    last_commit: CommitCertificate | None = None
    hash: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in _HASH_FIELDS:
            if len(getattr(self, name)) != HASH_BYTES:
                raise BlockError(f"header.{name} must be {HASH_BYTES} bytes", reason="bad-header")
        if self.height < 1 or self.round < 0 or self.time_ms < 0 or self.tx_count < 0 or self.log_size < 0:
            raise BlockError("header integers out of range", reason="bad-header")
        last = self.last_commit
        if last is not None and (last.height != self.height - 1 or last.chain_id != self.chain_id
                                 or last.block_hash != self.prev_hash):
            raise BlockError("header.last_commit is not for the previous block", reason="bad-header")
        object.__setattr__(self, "hash", hash_value(HashTag.BLOCK_HEADER, self.to_value()))

    def to_value(self) -> dict[str, Value]:
        value: dict[str, Value] = {"v": PROTOCOL_VERSION}
        for name in _HEADER_FIELDS[1:-1]:
            value[name] = getattr(self, name)
        value["last_commit"] = None if self.last_commit is None else self.last_commit.to_value()
        return value

    @classmethod
    def from_value(cls, value: Value) -> BlockHeader:
        if not isinstance(value, dict) or set(value) != set(_HEADER_FIELDS):
            raise BlockError("header: wrong fields", reason="bad-header")
        if value["v"] != PROTOCOL_VERSION:
            raise BlockError("header: unsupported version", reason="unsupported-version")
        args: dict[str, Any] = {}
        last = value["last_commit"]
        args["last_commit"] = None if last is None else CommitCertificate.from_value(last)
        for name in _HEADER_FIELDS[1:-1]:
            item = value[name]
            if name in _HASH_FIELDS:
                ok = isinstance(item, bytes)
            elif name in _INT_FIELDS:
                ok = type(item) is int
            else:
                ok = isinstance(item, str)
            if not ok:
                raise BlockError(f"header.{name}: wrong type", reason="bad-header")
            args[name] = item
        return cls(**args)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"hash": self.hash.hex()}
        for name in _HEADER_FIELDS[1:-1]:
            item = getattr(self, name)
            out[name] = item.hex() if isinstance(item, bytes) else item
        out["last_commit"] = None if self.last_commit is None else self.last_commit.to_json()
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> BlockHeader:
        """Parse the JSON view; if it carries ``hash``, it must match."""
        if not isinstance(obj, Mapping):
            raise BlockError("header must be an object", reason="bad-header")
        value: dict[str, Value] = {"v": PROTOCOL_VERSION}
        try:
            for name in _HEADER_FIELDS[1:-1]:
                item = obj[name]
                value[name] = bytes.fromhex(item) if name in _HASH_FIELDS else item
            last = obj.get("last_commit")
            value["last_commit"] = None if last is None else CommitCertificate.from_json(last).to_value()
        except (KeyError, TypeError, ValueError) as exc:
            raise BlockError(f"header JSON: {exc}", reason="bad-header") from exc
        header = cls.from_value(value)
        if "hash" in obj and obj["hash"] != header.hash.hex():
            raise BlockError("header hash does not match its fields", reason="bad-header")
        return header


@dataclass(frozen=True, slots=True)
class Vote:
    """A prevote or precommit for a block hash (``None`` = nil) at (height, round)."""

    chain_id: str
    height: int
    round: int
    kind: str
    block_hash: bytes | None
    validator: str  # key id
    signature: bytes = b""

    def signing_bytes(self) -> bytes:
        """The 32-byte digest a validator signs (VOTE tag over the unsigned vote)."""
        return hash_value(HashTag.VOTE, self.body_value())

    def body_value(self) -> dict[str, Value]:
        return {
            "chain_id": self.chain_id, "height": self.height, "round": self.round,
            "kind": self.kind, "block_hash": self.block_hash, "validator": self.validator,
        }

    def to_value(self) -> dict[str, Value]:
        value = self.body_value()
        value["sig"] = self.signature
        return value

    @classmethod
    def from_value(cls, value: Value) -> Vote:
        fields = {"chain_id", "height", "round", "kind", "block_hash", "validator", "sig"}
        if not isinstance(value, dict) or set(value) != fields:
            raise BlockError("vote: wrong fields", reason="bad-vote")
        bh = value["block_hash"]
        if not (isinstance(value["chain_id"], str) and type(value["height"]) is int
                and type(value["round"]) is int and value["kind"] in VOTE_KINDS
                and (bh is None or (isinstance(bh, bytes) and len(bh) == HASH_BYTES))
                and isinstance(value["validator"], str) and isinstance(value["sig"], bytes)):
            raise BlockError("vote: wrong field types", reason="bad-vote")
        return cls(value["chain_id"], value["height"], value["round"], value["kind"], bh,
                   value["validator"], value["sig"])

    def signed(self, key: SigningKey) -> Vote:
        return Vote(self.chain_id, self.height, self.round, self.kind, self.block_hash,
                    self.validator, key.sign(self.signing_bytes()))

    def verify(self, validators: ValidatorSet) -> bool:
        member = validators.get(self.validator)
        return member is not None and member.public_key.verify(self.signing_bytes(), self.signature)


@dataclass(frozen=True, slots=True)
class CommitCertificate:
    """Precommit signatures (validator key id → signature) for one block at one round."""

    chain_id: str
    height: int
    round: int
    block_hash: bytes
    signatures: tuple[tuple[str, bytes], ...]

    @property
    def signers(self) -> frozenset[str]:
        """Key ids of the validators whose precommits this certificate holds."""
        return frozenset(v for v, _ in self.signatures)

    def precommit(self, validator: str, signature: bytes = b"") -> Vote:
        return Vote(self.chain_id, self.height, self.round, PRECOMMIT, self.block_hash, validator, signature)

    def check_header(self, header: BlockHeader) -> None:
        """Raise :class:`CertificateError` unless this certificate names ``header`` (its hash,
        height and chain). The first check of :meth:`verify`; the store runs it alone before
        it writes a certificate beside a header (:meth:`ledger.storage.LedgerStore.append_block`)."""
        if (self.block_hash != header.hash or self.height != header.height
                or self.chain_id != header.chain_id):
            raise CertificateError("certificate is for another block", reason="certificate-mismatch")

    def verify(self, header: BlockHeader, validators: ValidatorSet, check_vote: VoteCheck | None = None) -> None:
        """Raise :class:`CertificateError` unless > 2/3 of ``validators`` precommitted ``header``.

        Requires ``validators.hash == header.validator_set_hash`` (checked here).
        ``check_vote`` verifies each precommit (default: the signer's public key over
        :meth:`Vote.signing_bytes`); the consensus core passes its signature hook, which
        a driver or the simulator may memoize. With the default, a certificate that
        verified is remembered by the set (``validators.certified``): a light client
        checks the same certified head for every read of one verification. A caller's
        own ``check_vote`` is always asked.
        """
        remembered = (self, header.hash)
        if check_vote is None and validators.certified.peek(remembered):  # a hit need not be marked
            return
        if validators.hash != header.validator_set_hash:
            raise CertificateError("certificate checked against the wrong validator set",
                                   reason="wrong-validator-set")
        self.check_header(header)
        seen: set[str] = set()
        for validator, signature in self.signatures:
            if validator in seen:
                raise CertificateError("duplicate signer in certificate", reason="duplicate-signer")
            seen.add(validator)
            member = validators.get(validator)
            if member is None:
                raise CertificateError(f"signer {validator} is not a validator", reason="unknown-signer")
            vote = self.precommit(validator, signature)
            if not (check_vote or _signature_ok)(member.public_key, vote):
                raise CertificateError(f"invalid precommit signature by {validator}",
                                       reason="bad-certificate-signature")
        if not validators.has_quorum(seen):
            raise CertificateError(
                f"signers hold {validators.power_of(seen)} of {validators.total_power} power; "
                f"{validators.quorum_power} needed", reason="insufficient-quorum")
        if check_vote is not None:
            return
        validators.certified.put(remembered, True)

    def to_value(self) -> dict[str, Value]:
        return {
            "chain_id": self.chain_id, "height": self.height, "round": self.round,
            "block_hash": self.block_hash,
            "sigs": [[v, s] for v, s in self.signatures],
        }

    @classmethod
    def from_value(cls, value: Value) -> CommitCertificate:
        fields = {"chain_id", "height", "round", "block_hash", "sigs"}
        if not isinstance(value, dict) or set(value) != fields:
            raise CertificateError("certificate: wrong fields", reason="bad-certificate")
        sigs = value["sigs"]
        if not (isinstance(value["chain_id"], str) and type(value["height"]) is int
                and type(value["round"]) is int and isinstance(value["block_hash"], bytes)
                and isinstance(sigs, list)):
            raise CertificateError("certificate: wrong field types", reason="bad-certificate")
        pairs: list[tuple[str, bytes]] = []
        for pair in sigs:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)
                    and isinstance(pair[1], bytes)):
                raise CertificateError("certificate: bad signature entry", reason="bad-certificate")
            pairs.append((pair[0], pair[1]))
        return cls(value["chain_id"], value["height"], value["round"], value["block_hash"], tuple(pairs))

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id, "height": self.height, "round": self.round,
            "block_hash": self.block_hash.hex(),
            "signatures": [{"validator": v, "sig": b64url_encode(s)} for v, s in self.signatures],
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> CommitCertificate:
        try:
            pairs = tuple((str(e["validator"]), b64url_decode(e["sig"])) for e in obj["signatures"])
            return cls(str(obj["chain_id"]), int(obj["height"]), int(obj["round"]),
                       bytes.fromhex(obj["block_hash"]), pairs)
        except Exception as exc:  # any malformed input becomes one typed error
            raise CertificateError(f"certificate JSON: {exc}", reason="bad-certificate") from exc


def _signature_ok(key: PublicKey, vote: Vote) -> bool:
    return key.verify(vote.signing_bytes(), vote.signature)


def certify(header: BlockHeader, signers: Iterable[SigningKey]) -> CommitCertificate:
    """The certificate a decision of ``header`` by ``signers`` produces: each key's precommit
    signature for it at the header's round, ordered by key id as the consensus core orders
    them. For tests, the in-process dev node and tools that hold validator keys; whether
    the signers are a quorum of the right set is :meth:`CommitCertificate.verify`'s to say."""
    unsigned = CommitCertificate(header.chain_id, header.height, header.round, header.hash, ())
    signatures = tuple(sorted(
        (key.key_id, key.sign(unsigned.precommit(key.key_id).signing_bytes())) for key in signers))
    return CommitCertificate(header.chain_id, header.height, header.round, header.hash, signatures)


@dataclass(frozen=True, slots=True)
class Block:
    header: BlockHeader
    txs: tuple[Transaction, ...]
    # Memo (not part of the value): the canonical encoding, made once and spliced into
    # every message and WAL record that carries this block (proposal, lock, decision…).
    _canonical: Canonical | None = field(init=False, default=None, repr=False, compare=False)
    # Memo: check_body passed on this very object. Header and body are immutable, so the
    # answer cannot change; a validator checks one block object on receipt, before its
    # vote and again when storing it.
    _body_checked: bool = field(init=False, default=False, repr=False, compare=False)

    def check_body(self) -> None:
        """The body matches the header: count and Merkle root of tx ids."""
        if self._body_checked:
            return
        if len(self.txs) > BLOCK_TXS_MAX:
            raise BlockError(f"more than {BLOCK_TXS_MAX} transactions", reason="block-too-large")
        if len(self.txs) != self.header.tx_count:
            raise BlockError("tx_count does not match the body", reason="tx-root-mismatch")
        if merkle_root([t.tx_id for t in self.txs]) != self.header.tx_root:
            raise BlockError("tx_root does not match the body", reason="tx-root-mismatch")
        object.__setattr__(self, "_body_checked", True)

    @property
    def hash(self) -> bytes:
        return self.header.hash

    def to_value(self) -> dict[str, Value]:
        # Each transaction travels as a byte string holding its canonical encoding: a
        # reader finds its bounds without walking it, and a validator that already
        # parsed those bytes (gossip) reuses the parse (Transaction.from_bytes).
        return {"header": self.header.to_value(), "txs": [t.to_bytes() for t in self.txs]}

    def to_bytes(self) -> bytes:
        return self.canonical().data

    def canonical(self) -> Canonical:
        """:meth:`to_value` already encoded, for splicing into a larger value."""
        if self._canonical is None:
            value = self.to_value()
            object.__setattr__(self, "_canonical", Canonical(encode(value), nesting_depth(value)))
        assert self._canonical is not None
        return self._canonical

    @classmethod
    def from_value(cls, value: Value, known: KnownTxs | None = None) -> Block:
        """Strictly parse a block. ``known`` maps exact transaction bytes to an already
        parsed transaction (a validator's mempool), which is used instead of parsing
        them again: the same canonical bytes always parse to an equal transaction."""
        if type(value) is Canonical:  # a record handed over in memory, not read back from bytes
            value = decode(value.data)
        if not isinstance(value, dict) or set(value) != {"header", "txs"} or not isinstance(value["txs"], list):
            raise BlockError("block: wrong fields", reason="bad-block")
        encoded = [t for t in value["txs"] if type(t) is bytes]
        if len(encoded) != len(value["txs"]):
            raise BlockError("block: each transaction must be a byte string", reason="bad-block")
        try:
            if known is None:
                txs = tuple(Transaction.from_bytes(t) for t in encoded)
            else:
                txs = tuple(known(t) or Transaction.from_bytes(t) for t in encoded)
        except TransactionError as exc:
            raise BlockError(f"block transaction: {exc}", reason="bad-block") from exc
        return cls(BlockHeader.from_value(value["header"]), txs)


__all__ = [
    "PRECOMMIT",
    "PREVOTE",
    "Block",
    "BlockHeader",
    "CommitCertificate",
    "KnownTxs",
    "Vote",
    "VoteCheck",
    "certify",
    "merkle_root",
]
