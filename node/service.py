"""One validator as a service: store, mempool, driver, transport, catch-up and REST API.

:class:`ValidatorService` implements :class:`node.interfaces.NodeView` and runs
everything in one asyncio loop — the consensus driver, the mutual-TLS validator
transport and the FastAPI app under uvicorn — so no locks are needed: every
call into the core, the mempool and the store happens on the loop thread.

Frames between validators (canonical CBOR maps, see :mod:`node.transport`)::

    {"t": "c", "m": <consensus message>}        node.consensus.messages wire form
    {"t": "txs", "txs": [<tx bytes>, ...]}      mempool gossip (canonical tx encodings)
    {"t": "status", "height": h, "head": [header, cert]}   every STATUS_INTERVAL_MS (node.sync)
    {"t": "sync_req" | "sync_resp", ...}        catch-up (node.sync)

A peer whose future-height consensus messages go past its byte share
(``FUTURE_BYTES_PER_SIGNER_MAX``, :mod:`node.consensus.limits`) is disconnected
and refused for ``PEER_PENALTY_MS`` (counted: ``peer_disconnects``).

Configuration: ``node.json`` in the node directory (written by ``imi genesis
new``), overridden by ``IMI_*`` environment variables (see :class:`NodeConfig`).
Persisted under the data directory: ``ledger/`` (LevelDB, one synced batch per
block) and ``wal.log`` (consensus WAL, fsynced before sending).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.block import Block
from ledger.encoding import Value
from ledger.errors import LedgerError
from ledger.execution import Executor, Handler, chain_handlers, genesis_state
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from ledger.kv import LevelKV
from ledger.storage import LedgerStore
from ledger.tx import Transaction
from node import tls
from node.api.limits import ApiLimits
from node.application import LedgerApplication
from node.consensus.errors import MessageError
from node.consensus.messages import message_from_value, message_to_value
from node.consensus.types import CoreConfig, Envelope, Timeouts
from node.constants import (
    BLOCK_INTERVAL_MS_DEFAULT,
    COMMITTED_WAITERS_MAX,
    HEARTBEAT_MS_DEFAULT,
    MEMPOOL_GOSSIP_DELAY_MS,
    PEER_PENALTY_MS,
    PROPOSE_TIMEOUT_DELTA_MS,
    PROPOSE_TIMEOUT_MS,
    REBROADCAST_MS,
    RESYNC_LAG_HEIGHTS,
    SHUTDOWN_GRACE_S,
    STATUS_INTERVAL_MS,
    TICK_MS_DEFAULT,
    TLS_TRUST_REFRESH_MS,
    VOTE_TIMEOUT_DELTA_MS,
    VOTE_TIMEOUT_MS,
    WAIT_COMMITTED_S_MAX,
)
from node.driver import ConsensusCore, Driver
from node.errors import ConfigError, MempoolError
from node.mempool import Mempool
from node.sync import Syncer
from node.transport import Transport, parse_address
from node.wal import Wal

if TYPE_CHECKING:  # the API is imported only when served (see _start_api)
    from fastapi import APIRouter

    from node.api.context import RouterFactory

log = logging.getLogger("imi.service")

STARTUP_STATUS_WAIT_S = 1.5  # how long a starting node listens for peers' heights before catch-up


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Where a validator finds its keys and what it listens on.

    ``node.json`` keys and their environment overrides: ``name`` (IMI_NAME),
    ``listen`` host:port of the validator transport (IMI_LISTEN), ``api`` host:port
    of the REST API (IMI_API), ``genesis`` file, ``certs`` directory of peer TLS
    certificates, ``data`` directory (IMI_DATA), ``tick_ms`` (IMI_TICK_MS),
    ``heartbeat_ms`` (IMI_HEARTBEAT_MS; default: the genesis policy),
    ``block_interval_ms`` (IMI_BLOCK_INTERVAL_MS), ``log_level``
    (IMI_LOG_LEVEL), and the REST API's limits ``api_*`` (IMI_API_*; see
    :class:`node.api.limits.ApiLimits`). Relative paths are relative to the node directory.
    """

    node_dir: Path
    name: str
    listen: str
    api: str
    genesis_file: Path
    certs_dir: Path
    data_dir: Path
    tick_ms: int = TICK_MS_DEFAULT
    heartbeat_ms: int | None = None
    block_interval_ms: int = BLOCK_INTERVAL_MS_DEFAULT
    log_level: str = "INFO"
    api_limits: ApiLimits = field(default_factory=ApiLimits)

    @classmethod
    def load(cls, node_dir: Path, env: Mapping[str, str] | None = None) -> NodeConfig:
        env = os.environ if env is None else env
        path = node_dir / "node.json"
        try:
            raw: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}", reason="bad-config") from exc

        def pick(key: str, var: str, default: Any = None) -> Any:
            return env.get(var, raw.get(key, default))

        try:
            config = cls(
                node_dir=node_dir,
                name=str(pick("name", "IMI_NAME")),
                listen=str(pick("listen", "IMI_LISTEN")),
                api=str(pick("api", "IMI_API")),
                genesis_file=node_dir / str(raw.get("genesis", "genesis.json")),
                certs_dir=node_dir / str(raw.get("certs", "certs")),
                data_dir=node_dir / str(pick("data", "IMI_DATA", "data")),
                tick_ms=int(pick("tick_ms", "IMI_TICK_MS", TICK_MS_DEFAULT)),
                heartbeat_ms=(None if pick("heartbeat_ms", "IMI_HEARTBEAT_MS") is None
                              else int(pick("heartbeat_ms", "IMI_HEARTBEAT_MS"))),
                block_interval_ms=int(pick("block_interval_ms", "IMI_BLOCK_INTERVAL_MS",
                                           BLOCK_INTERVAL_MS_DEFAULT)),
                log_level=str(pick("log_level", "IMI_LOG_LEVEL", "INFO")).upper(),
                api_limits=ApiLimits.from_config(raw, env),
            )
            parse_address(config.listen)
            parse_address(config.api)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: {exc}", reason="bad-config") from exc
        if not 1 <= config.tick_ms <= 1000:
            raise ConfigError("tick_ms must be within 1..1000", reason="bad-config")
        return config


