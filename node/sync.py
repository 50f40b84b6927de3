"""Catch-up: a validator that was down (or is new) fetches decided blocks from peers.

Over the validator transport (so peers are authenticated by their pinned TLS
keys, and no API address is needed)::

    {"t": "status", "height": h, "head": [header, cert]}  every STATUS_INTERVAL_MS
    {"t": "sync_req",  "from": h, "count": n}           ask for blocks h .. h+n-1
    {"t": "sync_resp", "from": h, "blocks": [[block, cert], ...]}
                                  at most n, up to SYNC_RESPONSE_BYTES_MAX (one bigger block alone)

**A peer's height is believed only with proof.** A status claim above our own
height counts only if it carries the claimed head header with a commit
certificate that verifies against the validator set we know (one Byzantine
peer cannot make us chase a height nobody reached). A claim without such proof
(also an honest one, when the set changed since our head) counts only up to the
height that validators holding more than f of the power claim at least: one of
them is honest. See :meth:`Syncer.live_heights`.

**A peer that fails a catch-up is remembered.** No answer in time, an empty
answer or blocks that do not verify put the peer on a backoff
(``SYNC_PEER_BACKOFF_MS_MIN`` doubling to ``SYNC_PEER_BACKOFF_MS_MAX``) that
outlives one catch-up; a peer whose blocks applied is forgiven.

:meth:`Syncer.catch_up` cuts the missing heights into ranges and asks several
trusted peers at once (``SYNC_REQUESTS_IN_FLIGHT_MAX`` in all,
``SYNC_PEER_REQUESTS_IN_FLIGHT_MAX`` per peer), holding at most
``SYNC_RESPONSES_AHEAD_MAX`` requests and unapplied answers (plus the range of our
next height), so at most ``SYNC_BYTES_AHEAD_MAX`` bytes of blocks. Answers come in
any order; a short answer has the rest of its range asked again. Consecutive
fetched blocks are applied in batches by :meth:`LedgerApplication.apply_certified`:
each certificate verified once against the validator set the chain names for its
height (a set changed inside the batch included), strict re-execution, every root
checked, ONE atomic write per batch. The transactions' signatures are checked
ahead on a worker thread. ``before_apply`` is called once, when the first block's
certificate has verified and just before anything is stored: a running validator
pauses consensus there (see :mod:`node.service`), so it never pauses on a peer's
word, only with certified blocks in hand. A range lost to a silent or bad peer is
asked again of another. Progress is logged and counted (``target_height``,
``blocks_synced``, ``txs_synced``, ``blocks_per_s``, ``tx_per_s``).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ledger.block import Block, BlockHeader, CommitCertificate
from ledger.encoding import Value
from ledger.errors import LedgerError
from ledger.tx import Transaction
from node.application import LedgerApplication
from node.constants import (
    STATUS_STALE_MS,
    SYNC_BATCH_BLOCKS_MAX,
    SYNC_BATCH_TXS_MAX,
    SYNC_BLOCKS_PER_REQUEST_MAX,
    SYNC_PEER_BACKOFF_MS_MAX,
    SYNC_PEER_BACKOFF_MS_MIN,
    SYNC_PEER_REQUESTS_IN_FLIGHT_MAX,
    SYNC_REQUEST_TIMEOUT_MS,
    SYNC_REQUESTS_IN_FLIGHT_MAX,
    SYNC_RESPONSE_BYTES_MAX,
    SYNC_RESPONSES_AHEAD_MAX,
    SYNC_VERIFY_THREADS,
)
from node.errors import SyncError

log = logging.getLogger("imi.sync")

SYNC_ROUNDS_MAX = 100_000  # waits for answers in one catch-up; bounds a peer that keeps claiming more


@dataclass(frozen=True, slots=True)
class _Claim:
    """A peer's last status: its height, whether that height is proven, and when we heard it."""

    height: int
    proven: bool
    heard_at: float  # clock seconds


@dataclass(frozen=True, slots=True)
class _Backoff:
    """A peer not to ask before ``until`` (clock seconds); ``delay_s`` doubles per failure."""

    until: float
    delay_s: float


