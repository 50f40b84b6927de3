"""The asyncio driver that feeds the pure consensus core (etcd-raft style).

For every ``Ready`` the core returns, in this order:

1. ``persist`` — appended to the WAL (:class:`node.wal.Wal`);
2. ``send``    — queued, and handed to the transport only after one fsync that
   covers every record written so far (group commit at the end of the loop
   iteration), so a vote that a crash could make us forget is never on the wire;
3. ``committed`` — each block's certificate is re-verified and the block stored
   in one atomic batch (:meth:`LedgerApplication.apply_committed`);
4. ``evidence`` — logged and counted.

How long each part of a height takes (entering it → stored, proposal → stored,
WAL fsyncs, block stores) goes into :attr:`Driver.timings` (:mod:`node.timings`).

Ticks come from a timer every ``tick_ms``. Between heights the driver holds
the first tick of the next height (the core starts a height on a tick) until
there is work: ``batch_txs_min`` pending transactions, any pending transaction
once :meth:`Driver.block_wait_ms` passed since the last commit (a timer opens the
gate then), a message for a later height, or ``heartbeat_ms`` since the last
commit — so an idle chain makes one empty block per heartbeat. The wait scales
with how full the last block was, from ``BLOCK_INTERVAL_MS_MIN`` (a lightly loaded
chain proposes almost at once: latency) to ``block_interval_ms`` (a busy chain
spends a block's fixed cost — votes, fsyncs, a synced LevelDB batch — on more
transactions: throughput).

On restart the WAL's records are handed to the core as ``restored`` (see
:meth:`Driver._restored_for_core` for a store that moved past them); the WAL is
compacted to the records from the last ``{"t": "height"}`` marker on once it
holds more than ``WAL_SEGMENT_RECORDS_MAX`` records.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from ledger.block import Vote
from ledger.encoding import Value
from ledger.errors import LedgerError
from node.application import LedgerApplication
from node.consensus.core import DROP_OVER_BUDGET
from node.consensus.messages import Message, Proposal
from node.consensus.types import Envelope, Ready
from node.constants import (
    BATCH_TXS_MIN,
    BLOCK_INTERVAL_MS_DEFAULT,
    BLOCK_INTERVAL_MS_MIN,
    WAL_SEGMENT_RECORDS_MAX,
)
from node.timings import ConsensusTimings
from node.wal import Wal

log = logging.getLogger("imi.driver")


class ConsensusCore(Protocol):
    """What the driver drives: :class:`node.consensus.core.Core` (a script in driver tests).

    Pure: each call returns the :class:`Ready` the driver must act on, in its order.
    """

    @property
    def height(self) -> int:
        """The height the core is deciding (0 before its first tick)."""
        ...

    @property
    def round(self) -> int:
        """The round of :attr:`height` the core is in."""
        ...

    def step(self, message: Message) -> Ready:
        """Handle one message from a peer (or our own transport); never raises on bad input."""
        ...

    def tick(self) -> Ready:
        """Advance the core's abstract time by one tick."""
        ...


CoreFactory = Callable[[list[Value]], ConsensusCore]
"""Builds a core from restored WAL records: ``Core(config, my_key, app, restored)``."""


def _is_height_marker(record: Value) -> bool:
    return isinstance(record, dict) and record.get("t") == "height"


