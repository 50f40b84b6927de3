"""Consensus messages and their canonical wire form.

=================  ===========================================================  ==========
message            fields                                                       signed by
=================  ===========================================================  ==========
``Proposal``       chain_id, height, round, block, pol_round, proposer, sig      proposer
``Vote``           :class:`ledger.block.Vote` (prevote / precommit)              voter
``CommitMessage``  block, certificate (a decided block, for a lagging peer)      quorum
``SyncRequest``    chain_id, height, requester ("send me commits from height")   nobody
=================  ===========================================================  ==========

A proposal signs ``hash_value(PROPOSAL, body)`` where the body holds the block
*hash*, not the block, so the signature is cheap to check before the block is
looked at. A commit message needs no signature of its own: its certificate is a
quorum of precommit signatures over the header. A sync request is unsigned on
purpose — answering it only sends self-certifying, public data, rate limited —
and the transport already authenticates the peer.

On the wire every message is ``{"kind": <kind>, "body": <value>}`` in canonical
CBOR (:func:`encode_message` / :func:`decode_message`); parsing is strict
(unknown or missing fields are rejected) and bounded by ``MESSAGE_BYTES_MAX``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.block import Block, CommitCertificate, KnownTxs, Vote
from ledger.constants import CHAIN_ID_CHARS_MAX, KEY_ID_CHARS_MAX
from ledger.encoding import Value, decode, encode
from ledger.errors import BlockError, EncodingError
from ledger.hashing import HashTag, hash_value
from ledger.keys import SigningKey
from ledger.validators import ValidatorSet
from node.consensus.errors import MessageError
from node.consensus.limits import MESSAGE_BYTES_MAX, ROUND_MAX

KIND_PROPOSAL = "proposal"
KIND_VOTE = "vote"
KIND_COMMIT = "commit"
KIND_SYNC = "sync"

_PROPOSAL_FIELDS = frozenset({"chain_id", "height", "round", "block", "pol_round", "proposer", "sig"})


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposer's block for (height, round); ``pol_round`` is -1 or the round whose
    prevote quorum (proof of lock) justifies re-proposing this block."""

    chain_id: str
    height: int
    round: int
    block: Block
    pol_round: int
    proposer: str  # key id
    signature: bytes = b""

    def body_value(self) -> dict[str, Value]:
        return {
            "chain_id": self.chain_id, "height": self.height, "round": self.round,
            "block_hash": self.block.hash, "pol_round": self.pol_round, "proposer": self.proposer,
        }

    def signing_bytes(self) -> bytes:
        """The 32-byte digest the proposer signs (PROPOSAL tag over the body with the block hash)."""
        return hash_value(HashTag.PROPOSAL, self.body_value())

    def signed(self, key: SigningKey) -> Proposal:
        return Proposal(self.chain_id, self.height, self.round, self.block, self.pol_round,
                        self.proposer, key.sign(self.signing_bytes()))

    def verify(self, validators: ValidatorSet) -> bool:
        member = validators.get(self.proposer)
        return member is not None and member.public_key.verify(self.signing_bytes(), self.signature)

    def to_value(self) -> dict[str, Value]:
        return {
            "chain_id": self.chain_id, "height": self.height, "round": self.round,
            "block": self.block.canonical(), "pol_round": self.pol_round,
            "proposer": self.proposer, "sig": self.signature,
        }

    @classmethod
    def from_value(cls, value: Value, known: KnownTxs | None = None) -> Proposal:
        if not isinstance(value, dict) or set(value) != _PROPOSAL_FIELDS:
            raise MessageError("proposal: wrong fields", reason="bad-proposal")
        chain_id, height, round_, pol_round = value["chain_id"], value["height"], value["round"], value["pol_round"]
        proposer, sig = value["proposer"], value["sig"]
        if not (isinstance(chain_id, str) and type(height) is int and type(round_) is int
                and type(pol_round) is int and isinstance(proposer, str) and isinstance(sig, bytes)):
            raise MessageError("proposal: wrong field types", reason="bad-proposal")
        _check_envelope(chain_id, height, round_)
        if not (-1 <= pol_round < round_) or len(proposer) > KEY_ID_CHARS_MAX:
            raise MessageError("proposal: pol_round or proposer out of range", reason="bad-proposal")
        try:
            block = Block.from_value(value["block"], known)
        except BlockError as exc:
            raise MessageError(f"proposal block: {exc}", reason="bad-proposal") from exc
        return cls(chain_id, height, round_, block, pol_round, proposer, sig)


