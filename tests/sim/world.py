"""One seeded simulation run: validators, network, faults, Byzantine behaviour, checker.

A run has two phases. In the *chaos* phase the scenario (drawn from the seed)
partitions the network (symmetric or asymmetric), isolates nodes, crashes honest
nodes (sometimes in the middle of handling a Ready: only a prefix of its records
reaches the WAL and nothing is sent) and restarts them from their WAL, and varies
loss, duplication, delay and replay. Up to f validators are Byzantine, each in one
mode (:data:`BYZANTINE_MODES`). In the *calm* phase the network heals, every
honest node is running, and each must commit ``LIVENESS_HEIGHTS`` new heights
within ``LIVENESS_TICKS_MAX`` ticks. In the *degraded* phase the fault budget left
(f minus the Byzantine validators) crashes honest validators for good: the others
keep committing, the crashed ones leave the round-0 rotation after the proposer
window, and once restarted they rejoin it (:meth:`World._run_degraded`).

The selftest world gives f+1 validators a twin each on both sides of a partition:
the checker must then report an agreement violation.
"""

from __future__ import annotations

import hashlib
import random
import traceback
from dataclasses import dataclass, field
from typing import cast

from ledger.block import PRECOMMIT, PREVOTE, Vote
from ledger.constants import PROPOSER_WINDOW_HEIGHTS
from ledger.encoding import Value
from ledger.errors import LedgerError
from ledger.genesis import DEFAULT_POLICY, Genesis
from ledger.keys import ALG_EDDSA, PublicKey, SigningKey
from ledger.tx import Transaction, TxSignature
from ledger.validators import Validator, ValidatorSet
from node.consensus.core import Core
from node.consensus.messages import CommitMessage, Message, Proposal, SyncRequest
from node.consensus.types import CoreConfig, Ready, Timeouts
from tests.sim.app import VALSET_TX_TYPE, Ledger, SharedCaches, SimApp, make_executor
from tests.sim.checker import Checker
from tests.sim.network import Network

CHAIN_ID = "imi-sim"
GENESIS_TIME_MS = 1_700_000_000_000
TX_EXPIRY_MS = 3_600_000  # relative to genesis; far beyond any simulated block time

SIM_TIMEOUTS = Timeouts(propose_base=10, propose_delta=3, prevote_base=5, prevote_delta=2,
                        precommit_base=5, precommit_delta=2, commit_ticks=3, rebroadcast_ticks=12)
CHAOS_TICKS_MIN = 100
CHAOS_TICKS_MAX = 300
LIVENESS_TICKS_MAX = 1_500  # after the final heal, each honest node commits LIVENESS_HEIGHTS within this
LIVENESS_HEIGHTS = 2
SELFTEST_TICKS_MAX = 600
TX_RATE = 0.15  # probability per tick that a client submits a transaction

# The degraded phase (after the calm one): every fault budget left (f minus the Byzantine
# validators) is spent on crashing honest validators for good, then they restart.
DEGRADED_HEIGHTS = 24  # heights every running honest node commits with them down
DEGRADED_TICKS_MAX = 3_000  # ... within this many ticks
SKIP_AFTER_HEIGHTS = PROPOSER_WINDOW_HEIGHTS + 3  # from then on a crashed validator is never round-0 proposer
REJOIN_HEIGHTS_MAX = 32  # a restarted validator is a round-0 proposer again within
REJOIN_TICKS_MAX = 4_000
SLOW_SEEDS = 0.3  # fraction of seeds where one honest validator's messages all take longer
SLOW_EXTRA_TICKS = (2, 6)  # its extra delay, drawn once per seed
FLAKY_HEIGHTS = 0.3  # a flaky validator takes part in this fraction of heights

BYZANTINE_MODES = ("silent", "twins", "amnesia", "forger", "flaky")
HONEST_MODES = ("honest", "slow")
# silent  — never sends anything (crashed for good)
# twins   — two copies with the same key on the network: equivocating proposals, double votes
# amnesia — restarts every few dozen ticks having forgotten its lock and its votes, then votes again
# forger  — invalid / impersonated / wrong-chain / far-future signatures, conflicting votes to
#           different peers, proposals that smuggle an invalid transaction
# flaky   — games the proposer rule: sends its votes only in some heights (so it stays in the
#           round-0 rotation) and never proposes (so each of its round-0 turns costs a round)
# A "slow" validator is honest: everything it sends is delayed SLOW_EXTRA_TICKS more.