class Driver:
    """Owns the core; every call into it goes through :meth:`step` or :meth:`tick`."""

    def __init__(
        self,
        *,
        core_factory: CoreFactory,
        wal: Wal,
        restored: list[Value],
        app: LedgerApplication,
        send: Callable[[Envelope], None],
        tick_ms: int,
        heartbeat_ms: int,
        has_work: Callable[[], int],
        block_interval_ms: int = BLOCK_INTERVAL_MS_DEFAULT,
        batch_txs_min: int = BATCH_TXS_MIN,
        clock: Callable[[], float] = time.monotonic,
        on_peer_over_budget: Callable[[str], None] | None = None,
    ) -> None:
        self._core_factory = core_factory
        self._wal = wal
        self._tail: list[Value] = self._since_marker(restored)
        self._app = app
        self._send = send
        self.tick_ms = tick_ms
        self.heartbeat_ms = heartbeat_ms
        self._has_work = has_work
        self.block_interval_ms = block_interval_ms
        self.batch_txs_min = batch_txs_min
        self._on_peer_over_budget = on_peer_over_budget
        self._clock = clock  # the gate's and the timings' time (the tick loop paces itself on the loop's)
        self.timings = ConsensusTimings()
        self._timed_height: int | None = None
        self.core: ConsensusCore | None = None
        self.paused = True
        self._gated = False  # holding the first tick of the next height
        self._last_commit_s = clock()
        self._last_block_txs = 0
        self._wait_over = False  # the wait after the last commit has ended (its timer fired)
        self._commit_timer: asyncio.TimerHandle | None = None
        self._outbox: list[Envelope] = []
        self._flush_scheduled = False
        self.evidence_count = 0
        self.commits = 0
        self.rejected_commits = 0

    @staticmethod
    def _since_marker(records: list[Value]) -> list[Value]:
        for index in range(len(records) - 1, -1, -1):
            if _is_height_marker(records[index]):
                return list(records[index:])
        return list(records)

    # --- lifecycle ----------------------------------------------------------------------
    def start_core(self) -> None:
        """(Re)build the core from the WAL tail and resume. Called at start and after catch-up."""
        self.core = self._core_factory(self._restored_for_core())
        self.paused = False
        self._gated = False

    def _restored_for_core(self) -> list[Value]:
        """The WAL tail if it is about the head height or the next one; else (the store moved
        on, by catch-up) a bare height marker for the head, which the core reads as
        "decided and applied": it then starts the height after the head."""
        stored = self._app.height()
        marker = self._tail[0] if self._tail else None
        tail_height = marker.get("h") if isinstance(marker, dict) and _is_height_marker(marker) else 0
        if type(tail_height) is int and tail_height >= stored:
            return list(self._tail)
        return [{"t": "height", "h": stored}] if stored > 0 else []

    def pause(self) -> None:
        """Stop feeding the core (during catch-up); messages are dropped meanwhile."""
        self.paused = True

    async def run(self) -> None:
        """Tick forever (until cancelled)."""
        period = self.tick_ms / 1000
        next_at = time.monotonic()
        while True:
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                next_at = time.monotonic()  # we fell behind: do not burst ticks
                await asyncio.sleep(0)
            if self.paused or self.core is None:
                continue
            if self._gated and not self._gate_open():
                continue
            self.tick()

    def block_wait_ms(self) -> float:
        """How long after a commit pending transactions wait for more to join them: the
        interval scaled by how full the last block was (BATCH_TXS_MIN counts as full), and
        at least BLOCK_INTERVAL_MS_MIN. A lightly loaded chain proposes almost at once; a
        busy one, whose blocks fill, waits longer and spends each block's fixed cost
        (votes, fsyncs, a synced LevelDB batch) on more transactions."""
        fill = min(1.0, self._last_block_txs / self.batch_txs_min)
        return max(float(min(BLOCK_INTERVAL_MS_MIN, self.block_interval_ms)), self.block_interval_ms * fill)

    def _gate_open(self) -> bool:
        since_s = self._clock() - self._last_commit_s
        if since_s >= self.heartbeat_ms / 1000:
            return True
        pending = self._has_work()
        return pending >= self.batch_txs_min or (
            pending > 0 and (self._wait_over or since_s * 1000 >= self.block_wait_ms()))

    def _wait_ended(self) -> None:
        """The timer set at the last commit for :meth:`block_wait_ms` fired. Event-loop
        timers may fire a little before the clock says the wait is over (uvloop keeps
        whole milliseconds and the loop's cached time), so the timer itself marks the
        wait over — else the gate would stay shut until the next tick, up to ``tick_ms``
        later."""
        self._commit_timer = None  # (an earlier commit's timer was cancelled: this is the last one's)
        self._wait_over = True
        self.wake()

    def wake(self) -> None:
        """Work arrived (a transaction), or the wait after a commit ended: start the next
        height now if the gate is open."""
        if self._gated and not self.paused and self.core is not None and self._gate_open():
            self.tick()

    def flush(self) -> None:
        """fsync the WAL, then hand every queued message to the transport."""
        self._flush_scheduled = False
        started = self._clock()
        if self._wal.sync():
            self.timings.wal_synced(self._clock() - started)
        if self._wal.records_count > WAL_SEGMENT_RECORDS_MAX:
            self._wal.rewrite(self._tail)
        outbox, self._outbox = self._outbox, []
        for envelope in outbox:
            self._send(envelope)

    # --- feeding the core ------------------------------------------------------------------
    def tick(self) -> None:
        """One tick into the core (none before :meth:`start_core`)."""
        if self.core is None:
            return
        self._gated = False
        began_s = self._clock()
        self._handle(self.core.tick(), began_s)

    def step(self, message: Message, peer: str | None = None) -> None:
        """Hand ``message`` (from transport peer ``peer``) to the core. A peer whose message
        the core refused for going past its byte share (DROP_OVER_BUDGET) is reported to
        ``on_peer_over_budget``."""
        if self.paused or self.core is None:
            return
        if self._gated and message.height > self._app.height():
            # A peer is already at the next height: stop holding, first let the core enter it.
            self.tick()
        began_s = self._clock()
        if isinstance(message, Proposal):
            self.timings.proposal(message.height, began_s)
        over_budget = self._over_budget_drops()
        self._handle(self.core.step(message), began_s)
        if peer is not None and self._on_peer_over_budget is not None and self._over_budget_drops() > over_budget:
            self._on_peer_over_budget(peer)

    def _over_budget_drops(self) -> int:
        dropped = getattr(self.core, "dropped", None)
        return dropped.get(DROP_OVER_BUDGET, 0) if isinstance(dropped, dict) else 0

    def _handle(self, ready: Ready, began_s: float) -> None:
        """Act on ``ready``, which the core returned for a call that began at ``began_s``."""
        height = self.core.height if self.core is not None else None
        if height is not None and height != self._timed_height:
            self._timed_height = height
            self.timings.entered(height, began_s)
        if ready.persist:
            self._wal.write(ready.persist)
            for record in ready.persist:
                if _is_height_marker(record):
                    self._tail = []
                self._tail.append(record)
        if ready.send:
            for envelope in ready.send:
                if isinstance(envelope.message, Proposal):
                    self.timings.proposal(envelope.message.height, self._clock())  # built: leaving
            # Group commit: messages wait in the outbox until one fsync covers every
            # record written before them (at the end of this loop iteration).
            self._outbox.extend(ready.send)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_soon(self.flush)
        for block, certificate in ready.committed:
            started = self._clock()
            try:
                if self._app.apply_committed(block, certificate):
                    self.commits += 1
                    now = self._clock()
                    self.timings.stored(block.header.height, now, now - started)
            except LedgerError as exc:
                # A decided block that does not verify here means our core or store is
                # inconsistent; storing nothing is the only safe move. Catch-up repairs it.
                self.rejected_commits += 1
                log.error("decided block %d not applied: %s [%s]", block.header.height, exc, exc.reason)
        if ready.committed:
            self._last_commit_s = self._clock()
            self._last_block_txs = len(ready.committed[-1][0].txs)
            self._gated = True
            # Open the gate on time rather than on the next tick (ticks are TICK_MS apart).
            self._wait_over = False
            if self._commit_timer is not None:
                self._commit_timer.cancel()
            self._commit_timer = asyncio.get_running_loop().call_later(self.block_wait_ms() / 1000,
                                                                       self._wait_ended)
        for first, second in ready.evidence:
            self.evidence_count += 1
            if isinstance(first, Proposal) and isinstance(second, Proposal):
                log.warning("equivocation by %s at height %d round %d (two proposals: blocks %s, %s)",
                            first.proposer, first.height, first.round,
                            first.block.hash.hex()[:16], second.block.hash.hex()[:16])
            elif isinstance(first, Vote):
                log.warning("equivocation by %s at height %d round %d (%s)", first.validator, first.height,
                            first.round, first.kind)


__all__ = ["ConsensusCore", "CoreFactory", "Driver"]
