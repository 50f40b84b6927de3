"""Consensus wire messages: canonical round trips, strict parsing, signatures, limits."""

from __future__ import annotations

import hashlib

import pytest

from ledger.block import PRECOMMIT, PREVOTE, Block, CommitCertificate, Vote
from ledger.encoding import decode, encode
from ledger.keys import ALG_EDDSA, SigningKey
from node.consensus.errors import MessageError, RemoteError
from node.consensus.limits import MESSAGE_BYTES_MAX
from node.consensus.messages import (
    CommitMessage,
    Proposal,
    SyncRequest,
    decode_message,
    encode_message,
    message_to_value,
)
from tests.sim.world import World

KEY = SigningKey(ALG_EDDSA, hashlib.sha256(b"messages-test").digest())


@pytest.fixture(scope="module")
def block() -> Block:
    world = World(1, 4)
    app = world.nodes[0].app
    app.mempool.append(world._note())
    return app.build_block(1, 0)


def _proposal(block: Block, pol_round: int = -1, round_: int = 2) -> Proposal:
    return Proposal("imi-sim", 1, round_, block, pol_round, KEY.key_id).signed(KEY)


def _vote(kind: str = PREVOTE) -> Vote:
    return Vote("imi-sim", 3, 1, kind, bytes(range(32)), KEY.key_id).signed(KEY)


def test_every_message_kind_round_trips_through_canonical_bytes(block: Block) -> None:
    cert = CommitCertificate("imi-sim", 1, 0, block.hash, ((KEY.key_id, bytes(64)),))
    for message in (_proposal(block), _proposal(block, pol_round=1), _vote(), _vote(PRECOMMIT),
                    Vote("imi-sim", 3, 1, PREVOTE, None, KEY.key_id).signed(KEY),
                    CommitMessage(block, cert), SyncRequest("imi-sim", 5, KEY.key_id)):
        data = encode_message(message)
        back = decode_message(data)
        assert type(back) is type(message)
        assert encode_message(back) == data
        if not isinstance(message, (Proposal, CommitMessage)):  # blocks hold dicts: compare by bytes
            assert back == message


def test_proposal_signature_covers_every_field(block: Block) -> None:
    proposal = _proposal(block, pol_round=1)
    from ledger.validators import Validator, ValidatorSet
    validators = ValidatorSet.of([Validator("k", KEY.public_key, 1, "x:1", bytes(32))])
    assert proposal.verify(validators)
    for changed in (Proposal(proposal.chain_id, proposal.height, proposal.round, proposal.block, 0,
                             proposal.proposer, proposal.signature),
                    Proposal(proposal.chain_id, proposal.height, proposal.round + 1, proposal.block, 1,
                             proposal.proposer, proposal.signature),
                    Proposal("other", proposal.height, proposal.round, proposal.block, 1,
                             proposal.proposer, proposal.signature)):
        assert not changed.verify(validators)


@pytest.mark.parametrize("mutate", [
    lambda v: v["body"].update(extra=1),
    lambda v: v["body"].pop("sig"),
    lambda v: v.update(kind="gossip"),
    lambda v: v.update(extra=True),
    lambda v: v["body"].update(round=-1),
    lambda v: v["body"].update(height=0),
    lambda v: v["body"].update(pol_round=2),  # pol_round must be < round
    lambda v: v["body"].update(pol_round=-2),
    lambda v: v["body"].update(chain_id=""),
    lambda v: v["body"].update(proposer=1),
    lambda v: v["body"]["block"].update(txs="nope"),
], ids=["unknown-field", "missing-field", "unknown-kind", "unknown-envelope-field", "negative-round",
        "height-zero", "pol-round-too-high", "pol-round-below-minus-one", "empty-chain", "proposer-type",
        "bad-block"])
def test_malformed_proposals_are_rejected_with_a_remote_error(block: Block, mutate: object) -> None:
    value = decode(encode(message_to_value(_proposal(block))))  # as received: plain values
    mutate(value)  # type: ignore[operator]
    with pytest.raises(MessageError) as info:
        decode_message(encode(value))
    assert isinstance(info.value, RemoteError)


@pytest.mark.parametrize("field, bad", [("kind", "vote"), ("block_hash", b"short"), ("height", "1"),
                                        ("round", True), ("sig", "text")])
def test_malformed_votes_are_rejected(field: str, bad: object) -> None:
    value = message_to_value(_vote())
    body = value["body"]
    assert isinstance(body, dict)
    body[field] = bad  # type: ignore[assignment]
    with pytest.raises(MessageError):
        decode_message(encode(value))


def test_non_canonical_and_oversized_bytes_are_rejected() -> None:
    data = encode_message(_vote())
    with pytest.raises(MessageError):
        decode_message(data + b"\x00")  # trailing garbage
    with pytest.raises(MessageError):
        decode_message(data[:-1])  # truncated
    with pytest.raises(MessageError) as info:
        decode_message(b"\xa0" * (MESSAGE_BYTES_MAX + 1))
    assert info.value.reason == "too-large"


def test_sync_request_is_strict() -> None:
    value = message_to_value(SyncRequest("imi-sim", 1, KEY.key_id))
    assert decode(encode_message(SyncRequest("imi-sim", 1, KEY.key_id))) == value
    body = value["body"]
    assert isinstance(body, dict)
    body["requester"] = ""
    with pytest.raises(MessageError):
        decode_message(encode(value))