@dataclass(slots=True)
class _Request:
    """A sync request in flight: ``count`` blocks from ``start``, asked of ``peer``."""

    peer: str
    start: int
    count: int
    future: asyncio.Future[list[Value]]
    waited_s: float = 0.0  # time spent waiting for answers since it was sent (not applying blocks)


@dataclass(frozen=True, slots=True)
class _Fetched:
    """A block received (decoded, not verified yet), who sent it and in which answer."""

    block: Block
    certificate: CommitCertificate
    peer: str
    answer: int


@dataclass(slots=True)
class _Progress:
    """Blocks and transactions one catch-up stored, for its rate (from its start, so the
    wait for the first answers counts too)."""

    started_at: float
    ended_at: float | None = None
    blocks: int = 0
    txs: int = 0

    def add(self, stored: list[_Fetched]) -> None:
        self.blocks += len(stored)
        self.txs += sum(len(f.block.txs) for f in stored)

    def per_s(self, count: int, now: float) -> float:
        elapsed = (self.ended_at if self.ended_at is not None else now) - self.started_at
        return count / elapsed if count and elapsed > 0 else 0.0


class _Plan:
    """One catch-up's bookkeeping: ranges still to ask, requests in flight, blocks fetched
    and not yet applied (grouped by the answer they came in, for the memory bound)."""

    def __init__(self, head: int) -> None:
        self.todo: list[tuple[int, int]] = []  # (start, count): sorted, disjoint
        self.planned = head  # every height up to this one is stored, in todo, in flight or fetched
        self.flying: list[_Request] = []
        self.fetched: dict[int, _Fetched] = {}
        self.held: dict[int, int] = {}  # answer id -> its blocks still in fetched
        self.answers = itertools.count()
        self.asks = itertools.count(1)
        self.asked_at: dict[str, int] = {}  # peer -> order of its last request (spreads the load)

    def outstanding(self) -> int:
        """Requests in flight plus answers still held: each is at most one frame."""
        return len(self.flying) + len(self.held)

    def busy(self) -> Counter[str]:
        return Counter(r.peer for r in self.flying)

    def plan_to(self, target: int) -> None:
        for start in range(self.planned + 1, target + 1, SYNC_BLOCKS_PER_REQUEST_MAX):
            self.give_back(start, min(SYNC_BLOCKS_PER_REQUEST_MAX, target - start + 1))
        self.planned = max(self.planned, target)

    def give_back(self, start: int, count: int) -> None:
        """Put heights ``start .. start + count - 1`` (back) among those to ask."""
        bisect.insort(self.todo, (start, count))

    def take(self, start: int, count: int) -> None:
        """Remove the first ``count`` heights of the first range (asked now)."""
        first, whole = self.todo.pop(0)
        assert first == start and count <= whole
        if count < whole:
            self.todo.insert(0, (start + count, whole - count))

    def drop_below(self, height: int) -> None:
        """Forget ranges and fetched blocks under ``height`` (stored meanwhile)."""
        while self.todo and self.todo[0][0] < height:
            start, count = self.todo.pop(0)
            if start + count > height:
                self.todo.insert(0, (height, start + count - height))
        for stale in [h for h in self.fetched if h < height]:
            self.release(self.fetched[stale])

    def hold(self, peer: str, pairs: list[tuple[Block, CommitCertificate]]) -> None:
        answer = next(self.answers)
        for block, certificate in pairs:
            self.fetched[block.header.height] = _Fetched(block, certificate, peer, answer)
        self.held[answer] = len(pairs)

    def release(self, fetched: _Fetched) -> None:
        del self.fetched[fetched.block.header.height]
        left = self.held[fetched.answer] - 1
        if left:
            self.held[fetched.answer] = left
        else:
            del self.held[fetched.answer]

    def run_from(self, height: int) -> list[_Fetched]:
        """Fetched blocks from ``height`` on, consecutive, up to one batch's bounds."""
        run: list[_Fetched] = []
        txs = 0
        while len(run) < SYNC_BATCH_BLOCKS_MAX and txs < SYNC_BATCH_TXS_MAX and height + len(run) in self.fetched:
            run.append(self.fetched[height + len(run)])
            txs += len(run[-1].block.txs)
        return run

    def give_back_all_of(self, peer: str) -> None:
        """Every block ``peer`` sent goes back to be asked again (of another peer)."""
        for height in sorted(h for h, f in self.fetched.items() if f.peer == peer):
            self.release(self.fetched[height])
            self.give_back(height, 1)


