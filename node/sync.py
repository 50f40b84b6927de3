"""Catch-up: a validator that was down (or is new) fetches decided blocks from peers.

Over the validator transport (so peers are authenticated by their pinned TLS
keys, and no API address is needed)::

    {"t": "status", "height": h, "head": [header, cert]}  every STATUS_INTERVAL_MS
    {"t": "sync_req",  "from": h, "count": n}           ask for blocks h .. h+n-1
    {"t": "sync_resp", "blocks": [[block, cert], ...]}  at most n, at most half a frame

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

:meth:`Syncer.catch_up` repeatedly asks the highest trusted peer for the next
blocks and applies each through :meth:`LedgerApplication.apply_committed`, which
verifies the commit certificate against the validator set the chain names for
that height, re-executes the block strictly and checks every root before one
atomic write. ``before_apply`` is called once, when the first block's
certificate has verified and just before it is applied: a running validator
pauses consensus there (see :mod:`node.service`), so it never pauses on a
peer's word, only with certified blocks in hand. Progress is logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ledger.block import Block, BlockHeader, CommitCertificate
from ledger.encoding import Value, encode
from ledger.errors import LedgerError
from node.application import LedgerApplication
from node.constants import (
    FRAME_BYTES_MAX,
    STATUS_STALE_MS,
    SYNC_BLOCKS_PER_REQUEST_MAX,
    SYNC_PEER_BACKOFF_MS_MAX,
    SYNC_PEER_BACKOFF_MS_MIN,
    SYNC_REQUEST_TIMEOUT_MS,
)
from node.errors import SyncError

log = logging.getLogger("imi.sync")

SYNC_ROUNDS_MAX = 100_000  # requests in one catch-up; bounds a peer that keeps claiming more


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
        self._waiting: dict[str, asyncio.Future[list[Value]]] = {}
        self._announced: tuple[int, Value] | None = None
        self.syncing = False
        self.blocks_synced = 0
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
        """Answer with the blocks we hold from ``start`` on (bounded by count and frame size)."""
        if type(start) is not int or type(count) is not int or start < 1 or count < 1:
            return
        blocks: list[Value] = []
        budget = FRAME_BYTES_MAX // 2
        for height in range(start, start + min(count, SYNC_BLOCKS_PER_REQUEST_MAX)):
            found = self._app.committed_block(height)
            if found is None:
                break
            pair: Value = [found[0].to_value(), found[1].to_value()]
            budget -= len(encode(pair))
            if budget < 0 and blocks:
                break
            blocks.append(pair)
        self._send(peer, {"t": "sync_resp", "blocks": blocks})

    def on_response(self, peer: str, blocks: object) -> None:
        waiter = self._waiting.pop(peer, None)
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

    async def catch_up(self, *, until_lag: int = 0, before_apply: Callable[[], None] | None = None) -> int:
        """Fetch and apply blocks until no trusted peer is more than ``until_lag`` ahead;
        returns blocks applied. ``before_apply`` (if any) is called once, just before the
        first block is applied, after its certificate verified."""
        applied = 0
        self.syncing = True
        first = [before_apply] if before_apply is not None else []
        try:
            for _ in range(SYNC_ROUNDS_MAX):
                best = self.best_peer()
                if best is None or best[1] - self._app.height() <= until_lag:
                    break
                peer, target = best
                got, error = await self._fetch(peer, self._app.height() + 1, first)
                applied += got
                if error is not None:
                    self._fail(peer, str(error))
                    continue
                self._backoff.pop(peer, None)
                log.info("sync: height %d of %d (from %s)", self._app.height(), target, peer[:8])
        finally:
            self.syncing = False
        self.blocks_synced += applied
        return applied

    async def _fetch(self, peer: str, start: int,
                     first: list[Callable[[], None]]) -> tuple[int, SyncError | None]:
        """Ask ``peer`` for blocks from ``start`` and apply them: (blocks applied, the peer's fault)."""
        try:
            pairs = await self._request(peer, start)
        except SyncError as exc:
            return 0, exc
        if not pairs:
            return 0, SyncError("answered with no blocks", reason="sync-empty")
        applied = 0
        for pair in pairs:
            try:
                applied += self._apply(pair, first)
            except SyncError as exc:
                return applied, exc
        return applied, None

    async def _request(self, peer: str, start: int) -> list[Value]:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[list[Value]] = loop.create_future()
        self._waiting[peer] = waiter
        self._send(peer, {"t": "sync_req", "from": start, "count": SYNC_BLOCKS_PER_REQUEST_MAX})
        try:
            return await asyncio.wait_for(waiter, SYNC_REQUEST_TIMEOUT_MS / 1000)
        except TimeoutError as exc:
            raise SyncError("no answer in time", reason="sync-timeout") from exc
        finally:
            self._waiting.pop(peer, None)

    def _apply(self, pair: Value, first: list[Callable[[], None]]) -> int:
        """Verify and store one ``[block, certificate]``: 1 if stored, 0 if we hold it already
        (consensus got there meanwhile). Pops and calls ``first`` before the first store."""
        try:
            if not (isinstance(pair, list) and len(pair) == 2):
                raise SyncError("malformed block entry", reason="sync-malformed")
            block = Block.from_value(pair[0])
            certificate = CommitCertificate.from_value(pair[1])
            height, mine = block.header.height, self._app.height()
            if height <= mine:
                return 0
            if height != mine + 1:
                raise SyncError(f"block {height} is not the next one", reason="sync-gap")
            if first:
                # Proof before the pause: the certificate and body check out.
                certificate.verify(block.header, self._app.validators_at(height))
                block.check_body()
                first.pop()()
            self._app.apply_committed(block, certificate)
        except LedgerError as exc:
            raise SyncError(f"block does not verify: {exc} [{exc.reason}]", reason="sync-bad-block") from exc
        return 1


__all__ = ["Syncer"]