def _key(index: int) -> SigningKey:
    return SigningKey(ALG_EDDSA, hashlib.sha256(b"imi-sim-validator-%d" % index).digest())


def _validator(key: SigningKey, index: int) -> Validator:
    return Validator(f"v{index}", key.public_key, 1, f"sim:{index}", bytes(32))


@dataclass
class SimNode:
    name: str
    key: SigningKey
    honest: bool
    mode: str  # "honest" or one of BYZANTINE_MODES
    ledger: Ledger
    app: SimApp
    core: Core | None = None
    wal: list[Value] = field(default_factory=list)
    crash_mid_ready: bool = False
    restart_at: int | None = None
    key_id: str = ""

    def __post_init__(self) -> None:
        self.key_id = self.key.key_id  # a thumbprint costs a JSON dump and a hash: compute once


@dataclass
class Result:
    seed: int
    validators: int
    violations: list[str]
    heights: int
    commits: int
    messages: int
    ticks: int
    evidence: int
    digest: str
    modes: tuple[str, ...]
    selftest: bool = False
    proposal_evidence: int = 0  # of ``evidence``: pairs of proposals
    skips: int = 0  # heights whose round-0 proposer the rule moved off the plain rotation
    degraded_crashes: int = 0  # honest validators crashed for good in the degraded phase

    def replay_command(self) -> str:
        extra = " --selftest" if self.selftest else ""
        return f"python -m tests.sim --seed {self.seed} --validators {self.validators}{extra}"