def _check_signatures(txs: list[Transaction], chain_id: str) -> None:
    """Run each transaction's stateless checks (its signatures) ahead of execution, on a
    worker thread: a pass is remembered on the transaction object, so execution does not
    verify it again; a failure is left for execution to find and report."""
    for tx in txs:
        try:
            tx.check_stateless(chain_id)
        except LedgerError:
            continue


def _decoded(blocks: list[Value], start: int, count: int) -> list[tuple[Block, CommitCertificate]]:
    """The ``[block, certificate]`` pairs of an answer to a request for ``count`` blocks
    from ``start``: at least one, at most ``count``, of heights ``start, start + 1, ...``
    (only the shape is checked here; certificates and execution when applied)."""
    if not blocks:
        raise SyncError("answered with no blocks", reason="sync-empty")
    if len(blocks) > count:
        raise SyncError(f"answered {len(blocks)} blocks for {count}", reason="sync-malformed")
    pairs = []
    for offset, pair in enumerate(blocks):
        if not (isinstance(pair, list) and len(pair) == 2):
            raise SyncError("malformed block entry", reason="sync-malformed")
        try:
            block = Block.from_value(pair[0])
            certificate = CommitCertificate.from_value(pair[1])
        except LedgerError as exc:
            raise SyncError(f"block does not decode: {exc} [{exc.reason}]", reason="sync-bad-block") from exc
        if block.header.height != start + offset:
            raise SyncError(f"block {block.header.height} is not height {start + offset}", reason="sync-gap")
        pairs.append((block, certificate))
    return pairs


