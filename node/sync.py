"""Catch-up: a validator that was down (or is new) fetches decided blocks from peers.

Over the validator transport (so peers are authenticated by their pinned TLS
keys, and no API address is needed)::

    {"t": "sync_req",  "from": h, "count": n}        ask for blocks h .. h+n-1
    {"t": "sync_resp", "blocks": [[block, cert], ...]}  at most n, at most half a frame

Peers announce their height every ``STATUS_INTERVAL_MS`` (``{"t": "status"}``).
:meth:`Syncer.catch_up` repeatedly asks the highest known peer for the next
blocks and applies each through :meth:`LedgerApplication.apply_committed`, which
verifies the commit certificate against the validator set the chain names for
that height, re-executes the block strictly and checks every root before one
atomic write. A peer whose blocks do not verify is skipped. Progress is logged.
The core is paused meanwhile and rebuilt afterwards (see :mod:`node.driver`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ledger.block import Block, CommitCertificate
from ledger.encoding import Value, encode
from ledger.errors import LedgerError
from node.application import LedgerApplication
from node.constants import (
    FRAME_BYTES_MAX,
    STATUS_STALE_MS,
    SYNC_BLOCKS_PER_REQUEST_MAX,
    SYNC_REQUEST_TIMEOUT_MS,
)
from node.errors import SyncError

log = logging.getLogger("imi.sync")

SYNC_ROUNDS_MAX = 100_000  # requests in one catch-up; bounds a peer that keeps claiming more


class Syncer:
    """Tracks peers' heights, answers their requests and catches this node up."""

    def __init__(self, app: LedgerApplication, send: Callable[[str, Value], None]) -> None:
        self._app = app
        self._send = send
        self.peer_heights: dict[str, int] = {}
        self._heard_at: dict[str, float] = {}  # monotonic seconds of each peer's last status
        self._waiting: dict[str, asyncio.Future[list[Value]]] = {}
        self.syncing = False
        self.blocks_synced = 0

    # --- frames from peers --------------------------------------------------------------
    def on_status(self, peer: str, height: object) -> None:
        if type(height) is int and height >= 0:
            self.peer_heights[peer] = height
            self._heard_at[peer] = time.monotonic()

    def live_heights(self) -> dict[str, int]:
        """Heights of the peers heard from within ``STATUS_STALE_MS`` (a dead peer's last
        claim must not keep us chasing it)."""
        cutoff = time.monotonic() - STATUS_STALE_MS / 1000
        return {p: h for p, h in self.peer_heights.items() if self._heard_at.get(p, 0.0) >= cutoff}

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

    # --- catching up --------------------------------------------------------------------
    def best_peer(self) -> tuple[str, int] | None:
        heights = self.live_heights()
        if not heights:
            return None
        peer = max(heights, key=lambda p: heights[p])
        return peer, heights[peer]

    def lag(self) -> int:
        best = self.best_peer()
        return 0 if best is None else max(0, best[1] - self._app.height())

    async def catch_up(self, *, until_lag: int = 0) -> int:
        """Fetch and apply blocks until no peer is more than ``until_lag`` ahead; returns blocks applied."""
        applied = 0
        self.syncing = True
        bad_peers: set[str] = set()
        try:
            for _ in range(SYNC_ROUNDS_MAX):
                candidates = {p: h for p, h in self.live_heights().items() if p not in bad_peers}
                if not candidates:
                    break
                peer = max(candidates, key=lambda p: candidates[p])
                target = candidates[peer]
                mine = self._app.height()
                if target - mine <= until_lag:
                    break
                try:
                    got = await self._fetch(peer, mine + 1)
                except SyncError as exc:
                    log.warning("sync: peer %s: %s", peer[:8], exc)
                    bad_peers.add(peer)
                    continue
                if got == 0:
                    bad_peers.add(peer)
                    continue
                applied += got
                log.info("sync: height %d of %d (from %s)", self._app.height(), target, peer[:8])
        finally:
            self.syncing = False
        self.blocks_synced += applied
        return applied

    async def _fetch(self, peer: str, start: int) -> int:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[list[Value]] = loop.create_future()
        self._waiting[peer] = waiter
        self._send(peer, {"t": "sync_req", "from": start, "count": SYNC_BLOCKS_PER_REQUEST_MAX})
        try:
            pairs = await asyncio.wait_for(waiter, SYNC_REQUEST_TIMEOUT_MS / 1000)
        except TimeoutError as exc:
            raise SyncError("no answer in time", reason="sync-timeout") from exc
        finally:
            self._waiting.pop(peer, None)
        applied = 0
        for pair in pairs:
            try:
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise SyncError("malformed block entry")
                block = Block.from_value(pair[0])
                certificate = CommitCertificate.from_value(pair[1])
                if block.header.height != self._app.height() + 1:
                    raise SyncError(f"block {block.header.height} is not the next one")
                self._app.apply_committed(block, certificate)
            except LedgerError as exc:
                raise SyncError(f"block does not verify: {exc} [{exc.reason}]") from exc
            applied += 1
        return applied


__all__ = ["Syncer"]