class World:
    def __init__(self, seed: int, validators: int, *, selftest: bool = False) -> None:
        assert validators in (4, 7) or validators >= 4
        self.seed = seed
        self.n = validators
        self.f = (validators - 1) // 3
        self.selftest = selftest
        self.rng = random.Random(f"imi-sim/{seed}/{validators}/{int(selftest)}")
        self.now = 0
        self._verified: dict[tuple[object, ...], bool] = {}
        self.checker = Checker(self._verify)
        self.trace = hashlib.sha256()
        self.config = CoreConfig(CHAIN_ID, SIM_TIMEOUTS, self._verify)
        self._build()

    # --- setup ------------------------------------------------------------------------------
    def _build(self) -> None:
        rng = self.rng
        pool = [_key(i) for i in range(self.n + 1)]
        rng.shuffle(pool)
        keys, self.spare_key = pool[: self.n], pool[self.n]
        self.trustee = _key(1000)
        self.clients = [_key(2000 + i) for i in range(3)]
        genesis_set = ValidatorSet.of(_validator(k, i) for i, k in enumerate(keys))
        self.genesis = Genesis(CHAIN_ID, GENESIS_TIME_MS, genesis_set, (self.trustee.public_key,), 1,
                               dict(DEFAULT_POLICY))
        self.executor = make_executor(CHAIN_ID, self.trustee.key_id)
        self.caches = SharedCaches()
        if self.selftest:
            modes = ["twins-split"] * (self.f + 1) + ["honest"] * (self.n - self.f - 1)
        else:
            byzantine = rng.randint(0, self.f)
            modes = [rng.choice(BYZANTINE_MODES) for _ in range(byzantine)] + ["honest"] * (self.n - byzantine)
            rng.shuffle(modes)
            if rng.random() < SLOW_SEEDS:
                modes[modes.index("honest")] = "slow"
        self.modes = tuple(modes)
        self.nodes: list[SimNode] = []
        for index, (key, mode) in enumerate(zip(keys, modes)):
            self._add_node(f"v{index}", key, mode)
            if mode in ("twins", "twins-split"):
                self._add_node(f"v{index}b", key, mode)
        self.valset_change = not self.selftest and rng.random() < 0.35
        if self.valset_change:
            self._add_node("spare", self.spare_key, "honest")
            honest = [i for i, m in enumerate(modes) if m in HONEST_MODES]
            retiree = keys[rng.choice(honest)]
            members = [v for v in genesis_set.validators if v.key_id != retiree.key_id]
            members.append(_validator(self.spare_key, self.n))
            self.new_set = ValidatorSet.of(members)
            self.valset_tick = rng.randint(5, 80)
        self.net = Network(rng, len(self.nodes))
        for index, node in enumerate(self.nodes):
            if node.mode == "slow":
                self.net.slow[index] = rng.randint(*SLOW_EXTRA_TICKS)
        self._flaky_heights: dict[tuple[str, int], bool] = {}
        self.degraded_crashes = 0
        self.by_key: dict[str, list[int]] = {}
        for index, node in enumerate(self.nodes):
            self.by_key.setdefault(node.key_id, []).append(index)
        self.honest_ids = {n.key_id for n in self.nodes if n.honest}
        self.crashed_ids: set[str] = set()  # honest validators down in the degraded phase
        self.crashed_at = 0
        self._skips_seen: set[int] = set()  # heights whose round-0 proposer is not the plain rotation's
        for node in self.nodes:
            if node.mode != "silent":
                self._start(node)

    def _add_node(self, name: str, key: SigningKey, mode: str) -> None:
        ledger = Ledger(self.genesis)
        node = SimNode(name, key, mode in HONEST_MODES, mode, ledger, self._app(ledger, mode))
        self.nodes.append(node)

    def _app(self, ledger: Ledger, mode: str) -> SimApp:
        bad = self._bad_tx() if mode == "forger" and self.rng.random() < 0.5 else None
        return SimApp(ledger, self.executor, self.caches, bad)

    def _verify(self, key: PublicKey, signed: Vote | Proposal) -> bool:
        """Memoized signature check, keyed by the whole signed content and the key:
        each distinct signed message is verified once per run, not once per node."""
        if isinstance(signed, Vote):
            k: tuple[object, ...] = (key.raw, signed)
        else:
            k = (key.raw, signed.chain_id, signed.height, signed.round, signed.block.hash,
                 signed.pol_round, signed.proposer, signed.signature)
        found = self._verified.get(k)
        if found is None:
            found = self._verified[k] = key.verify(signed.signing_bytes(), signed.signature)
        return found

    # --- transactions -------------------------------------------------------------------
    def _note(self) -> Transaction:
        client = self.clients[self.rng.randrange(len(self.clients))]
        tx = Transaction.create(chain_id=CHAIN_ID, type="test.note", sender=client.key_id,
                                payload={"data": self.rng.randbytes(8)},
                                expires_at_ms=GENESIS_TIME_MS + TX_EXPIRY_MS, nonce=self.rng.randbytes(16))
        return tx.sign(client)

    def _bad_tx(self) -> Transaction:
        good = self._note()
        forged = TxSignature(good.signatures[0].public_key, bytes(64))
        return Transaction(good.chain_id, good.type, good.sender, good.payload, good.nonce,
                           good.expires_at_ms, (forged,))

    def _submit(self, tx: Transaction) -> None:
        running = [n for n in self.nodes if n.core is not None]
        for node in self.rng.sample(running, self.rng.randint(1, len(running))) if running else []:
            node.app.mempool.append(tx)

    # --- node lifecycle --------------------------------------------------------------------
    def _start(self, node: SimNode) -> None:
        restored = list(node.wal) if node.wal else None
        node.app = SimApp(node.ledger, self.executor, self.caches, node.app.bad_tx)  # mempool is lost
        if node.honest:
            self.checker.on_restart(node.name, [b.hash for b, _ in node.ledger.blocks])
        node.core = Core(self.config, node.key, node.app, restored)

    def _crash(self, node: SimNode) -> None:
        node.core = None
        node.crash_mid_ready = False

    # --- the loop ------------------------------------------------------------------------------
    def run(self) -> Result:
        if self.selftest:
            self._run_selftest()
        else:
            self._run_normal()
        heights = max((n.ledger.height for n in self.nodes if n.honest), default=0)
        return Result(self.seed, self.n, list(self.checker.violations), heights, self.checker.commits,
                      self.net.delivered, self.now, self.checker.evidence, self.trace.hexdigest(),
                      self.modes, self.selftest, self.checker.proposal_evidence, len(self._skips_seen),
                      self.degraded_crashes)

    def _run_normal(self) -> None:
        chaos_end = self.rng.randint(CHAOS_TICKS_MIN, CHAOS_TICKS_MAX)
        next_event = self.rng.randint(10, 60)
        while self.now < chaos_end:
            self._tick()
            if self.now >= next_event:
                self._chaos_event()
                next_event = self.now + self.rng.randint(15, 90)
        self._calm()
        base = {n.name: n.ledger.height for n in self.nodes if n.honest}
        deadline = self.now + LIVENESS_TICKS_MAX
        while self.now < deadline:
            self._tick()
            if all(n.ledger.height >= base[n.name] + LIVENESS_HEIGHTS for n in self.nodes if n.honest):
                return self._run_degraded()
        late = [f"{n.name}@{n.ledger.height}" for n in self.nodes
                if n.honest and n.ledger.height < base[n.name] + LIVENESS_HEIGHTS]
        if late:
            self.checker.violation(f"liveness: {', '.join(late)} did not commit {LIVENESS_HEIGHTS} new heights "
                                   f"within {LIVENESS_TICKS_MAX} ticks after the network healed")

    def _run_degraded(self) -> None:
        """Crash honest validators for good (as many as f leaves after the Byzantine ones):
        the others must keep committing, and once the window has passed no crashed one is
        ever the round-0 proposer; restarted, each catches up and is back in the round-0
        rotation (some honest node's inactive_at no longer names it) within REJOIN_HEIGHTS_MAX."""
        rng = self.rng
        running = [n for n in self.nodes if n.honest and n.core is not None]
        members = running[0].core.validators if running and running[0].core is not None else None
        if members is None:
            return
        byzantine = {n.key_id for n in self.nodes if not n.honest and members.get(n.key_id) is not None}
        candidates = [n for n in running if n.mode == "honest" and members.get(n.key_id) is not None]
        victims = rng.sample(candidates, min(len(candidates), self.f - len(byzantine)))
        for node in victims:
            self._crash(node)
            node.restart_at = None
        self.degraded_crashes = len(victims)
        self.crashed_ids = {n.key_id for n in victims}
        self.crashed_at = max(n.ledger.height for n in self.nodes if n.honest)
        if not self._advance(DEGRADED_HEIGHTS, DEGRADED_TICKS_MAX):
            return self.checker.violation(
                f"liveness: with {len(victims)} crashed the others did not commit {DEGRADED_HEIGHTS} heights "
                f"within {DEGRADED_TICKS_MAX} ticks")
        self.crashed_ids = set()
        for node in victims:
            self._start(node)
        restarted_at = max(n.ledger.height for n in self.nodes if n.honest)
        deadline = self.now + REJOIN_TICKS_MAX
        waiting = {n.key_id for n in victims}
        while waiting and self.now < deadline:
            self._tick()
            top = max(self.nodes, key=lambda n: n.ledger.height if n.honest else -1)
            if top.ledger.height > restarted_at + REJOIN_HEIGHTS_MAX:
                break
            waiting -= {k for k in waiting if k not in top.app.inactive_at(top.ledger.height + 1)
                        and top.ledger.height >= restarted_at + PROPOSER_WINDOW_HEIGHTS}
        if waiting:
            names = ", ".join(n.name for n in victims if n.key_id in waiting)
            self.checker.violation(f"rejoin: {names} not back in the round-0 rotation within "
                                   f"{REJOIN_HEIGHTS_MAX} heights of its restart")

    def _advance(self, heights: int, ticks: int) -> bool:
        """Tick until every running honest node committed ``heights`` more; False on timeout."""
        base = {n.name: n.ledger.height for n in self.nodes if n.honest and n.core is not None}
        deadline = self.now + ticks
        while self.now < deadline:
            self._tick()
            if all(n.ledger.height >= base[n.name] + heights for n in self.nodes
                   if n.name in base and n.core is not None):
                return True
        return False

    def _run_selftest(self) -> None:
        # Side A: honest 0..k-1 and the first twin of each Byzantine; side B the rest.
        honest = [i for i, n in enumerate(self.nodes) if n.honest]
        side_a = honest[: len(honest) // 2] + [i for i, n in enumerate(self.nodes)
                                               if not n.honest and not n.name.endswith("b")]
        side_b = [i for i in range(len(self.nodes)) if i not in side_a]
        self.net.partition([side_a, side_b], asymmetric=False)
        while self.now < SELFTEST_TICKS_MAX and not self.checker.violations:
            self._tick()

    def _tick(self) -> None:
        self.now += 1
        rng = self.rng
        if rng.random() < TX_RATE:
            self._submit(self._note())
        if self.valset_change and self.now == self.valset_tick:
            tx = Transaction.create(chain_id=CHAIN_ID, type=VALSET_TX_TYPE, sender=self.trustee.key_id,
                                    payload={"set": self.new_set.to_value()},
                                    expires_at_ms=GENESIS_TIME_MS + TX_EXPIRY_MS, nonce=rng.randbytes(16))
            tx = tx.sign(self.trustee)
            for node in self.nodes:
                node.app.mempool.append(tx)
        for node in self.nodes:
            if node.core is None and node.restart_at is not None and self.now >= node.restart_at:
                node.restart_at = None
                self._start(node)
            if node.mode == "amnesia" and node.core is not None and rng.random() < 0.03:
                node.wal = [r for r in node.wal if isinstance(r, dict) and r.get("t") in ("height", "round")]
                self._start(node)
        for index, node in enumerate(self.nodes):
            if node.core is not None:
                self._handle(index, node, node.core.tick())
        for src, dst, message in self.net.due(self.now):
            node = self.nodes[dst]
            if node.core is None:
                continue
            self.trace.update(b"D%d:%d:%d:" % (self.now, src, dst) + _message_id(message))
            self._handle(dst, node, node.core.step(cast(Message, message)))

    def _handle(self, index: int, node: SimNode, ready: Ready) -> None:
        if node.crash_mid_ready and ready.persist:
            cut = self.rng.randint(0, len(ready.persist))
            self._append_wal(node, ready.persist[:cut])
            self._crash(node)
            return
        self._append_wal(node, ready.persist)
        for envelope in ready.send:
            message = envelope.message
            if node.honest:
                self.checker.on_signed(node.name, message)
                self._route(index, envelope.to, message)
            else:
                self._byzantine_send(index, node, envelope.to, message)
        for block, cert in ready.committed:
            validators = node.app.validators_at(block.header.height)
            if node.honest and block.header.height == node.ledger.height + 1:
                self._check_round0(node, block.header.height, validators)
            try:
                applied = node.app.apply(block, cert)
            except (AssertionError, LedgerError) as exc:
                if node.honest:
                    self.checker.violation(f"validity: {node.name} could not apply height "
                                           f"{block.header.height}: {exc}")
                continue
            if applied:
                self.trace.update(b"C%d:%d:%d:" % (self.now, index, block.header.height) + block.hash)
                if node.honest:
                    self.checker.on_commit(node.name, block, cert, validators)
        for first, second in ready.evidence:
            if node.honest and node.core is not None:
                accused = first.proposer if isinstance(first, Proposal) else first.validator
                self.checker.on_evidence(accused, accused in self.honest_ids, first, second,
                                         node.core.validators)

    def _check_round0(self, node: SimNode, height: int, validators: ValidatorSet) -> None:
        proposer = validators.proposer(height, 0, node.app.inactive_at(height)).key_id
        if height not in self._skips_seen and proposer != validators.proposer(height, 0).key_id:
            self._skips_seen.add(height)
        self.checker.on_round0_proposer(node.name, height, proposer)
        if node.core is not None and node.core.height == height and node.core.proposer(0) != proposer:
            self.checker.violation(f"proposer rule: {node.name}'s core and application name different "
                                   f"round-0 proposers at height {height}")
        if proposer in self.crashed_ids and height >= self.crashed_at + SKIP_AFTER_HEIGHTS:
            self.checker.violation(f"proposer rule: {proposer[:8]}, crashed since height {self.crashed_at}, "
                                   f"is still the round-0 proposer of height {height}")

    @staticmethod
    def _append_wal(node: SimNode, records: tuple[Value, ...]) -> None:
        for record in records:
            if isinstance(record, dict) and record.get("t") == "height":
                node.wal = []  # compaction, as the driver does: keep from the last height marker
            node.wal.append(record)

    def _route(self, src: int, to: str | None, message: object, only: list[int] | None = None) -> None:
        nodes = self.nodes
        own = nodes[src].key_id
        if to is not None:
            targets: list[int] | range = self.by_key.get(to, [])
        else:
            targets = only if only is not None else range(len(nodes))
        for dst in targets:
            if nodes[dst].key_id != own:
                self.net.send(self.now, src, dst, message)

    # --- Byzantine behaviour ------------------------------------------------------------
    def _byzantine_send(self, index: int, node: SimNode, to: str | None, message: object) -> None:
        rng = self.rng
        if node.mode == "flaky" and isinstance(message, (Vote, Proposal)):
            if isinstance(message, Proposal):
                return None
            key = (node.name, message.height)
            taking_part = self._flaky_heights.get(key)
            if taking_part is None:
                taking_part = self._flaky_heights[key] = rng.random() < FLAKY_HEIGHTS
            return self._route(index, to, message) if taking_part else None
        if node.mode != "forger" or to is not None:
            return self._route(index, to, message)
        everyone = list(range(len(self.nodes)))
        if isinstance(message, Vote) and rng.random() < 0.3:
            # Double vote: a conflicting vote to half the peers.
            other = None if message.block_hash is not None else rng.randbytes(32)
            twin = Vote(message.chain_id, message.height, message.round, message.kind, other,
                        message.validator).signed(node.key)
            rng.shuffle(everyone)
            half = len(everyone) // 2
            self._route(index, None, message, everyone[:half])
            self._route(index, None, twin, everyone[half:])
        else:
            self._route(index, None, message)
        if isinstance(message, Vote) and rng.random() < 0.3:
            for forged in self._forgeries(node, message):
                self._route(index, None, forged)

    def _forgeries(self, node: SimNode, vote: Vote) -> list[object]:
        rng = self.rng
        victim = self.nodes[rng.randrange(len(self.nodes))].key_id
        kind = rng.choice((PREVOTE, PRECOMMIT))
        out: list[object] = [
            # an invalid signature
            Vote(vote.chain_id, vote.height, vote.round, kind, rng.randbytes(32), vote.validator,
                 rng.randbytes(64)),
            # impersonation: another validator's id, our signature
            Vote(vote.chain_id, vote.height, vote.round, kind, vote.block_hash, victim,
                 vote.signed(node.key).signature),
            # a signed vote for another chain
            Vote("other-chain", vote.height, vote.round, kind, vote.block_hash, vote.validator).signed(node.key),
            # far-future round and height (signed): must be bounded, must not skip rounds alone
            Vote(vote.chain_id, vote.height, vote.round + rng.randint(1, 10_000), kind, None,
                 vote.validator).signed(node.key),
            Vote(vote.chain_id, vote.height + rng.randint(1, 50), 0, kind, None, vote.validator).signed(node.key),
            # a sync request for height 1 in someone else's name (unsigned, harmless)
            SyncRequest(vote.chain_id, 1, victim),
        ]
        return [out[rng.randrange(len(out))] for _ in range(2)]

    # --- scenario ---------------------------------------------------------------------------
    def _chaos_event(self) -> None:
        rng = self.rng
        net = self.net
        action = rng.choice(("partition", "partition", "heal", "crash", "crash", "faults", "isolate"))
        count = len(self.nodes)
        if action == "partition":
            order = list(range(count))
            rng.shuffle(order)
            cut = rng.randint(1, count - 1)
            net.partition([order[:cut], order[cut:]], asymmetric=rng.random() < 0.4)
        elif action == "heal":
            net.heal()
        elif action == "isolate":
            net.isolate(rng.randrange(count), [])
        elif action == "crash":
            candidates = [n for n in self.nodes if n.honest and n.core is not None]
            if candidates:
                node = rng.choice(candidates)
                if rng.random() < 0.5:
                    node.crash_mid_ready = True  # crashes inside its next Ready with records
                else:
                    self._crash(node)
                node.restart_at = self.now + rng.randint(5, 120)
        else:
            faults = net.faults
            faults.drop = rng.choice((0.0, 0.05, 0.15, 0.3))
            faults.duplicate = rng.choice((0.0, 0.05, 0.2))
            faults.replay = rng.choice((0.0, 0.01, 0.05))
            faults.delay_max = rng.randint(1, 8)

    def _calm(self) -> None:
        self.net.heal()
        faults = self.net.faults
        faults.drop, faults.duplicate, faults.delay_max = 0.02, 0.02, 3
        for node in self.nodes:
            node.crash_mid_ready = False
            if node.honest and node.core is None:
                node.restart_at = None
                self._start(node)


