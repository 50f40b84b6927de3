"""The Tendermint core, driven step by step (no simulator randomness)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import pytest

from ledger.block import PRECOMMIT, PREVOTE, Block, CommitCertificate, Vote
from ledger.encoding import Value
from ledger.genesis import DEFAULT_POLICY, Genesis
from ledger.keys import ALG_EDDSA, PublicKey, SigningKey
from ledger.tx import Transaction
from ledger.validators import Validator, ValidatorSet
from node.consensus.core import DROP_OVER_BUDGET, Core, Step
from node.consensus.errors import RestoreError
from node.consensus.limits import (
    FUTURE_BYTES_MAX,
    FUTURE_BYTES_PER_SIGNER_MAX,
    FUTURE_HEIGHTS_MAX,
    FUTURE_MESSAGES_MAX,
    ROUNDS_AHEAD_MAX,
)
from node.consensus.messages import CommitMessage, Message, Proposal
from node.consensus.types import CoreConfig, Ready
from tests.sim.app import Ledger, SharedCaches, SimApp, make_executor
from tests.sim.world import GENESIS_TIME_MS, SIM_TIMEOUTS

CHAIN = "imi-core-test"
CONFIG = CoreConfig(CHAIN, SIM_TIMEOUTS)
_VERIFIED: dict[object, bool] = {}


def _memo_verify(key: PublicKey, signed: Vote | Proposal) -> bool:
    """Votes are hashable by content: check each signed vote once for the whole cluster."""
    if not isinstance(signed, Vote):
        return key.verify(signed.signing_bytes(), signed.signature)
    found = _VERIFIED.get((key.raw, signed))
    if found is None:
        found = _VERIFIED[(key.raw, signed)] = key.verify(signed.signing_bytes(), signed.signature)
    return found


FAST = CoreConfig(CHAIN, SIM_TIMEOUTS, _memo_verify)  # for whole-cluster runs


def _key(label: str) -> SigningKey:
    return SigningKey(ALG_EDDSA, hashlib.sha256(label.encode()).digest())


@dataclass
class Node:
    key: SigningKey
    app: SimApp
    core: Core
    wal: list[Value] = field(default_factory=list)
    sent: list[object] = field(default_factory=list)


class Cluster:
    """n validators, lossless in-order delivery; ``cut`` nodes neither send nor receive."""

    def __init__(self, n: int = 4) -> None:
        self.keys = [_key(f"core-test-{i}") for i in range(n)]
        trustee = _key("core-test-trustee")
        self.validators = ValidatorSet.of(Validator(f"v{i}", k.public_key, 1, f"t:{i}", bytes(32))
                                          for i, k in enumerate(self.keys))
        self.genesis = Genesis(CHAIN, GENESIS_TIME_MS, self.validators, (trustee.public_key,), 1,
                               dict(DEFAULT_POLICY))
        self.executor = make_executor(CHAIN, trustee.key_id)
        self.caches = SharedCaches()
        self.nodes: list[Node] = []
        self.inbox: deque[tuple[int, object]] = deque()
        self.cut: set[int] = set()
        for key in self.keys:
            app = self.new_app()
            self.nodes.append(Node(key, app, Core(FAST, key, app)))

    def new_app(self, ledger: Ledger | None = None) -> SimApp:
        return SimApp(ledger or Ledger(self.genesis), self.executor, self.caches)

    def by_id(self, key_id: str) -> int:
        return next(i for i, n in enumerate(self.nodes) if n.key.key_id == key_id)

    def handle(self, index: int, ready: Ready) -> None:
        node = self.nodes[index]
        node.wal.extend(ready.persist)
        for envelope in ready.send:
            node.sent.append(envelope.message)
            targets = range(len(self.nodes)) if envelope.to is None else [self.by_id(envelope.to)]
            for dst in targets:
                if dst != index and index not in self.cut and dst not in self.cut:
                    self.inbox.append((dst, envelope.message))
        for block, cert in ready.committed:
            node.app.apply(block, cert)

    def run(self, ticks: int, until: Callable[[], bool] = lambda: False) -> None:
        for _ in range(ticks):
            if until():
                return
            for index, node in enumerate(self.nodes):
                self.handle(index, node.core.tick())
            for _ in range(100_000):
                if not self.inbox:
                    break
                dst, message = self.inbox.popleft()
                self.handle(dst, self.nodes[dst].core.step(cast(Message, message)))

    def heights(self) -> list[int]:
        return [n.app.ledger.height for n in self.nodes]


def _signed_vote(key: SigningKey, height: int, round_: int, kind: str, block_hash: bytes | None,
                 chain: str = CHAIN) -> Vote:
    return Vote(chain, height, round_, kind, block_hash, key.key_id).signed(key)


def _proposal_for(cluster: Cluster, height: int, round_: int) -> Proposal:
    proposer = cluster.validators.proposer(height, round_).key_id
    node = cluster.nodes[cluster.by_id(proposer)]
    block = node.app.build_block(height, round_)
    return Proposal(CHAIN, height, round_, block, -1, proposer).signed(node.key)


def _non_proposer(cluster: Cluster, height: int = 1, rounds: tuple[int, ...] = (0, 1)) -> int:
    proposers = {cluster.validators.proposer(height, r).key_id for r in rounds}
    return next(i for i, n in enumerate(cluster.nodes) if n.key.key_id not in proposers)


def _others(cluster: Cluster, index: int) -> list[SigningKey]:
    return [n.key for i, n in enumerate(cluster.nodes) if i != index]


def _votes(messages: list[object], kind: str, round_: int, height: int = 1) -> list[Vote]:
    return [m for m in messages if isinstance(m, Vote) and m.kind == kind and m.round == round_
            and m.height == height]


# --- whole cluster ------------------------------------------------------------------------------
def test_four_honest_validators_commit_the_same_certified_blocks() -> None:
    cluster = Cluster(4)
    cluster.run(60, until=lambda: min(cluster.heights()) >= 3)
    heights = cluster.heights()
    assert min(heights) >= 3
    for h in range(1, min(heights) + 1):
        blocks = {n.app.ledger.blocks[h - 1][0].hash for n in cluster.nodes}
        assert len(blocks) == 1
        block, cert = cluster.nodes[0].app.ledger.blocks[h - 1]
        cert.verify(block.header, cluster.validators)  # raises if not a quorum of valid precommits


def test_a_lagging_validator_catches_up_through_commit_messages() -> None:
    cluster = Cluster(4)
    cluster.cut = {3}
    cluster.run(80, until=lambda: min(cluster.heights()[:3]) >= 4)
    assert cluster.heights()[3] == 0 and min(cluster.heights()[:3]) >= 4
    cluster.cut = set()
    cluster.run(40, until=lambda: cluster.heights()[3] >= 4)
    lagger, leader = cluster.nodes[3].app.ledger, cluster.nodes[0].app.ledger
    assert lagger.height >= 4
    assert [b.hash for b, _ in lagger.blocks[:4]] == [b.hash for b, _ in leader.blocks[:4]]
    assert any(isinstance(m, CommitMessage) for n in cluster.nodes[:3] for m in n.sent)


# --- one core, hand-fed ---------------------------------------------------------------------------
def test_a_validator_prevotes_a_valid_proposal_and_persists_the_vote_before_sending() -> None:
    cluster = Cluster(4)
    index = _non_proposer(cluster)
    core = cluster.nodes[index].core
    proposal = _proposal_for(cluster, 1, 0)
    ready = core.step(proposal)
    prevotes = [e.message for e in ready.send if isinstance(e.message, Vote)]
    assert [v.block_hash for v in prevotes] == [proposal.block.hash]
    assert {"t": "vote", "m": prevotes[0].to_value()} in ready.persist
    assert core.step_ == Step.PREVOTE


def test_conflicting_votes_by_one_validator_become_evidence_once() -> None:
    cluster = Cluster(4)
    core = cluster.nodes[0].core
    byzantine = cluster.nodes[1].key
    first = _signed_vote(byzantine, 1, 0, PREVOTE, bytes(32))
    second = _signed_vote(byzantine, 1, 0, PREVOTE, None)
    assert core.step(first).evidence == ()
    assert core.step(second).evidence == ((first, second),)
    assert core.step(_signed_vote(byzantine, 1, 0, PREVOTE, b"\x01" * 32)).evidence == ()


def test_two_signed_proposals_for_one_round_become_evidence_once() -> None:
    cluster = Cluster(4)
    core = cluster.nodes[_non_proposer(cluster)].core
    first = _proposal_for(cluster, 1, 0)
    proposer_key = cluster.nodes[cluster.by_id(first.proposer)].key
    other_block = Block(dataclasses.replace(first.block.header, time_ms=first.block.header.time_ms + 1),
                        first.block.txs)
    second = Proposal(CHAIN, 1, 0, other_block, -1, first.proposer).signed(proposer_key)
    assert core.step(first).evidence == ()
    assert core.step(first).evidence == ()  # the same proposal again is a duplicate, not evidence
    assert core.step(second).evidence == ((first, second),)
    assert "proposal-equivocation" not in core.dropped  # the second block is kept (PROPOSALS_PER_ROUND_MAX)
    third = Proposal(CHAIN, 1, 0, Block(dataclasses.replace(first.block.header, time_ms=7), first.block.txs),
                     -1, first.proposer).signed(proposer_key)
    assert core.step(third).evidence == ()  # reported once per (proposer, round)
    # A forged second proposal (not signed by the proposer) proves nothing.
    forger = next(n.key for n in cluster.nodes if n.key.key_id != first.proposer)
    cluster2 = Cluster(4)
    core2 = cluster2.nodes[_non_proposer(cluster2)].core
    forged = Proposal(CHAIN, 1, 0, other_block, -1, first.proposer).signed(forger)
    assert core2.step(first).evidence == ()
    assert core2.step(forged).evidence == ()
    assert core2.dropped["bad-signature"] == 1


@pytest.mark.parametrize("case, reason", [
    ("bad-signature", "bad-signature"), ("unknown-signer", "unknown-signer"),
    ("wrong-chain", "wrong-chain"), ("far-future", "far-future"),
])
def test_invalid_messages_are_ignored_and_counted(case: str, reason: str) -> None:
    cluster = Cluster(4)
    core = cluster.nodes[0].core
    member = cluster.nodes[1].key
    if case == "bad-signature":
        vote = Vote(CHAIN, 1, 0, PREVOTE, None, member.key_id, bytes(64))
    elif case == "unknown-signer":
        vote = _signed_vote(_key("stranger"), 1, 0, PREVOTE, None)
    elif case == "wrong-chain":
        vote = _signed_vote(member, 1, 0, PREVOTE, None, chain="another-chain")
    else:
        vote = _signed_vote(member, 2 + FUTURE_HEIGHTS_MAX, 0, PREVOTE, None)
    before = core._tally(0, PREVOTE).power
    ready = core.step(vote)
    assert core.dropped.get(reason) == 1
    assert core._tally(0, PREVOTE).power == before
    assert not ready.committed and not ready.evidence


def test_the_future_height_buffer_is_bounded() -> None:
    cluster = Cluster(4)
    core = cluster.nodes[0].core
    members = [n.key for n in cluster.nodes[1:]]
    extra = 5
    for i in range(FUTURE_MESSAGES_MAX + extra):  # small signed votes: the count bound binds first
        member = members[i % len(members)]
        core.step(_signed_vote(member, 2, i, PREVOTE, None))
    assert len(core._future.held) == FUTURE_MESSAGES_MAX
    assert core.dropped["buffer-full"] == extra


@pytest.mark.parametrize("case", ["vote", "proposal", "commit", "stranger"])
def test_a_later_heights_message_is_checked_before_it_is_held(case: str) -> None:
    """Regression (issue 19): forged future-height messages used to be buffered unchecked."""
    cluster = Cluster(4)
    cluster.run(40, until=lambda: min(cluster.heights()) >= 1)
    block, cert = cluster.nodes[0].app.ledger.blocks[0]
    fresh = Core(CONFIG, _key("observer"), cluster.new_app())  # at height 1
    member = cluster.nodes[1].key
    message: Message
    if case == "vote":
        message = Vote(CHAIN, 2, 0, PREVOTE, None, member.key_id, bytes(64))
    elif case == "proposal":
        message = Proposal(CHAIN, 2, 0, block, -1, member.key_id, bytes(64))
    elif case == "commit":
        forged = CommitCertificate(CHAIN, 2, 0, block.hash, cert.signatures)
        message = CommitMessage(dataclasses.replace(block, header=dataclasses.replace(block.header, height=2)),
                                forged)
    else:
        message = _signed_vote(_key("stranger"), 2, 0, PREVOTE, None)
    fresh.step(message)
    assert sum(fresh.dropped.values()) == 1, fresh.dropped  # refused, not held
    assert fresh._future.held == []


def _big_block(cluster: Cluster, proposer: SigningKey, height: int, tx_count: int) -> Block:
    """A block of ``tx_count`` ~60 KiB transactions (not valid: only held, never executed)."""
    sender = _key("junk-sender")
    tx = Transaction.create(chain_id=CHAIN, type="test.note", sender=sender.key_id,
                            payload={"data": bytes(60_000)}, expires_at_ms=GENESIS_TIME_MS + 60_000).sign(sender)
    header = cluster.nodes[0].app.ledger.blocks[0][0].header if cluster.nodes[0].app.ledger.blocks else None
    assert header is not None
    header = dataclasses.replace(header, height=height, proposer=proposer.key_id, tx_count=tx_count)
    return Block(header, (tx,) * tx_count)


def test_one_signer_holds_at_most_its_byte_share_of_the_future_buffer() -> None:
    """Regression (issue 19): 25 signed 3.9 MiB junk proposals used to be held (+300 MiB RSS)."""
    cluster = Cluster(4)
    cluster.run(40, until=lambda: min(cluster.heights()) >= 1)
    core = cluster.nodes[0].core
    byzantine = cluster.nodes[1].key
    block = _big_block(cluster, byzantine, core.height + 1, 64)  # ~3.9 MiB of transactions
    sent = 25
    for round_ in range(sent):
        core.step(Proposal(CHAIN, core.height + 1, round_, block, -1, byzantine.key_id).signed(byzantine))
    fits = FUTURE_BYTES_PER_SIGNER_MAX // (64 * 60_000)
    assert core.dropped.get("over-budget", 0) >= sent - fits, core.dropped
    held = core._future.owner_bytes.get(byzantine.key_id, 0)
    assert 0 < held <= FUTURE_BYTES_PER_SIGNER_MAX
    assert core._future.bytes <= FUTURE_BYTES_MAX
    assert core.dropped[DROP_OVER_BUDGET] == sent - len(core._future.held)
    # An honest member's message still finds room.
    honest = cluster.nodes[2].key
    core.step(_signed_vote(honest, core.height + 1, 0, PREVOTE, None))
    assert core._future.owner_bytes.get(honest.key_id, 0) > 0


def test_f_plus_one_messages_of_a_higher_round_make_the_core_skip_to_it() -> None:
    cluster = Cluster(4)  # f = 1: two validators are f+1
    index = _non_proposer(cluster, rounds=(0, 5))
    core = cluster.nodes[index].core
    a, b = _others(cluster, index)[:2]
    core.step(_signed_vote(a, 1, 5, PREVOTE, None))
    assert core.round == 0  # one validator alone (could be the faulty one) does not move us
    core.step(_signed_vote(b, 1, 5, PREVOTE, None))
    assert core.round == 5
    far = 5 + ROUNDS_AHEAD_MAX + 100  # beyond what is stored: still counted for the skip
    core.step(_signed_vote(a, 1, far, PRECOMMIT, None))
    core.step(_signed_vote(b, 1, far, PRECOMMIT, None))
    assert core.round == far


def test_propose_timeout_grows_with_the_round() -> None:
    t = SIM_TIMEOUTS
    cluster = Cluster(4)
    index = _non_proposer(cluster, rounds=(0, 1))
    node = cluster.nodes[index]

    def ticks_until_prevote(round_: int) -> int:
        for elapsed in range(1, 1000):
            ready = node.core.tick()
            if _votes([e.message for e in ready.send], PREVOTE, round_):
                return elapsed
        raise AssertionError("no prevote")

    assert ticks_until_prevote(0) == t.propose_base
    a, b = _others(cluster, index)[:2]
    node.core.step(_signed_vote(a, 1, 1, PRECOMMIT, None))
    node.core.step(_signed_vote(b, 1, 1, PRECOMMIT, None))
    assert node.core.round == 1
    assert ticks_until_prevote(1) == t.propose_base + t.propose_delta


def test_a_restarted_validator_resends_its_recorded_vote_and_never_signs_another() -> None:
    cluster = Cluster(4)
    index = _non_proposer(cluster)
    node = cluster.nodes[index]
    proposal = _proposal_for(cluster, 1, 0)
    cluster.handle(index, node.core.step(proposal))
    signed = _votes(node.sent, PREVOTE, 0)
    assert [v.block_hash for v in signed] == [proposal.block.hash]
    # Restart from the records alone: the proposal itself is forgotten.
    node.core = Core(CONFIG, node.key, node.app, list(node.wal))
    node.sent.clear()
    for _ in range(SIM_TIMEOUTS.propose_base * 3):  # the propose timeout would prevote nil
        cluster.handle(index, node.core.tick())
    again = _votes(node.sent, PREVOTE, 0)
    assert again and all(v == signed[0] for v in again)
    recorded = [Vote.from_value(r["m"]) for r in node.wal if isinstance(r, dict) and r.get("t") == "vote"]
    assert [v for v in recorded if v.kind == PREVOTE and v.round == 0] == [signed[0]]


def test_a_lock_survives_a_restart_and_blocks_a_conflicting_prevote() -> None:
    cluster = Cluster(4)
    index = _non_proposer(cluster, rounds=(0, 1))
    node = cluster.nodes[index]
    proposal = _proposal_for(cluster, 1, 0)
    cluster.handle(index, node.core.step(proposal))
    for key in _others(cluster, index)[:2]:  # with ours: 3 of 4 prevotes = quorum -> lock
        cluster.handle(index, node.core.step(_signed_vote(key, 1, 0, PREVOTE, proposal.block.hash)))
    assert node.core.locked_round == 0
    assert [v.block_hash for v in _votes(node.sent, PRECOMMIT, 0)] == [proposal.block.hash]
    node.core = Core(CONFIG, node.key, node.app, list(node.wal))
    assert node.core.locked_round == 0 and node.core.locked_block is not None
    assert node.core.locked_block.hash == proposal.block.hash
    a, b = _others(cluster, index)[:2]
    node.core.step(_signed_vote(a, 1, 1, PREVOTE, None))
    node.core.step(_signed_vote(b, 1, 1, PREVOTE, None))
    assert node.core.round == 1
    other = _proposal_for(cluster, 1, 1)
    assert other.block.hash != proposal.block.hash
    ready = node.core.step(other)
    assert [v.block_hash for v in _votes([e.message for e in ready.send], PREVOTE, 1)] == [None]


def test_a_commit_message_with_a_forged_certificate_is_rejected() -> None:
    cluster = Cluster(4)
    cluster.run(40, until=lambda: min(cluster.heights()) >= 1)
    block, cert = cluster.nodes[0].app.ledger.blocks[0]
    fresh = Core(CONFIG, _key("observer"), cluster.new_app())
    assert fresh.height == 1 and not fresh.is_validator
    forged = CommitCertificate(cert.chain_id, cert.height, cert.round, cert.block_hash,
                               ((cert.signatures[0][0], bytes(64)),) + cert.signatures[1:])
    short = CommitCertificate(cert.chain_id, cert.height, cert.round, cert.block_hash, cert.signatures[:2])
    for bad in (forged, short):
        assert fresh.step(CommitMessage(block, bad)).committed == ()
    assert fresh.dropped["bad-certificate"] == 2
    assert fresh.step(CommitMessage(block, cert)).committed == ((block, cert),)


def test_a_commit_messages_certificate_is_checked_through_the_injected_signature_hook() -> None:
    cluster = Cluster(4)
    cluster.run(40, until=lambda: min(cluster.heights()) >= 1)
    block, cert = cluster.nodes[0].app.ledger.blocks[0]
    asked: list[object] = []

    def refuse(key: object, signed: object) -> bool:
        asked.append(signed)
        return False

    fresh = Core(dataclasses.replace(CONFIG, verify_signature=refuse), _key("observer"), cluster.new_app())
    assert fresh.step(CommitMessage(block, cert)).committed == ()  # a valid certificate, refused by the hook
    assert fresh.dropped["bad-certificate"] == 1 and len(asked) == 1
    trusting = Core(dataclasses.replace(CONFIG, verify_signature=lambda key, signed: True), _key("observer"), cluster.new_app())
    assert trusting.step(CommitMessage(block, cert)).committed == ((block, cert),)


def test_a_decision_recorded_but_not_applied_is_emitted_again_after_a_restart() -> None:
    cluster = Cluster(4)
    cluster.run(40, until=lambda: min(cluster.heights()) >= 1)
    node = cluster.nodes[0]
    cut = next(i for i, r in enumerate(node.wal) if isinstance(r, dict) and r.get("t") == "decide")
    records = node.wal[: cut + 1]
    app = cluster.new_app()  # the crash lost the application's write of block 1
    core = Core(CONFIG, node.key, app, records)
    ready = core.tick()
    assert [b.hash for b, _ in ready.committed] == [node.app.ledger.blocks[0][0].hash]
    assert core.height == 1  # it waits for the driver to apply the block
    app.apply(*ready.committed[0])
    for _ in range(SIM_TIMEOUTS.commit_ticks):
        core.tick()
    assert core.height == 2


def test_restore_rejects_records_it_cannot_understand() -> None:
    cluster = Cluster(4)
    node = cluster.nodes[0]
    bad: list[list[Value]] = [[{"t": "bogus"}], [{"t": "vote", "m": {}}], ["not-a-map"],
                              [{"t": "height", "h": 1}, {"t": "height", "h": 0}]]
    for records in bad:
        with pytest.raises(RestoreError):
            Core(CONFIG, node.key, node.app, records)


def test_an_observer_follows_the_chain_without_signing() -> None:
    cluster = Cluster(4)
    observer_key = _key("observer")
    app = cluster.new_app()
    observer = Node(observer_key, app, Core(FAST, observer_key, app))
    cluster.nodes.append(observer)
    cluster.run(60, until=lambda: app.ledger.height >= 2)
    assert app.ledger.height >= 2
    assert not [m for m in observer.sent if isinstance(m, (Vote, Proposal))]


def test_a_held_commit_of_the_next_height_shortens_the_commit_wait_to_one_tick() -> None:
    """The commit-wait path that reads the future buffer (``Core._commit_wait``): a node that
    already holds the next height's commit moves on after one tick, not ``commit_ticks``.
    (A merge once broke that line, ``_FutureBuffer`` not iterable, with no test reaching it.)"""
    assert SIM_TIMEOUTS.commit_ticks > 1  # else one tick proves nothing
    cluster = Cluster(4)
    cluster.run(80, until=lambda: min(cluster.heights()) >= 2)
    (block1, cert1), (block2, cert2) = cluster.nodes[0].app.ledger.blocks[:2]

    def decided_first(hold_next: bool) -> Core:
        app = cluster.new_app()
        core = Core(CONFIG, _key("catching-up observer"), app)
        ready = core.step(CommitMessage(block1, cert1))
        assert ready.committed == ((block1, cert1),) and core.step_ == Step.DECIDED
        app.apply(block1, cert1)
        if hold_next:
            assert core.step(CommitMessage(block2, cert2)).committed == ()  # held for height 2
        return core

    waiting = decided_first(hold_next=False)
    waiting.tick()
    assert waiting.height == 1  # nothing held: the full commit wait
    holding = decided_first(hold_next=True)
    ready = holding.tick()
    assert holding.height == 2
    assert ready.committed == ((block2, cert2),)  # the held commit decided height 2 at once