class Syncer:
    """Tracks peers' heights, answers their requests and catches this node up.

    ``clock`` is monotonic seconds (tests pass their own)."""

    def __init__(self, app: LedgerApplication, send: Callable[[str, Value], None], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._app = app
        self._send = send
        self._clock = clock
        self._claims: dict[str, _Claim] = {}  # peers are authenticated members: bounded by the set
        self._backoff: dict[str, _Backoff] = {}
        self._waiting: dict[str, dict[int, asyncio.Future[list[Value]]]] = {}  # peer -> start -> answer
        self._announced: tuple[int, Value] | None = None
        self._progress = _Progress(clock())
        self._verifier: ThreadPoolExecutor | None = None  # started by the first catch-up
        self.syncing = False
        self.target_height = 0  # the highest trusted height the current (or last) catch-up aimed at
        self.blocks_synced = 0  # blocks stored by catch-up since start
        self.txs_synced = 0  # ... and their transactions
        self.unproven_claims = 0  # status claims above our height without a verifying certificate
        self.peer_failures = 0  # catch-up requests a peer failed (timeout, empty, bad blocks)

    # --- our status -----------------------------------------------------------------------
    def announcement(self) -> Value:
        """Our status frame: height and the head header with its certificate (the proof)."""
        height = self._app.height()
        if self._announced is not None and self._announced[0] == height:
            return self._announced[1]
        header = self._app.store.head()
        certificate = self._app.store.certificate(height) if header is not None else None
        frame: dict[str, Value] = {"t": "status", "height": height}
        if header is not None and certificate is not None:
            frame["head"] = [header.to_value(), certificate.to_value()]
        self._announced = (height, frame)
        return frame

    # --- frames from peers --------------------------------------------------------------
    def on_status(self, peer: str, height: object, head: object = None) -> None:
        """A peer's status. A height above ours counts as proven only if ``head`` is
        ``[header, certificate]`` for that height, verifying against our validator set."""
        if type(height) is not int or height < 0:
            return
        earlier = self._claims.get(peer)
        if height <= self._app.height() or (earlier is not None and earlier.proven and earlier.height == height):
            proven = True  # nothing to prove (not ahead of us), or proven before
        else:
            proven = self._certified(height, head)
            if not proven:
                self.unproven_claims += 1
        self._claims[peer] = _Claim(height, proven, self._clock())

    def _certified(self, height: int, head: object) -> bool:
        """``head`` is ``[header, certificate]`` of block ``height`` of our chain, certified by
        the validator set of our next height."""
        if not (isinstance(head, list) and len(head) == 2):
            return False
        try:
            header = BlockHeader.from_value(head[0])
            certificate = CommitCertificate.from_value(head[1])
            if header.height != height or header.chain_id != self._app.genesis.chain_id:
                return False
            certificate.verify(header, self._app.validators_at(self._app.height() + 1))
        except LedgerError:
            return False
        return True

    @property
    def peers_heard(self) -> int:
        """Peers that announced a height (proven or not) since start."""
        return len(self._claims)

    def live_heights(self) -> dict[str, int]:
        """Heights we believe, of the peers heard from within ``STATUS_STALE_MS`` (a dead
        peer's last claim must not keep us chasing it): a proven claim as it is, an
        unproven one capped at the height vouched for by more than f of the power."""
        cutoff = self._clock() - STATUS_STALE_MS / 1000
        live = {p: c for p, c in self._claims.items() if c.heard_at >= cutoff}
        vouched = self._vouched_height(live)
        return {p: (c.height if c.proven else min(c.height, vouched)) for p, c in live.items()}

    def _vouched_height(self, claims: dict[str, _Claim]) -> int:
        """The highest height that peers holding more than f of the power claim to have
        reached (at least one of them is honest), or 0."""
        try:
            validators = self._app.validators_at(self._app.height() + 1)
        except LedgerError:
            return 0
        honest_one = validators.total_power - validators.quorum_power + 1
        for candidate in sorted({c.height for c in claims.values()}, reverse=True):
            if validators.power_of(p for p, c in claims.items() if c.height >= candidate) >= honest_one:
                return candidate
        return 0

    def on_request(self, peer: str, start: object, count: object) -> None:
        """Answer with the blocks we hold from ``start`` on (bounded by count and by
        ``SYNC_RESPONSE_BYTES_MAX``; a single larger block goes alone). The answer names
        ``start``, so a peer with several requests in flight knows which one it answers."""
        if type(start) is not int or type(count) is not int or start < 1 or count < 1:
            return
        blocks: list[Value] = []
        budget = SYNC_RESPONSE_BYTES_MAX
        for height in range(start, start + min(count, SYNC_BLOCKS_PER_REQUEST_MAX)):
            found = self._app.committed_block_wire(height)
            if found is None:
                break
            pair: Value = [found[0], found[1]]
            budget -= len(found[0].data)
            if budget < 0 and blocks:
                break
            blocks.append(pair)
        self._send(peer, {"t": "sync_resp", "from": start, "blocks": blocks})

    def on_response(self, peer: str, blocks: object, start: object = None) -> None:
        """An answer from ``peer``: to its request for ``start`` (an answer without it, from
        an older peer, goes to that peer's oldest request: one connection keeps the order)."""
        asked = self._waiting.get(peer)
        if not asked:
            return
        key = start if type(start) is int else next(iter(asked))
        waiter = asked.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(blocks if isinstance(blocks, list) else [])

    # --- peers that failed us -------------------------------------------------------------
    def backing_off(self, peer: str) -> bool:
        """True while ``peer`` is not to be asked (it failed a recent catch-up)."""
        backoff = self._backoff.get(peer)
        return backoff is not None and backoff.until > self._clock()

    def _fail(self, peer: str, why: str) -> None:
        earlier = self._backoff.get(peer)
        delay_s = (SYNC_PEER_BACKOFF_MS_MIN / 1000 if earlier is None
                   else min(2 * earlier.delay_s, SYNC_PEER_BACKOFF_MS_MAX / 1000))
        self._backoff[peer] = _Backoff(self._clock() + delay_s, delay_s)
        self.peer_failures += 1
        log.warning("sync: peer %s: %s; not asked again for %.0f s", peer[:8], why, delay_s)

    # --- catching up --------------------------------------------------------------------
    def best_peer(self) -> tuple[str, int] | None:
        """The highest trusted peer not backing off, with its height."""
        heights = {p: h for p, h in self.live_heights().items() if not self.backing_off(p)}
        if not heights:
            return None
        peer = max(heights, key=lambda p: heights[p])
        return peer, heights[peer]

    def lag(self) -> int:
        """How far the highest trusted peer (not backing off) is ahead of us."""
        best = self.best_peer()
        return 0 if best is None else max(0, best[1] - self._app.height())

    def _askable(self) -> dict[str, int]:
        """Trusted heights of the live peers not backing off."""
        return {p: h for p, h in self.live_heights().items() if not self.backing_off(p)}

    @property
    def blocks_per_s(self) -> float:
        """Blocks stored per second by the current catch-up (or the last one), from its first."""
        return self._progress.per_s(self._progress.blocks, self._clock())

    @property
    def tx_per_s(self) -> float:
        """Transactions stored per second by the current catch-up (or the last one)."""
        return self._progress.per_s(self._progress.txs, self._clock())

    async def catch_up(self, *, until_lag: int = 0, before_apply: Callable[[], None] | None = None) -> int:
        """Fetch and apply blocks until no trusted peer is more than ``until_lag`` ahead;
        returns blocks applied. ``before_apply`` (if any) is called once, just before the
        first block is stored, after its certificate verified.

        Ranges of ``SYNC_BLOCKS_PER_REQUEST_MAX`` heights are asked of several trusted
        peers at once (see the module docstring for the bounds); answers may come in any
        order, and runs of consecutive fetched blocks are applied in batches of up to
        ``SYNC_BATCH_BLOCKS_MAX`` (:meth:`LedgerApplication.apply_certified`)."""
        plan = _Plan(self._app.height())
        self.syncing = True
        self._progress = _Progress(self._clock())
        first = before_apply
        try:
            for _ in range(SYNC_ROUNDS_MAX):
                heights = self._askable()
                target = max(heights.values(), default=0)
                self.target_height = max(target, self._app.height())
                if target - self._app.height() <= until_lag and not plan.flying:
                    break
                plan.plan_to(target)
                self._dispatch(plan, heights)
                if not plan.flying:
                    break  # no trusted peer to ask for what is missing
                await self._settle(plan)
                first = self._apply_fetched(plan, first)
        finally:
            for request in plan.flying:
                self._waiting.get(request.peer, {}).pop(request.start, None)
            self.syncing = False
            self._progress.ended_at = self._clock()
        return self._progress.blocks

    def _dispatch(self, plan: _Plan, heights: dict[str, int]) -> None:
        """Send requests for the lowest ranges still to fetch, within the in-flight bounds;
        each to the askable peer with fewest requests in flight that holds the range's start."""
        next_height = self._app.height() + 1
        plan.drop_below(next_height)
        while plan.todo and len(plan.flying) < SYNC_REQUESTS_IN_FLIGHT_MAX:
            start, count = plan.todo[0]
            if plan.outstanding() >= SYNC_RESPONSES_AHEAD_MAX and start != next_height:
                break
            busy = plan.busy()
            able = [p for p, h in heights.items() if h >= start and busy[p] < SYNC_PEER_REQUESTS_IN_FLIGHT_MAX]
            if not able:
                break
            peer = min(able, key=lambda p: (busy[p], plan.asked_at.get(p, 0), p))
            count = min(count, heights[peer] - start + 1)
            plan.take(start, count)
            self._ask(plan, peer, start, count)

    def _ask(self, plan: _Plan, peer: str, start: int, count: int) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Value]] = loop.create_future()
        self._waiting.setdefault(peer, {})[start] = future
        plan.flying.append(_Request(peer, start, count, future))
        plan.asked_at[peer] = next(plan.asks)
        self._send(peer, {"t": "sync_req", "from": start, "count": count})

    async def _settle(self, plan: _Plan) -> None:
        """Wait for the first answer or request timeout; take every answer in, fail every
        peer past its timeout (its range goes back to be asked of another). Only time spent
        waiting here counts towards a timeout: while we apply a batch, answers queue unread."""
        loop = asyncio.get_running_loop()
        limit_s = SYNC_REQUEST_TIMEOUT_MS / 1000
        began = loop.time()
        await asyncio.wait([r.future for r in plan.flying], return_when=asyncio.FIRST_COMPLETED,
                           timeout=max(0.0, min(limit_s - r.waited_s for r in plan.flying)))
        waited_s = loop.time() - began
        for request in list(plan.flying):
            request.waited_s += waited_s
            if request.future.done():
                plan.flying.remove(request)
                self._received(plan, request, request.future.result())
            elif request.waited_s >= limit_s:
                plan.flying.remove(request)
                self._waiting.get(request.peer, {}).pop(request.start, None)
                plan.give_back(request.start, request.count)
                self._fail(request.peer, "no answer in time")

    def _received(self, plan: _Plan, request: _Request, blocks: list[Value]) -> None:
        try:
            pairs = _decoded(blocks, request.start, request.count)
        except SyncError as exc:
            plan.give_back(request.start, request.count)
            self._fail(request.peer, str(exc))
            return
        plan.hold(request.peer, pairs)
        self._verify_ahead(pairs)
        claim = self._claims.get(request.peer)
        if claim is not None:  # an answer is news of the peer: its claim stays live while it serves us
            self._claims[request.peer] = _Claim(claim.height, claim.proven, self._clock())
        if len(pairs) < request.count:  # the answer's byte budget ran out: ask for the rest again
            plan.give_back(request.start + len(pairs), request.count - len(pairs))

    def _verify_ahead(self, pairs: list[tuple[Block, CommitCertificate]]) -> None:
        """Start checking the transactions' signatures of fetched blocks on the verifier
        thread, while this one applies earlier blocks (signature checks release the GIL)."""
        txs = [tx for block, _ in pairs for tx in block.txs]
        if not txs:
            return
        if self._verifier is None:
            self._verifier = ThreadPoolExecutor(SYNC_VERIFY_THREADS, thread_name_prefix="imi-sync-verify")
        asyncio.get_running_loop().run_in_executor(self._verifier, _check_signatures, txs,
                                                   self._app.genesis.chain_id)

    def close(self) -> None:
        """Stop the verifier thread (if one started); pending checks are dropped."""
        if self._verifier is not None:
            self._verifier.shutdown(wait=False, cancel_futures=True)
            self._verifier = None

    def _apply_fetched(self, plan: _Plan, first: Callable[[], None] | None) -> Callable[[], None] | None:
        """Store every run of fetched blocks that follows our head, a batch at a time; a
        block that does not verify puts its peer on backoff and every block it sent back
        to be asked again. Returns ``first`` if it was not called yet, else None."""
        while True:
            plan.drop_below(self._app.height() + 1)
            run = plan.run_from(self._app.height() + 1)
            if not run:
                return first
            first, go_on = self._apply_run(plan, run, first)
            if not go_on:
                return first

    def _apply_run(self, plan: _Plan, run: list[_Fetched],
                   first: Callable[[], None] | None) -> tuple[Callable[[], None] | None, bool]:
        """Apply one batch: (``first`` unless it was called, whether to go on)."""
        fired = False

        def before_store() -> None:
            nonlocal fired
            fired = True
            if first is not None:
                first()

        height = self._app.height()
        consumed, error = self._app.apply_certified([(f.block, f.certificate) for f in run],
                                                    before_store=before_store)
        stored = run[: self._app.height() - height]
        self._progress.add(stored)
        self.blocks_synced += len(stored)
        self.txs_synced += sum(len(f.block.txs) for f in stored)
        for fetched in run[:consumed]:
            plan.release(fetched)
            self._backoff.pop(fetched.peer, None)  # its blocks applied: forgiven
        left = None if fired else first
        if error is not None:
            bad = run[consumed]
            plan.give_back_all_of(bad.peer)
            self._fail(bad.peer, f"block {bad.block.header.height} does not verify: {error} [{error.reason}]")
            return left, False
        log.info("sync: height %d of %d", self._app.height(), self.target_height)
        return left, consumed > 0


__all__ = ["Syncer"]
