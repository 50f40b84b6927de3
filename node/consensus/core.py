"""The Tendermint consensus core: a pure, deterministic state machine.

This follows Algorithm 1 of Buchman, Kwon, Milosevic, "The latest gossip on BFT
consensus" (arXiv 1807.04938). Line numbers (L22 …) below refer to that paper.
There is no IO, no clock and no randomness here: the driver calls :meth:`Core.step`
with each message and :meth:`Core.tick` on a timer, and acts on the returned
:class:`Ready` (persist, then send, then apply committed blocks).

Steps and the rules that move between them (the transition table is
``_STEP_TRANSITIONS``; a move it does not list is a bug and asserts):

=============  ==========================================================  ==========
from step      upon                                                        to step
=============  ==========================================================  ==========
propose        proposal(h, r, v, -1) from proposer (L22)                   prevote
propose        proposal(h, r, v, vr) + 2f+1 prevote(vr, id v) (L28)        prevote
propose        timeout propose (L57)                                       prevote
prevote        2f+1 prevote(r, id v) for a valid v — lock (L36)            precommit
prevote        2f+1 prevote(r, nil) (L44)                                  precommit
prevote        timeout prevote, scheduled at 2f+1 prevotes (L34, L61)      precommit
any            timeout precommit, scheduled at 2f+1 precommits (L47, L65)  propose (r+1)
any            2f+1 precommit(r, nil): no value can be decided at r        propose (r+1)
any            f+1 power of messages of rounds > r (L55)                   propose (r')
any            2f+1 precommit(r', id v) for a valid v (L49), or a          decided
               commit message with a verifying certificate
decided        ``commit_ticks`` ticks later: next height, round 0          propose
=============  ==========================================================  ==========

"f+1" is power >= total - quorum + 1 (at least one honest validator); "2f+1" is
``ValidatorSet.quorum_power``. Own messages are re-sent every
``rebroadcast_ticks`` so progress survives message loss; a peer seen at a lower
height is sent the commits it misses, and a core that sees higher heights asks
for them (:class:`SyncRequest`).

Persistence (every record is written by the driver before anything of the same
Ready is sent):

=================================================  =====================================
record                                             written when
=================================================  =====================================
``{"t": "height", "h"}``                           entering height h (first record of h)
``{"t": "round", "h", "r"}``                       entering round r
``{"t": "proposal", "m": proposal}``               we signed a proposal
``{"t": "vote", "m": vote}``                       we signed a vote
``{"t": "lock", "h", "r", "block", "pol"}``        lockedRound / lockedValue changed (+ its prevotes)
``{"t": "valid", "h", "r", "block", "pol"}``       validRound / validValue changed (+ its prevotes)
``{"t": "decide", "block", "cert"}``               a block was decided at h
=================================================  =====================================

Restoring replays them: a restarted core never signs a second, different
proposal or vote for a (height, round, kind) it already signed — it re-sends the
recorded one — and keeps its lock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum

from ledger.block import PRECOMMIT, PREVOTE, VOTE_KINDS, Block, CommitCertificate, Vote
from ledger.encoding import Value
from ledger.errors import BlockError, CertificateError, LedgerError
from ledger.keys import PublicKey, SigningKey
from ledger.validators import ValidatorSet
from node.consensus.errors import LocalError, RestoreError
from node.consensus.limits import (
    CATCHUP_BLOCKS_MAX,
    EVIDENCE_PER_HEIGHT_MAX,
    FUTURE_BYTES_MAX,
    FUTURE_BYTES_PER_SIGNER_MAX,
    FUTURE_HEIGHTS_MAX,
    FUTURE_MESSAGES_MAX,
    HELD_MESSAGE_BYTES_MIN,
    HELP_PEERS_MAX,
    PROPOSALS_PER_ROUND_MAX,
    ROUND_MAX,
    ROUNDS_AHEAD_MAX,
    ROUNDS_KEPT_MAX,
    RULE_FIRINGS_PER_EVENT_MAX,
    SIGNATURE_ENTRY_BYTES_MAX,
    VALUES_PER_VOTER_MAX,
)
from node.consensus.messages import CommitMessage, Message, Proposal, SyncRequest
from node.consensus.types import Application, CoreConfig, Envelope, Evidence, Ready


class Step(IntEnum):
    PROPOSE = 0
    PREVOTE = 1
    PRECOMMIT = 2
    DECIDED = 3


_STEP_TRANSITIONS: dict[Step, frozenset[Step]] = {
    Step.PROPOSE: frozenset({Step.PROPOSE, Step.PREVOTE, Step.DECIDED}),
    Step.PREVOTE: frozenset({Step.PROPOSE, Step.PRECOMMIT, Step.DECIDED}),
    Step.PRECOMMIT: frozenset({Step.PROPOSE, Step.DECIDED}),
    Step.DECIDED: frozenset({Step.PROPOSE}),
}

REC_HEIGHT = "height"
REC_ROUND = "round"
REC_PROPOSAL = "proposal"
REC_VOTE = "vote"
REC_LOCK = "lock"
REC_VALID = "valid"
REC_DECIDE = "decide"

_TIMER_PROPOSE = "propose"
_TIMER_PREVOTE = "prevote"
_TIMER_PRECOMMIT = "precommit"
_TIMERS = (_TIMER_PROPOSE, _TIMER_PREVOTE, _TIMER_PRECOMMIT)

DROP_OVER_BUDGET = "over-budget"
"""Drop reason: a signer's future-height messages exceed FUTURE_BYTES_PER_SIGNER_MAX (the
driver disconnects the peer that sent it)."""


def _default_verify(key: PublicKey, signed: Vote | Proposal) -> bool:
    return key.verify(signed.signing_bytes(), signed.signature)


class _Tally:
    """Votes of one (round, kind).

    An equivocating validator is counted for *each* value it signed (up to
    VALUES_PER_VOTER_MAX): two quorums for different values at one round still need
    more than f signers of both, so a quorum stays proof that f+1 honest validators
    voted for that value — and honest validators that saw different halves of an
    equivocation can still assemble the same proof of lock.
    """

    __slots__ = ("by_hash", "first", "power", "power_for", "values")

    def __init__(self) -> None:
        self.first: dict[str, Vote] = {}  # validator -> its first vote
        self.by_hash: dict[bytes | None, dict[str, Vote]] = {}
        self.values: dict[str, int] = {}  # validator -> distinct values signed
        self.power_for: dict[bytes | None, int] = {}
        self.power = 0  # power of distinct voters

    def voted(self, vote: Vote) -> bool:
        voters = self.by_hash.get(vote.block_hash)
        return voters is not None and vote.validator in voters

    def add(self, vote: Vote, power: int) -> int:
        """Count ``vote``; returns the power now behind its value."""
        voters = self.by_hash.setdefault(vote.block_hash, {})
        assert vote.validator not in voters
        voters[vote.validator] = vote
        if vote.validator not in self.first:
            self.first[vote.validator] = vote
            self.power += power
        self.values[vote.validator] = self.values.get(vote.validator, 0) + 1
        total = self.power_for.get(vote.block_hash, 0) + power
        self.power_for[vote.block_hash] = total
        return total


_EMPTY_TALLY = _Tally()


@dataclass(frozen=True, slots=True)
class _Held:
    message: Message
    owner: str  # the signer's key id; "" for a commit message (certified by a quorum, no one author)
    size: int  # bytes it stands for (see _message_bytes)


class _FutureBuffer:
    """Authenticated messages for later heights, bounded in count and in bytes, in all and
    per signer (TigerBeetle style: a limit on everything a peer can make us hold)."""

    def __init__(self) -> None:
        self.held: list[_Held] = []
        self.keys: set[tuple[object, ...]] = set()
        self.bytes = 0
        self.owner_bytes: dict[str, int] = {}  # owners are members of the current set: bounded

    def add(self, held: _Held) -> str | None:
        """Hold ``held``; or the reason it is dropped."""
        key = _message_key(held.message)
        if key in self.keys:
            return "duplicate"
        owned = self.owner_bytes.get(held.owner, 0)
        if held.owner and owned + held.size > FUTURE_BYTES_PER_SIGNER_MAX:
            return DROP_OVER_BUDGET
        if len(self.held) >= FUTURE_MESSAGES_MAX or self.bytes + held.size > FUTURE_BYTES_MAX:
            return "buffer-full"
        self.held.append(held)
        self.keys.add(key)
        self.bytes += held.size
        self.owner_bytes[held.owner] = owned + held.size
        return None

    def take(self) -> list[_Held]:
        """Everything held, emptying the buffer."""
        held = self.held
        self.held, self.keys, self.bytes, self.owner_bytes = [], set(), 0, {}
        return held

    def check(self) -> None:
        assert len(self.held) <= FUTURE_MESSAGES_MAX and self.bytes <= FUTURE_BYTES_MAX
        assert all(n <= FUTURE_BYTES_PER_SIGNER_MAX for o, n in self.owner_bytes.items() if o)


@dataclass(slots=True)
class _Restored:
    """What the persisted records say about one height."""

    height: int = 0
    round: int = 0
    proposals: dict[int, Proposal] = field(default_factory=dict)
    votes: dict[tuple[int, str], Vote] = field(default_factory=dict)
    lock: tuple[int, Block] | None = None
    valid: tuple[int, Block] | None = None
    pol: list[Vote] = field(default_factory=list)  # prevotes that justified the lock / valid value
    decision: tuple[Block, CommitCertificate] | None = None


def _int(rec: dict[str, Value], name: str) -> int:
    item = rec.get(name)
    if type(item) is not int:
        raise RestoreError(f"record {rec.get('t')!r}: {name} must be an int")
    return item


def parse_records(records: Iterable[Value]) -> _Restored:
    """Fold persisted records into the state of the last height they mention."""
    state = _Restored()
    for rec in records:
        if not isinstance(rec, dict) or not isinstance(rec.get("t"), str):
            raise RestoreError("record must be a map with a 't' field")
        kind = rec["t"]
        try:
            if kind == REC_HEIGHT:
                h = _int(rec, "h")
                if h < state.height:
                    raise RestoreError(f"height record {h} after height {state.height}")
                if h > state.height:
                    state = _Restored(height=h)
                continue
            if state.height == 0:
                raise RestoreError(f"record {kind!r} before any height record")
            if kind == REC_ROUND:
                if _int(rec, "h") == state.height:
                    state.round = max(state.round, _int(rec, "r"))
            elif kind == REC_PROPOSAL:
                p = Proposal.from_value(rec.get("m"))
                if p.height != state.height or state.proposals.get(p.round, p) != p:
                    raise RestoreError("proposal record conflicts with the records before it")
                state.proposals[p.round] = p
            elif kind == REC_VOTE:
                v = Vote.from_value(rec.get("m"))
                key = (v.round, v.kind)
                if v.height != state.height or state.votes.get(key, v) != v:
                    raise RestoreError("vote record conflicts with the records before it")
                state.votes[key] = v
            elif kind in (REC_LOCK, REC_VALID):
                if _int(rec, "h") == state.height:
                    pair = (_int(rec, "r"), Block.from_value(rec.get("block")))
                    pol = rec.get("pol", [])
                    if not isinstance(pol, list):
                        raise RestoreError(f"record {kind!r}: pol must be a list")
                    state.pol.extend(Vote.from_value(v) for v in pol)
                    if kind == REC_LOCK:
                        state.lock = pair
                    else:
                        state.valid = pair
            elif kind == REC_DECIDE:
                block = Block.from_value(rec.get("block"))
                cert = CommitCertificate.from_value(rec.get("cert"))
                if block.header.height != state.height or cert.block_hash != block.hash:
                    raise RestoreError("decide record is not for this height's block")
                state.decision = (block, cert)
            else:
                raise RestoreError(f"unknown record kind {kind!r}")
        except (LedgerError, TypeError) as exc:
            if isinstance(exc, RestoreError):
                raise
            raise RestoreError(f"record {kind!r}: {exc}") from exc
    return state


class Core:
    """One validator's (or observer's) consensus state machine.

    ``restored`` is the list of records from previous ``Ready.persist`` outputs
    (None on first start). Output produced while constructing (re-sends after a
    restart, the first height's records) is returned with the first Ready.
    """

    def __init__(
        self,
        config: CoreConfig,
        my_key: SigningKey,
        app: Application,
        restored: Iterable[Value] | None = None,
    ) -> None:
        self.chain_id = config.chain_id
        self._timeouts = config.timeouts
        self._key = my_key
        self.me = my_key.key_id
        self._app = app
        self._verify_hook = config.verify_signature  # None: the ledger's own (cached) checks
        self._verify_sig = self._verify_hook or _default_verify
        self.now = 0  # ticks since construction
        self.dropped: dict[str, int] = {}  # reason -> count of ignored inputs
        self._persist_out: list[Value] = []
        self._send_out: list[Envelope] = []
        self._committed_out: list[tuple[Block, CommitCertificate]] = []
        self._evidence_out: list[Evidence] = []
        self._future = _FutureBuffer()
        self._help_at: dict[str, int] = {}
        self._sync_at = -(2**62)
        self._last_decided_at = 0
        self._half_rebroadcast = max(1, self._timeouts.rebroadcast_ticks // 2)
        # Our certificate of the last block we decided, grown by precommits for it that arrive
        # after its quorum (the next header carries it: its signers feed the proposer rule).
        self._last_commit: CommitCertificate | None = None
        self._last_commit_set: ValidatorSet | None = None
        self._declare_height_state()
        state = parse_records(restored or ())
        self._restore(state)
        self._check_invariants()

    # ------------------------------------------------------------------ API
    def step(self, message: Message) -> Ready:
        """Handle one received message (any peer, any height); never raises on bad input."""
        self._on_message(message)
        self._check_invariants()
        return self._flush()

    def tick(self) -> Ready:
        """Advance abstract time by one tick: fire timeouts, rebroadcast, start next height."""
        self.now += 1
        if self.step_ == Step.DECIDED:
            # The driver applies a decided block before its next call, so only a decision
            # already handed out in an earlier Ready lets us ask validators_at(h + 1).
            if self.now - self._decided_at >= self._commit_wait() and not self._committed_out:
                self._next_height()
        else:
            self._fire_timers()
            if self.now - self._broadcast_at >= self._timeouts.rebroadcast_ticks:
                self._rebroadcast()
        self._check_invariants()
        return self._flush()

    def _commit_wait(self) -> int:
        """Ticks between a decision and the next height: ``commit_ticks`` (late precommits
        join the certificate meanwhile), or one when we already hold the next height's
        commit — a node catching up then applies a block per tick, faster than the chain grows."""
        if any(isinstance(h.message, CommitMessage) and h.message.height == self.height + 1
               for h in self._future.held):
            return 1
        return max(1, self._timeouts.commit_ticks)

    def proposer(self, round_: int) -> str:
        """Key id of the proposer of ``round_`` at the current height (``ValidatorSet.proposer``
        with the height's inactive members, which the application derived from committed blocks)."""
        return self._proposer_id(round_)

    @property
    def is_validator(self) -> bool:
        """True iff our key is in the set of the current height (else we only follow)."""
        return self._my_power > 0

    def _declare_height_state(self) -> None:
        """Per-height state, (re)set by ``_reset_height``; declared here with its types."""
        self.height = 0
        self.round = 0
        self.step_ = Step.PROPOSE
        self.validators: ValidatorSet  # set by _reset_height before any use
        self._my_power = 0
        self._quorum = 0
        self._skip_power = 0
        self._inactive: frozenset[str] = frozenset()  # skipped as round-0 proposer (committed data)
        self.locked_round = -1
        self.locked_block: Block | None = None
        self.valid_round = -1
        self.valid_block: Block | None = None
        self.decision: tuple[Block, CommitCertificate] | None = None
        self._decided_at = 0
        self._own_proposals: dict[int, Proposal] = {}
        self._own_votes: dict[tuple[int, str], Vote] = {}
        self._proposals: dict[int, list[Proposal]] = {}
        self._tallies: dict[tuple[int, str], _Tally] = {}
        self._decidable: list[tuple[int, bytes]] = []
        self._max_round: dict[str, int] = {}
        self._skip_pending = False
        self._fired: set[tuple[str, int]] = set()
        self._valid_cache: dict[bytes, bool] = {}
        self._timers: dict[str, tuple[int, int]] = {}
        self._proposer_ids: dict[int, str] = {}
        self._evidence_keys: set[tuple[str, int, str]] = set()
        self._round_help_at: dict[str, int] = {}  # peer (a member: bounded by the set) -> tick
        self._entered_at = 0
        self._broadcast_at = 0

    # ------------------------------------------------------------- restore
    def _restore(self, state: _Restored) -> None:
        height = max(state.height, 1)
        if height > 1 and self._app.committed_block(height - 1) is None:
            raise RestoreError(f"records are at height {height} but the application lacks block {height - 1}")
        if state.height and (state.decision is not None or self._app.committed_block(height) is not None):
            # Decided before the crash: re-emit it if the application never applied it.
            self._reset_height(height, persist=False)
            decision = state.decision or self._app.committed_block(height)
            assert decision is not None
            self.decision = decision
            self.step_ = Step.DECIDED
            if self._app.committed_block(height) is None:
                self._committed_out.append(decision)
            return
        fresh = state.height == 0 or self._app.committed_block(height) is not None
        if fresh:
            self._enter_height(height)
            self._start_round(0)
            self._evaluate()
            return
        self._reset_height(height, persist=False)
        self._own_proposals = dict(state.proposals)
        self._own_votes = dict(state.votes)
        for own in state.votes.values():
            self._tally(own.round, own.kind, create=True).add(own, self._my_power)
        for pol_vote in state.pol:  # the proof of lock survives the crash with the lock
            member = self.validators.get(pol_vote.validator)
            tally = self._tally(pol_vote.round, PREVOTE, create=True)
            if member is not None and pol_vote.kind == PREVOTE and not tally.voted(pol_vote):
                tally.add(pol_vote, member.power)
        if state.lock is not None:
            self.locked_round, self.locked_block = state.lock
        if state.valid is not None:
            self.valid_round, self.valid_block = state.valid
        if state.lock is not None and self.valid_round < self.locked_round:
            # A crash between the lock and the valid record (same Ready): L36 sets both.
            self.valid_round, self.valid_block = state.lock
        self._start_round(max(state.round, self.valid_round, self.locked_round))
        # Re-send what we signed in this round and resume at the step it implies.
        for kind, step in ((PREVOTE, Step.PREVOTE), (PRECOMMIT, Step.PRECOMMIT)):
            vote = self._own_votes.get((self.round, kind))
            if vote is not None:
                if self.step_ < step:
                    self._set_step(step)
                self._send(vote)
        self._evaluate()

    # ------------------------------------------------------- height / round
    def _reset_height(self, height: int, *, persist: bool) -> None:
        self.height = height
        self.round = 0
        self.step_ = Step.PROPOSE
        validators = self._app.validators_at(height)
        self.validators = validators
        me = validators.get(self.me)
        self._my_power = me.power if me is not None else 0
        self._quorum = validators.quorum_power
        self._skip_power = validators.total_power - self._quorum + 1
        self._inactive = self._app.inactive_at(height)
        self.locked_round = -1
        self.locked_block = None
        self.valid_round = -1
        self.valid_block = None
        self.decision = None
        self._decided_at = 0
        self._own_proposals = {}
        self._own_votes = {}
        self._proposals = {}
        self._tallies = {}
        self._decidable = []
        self._max_round = {}
        self._skip_pending = False
        self._fired = set()
        self._valid_cache = {}
        self._timers = {}
        self._proposer_ids = {}
        self._evidence_keys = set()
        self._round_help_at = {}
        self._entered_at = self.now
        self._broadcast_at = self.now
        if persist:
            self._persist({"t": REC_HEIGHT, "h": height})

    def _enter_height(self, height: int) -> None:
        while self._app.committed_block(height) is not None:  # the application is ahead
            height += 1
        self._reset_height(height, persist=True)

    def _next_height(self) -> None:
        assert self.decision is not None
        header = self.decision[0].header
        self._last_decided_at = self.now
        self._enter_height(self.height + 1)
        if self.height == header.height + 1 and self.validators.hash != header.next_validator_set_hash:
            raise LocalError(f"validators_at({self.height}) is not the set block {header.height} names",
                             reason="validator-set-mismatch")
        self._start_round(0)
        self._evaluate()
        self._replay_future()

    def _start_round(self, round_: int) -> None:
        """StartRound (L11): propose if it is our turn, else wait for a proposal."""
        assert round_ >= self.round and self.step_ != Step.DECIDED
        self.round = round_
        self._set_step(Step.PROPOSE)
        self._persist({"t": REC_ROUND, "h": self.height, "r": round_})
        self._prune_rounds()
        self._skip_pending = any(r > round_ for r in self._max_round.values())
        self._schedule(_TIMER_PROPOSE, self._timeouts.propose_base + round_ * self._timeouts.propose_delta)
        if self.is_validator and self._proposer_id(round_) == self.me:
            self._propose()

    def _propose(self) -> None:
        proposal = self._own_proposals.get(self.round)
        if proposal is None:
            if self.valid_block is not None:
                block, pol_round = self.valid_block, self.valid_round
            else:
                block, pol_round = self._app.build_block(self.height, self.round, self._last_commit_for()), -1
            if block.header.height != self.height or block.header.chain_id != self.chain_id:
                raise LocalError("build_block returned a block for another height or chain",
                                 reason="bad-built-block")
            proposal = Proposal(self.chain_id, self.height, self.round, block, pol_round, self.me).signed(self._key)
            self._own_proposals[self.round] = proposal
            self._persist({"t": REC_PROPOSAL, "m": proposal.to_value()})
        self._send_proposal(proposal)
        self._store_proposal(proposal)

    def _send_proposal(self, proposal: Proposal) -> None:
        self._send(proposal)
        if proposal.pol_round >= 0:  # forward the proof of lock: its prevote quorum
            voters = self._tally(proposal.pol_round, PREVOTE).by_hash.get(proposal.block.hash, {})
            for vote in voters.values():
                self._send(vote)

    def _prune_rounds(self) -> None:
        """Forget rounds older than ROUNDS_KEPT_MAX, except those that justify a lock or a
        proposal (their prevotes are the proof of lock L28 needs, however old)."""
        oldest = self.round - ROUNDS_KEPT_MAX
        if oldest <= 0:
            return
        for r in [r for r in self._proposals if r < oldest]:
            del self._proposals[r]
        pinned = self._pinned_rounds()
        for key in [k for k in self._tallies if k[0] < oldest and k[0] not in pinned]:
            del self._tallies[key]
        self._decidable = [d for d in self._decidable if d[0] >= oldest or d[0] in pinned]
        self._fired = {f for f in self._fired if f[1] >= oldest}

    def _pinned_rounds(self) -> set[int]:
        """Old rounds whose prevotes are still needed: our lock, our valid value, and the
        pol_round of every proposal we keep (at most 2 + PROPOSALS_PER_ROUND_MAX per round kept)."""
        pinned = {self.locked_round, self.valid_round}
        for proposals in self._proposals.values():
            pinned.update(p.pol_round for p in proposals)
        pinned.discard(-1)
        return pinned

    def _too_old(self, round_: int) -> bool:
        return round_ < self.round - ROUNDS_KEPT_MAX and round_ not in self._pinned_rounds()

    # -------------------------------------------------------------- inputs
    def _on_message(self, message: Message) -> None:
        if isinstance(message, Vote):
            self._on_vote(message)
        elif isinstance(message, Proposal):
            self._on_proposal(message)
        elif isinstance(message, CommitMessage):
            self._on_commit(message)
        elif isinstance(message, SyncRequest):
            self._on_sync(message)
        else:
            self._drop("unknown-message")

    def _on_vote(self, vote: Vote) -> None:
        if vote.chain_id != self.chain_id:
            return self._drop("wrong-chain")
        if vote.kind not in VOTE_KINDS or not 0 <= vote.round < ROUND_MAX:
            return self._drop("malformed")
        if vote.height != self.height or self.step_ == Step.DECIDED:
            self._late_precommit(vote)
            return self._other_height(vote, vote.validator)
        member = self.validators.get(vote.validator)
        if member is None:
            return self._drop("unknown-signer")
        if vote.round < self.round:
            self._help_round(vote.validator, vote.round)
        if self._too_old(vote.round):
            return self._drop("stale-round")
        tally = self._tally(vote.round, vote.kind)
        if tally.voted(vote):  # this validator's vote for this value is already counted
            return self._drop("duplicate")
        if not self._verify_sig(member.public_key, vote):
            return self._drop("bad-signature")
        first = tally.first.get(vote.validator)
        if first is not None:
            self._add_evidence((first, vote))
            if tally.values[vote.validator] >= VALUES_PER_VOTER_MAX:
                return self._drop("equivocation")
        if vote.round > self.round + ROUNDS_AHEAD_MAX:
            self._note_round(vote.validator, vote.round)
            self._drop("far-round")
        else:
            self._add_vote(vote, member.power)
        self._evaluate()

    def _on_proposal(self, proposal: Proposal) -> None:
        if proposal.chain_id != self.chain_id:
            return self._drop("wrong-chain")
        if not (0 <= proposal.round < ROUND_MAX and -1 <= proposal.pol_round < proposal.round):
            return self._drop("malformed")
        if proposal.height != self.height or self.step_ == Step.DECIDED:
            return self._other_height(proposal, proposal.proposer)
        if proposal.round < self.round - ROUNDS_KEPT_MAX:
            return self._drop("stale-round")
        if proposal.proposer != self._proposer_id(proposal.round):
            return self._drop("wrong-proposer")
        if proposal.round < self.round:
            self._help_round(proposal.proposer, proposal.round)
        stored = self._proposals.get(proposal.round, [])
        if any(p.block.hash == proposal.block.hash and p.pol_round == proposal.pol_round
               and p.signature == proposal.signature for p in stored):
            return self._drop("duplicate")
        member = self.validators.get(proposal.proposer)
        assert member is not None
        if not self._verify_sig(member.public_key, proposal):
            return self._drop("bad-signature")
        for earlier in stored:
            # The proposer signed two different proposals for one (height, round).
            if (earlier.block.hash, earlier.pol_round) != (proposal.block.hash, proposal.pol_round):
                self._add_evidence((earlier, proposal))
                break
        if proposal.round > self.round + ROUNDS_AHEAD_MAX:
            self._note_round(proposal.proposer, proposal.round)
            self._drop("far-round")
            return self._evaluate()
        header = proposal.block.header
        if header.height != self.height or header.chain_id != self.chain_id:
            return self._drop("bad-block")
        try:
            proposal.block.check_body()
        except BlockError:
            return self._drop("bad-block")
        if len(stored) >= PROPOSALS_PER_ROUND_MAX:
            return self._drop("proposal-equivocation")
        self._store_proposal(proposal)
        self._evaluate()

    def _store_proposal(self, proposal: Proposal) -> None:
        self._proposals.setdefault(proposal.round, []).append(proposal)
        self._note_round(proposal.proposer, proposal.round)

    def _on_commit(self, commit: CommitMessage) -> None:
        if commit.chain_id != self.chain_id or commit.certificate.chain_id != self.chain_id:
            return self._drop("wrong-chain")
        if commit.height != self.height or self.step_ == Step.DECIDED:
            if commit.height > self.height:
                return self._buffer(commit, None)
            return self._drop("old-height")
        if not self._certificate_ok(commit.block, commit.certificate):
            return self._drop("bad-certificate")
        try:
            commit.block.check_body()
        except BlockError:
            return self._drop("bad-block")
        self._decide(commit.block, commit.certificate)

    def _on_sync(self, request: SyncRequest) -> None:
        if request.chain_id != self.chain_id:
            return self._drop("wrong-chain")
        if request.height < self.height or (request.height == self.height and self.decision is not None):
            self._help(request.requester, request.height)
        else:
            self._drop("sync-nothing-to-send")

    def _late_precommit(self, vote: Vote) -> None:
        """A precommit for the block we decided last that its certificate lacks (it came
        after the quorum): add it, so the next header names every validator that took part.
        (The vote is then handled as any message of a past height: counted as dropped.)"""
        last, validators = self._last_commit, self._last_commit_set
        if (last is None or validators is None or vote.kind != PRECOMMIT or vote.height != last.height
                or vote.round != last.round or vote.block_hash != last.block_hash
                or vote.validator in last.signers):
            return
        member = validators.get(vote.validator)
        if member is None or not self._verify_sig(member.public_key, vote):
            return
        signatures = tuple(sorted((*last.signatures, (vote.validator, vote.signature))))
        self._last_commit = CommitCertificate(last.chain_id, last.height, last.round, last.block_hash, signatures)

    def _last_commit_for(self) -> CommitCertificate | None:
        """The certificate of block height - 1 for our proposal's header: ours if we decided
        it (grown by late precommits), else None (the application's stored one)."""
        last = self._last_commit
        return last if last is not None and last.height == self.height - 1 else None

    def _other_height(self, message: Proposal | Vote, signer: str) -> None:
        if message.height > self.height:
            return self._buffer(message, signer)
        self._drop("old-height")
        # A peer still at an older height: give it the commits it misses, but not
        # while it may merely be a tick behind us.
        if (message.height < self.height - 1 or self.now - self._last_decided_at >= self._half_rebroadcast) \
                and self.validators.get(signer) is not None:
            self._help(signer, message.height)

    def _buffer(self, message: Message, signer: str | None) -> None:
        """Hold a message of a later height, once its signature (or, for a commit, its
        certificate) checks against the current set: junk never takes buffer space, and
        each signer holds at most its byte share (FUTURE_BYTES_PER_SIGNER_MAX)."""
        height = message.height
        if height > self.height + FUTURE_HEIGHTS_MAX:
            self._drop("far-future")
            return self._request_sync(signer)
        if _message_key(message) not in self._future.keys:  # (a held one was checked already)
            refused = self._unauthentic(message)
            if refused is not None:
                return self._drop(refused)
        # Ask before deduplicating: peers stuck waiting for us re-send the same messages.
        if height >= self.height + 2 or self.now - self._entered_at >= self._half_rebroadcast:
            self._request_sync(signer)
        dropped = self._future.add(_Held(message, signer or "", _message_bytes(message)))
        if dropped is not None:
            self._drop(dropped)

    def _unauthentic(self, message: Message) -> str | None:
        """Why a later height's message is not from whom it claims (None: it is), checked
        against the current height's set: a message whose author is not in it is dropped
        (and sent again later: consensus rebroadcasts, catch-up answers again)."""
        if isinstance(message, CommitMessage):
            return None if self._certificate_ok(message.block, message.certificate) else "bad-certificate"
        if not isinstance(message, Vote | Proposal):
            return "unknown-message"
        signer = message.validator if isinstance(message, Vote) else message.proposer
        member = self.validators.get(signer)
        if member is None:
            return "unknown-signer"
        return None if self._verify_sig(member.public_key, message) else "bad-signature"

    def _replay_future(self) -> None:
        for held in self._future.take():
            height = held.message.height
            if height == self.height:
                self._on_message(held.message)
            elif height > self.height:
                self._future.add(held)

    # --------------------------------------------------------- catch-up
    def _help(self, peer: str, from_height: int) -> None:
        if peer == self.me:
            return
        last = self._help_at.get(peer)
        if last is not None and self.now - last < self._half_rebroadcast:
            return
        if last is None and len(self._help_at) >= HELP_PEERS_MAX:
            del self._help_at[next(iter(self._help_at))]
        self._help_at[peer] = self.now
        for height in range(max(1, from_height), from_height + CATCHUP_BLOCKS_MAX):
            found: tuple[Block, CommitCertificate] | None
            if height == self.height:
                found = self.decision
            elif height < self.height:
                found = self._app.committed_block(height)
            else:
                found = None
            if found is None:
                break
            self._send(CommitMessage(found[0], found[1]), to=peer)

    def _help_round(self, peer: str, round_: int) -> None:
        """A peer is still in an older round of our height: send it our votes of that round
        (so it can complete it) and of our round (so f+1 of them let it skip ahead, L55).
        We re-broadcast only the current round, so without this a peer that lost our
        old-round votes could wait forever for a quorum that has moved on."""
        if peer == self.me:
            return
        last = self._round_help_at.get(peer)
        if last is not None and self.now - last < self._half_rebroadcast:
            return
        self._round_help_at[peer] = self.now
        for r in (round_, self.round):
            for kind in VOTE_KINDS:
                vote = self._own_votes.get((r, kind))
                if vote is not None:
                    self._send(vote, to=peer)

    def _request_sync(self, peer: str | None) -> None:
        if peer is None or peer == self.me or self.validators.get(peer) is None:
            return
        if self.now - self._sync_at < self._half_rebroadcast:
            return
        self._sync_at = self.now
        self._send(SyncRequest(self.chain_id, self.height, self.me), to=peer)

    # ------------------------------------------------------------ votes
    def _tally(self, round_: int, kind: str, *, create: bool = False) -> _Tally:
        tally = self._tallies.get((round_, kind))
        if tally is None:
            if not create:
                return _EMPTY_TALLY
            tally = self._tallies[(round_, kind)] = _Tally()
        return tally

    def _add_vote(self, vote: Vote, power: int) -> None:
        total = self._tally(vote.round, vote.kind, create=True).add(vote, power)
        if (vote.kind == PRECOMMIT and vote.block_hash is not None and total >= self._quorum
                and (vote.round, vote.block_hash) not in self._decidable):
            self._decidable.append((vote.round, vote.block_hash))
        self._note_round(vote.validator, vote.round)

    def _note_round(self, validator: str, round_: int) -> None:
        if round_ > self.round and round_ > self._max_round.get(validator, -1):
            self._max_round[validator] = round_
            self._skip_pending = True

    def _cast(self, kind: str, block_hash: bytes | None) -> None:
        """Sign (once per round and kind, ever) and broadcast our vote."""
        key = (self.round, kind)
        vote = self._own_votes.get(key)
        if vote is None:
            if not self.is_validator:
                return
            vote = Vote(self.chain_id, self.height, self.round, kind, block_hash, self.me).signed(self._key)
            self._own_votes[key] = vote
            self._persist({"t": REC_VOTE, "m": vote.to_value()})
            if not self._tally(vote.round, kind).voted(vote):  # a replay of it may have come back first
                self._add_vote(vote, self._my_power)
        self._send(vote)

    def _add_evidence(self, pair: Evidence) -> None:
        """Report two conflicting messages signed by one validator (once per round and kind)."""
        second = pair[1]
        if isinstance(second, Proposal):
            key = (second.proposer, second.round, "proposal")
        else:
            key = (second.validator, second.round, second.kind)
        if key in self._evidence_keys or len(self._evidence_keys) >= EVIDENCE_PER_HEIGHT_MAX:
            return
        self._evidence_keys.add(key)
        self._evidence_out.append(pair)

    # ------------------------------------------------------------ rules
    def _evaluate(self) -> None:
        for _ in range(RULE_FIRINGS_PER_EVENT_MAX):
            if not self._fire_one_rule():
                return
        raise LocalError("upon-rules did not settle", reason="rules-loop")

    def _fire_one_rule(self) -> bool:
        """Apply the first upon-rule whose condition holds; False if none does."""
        if self.step_ == Step.DECIDED:
            return False
        for round_, block_hash in self._decidable:  # L49
            block = self._find_block(block_hash)
            if block is not None and self._valid(block):
                self._decide(block, self._certificate(round_, block_hash))
                return True
        if self._skip_pending:  # L55
            self._skip_pending = False
            target = self._skip_target()
            if target > self.round:
                self._start_round(target)
                return True
        round_, quorum = self.round, self._quorum
        if self.step_ == Step.PROPOSE:
            for proposal in self._proposals.get(round_, ()):
                block = proposal.block
                if proposal.pol_round == -1:  # L22
                    ok = self._valid(block) and (self.locked_block is None or self.locked_block.hash == block.hash)
                elif self._tally(proposal.pol_round, PREVOTE).power_for.get(block.hash, 0) >= quorum:  # L28
                    ok = self._valid(block) and (
                        self.locked_round <= proposal.pol_round
                        or (self.locked_block is not None and self.locked_block.hash == block.hash))
                else:
                    continue
                self._set_step(Step.PREVOTE)
                self._cast(PREVOTE, block.hash if ok else None)
                return True
        prevotes = self._tally(round_, PREVOTE)
        if self.step_ >= Step.PREVOTE and ("L36", round_) not in self._fired:
            for value, power in prevotes.power_for.items():
                if value is None or power < quorum:
                    continue
                block = self._find_block(value)
                if block is None or not self._valid(block):
                    continue
                self._fired.add(("L36", round_))
                if self.step_ == Step.PREVOTE:
                    self._set_lock(round_, block)
                    self._set_step(Step.PRECOMMIT)
                    self._cast(PRECOMMIT, value)
                self._set_valid(round_, block)
                return True
        if self.step_ == Step.PREVOTE and prevotes.power_for.get(None, 0) >= quorum:  # L44
            self._set_step(Step.PRECOMMIT)
            self._cast(PRECOMMIT, None)
            return True
        if self.step_ == Step.PREVOTE and prevotes.power >= quorum and ("L34", round_) not in self._fired:
            self._fired.add(("L34", round_))
            self._schedule(_TIMER_PREVOTE, self._timeouts.prevote_base + round_ * self._timeouts.prevote_delta)
            return True
        if self._tally(round_, PRECOMMIT).power_for.get(None, 0) >= quorum:
            # 2f+1 precommitted nil: no value can gather 2f+1 precommits at this round (that
            # would take f+1 of them equivocating), so the precommit timeout (L47, L65) would
            # wait for nothing. Moving on early is the timeout expiring at once: rounds and
            # timeouts bear on liveness only. A dead round-0 proposer cost 500 ms more without it.
            self._start_round(round_ + 1)
            return True
        if self._tally(round_, PRECOMMIT).power >= quorum and ("L47", round_) not in self._fired:
            self._fired.add(("L47", round_))
            self._schedule(_TIMER_PRECOMMIT,
                           self._timeouts.precommit_base + round_ * self._timeouts.precommit_delta)
            return True
        return False

    def _skip_target(self) -> int:
        """The highest round r' > round that validators with f+1 power have reached (L55)."""
        for candidate in sorted({r for r in self._max_round.values() if r > self.round}, reverse=True):
            reached = [v for v, r in self._max_round.items() if r >= candidate]
            if self.validators.power_of(reached) >= self._skip_power:
                return candidate
        return -1

    def _find_block(self, block_hash: bytes) -> Block | None:
        for block in (self.locked_block, self.valid_block):
            if block is not None and block.hash == block_hash:
                return block
        for proposals in self._proposals.values():
            for proposal in proposals:
                if proposal.block.hash == block_hash:
                    return proposal.block
        return None

    def _valid(self, block: Block) -> bool:
        """valid(v): the application re-executes the block (cached per hash)."""
        cached = self._valid_cache.get(block.hash)
        if cached is None:
            header = block.header
            try:
                cached = (header.height == self.height and header.chain_id == self.chain_id
                          and self._app.validate_block(block))
            except LedgerError:
                cached = False
            self._valid_cache[block.hash] = cached
            if not cached:
                self._drop("invalid-block")
        return cached

    def _certificate(self, round_: int, block_hash: bytes) -> CommitCertificate:
        voters = self._tally(round_, PRECOMMIT).by_hash.get(block_hash, {})
        signers = sorted((v.validator, v.signature) for v in voters.values())
        assert self.validators.power_of(v for v, _ in signers) >= self._quorum
        return CommitCertificate(self.chain_id, self.height, round_, block_hash, tuple(signers))

    def _certificate_ok(self, block: Block, cert: CommitCertificate) -> bool:
        """The ledger's own rule (:meth:`CommitCertificate.verify`) against the current set,
        each precommit checked through the injected signature hook if there is one."""
        try:
            cert.verify(block.header, self.validators, self._verify_hook)
        except CertificateError:
            return False
        return True

    def _decide(self, block: Block, cert: CommitCertificate) -> None:
        assert self.decision is None and block.header.height == self.height
        self.decision = (block, cert)
        self._last_commit, self._last_commit_set = cert, self.validators
        self._set_step(Step.DECIDED)
        self._decided_at = self.now
        self._timers.clear()
        self._persist({"t": REC_DECIDE, "block": block.canonical(), "cert": cert.to_value()})
        self._committed_out.append((block, cert))

    def _set_lock(self, round_: int, block: Block) -> None:
        self.locked_round, self.locked_block = round_, block
        self._persist({"t": REC_LOCK, "h": self.height, "r": round_, "block": block.canonical(),
                       "pol": self._pol(round_, block)})

    def _set_valid(self, round_: int, block: Block) -> None:
        self.valid_round, self.valid_block = round_, block
        self._persist({"t": REC_VALID, "h": self.height, "r": round_, "block": block.canonical(),
                       "pol": self._pol(round_, block)})

    def _pol(self, round_: int, block: Block) -> list[Value]:
        """The prevotes for ``block`` at ``round_`` (our proof of lock), as record values: after
        a restart we can still forward them with a re-proposal, so others can unlock (L28)."""
        voters = self._tally(round_, PREVOTE).by_hash.get(block.hash, {})
        return [vote.to_value() for vote in voters.values()]

    def _set_step(self, step: Step) -> None:
        assert step in _STEP_TRANSITIONS[self.step_], f"step {self.step_.name} -> {step.name}"
        self.step_ = step

    # ----------------------------------------------------------- timers
    def _schedule(self, timer: str, ticks: int) -> None:
        self._timers[timer] = (self.now + max(1, ticks), self.round)

    def _fire_timers(self) -> None:
        for timer in _TIMERS:
            due = self._timers.get(timer)
            if due is None or self.now < due[0]:
                continue
            del self._timers[timer]
            if due[1] != self.round or self.step_ == Step.DECIDED:
                continue
            if timer == _TIMER_PROPOSE and self.step_ == Step.PROPOSE:  # L57
                self._set_step(Step.PREVOTE)
                self._cast(PREVOTE, None)
            elif timer == _TIMER_PREVOTE and self.step_ == Step.PREVOTE:  # L61
                self._set_step(Step.PRECOMMIT)
                self._cast(PRECOMMIT, None)
            elif timer == _TIMER_PRECOMMIT:  # L65
                self._start_round(self.round + 1)
            self._evaluate()
            if self.decision is not None:
                return

    def _rebroadcast(self) -> None:
        self._broadcast_at = self.now
        proposal = self._own_proposals.get(self.round)
        if proposal is not None:
            self._send_proposal(proposal)
        for kind in VOTE_KINDS:
            vote = self._own_votes.get((self.round, kind))
            if vote is not None:
                self._send(vote)

    # ----------------------------------------------------------- output
    def _persist(self, record: dict[str, Value]) -> None:
        self._persist_out.append(record)

    def _send(self, message: Message, to: str | None = None) -> None:
        self._send_out.append(Envelope(message, to))

    def _drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def _proposer_id(self, round_: int) -> str:
        found = self._proposer_ids.get(round_)
        if found is None:
            if len(self._proposer_ids) > ROUNDS_KEPT_MAX + ROUNDS_AHEAD_MAX:
                self._proposer_ids.clear()
            found = self._proposer_ids[round_] = self.validators.proposer(self.height, round_,
                                                                           self._inactive).key_id
        return found

    def _flush(self) -> Ready:
        ready = Ready(tuple(self._persist_out), tuple(self._send_out),
                      tuple(self._committed_out), tuple(self._evidence_out))
        self._persist_out, self._send_out, self._committed_out, self._evidence_out = [], [], [], []
        return ready

    def _check_invariants(self) -> None:
        assert (self.locked_round == -1) == (self.locked_block is None)
        assert (self.valid_round == -1) == (self.valid_block is None)
        assert self.locked_round <= self.valid_round <= self.round
        assert (self.step_ == Step.DECIDED) == (self.decision is not None)
        self._future.check()
        assert len(self._help_at) <= HELP_PEERS_MAX
        assert all(r <= self.round + ROUNDS_AHEAD_MAX for r, _ in self._tallies)


def _message_bytes(message: Message) -> int:
    """Bytes a held message stands for: its transactions' encodings (kept from parsing, so
    this costs no encoding) plus a fixed envelope and, for a commit, its signatures."""
    size = HELD_MESSAGE_BYTES_MIN
    if isinstance(message, Proposal | CommitMessage):
        size += sum(len(tx.to_bytes()) for tx in message.block.txs)
    if isinstance(message, CommitMessage):
        size += SIGNATURE_ENTRY_BYTES_MAX * len(message.certificate.signatures)
    return size


def _message_key(message: Message) -> tuple[object, ...]:
    if isinstance(message, Vote):
        return ("v", message.height, message.round, message.kind, message.block_hash,
                message.validator, message.signature)
    if isinstance(message, Proposal):
        return ("p", message.height, message.round, message.block.hash, message.pol_round,
                message.proposer, message.signature)
    if isinstance(message, CommitMessage):
        # Held only once its certificate verified: one certified block per height is enough.
        return ("c", message.height)
    return ("s", id(message))


__all__ = [
    "DROP_OVER_BUDGET",
    "REC_DECIDE",
    "REC_HEIGHT",
    "REC_LOCK",
    "REC_PROPOSAL",
    "REC_ROUND",
    "REC_VALID",
    "REC_VOTE",
    "Core",
    "Step",
    "parse_records",
]