def _message_id(message: object) -> bytes:
    if isinstance(message, Vote):
        return b"v" + message.kind.encode() + message.signature
    if isinstance(message, Proposal):
        return b"p" + message.signature
    if isinstance(message, CommitMessage):
        return b"c" + message.block.hash
    if isinstance(message, SyncRequest):
        return b"s%d" % message.height + message.requester.encode()
    return b"?"


def run_seed(seed: int, validators: int, *, selftest: bool = False) -> Result:
    """Run one world; an exception inside it (a core assertion, say) is a violation too."""
    world = World(seed, validators, selftest=selftest)
    try:
        return world.run()
    except Exception as exc:  # noqa: BLE001 - any crash of the simulated system is reported
        where = traceback.extract_tb(exc.__traceback__)[-1]
        world.checker.violation(f"exception at tick {world.now}: {type(exc).__name__}: {exc} "
                                f"({where.filename.rsplit('/', 1)[-1]}:{where.lineno})")
        return Result(seed, validators, list(world.checker.violations), 0, world.checker.commits,
                      world.net.delivered, world.now, world.checker.evidence, world.trace.hexdigest(),
                      world.modes, selftest, world.checker.proposal_evidence)


__all__ = ["LIVENESS_HEIGHTS", "LIVENESS_TICKS_MAX", "Result", "World", "run_seed"]
