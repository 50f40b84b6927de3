"""Validator transport: length-prefixed canonical CBOR frames over mutual TLS 1.3.

Every pair of validators uses two TCP connections, one dialled by each side;
a validator *sends* only on the connection it dialled and *receives* only on
the ones it accepted, so there is no tie-breaking and no duplex state.

Identity: after the TLS handshake (both sides present certificates, see
:mod:`node.tls`) the peer's SPKI digest must equal the ``tls_spki_sha256`` of a
member of the *current* validator set (inbound) or of the validator we meant to
dial (outbound); anything else is refused and the connection closed. Consensus
messages are additionally signed by consensus keys, so the transport only
decides who may talk, not what is true.

Limits: a frame is at most ``FRAME_BYTES_MAX`` bytes; each peer has a send
queue bounded in frames and in bytes (``SEND_QUEUE_FRAMES_MAX``,
``SEND_QUEUE_BYTES_MAX``; oldest dropped first — consensus rebroadcasts, gossip
is best effort), emptied once the peer has been unreachable for
``SEND_QUEUE_STALE_MS`` (a validator that comes back is not first fed thousands
of stale frames); reconnection backs off exponentially between
``RECONNECT_BACKOFF_MS_MIN`` and ``RECONNECT_BACKOFF_MS_MAX``. A peer can be cut
off for a while (:meth:`Transport.disconnect`): its connections to us are closed
and refused until then.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from ledger.encoding import Value, decode, encode
from ledger.errors import EncodingError
from ledger.validators import Validator, ValidatorSet
from node.constants import (
    CONNECT_TIMEOUT_MS,
    FRAME_BYTES_MAX,
    FRAME_HEADER_BYTES,
    HANDSHAKE_TIMEOUT_MS,
    RECONNECT_BACKOFF_MS_MAX,
    RECONNECT_BACKOFF_MS_MIN,
    SEND_QUEUE_BYTES_MAX,
    SEND_QUEUE_FRAMES_MAX,
    SEND_QUEUE_STALE_MS,
)
from node.errors import FrameError, PeerRefused
from node.tls import peer_spki_sha256

log = logging.getLogger("imi.transport")

FrameHandler = Callable[[str, Value], None]
"""Called with (peer key id, decoded frame value) for every frame received."""


def encode_frame(value: Value) -> bytes:
    """Length prefix + canonical CBOR. Raises :class:`FrameError` past the size limit."""
    try:
        body = encode(value)
    except EncodingError as exc:
        raise FrameError(f"cannot frame value: {exc}", reason="frame-too-large") from exc
    if len(body) > FRAME_BYTES_MAX:
        raise FrameError(f"frame of {len(body)} bytes exceeds {FRAME_BYTES_MAX}", reason="frame-too-large")
    return len(body).to_bytes(FRAME_HEADER_BYTES, "big") + body


async def read_frame(reader: asyncio.StreamReader) -> Value:
    """Read one frame. Raises :class:`FrameError` (remote fault) or ``IncompleteReadError`` at EOF."""
    header = await reader.readexactly(FRAME_HEADER_BYTES)
    size = int.from_bytes(header, "big")
    if size == 0 or size > FRAME_BYTES_MAX:
        raise FrameError(f"frame length {size} outside 1..{FRAME_BYTES_MAX}", reason="frame-too-large")
    body = await reader.readexactly(size)
    try:
        return decode(body)
    except EncodingError as exc:
        raise FrameError(f"frame is not canonical CBOR: {exc}") from exc


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"address {address!r} is not host:port")
    return host, int(port)


@dataclass(slots=True)
class _Outbound:
    """One peer we dial: its pinned identity, a bounded queue and the dialling task."""

    validator: Validator
    queue: collections.deque[bytes] = field(default_factory=collections.deque)
    queued_bytes: int = 0  # sum of len(frame) over queue; with its length, kept under the limits
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    connected: bool = False


@dataclass(slots=True)
class TransportStats:
    """Counters since start (exported by ``/metrics`` through the node's status)."""

    frames_in: int = 0  # frames read from peers that decoded
    frames_out: int = 0  # frames handed to a peer's socket
    frames_dropped: int = 0  # dropped from a full send queue (oldest first), or stale (SEND_QUEUE_STALE_MS)
    refused: int = 0  # connections refused for their TLS key (outside the set, or not the pinned one)
    bad_frames: int = 0  # frames that were too large or not canonical CBOR
    disconnected: int = 0  # peers cut off for going past a budget (Transport.disconnect)


class Transport:
    """Mutual-TLS mesh between the members of a validator set. Runs in one asyncio loop."""

    def __init__(
        self,
        *,
        my_key_id: str,
        listen: tuple[str, int],
        server_ctx: ssl.SSLContext,
        client_ctx: ssl.SSLContext,
        validators: Callable[[], ValidatorSet],
        on_frame: FrameHandler,
    ) -> None:
        self._me = my_key_id
        self._listen = listen
        self._server_ctx = server_ctx
        self._client_ctx = client_ctx
        self._validators = validators
        self._on_frame = on_frame
        self._out: dict[str, _Outbound] = {}
        self._inbound: dict[asyncio.StreamWriter, str] = {}  # accepted connection -> peer key id ("" before auth)
        self._cut_off: dict[str, float] = {}  # peer key id -> loop time until which it is refused
        self._server: asyncio.base_events.Server | None = None
        self._closing = False
        self.stats = TransportStats()

    # --- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        host, port = self._listen
        self._server = await asyncio.start_server(self._accept, host, port, ssl=self._server_ctx,
                                                  ssl_handshake_timeout=HANDSHAKE_TIMEOUT_MS / 1000)
        self.refresh_peers()

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self._closing = True  # a dial loop whose cancel was swallowed (asyncio.wait_for races) ends too
        if self._server is not None:
            self._server.close()
        for out in self._out.values():
            if out.task is not None:
                out.task.cancel()
        for writer in list(self._inbound):
            writer.close()
        tasks = [o.task for o in self._out.values() if o.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=CONNECT_TIMEOUT_MS / 1000 + HANDSHAKE_TIMEOUT_MS / 1000)
        self._out.clear()
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            except TimeoutError:
                pass

    def refresh_peers(self) -> None:
        """Dial every member of the current set (but us); stop dialling removed ones."""
        current = {v.key_id: v for v in self._validators().validators if v.key_id != self._me}
        for key_id in list(self._out):
            out = self._out[key_id]
            if key_id not in current or current[key_id] != out.validator:
                if out.task is not None:
                    out.task.cancel()
                del self._out[key_id]
        for key_id, validator in current.items():
            if key_id not in self._out:
                out = _Outbound(validator)
                out.task = asyncio.get_running_loop().create_task(self._dial_loop(out))
                self._out[key_id] = out

    # --- sending ------------------------------------------------------------------------
    def send(self, to: str, value: Value) -> None:
        self._enqueue(to, encode_frame(value))

    def broadcast(self, value: Value) -> None:
        frame = encode_frame(value)
        for key_id in self._out:
            self._enqueue(key_id, frame)

    def _enqueue(self, to: str, frame: bytes) -> None:
        out = self._out.get(to)
        if out is None:
            return
        while out.queue and (len(out.queue) >= SEND_QUEUE_FRAMES_MAX
                             or out.queued_bytes + len(frame) > SEND_QUEUE_BYTES_MAX):
            out.queued_bytes -= len(out.queue.popleft())
            self.stats.frames_dropped += 1
        out.queue.append(frame)
        out.queued_bytes += len(frame)
        out.wake.set()

    def queued(self, to: str) -> tuple[int, int]:
        """(frames, bytes) waiting in the send queue to ``to``."""
        out = self._out.get(to)
        return (0, 0) if out is None else (len(out.queue), out.queued_bytes)

    def disconnect(self, peer: str, for_ms: int) -> None:
        """Close ``peer``'s connections to us and refuse new ones for ``for_ms`` (it went past
        a budget). What we send it is unaffected: our messages are ours to bound."""
        self._cut_off[peer] = asyncio.get_running_loop().time() + for_ms / 1000
        self.stats.disconnected += 1
        for writer, key_id in list(self._inbound.items()):
            if key_id == peer:
                writer.close()

    def _is_cut_off(self, peer: str) -> bool:
        until = self._cut_off.get(peer)
        if until is None:
            return False
        if asyncio.get_running_loop().time() < until:
            return True
        del self._cut_off[peer]
        return False

    def connected_peers(self) -> list[str]:
        return sorted(k for k, o in self._out.items() if o.connected)

    # --- outbound -------------------------------------------------------------------------
    def _drop_stale(self, out: _Outbound, unreachable_since: float) -> None:
        """Empty the queue of a peer unreachable for SEND_QUEUE_STALE_MS (see there)."""
        if asyncio.get_running_loop().time() - unreachable_since >= SEND_QUEUE_STALE_MS / 1000 and out.queue:
            self.stats.frames_dropped += len(out.queue)
            out.queue.clear()

    async def _dial_loop(self, out: _Outbound) -> None:
        backoff_ms = RECONNECT_BACKOFF_MS_MIN
        refused_after_handshake = False  # the last connection ended at once, from the peer's side
        host, port = parse_address(out.validator.address)
        unreachable_since = asyncio.get_running_loop().time()
        while not self._closing:
            writer: asyncio.StreamWriter | None = None
            lasted = False
            try:
                reader, conn = await asyncio.wait_for(
                    asyncio.open_connection(host, port, ssl=self._client_ctx, server_hostname=host,
                                            ssl_handshake_timeout=HANDSHAKE_TIMEOUT_MS / 1000),
                    CONNECT_TIMEOUT_MS / 1000 + HANDSHAKE_TIMEOUT_MS / 1000)
                writer = conn
                spki = peer_spki_sha256(conn.get_extra_info("ssl_object"))
                if spki != out.validator.tls_spki_sha256:
                    self.stats.refused += 1
                    raise PeerRefused(f"{out.validator.name} at {out.validator.address} presented another key")
                out.connected = True
                if not refused_after_handshake:
                    log.info("connected to %s (%s)", out.validator.name, out.validator.address)
                connected_at = asyncio.get_running_loop().time()
                try:
                    await self._pump_while_open(out, reader, conn)
                finally:
                    # A connection that lasted is a reason to redial at once; one the peer
                    # ended right away (it does not trust us yet) keeps the backoff growing.
                    lasted = asyncio.get_running_loop().time() - connected_at >= RECONNECT_BACKOFF_MS_MAX / 1000
                    if lasted:
                        backoff_ms = RECONNECT_BACKOFF_MS_MIN
            except asyncio.CancelledError:
                if writer is not None:
                    writer.close()
                raise
            except (TimeoutError, OSError, ssl.SSLError, asyncio.IncompleteReadError, PeerRefused, ConnectionError) as exc:
                if out.connected and lasted:
                    log.info("lost %s: %s", out.validator.name, exc)
                elif out.connected:
                    if not refused_after_handshake:
                        log.warning("%s ended our connection right after the handshake (if this repeats: "
                                    "it does not trust our certificate yet, or our key is not in its "
                                    "validator set); retrying with backoff", out.validator.name)
                    refused_after_handshake = True
                elif isinstance(exc, PeerRefused):
                    log.warning("refused %s", exc)
                if lasted:
                    refused_after_handshake = False
            finally:
                if out.connected:
                    unreachable_since = asyncio.get_running_loop().time()
                out.connected = False
            if writer is not None:
                writer.close()
            self._drop_stale(out, unreachable_since)
            await asyncio.sleep(backoff_ms / 1000)
            backoff_ms = min(backoff_ms * 2, RECONNECT_BACKOFF_MS_MAX)

    async def _pump_while_open(self, out: _Outbound, reader: asyncio.StreamReader,
                               writer: asyncio.StreamWriter) -> None:
        """Pump frames until the connection ends; raises ConnectionError when the peer ends it.

        Nothing is ever sent to a dialler, so anything read — end of stream, a TLS alert,
        stray bytes — means the peer is gone or refused us. Without watching, a refusal
        after the handshake went unnoticed: in TLS 1.3 the client finishes before the
        server has checked the client's certificate, and frames were written into a
        connection the server had already dropped.
        """
        pump = asyncio.ensure_future(self._pump(out, writer))
        watch = asyncio.ensure_future(reader.read(1))
        try:
            await asyncio.wait((pump, watch), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, watch):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(pump, watch, return_exceptions=True)
        if pump.done() and not pump.cancelled() and pump.exception() is not None:
            raise pump.exception()  # type: ignore[misc]
        raise ConnectionError("closed by the peer")

    async def _pump(self, out: _Outbound, writer: asyncio.StreamWriter) -> None:
        while True:
            if not out.queue:
                out.wake.clear()
                await out.wake.wait()
            # Everything queued goes out in one write (one pass through TLS, one syscall);
            # frames handed to the socket count as sent.
            frames = list(out.queue)
            out.queue.clear()
            out.queued_bytes = 0
            writer.write(b"".join(frames))
            self.stats.frames_out += len(frames)
            await writer.drain()
            if writer.is_closing():
                raise ConnectionError("closed")

    # --- inbound ----------------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._inbound[writer] = ""
        peer_name = "?"
        try:
            spki = peer_spki_sha256(writer.get_extra_info("ssl_object"))
            member = next((v for v in self._validators().validators if v.tls_spki_sha256 == spki), None)
            if member is None or member.key_id == self._me:
                self.stats.refused += 1
                raise PeerRefused(f"inbound connection from {writer.get_extra_info('peername')} "
                                  f"with a TLS key outside the validator set")
            if self._is_cut_off(member.key_id):
                raise PeerRefused(f"{member.name} is cut off for a while (it went past a budget)")
            peer_name = member.name
            self._inbound[writer] = member.key_id
            while not self._is_cut_off(member.key_id):  # (frames it sent before the cut are not read)
                value = await read_frame(reader)
                self.stats.frames_in += 1
                try:
                    self._on_frame(member.key_id, value)
                except Exception:  # a handler bug must not kill the connection silently
                    log.exception("frame handler failed for a frame from %s", peer_name)
        except PeerRefused as exc:
            log.warning("refused: %s", exc)
        except FrameError as exc:
            self.stats.bad_frames += 1
            log.warning("bad frame from %s: %s", peer_name, exc)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            pass  # shutting down: a connection handler has nothing left to clean up
        finally:
            self._inbound.pop(writer, None)
            writer.close()


__all__ = ["FrameHandler", "Transport", "TransportStats", "encode_frame", "parse_address", "read_frame"]