def timeouts_for(tick_ms: int) -> Timeouts:
    """The core's timeouts (in ticks) for our millisecond timeouts at ``tick_ms`` per tick."""

    def ticks(ms: int) -> int:
        return max(1, -(-ms // tick_ms))

    return Timeouts(
        propose_base=ticks(PROPOSE_TIMEOUT_MS), propose_delta=ticks(PROPOSE_TIMEOUT_DELTA_MS),
        prevote_base=ticks(VOTE_TIMEOUT_MS), prevote_delta=ticks(VOTE_TIMEOUT_DELTA_MS),
        precommit_base=ticks(VOTE_TIMEOUT_MS), precommit_delta=ticks(VOTE_TIMEOUT_DELTA_MS),
        commit_ticks=1, rebroadcast_ticks=ticks(REBROADCAST_MS),
    )


class ValidatorService:
    """A running validator. Construct, then ``await run()`` (until :meth:`stop`)."""

    def __init__(
        self,
        config: NodeConfig,
        handlers: Mapping[str, Handler],
        *,
        extra_routers: Sequence[RouterFactory | APIRouter] = (),
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.config = config
        self._now_ms = now_ms
        self._extra_routers = extra_routers
        try:
            self._genesis = Genesis.loads(config.genesis_file.read_text())
            self._key = SigningKey.from_private_jwk(
                json.loads((config.node_dir / "consensus_key.jwk").read_text()))
        except (OSError, ValueError, LedgerError) as exc:
            raise ConfigError(f"cannot load genesis or consensus key: {exc}", reason="bad-config") from exc
        member = self._genesis.validators.get(self._key.key_id)
        if member is None:
            log.warning("%s: our consensus key is not in the genesis set (observer until admitted)", config.name)
        trust = tls.load_trust_dir(config.certs_dir)
        key_file, cert_file = config.node_dir / "tls_key.pem", config.node_dir / "tls_cert.pem"
        self._server_ctx = tls.server_context(key_file, cert_file, trust)
        self._client_ctx = tls.client_context(key_file, cert_file, trust)
        self._trust = tls.TrustDirectory(config.certs_dir, (self._server_ctx, self._client_ctx), trust)
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self._kv = LevelKV(config.data_dir / "ledger")
        self._store = LedgerStore(self._kv)
        stored = self._store.genesis()
        if stored is None:
            self._store.initialize(self._genesis, genesis_state(self._genesis))
        elif stored.hash != self._genesis.hash:
            raise ConfigError("the data directory holds another chain", reason="genesis-mismatch")
        self._executor = Executor(self._genesis.chain_id, chain_handlers(self._genesis, handlers))
        self.mempool = Mempool(
            self._executor,
            state=lambda: self._store.state_reader(),
            next_height=lambda: self._store.height() + 1,
            is_committed=self._store.has_tx,
            now_ms=now_ms,
        )
        self.app = LedgerApplication(store=self._store, executor=self._executor, genesis=self._genesis,
                                     mempool=self.mempool, my_key_id=self._key.key_id, now_ms=now_ms)
        self.app.listeners.append(self._on_block)
        self._wal, restored = Wal.open(config.data_dir / "wal.log")
        heartbeat = config.heartbeat_ms
        if heartbeat is None:
            policy_value = self._genesis.policy.get("heartbeat_ms", HEARTBEAT_MS_DEFAULT)
            heartbeat = policy_value if type(policy_value) is int else HEARTBEAT_MS_DEFAULT
        self.transport = Transport(
            my_key_id=self._key.key_id,
            listen=parse_address(config.listen),
            server_ctx=self._server_ctx,
            client_ctx=self._client_ctx,
            validators=lambda: self.app.validators_at(self._store.height() + 1),
            on_frame=self._on_frame,
        )
        self.syncer = Syncer(self.app, self.transport.send)
        self.driver = Driver(core_factory=self._make_core, wal=self._wal, restored=restored, app=self.app,
                             send=self._send_envelope, tick_ms=config.tick_ms, heartbeat_ms=heartbeat,
                             has_work=lambda: len(self.mempool),
                             block_interval_ms=config.block_interval_ms,
                             on_peer_over_budget=self._on_peer_over_budget)
        self._waiters: dict[bytes, list[asyncio.Future[int]]] = {}
        self._waiter_count = 0
        self._stopping: asyncio.Event | None = None
        self.running = asyncio.Event()  # set once caught up and in consensus
        self._gossip_scheduled = False
        self.bad_frames = 0
        self._api_cpu: Any = None  # the API's CpuPool, closed at shutdown
        self.api_connections: Any = None  # node.api.server.ConnectionStats once serving

    # --- NodeView ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config.name

    @property
    def genesis(self) -> Genesis:
        return self._genesis

    @property
    def store(self) -> LedgerStore:
        return self._store

    async def submit(self, tx: Transaction) -> None:
        self.mempool.add(tx)
        self._schedule_gossip()
        self.driver.wake()

    async def wait_committed(self, tx_id: bytes, timeout_s: float) -> int | None:
        record = self._store.tx(tx_id)
        if record is not None:
            return record.height
        if self._waiter_count >= COMMITTED_WAITERS_MAX:
            raise MempoolError("too many clients waiting for commits", reason="too-many-waiters")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(tx_id, []).append(future)
        self._waiter_count += 1
        try:
            return await asyncio.wait_for(future, min(timeout_s, WAIT_COMMITTED_S_MAX))
        except TimeoutError:
            return None
        finally:
            self._waiter_count -= 1
            waiting = self._waiters.get(tx_id)
            if waiting is not None:
                with contextlib.suppress(ValueError):
                    waiting.remove(future)
                if not waiting:
                    del self._waiters[tx_id]

    def is_pending(self, tx_id: bytes) -> bool:
        """True while ``tx_id`` waits in this validator's mempool (GET /v1/transactions: "pending")."""
        return tx_id in self.mempool

    def status(self) -> dict[str, Any]:
        head = self._store.head()
        core = self.driver.core
        return {
            "name": self.name,
            "chain_id": self._genesis.chain_id,
            "key_id": self._key.key_id,
            "height": self._store.height(),
            "head_hash": head.hash.hex() if head is not None else None,
            "state_root": (head.state_root.hex() if head is not None
                           else self._store.state.root_at(0).hex()),
            "round": core.round if core is not None else None,
            "peers_connected": len(self.transport.connected_peers()),
            "peers_connected_ids": self.transport.connected_peers(),  # for /ready's voting power
            "mempool_size": len(self.mempool),
            "syncing": self.syncer.syncing,
            "sync_target_height": self.syncer.target_height,
            "sync_blocks_applied": self.syncer.blocks_synced,
            "sync_txs_applied": self.syncer.txs_synced,
            "sync_blocks_per_s": round(self.syncer.blocks_per_s, 1),
            "sync_tx_per_s": round(self.syncer.tx_per_s, 1),
            "evidence": self.driver.evidence_count,
            "frames_received": self.transport.stats.frames_in,
            "frames_sent": self.transport.stats.frames_out,
            "frames_dropped": self.transport.stats.frames_dropped,
            "bad_frames": self.transport.stats.bad_frames + self.bad_frames,
            "peer_refusals": self.transport.stats.refused,
            "peer_disconnects": self.transport.stats.disconnected,
            "unproven_height_claims": self.syncer.unproven_claims,
            "sync_peer_failures": self.syncer.peer_failures,
            "consensus_timings": self.driver.timings.snapshot(),
            **self._api_status(),
            "pid": os.getpid(),
        }

    def _api_status(self) -> dict[str, int]:
        """The API server's connection guards and CPU pool (zero before it serves)."""
        conns, cpu = self.api_connections, self._api_cpu
        return {
            "api_connections_open": conns.open_total if conns is not None else 0,
            "api_connections_refused": conns.refused_total if conns is not None else 0,
            "api_request_timeouts": (conns.head_timeouts_total + conns.body_timeouts_total
                                     if conns is not None else 0),
            "api_cpu_refused": cpu.refused_total if cpu is not None else 0,
        }

    # --- frames --------------------------------------------------------------------------
    def _send_envelope(self, envelope: Envelope) -> None:
        frame: Value = {"t": "c", "m": message_to_value(envelope.message)}
        if envelope.to is None:
            self.transport.broadcast(frame)
        elif envelope.to != self._key.key_id:
            self.transport.send(envelope.to, frame)

    def _on_frame(self, peer: str, value: Value) -> None:
        if not isinstance(value, dict):
            self.bad_frames += 1
            return
        kind = value.get("t")
        if kind == "c":
            try:
                message = message_from_value(value.get("m"), self.mempool.by_bytes)
            except MessageError:
                self.bad_frames += 1
                return
            self.driver.step(message, peer)
        elif kind == "txs":
            self._on_gossip(value.get("txs"))
        elif kind == "status":
            self.syncer.on_status(peer, value.get("height"), value.get("head"))
        elif kind == "sync_req":
            self.syncer.on_request(peer, value.get("from"), value.get("count"))
        elif kind == "sync_resp":
            self.syncer.on_response(peer, value.get("blocks"), value.get("from"))
        else:
            self.bad_frames += 1

    def _on_peer_over_budget(self, peer: str) -> None:
        """``peer`` sent more future-height messages than its byte share: cut it off a while."""
        log.warning("%s: peer %s went past its buffer budget; disconnecting it for %d ms",
                    self.name, peer[:8], PEER_PENALTY_MS)
        self.transport.disconnect(peer, PEER_PENALTY_MS)

    def _on_gossip(self, txs: object) -> None:
        if not isinstance(txs, list):
            self.bad_frames += 1
            return
        added = False
        for item in txs:
            if not isinstance(item, bytes):
                self.bad_frames += 1
                continue
            try:
                added = self.mempool.add(Transaction.from_bytes(item), gossip=False) or added
            except (LedgerError, MempoolError):
                continue  # committed meanwhile, expired, or full: gossip is best effort
        if added:
            self.driver.wake()

    def _schedule_gossip(self) -> None:
        if self._gossip_scheduled:
            return
        self._gossip_scheduled = True
        asyncio.get_running_loop().call_later(MEMPOOL_GOSSIP_DELAY_MS / 1000, self._flush_gossip)

    def _flush_gossip(self) -> None:
        self._gossip_scheduled = False
        while self.mempool.has_gossip():
            txs = self.mempool.take_gossip()
            if txs:
                self.transport.broadcast({"t": "txs", "txs": [tx.to_bytes() for tx in txs]})

    def _on_block(self, block: Block) -> None:
        header = block.header
        if header.next_validator_set_hash != header.validator_set_hash:
            # The set certifying the next height differs: dial members that joined, stop
            # dialling those that left (the transport only knew the set it started with).
            self.transport.refresh_peers()
        for tx in block.txs:
            for future in self._waiters.pop(tx.tx_id, []):
                if not future.done():
                    future.set_result(block.header.height)

    # --- core ----------------------------------------------------------------------------
    def _make_core(self, restored: list[Value]) -> ConsensusCore:
        from node.consensus.core import Core

        config = CoreConfig(chain_id=self._genesis.chain_id, timeouts=timeouts_for(self.config.tick_ms))
        return Core(config, self._key, self.app, tuple(restored))

    # --- running -------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve until :meth:`stop` (or SIGTERM/SIGINT)."""
        self._stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        await self.transport.start()
        tasks: list[asyncio.Task[Any]] = []
        server = None
        try:
            server = self._start_api(tasks)
            tasks.append(asyncio.create_task(self._announce(), name="status"))
            await self._initial_catch_up()
            self.driver.start_core()
            tasks.append(asyncio.create_task(self.driver.run(), name="driver"))
            tasks.append(asyncio.create_task(self._watch_lag(), name="lag"))
            tasks.append(asyncio.create_task(self._watch_certs(), name="certs"))
            log.info("%s: validator running at height %d (listen %s, api %s)", self.name,
                     self._store.height(), self.config.listen, self.config.api)
            self.running.set()
            stop_wait = asyncio.create_task(self._stopping.wait())
            done, _ = await asyncio.wait([stop_wait, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop_wait and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            stop_wait.cancel()
        finally:
            await self._shutdown(server, tasks)

    def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    def _start_api(self, tasks: list[asyncio.Task[Any]]) -> Any:
        host, port = parse_address(self.config.api)
        try:
            from node.api.app import create_app
        except ImportError:  # the API module is optional for a bare validator
            log.warning("node.api.app is unavailable; serving no REST API")
            return None
        from node.api.server import ConnectionStats, make_server

        limits = self.config.api_limits
        app = create_app(self, extra_routers=self._extra_routers, limits=limits)
        self._api_cpu = app.state.api.cpu
        self.api_connections = ConnectionStats()
        server = make_server(app, host, port, limits, self.api_connections)
        tasks.append(asyncio.create_task(server.serve(), name="api"))
        return server

    async def _announce(self) -> None:
        while True:
            self.transport.broadcast(self.syncer.announcement())
            await asyncio.sleep(STATUS_INTERVAL_MS / 1000)

    async def _initial_catch_up(self) -> None:
        deadline = time.monotonic() + STARTUP_STATUS_WAIT_S
        peers = len(self._genesis.validators) - 1
        while time.monotonic() < deadline and self.syncer.peers_heard < peers:
            await asyncio.sleep(0.05)
        if self.syncer.lag() > 0:
            log.info("%s: catching up from height %d to %d", self.name, self._store.height(),
                     self.syncer.best_peer()[1])  # type: ignore[index]
            applied = await self.syncer.catch_up()
            log.info("%s: caught up %d blocks; joining consensus at height %d", self.name, applied,
                     self._store.height() + 1)

    async def _watch_certs(self) -> None:
        """Load certificates put into certs/ while running (an agency being admitted)."""
        while True:
            await asyncio.sleep(TLS_TRUST_REFRESH_MS / 1000)
            self.refresh_trust()

    def refresh_trust(self) -> list[str]:
        """Load new certificates from certs/ into the live TLS contexts; their file names."""
        loaded, rejected = self._trust.refresh()
        for name in loaded:
            log.info("%s: now trusting the TLS certificate %s (a validator still needs to be in "
                     "the validator set to connect)", self.name, name)
        for name in rejected:
            log.warning("%s: %s in %s is not a certificate; ignored", self.name, name, self.config.certs_dir)
        return loaded

    async def _watch_lag(self) -> None:
        """Catch up when a trusted peer (see node.sync) is more than RESYNC_LAG_HEIGHTS ahead.
        Consensus keeps running until the first fetched block's certificate verified: a
        peer's claim alone never pauses it."""
        while True:
            await asyncio.sleep(STATUS_INTERVAL_MS / 1000)
            if self.syncer.lag() > RESYNC_LAG_HEIGHTS:
                await self._catch_up_running()

    async def _catch_up_running(self) -> None:
        paused = False

        def pause() -> None:
            nonlocal paused
            log.info("%s: %d heights behind; pausing consensus to apply certified blocks",
                     self.name, self.syncer.lag())
            self.driver.pause()
            paused = True

        try:
            await self.syncer.catch_up(before_apply=pause)
        finally:
            if paused:
                self.driver.start_core()
                log.info("%s: rejoined consensus at height %d", self.name, self._store.height() + 1)

    async def _shutdown(self, server: Any, tasks: list[asyncio.Task[Any]]) -> None:
        height = self._store.height()
        if server is not None:
            server.should_exit = True
        for task in tasks:
            if task.get_name() != "api":
                task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
        await self.transport.stop()
        self.syncer.close()
        if self._api_cpu is not None:
            self._api_cpu.close()
        self._wal.close()
        self._kv.close()
        log.info("%s: stopped at height %d", self.name, height)


def configure_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


__all__ = ["NodeConfig", "ValidatorService", "configure_logging"]