@dataclass(frozen=True, slots=True)
class CommitMessage:
    """A decided block with its certificate: brings a lagging peer up to date."""

    block: Block
    certificate: CommitCertificate

    @property
    def chain_id(self) -> str:
        return self.block.header.chain_id

    @property
    def height(self) -> int:
        return self.block.header.height

    def to_value(self) -> dict[str, Value]:
        return {"block": self.block.canonical(), "cert": self.certificate.to_value()}

    @classmethod
    def from_value(cls, value: Value, known: KnownTxs | None = None) -> CommitMessage:
        if not isinstance(value, dict) or set(value) != {"block", "cert"}:
            raise MessageError("commit: wrong fields", reason="bad-commit")
        try:
            block = Block.from_value(value["block"], known)
            cert = CommitCertificate.from_value(value["cert"])
        except BlockError as exc:
            raise MessageError(f"commit: {exc}", reason="bad-commit") from exc
        _check_envelope(cert.chain_id, cert.height, cert.round)
        return cls(block, cert)


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """"I am at ``height``: send me the commits you have from there on." (unsigned)"""

    chain_id: str
    height: int
    requester: str  # key id of the asking node (where to send the answer)

    def to_value(self) -> dict[str, Value]:
        return {"chain_id": self.chain_id, "height": self.height, "requester": self.requester}

    @classmethod
    def from_value(cls, value: Value) -> SyncRequest:
        if not isinstance(value, dict) or set(value) != {"chain_id", "height", "requester"}:
            raise MessageError("sync: wrong fields", reason="bad-sync")
        chain_id, height, requester = value["chain_id"], value["height"], value["requester"]
        if not (isinstance(chain_id, str) and type(height) is int and isinstance(requester, str)):
            raise MessageError("sync: wrong field types", reason="bad-sync")
        _check_envelope(chain_id, height, 0)
        if not 0 < len(requester) <= KEY_ID_CHARS_MAX:
            raise MessageError("sync: requester out of range", reason="bad-sync")
        return cls(chain_id, height, requester)


Message = Proposal | Vote | CommitMessage | SyncRequest

_KIND_OF: dict[type, str] = {
    Proposal: KIND_PROPOSAL, Vote: KIND_VOTE, CommitMessage: KIND_COMMIT, SyncRequest: KIND_SYNC,
}


def _check_envelope(chain_id: str, height: int, round_: int) -> None:
    if not 0 < len(chain_id) <= CHAIN_ID_CHARS_MAX:
        raise MessageError("chain id empty or too long", reason="bad-message")
    if not (1 <= height < 2**63 and 0 <= round_ < ROUND_MAX):
        raise MessageError("height or round out of range", reason="bad-message")


def message_to_value(message: Message) -> dict[str, Value]:
    kind = _KIND_OF.get(type(message))
    if kind is None:
        raise TypeError(f"not a consensus message: {type(message).__name__}")
    return {"kind": kind, "body": message.to_value()}


def message_from_value(value: Value, known: KnownTxs | None = None) -> Message:
    """Strictly parse ``{"kind", "body"}``; raises :class:`MessageError`. ``known`` (see
    :class:`ledger.block.KnownTxs`) spares parsing transactions the caller already holds."""
    if not isinstance(value, dict) or set(value) != {"kind", "body"}:
        raise MessageError("message: wrong fields", reason="bad-message")
    kind, body = value["kind"], value["body"]
    if kind == KIND_PROPOSAL:
        return Proposal.from_value(body, known)
    if kind == KIND_VOTE:
        try:
            vote = Vote.from_value(body)
        except BlockError as exc:
            raise MessageError(f"vote: {exc}", reason="bad-vote") from exc
        _check_envelope(vote.chain_id, vote.height, vote.round)
        if len(vote.validator) > KEY_ID_CHARS_MAX:
            raise MessageError("vote: validator id too long", reason="bad-vote")
        return vote
    if kind == KIND_COMMIT:
        return CommitMessage.from_value(body, known)
    if kind == KIND_SYNC:
        return SyncRequest.from_value(body)
    raise MessageError(f"unknown message kind {str(kind)[:32]!r}", reason="unknown-message-kind")


def encode_message(message: Message) -> bytes:
    data = encode(message_to_value(message))
    if len(data) > MESSAGE_BYTES_MAX:
        raise MessageError(f"message is {len(data)} bytes, limit {MESSAGE_BYTES_MAX}", reason="too-large")
    return data


def decode_message(data: bytes) -> Message:
    """Parse wire bytes (canonical CBOR only); raises :class:`MessageError`."""
    if len(data) > MESSAGE_BYTES_MAX:
        raise MessageError(f"message is {len(data)} bytes, limit {MESSAGE_BYTES_MAX}", reason="too-large")
    try:
        value = decode(data)
    except EncodingError as exc:
        raise MessageError(f"message bytes: {exc}", reason="non-canonical-encoding") from exc
    return message_from_value(value)


__all__ = [
    "KIND_COMMIT",
    "KIND_PROPOSAL",
    "KIND_SYNC",
    "KIND_VOTE",
    "CommitMessage",
    "Message",
    "Proposal",
    "SyncRequest",
    "decode_message",
    "encode_message",
    "message_from_value",
    "message_to_value",
]
