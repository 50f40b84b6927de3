"""Validator transport: mutual TLS pinned to the validator set, frames, limits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cli._consortium import free_ports
from ledger.keys import SigningKey
from ledger.validators import Validator, ValidatorSet
from node import tls
from node.constants import FRAME_BYTES_MAX, SEND_QUEUE_BYTES_MAX, SEND_QUEUE_FRAMES_MAX
from node.errors import FrameError
from node.transport import Transport, encode_frame, read_frame


class _Identity:
    def __init__(self, tmp: Path, name: str) -> None:
        self.name = name
        self.key = SigningKey.generate()
        key_pem, cert_pem = tls.generate_identity(name)
        self.key_file = tmp / f"{name}.key"
        self.cert_file = tmp / f"{name}.pem"
        self.key_file.write_bytes(key_pem)
        self.cert_file.write_bytes(cert_pem)
        self.cert_pem = cert_pem
        self.port = free_ports(1)[0]
        self.validator = Validator(name, self.key.public_key, 1, f"127.0.0.1:{self.port}",
                                   tls.spki_sha256_of_cert(cert_pem))


def _transport(me: _Identity, vset: ValidatorSet, trust: list[bytes],
               inbox: list[tuple[str, object]]) -> Transport:
    return Transport(
        my_key_id=me.key.key_id,
        listen=("127.0.0.1", me.port),
        server_ctx=tls.server_context(me.key_file, me.cert_file, trust),
        client_ctx=tls.client_context(me.key_file, me.cert_file, trust),
        validators=lambda: vset,
        on_frame=lambda peer, value: inbox.append((peer, value)),
    )


async def _until(predicate, timeout_s: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())


def test_members_exchange_frames_over_mutual_tls(tmp_path: Path) -> None:
    a, b = _Identity(tmp_path, "a"), _Identity(tmp_path, "b")
    vset = ValidatorSet.of([a.validator, b.validator])
    trust = [a.cert_pem, b.cert_pem]

    async def run() -> None:
        inbox_a: list[tuple[str, object]] = []
        inbox_b: list[tuple[str, object]] = []
        ta, tb = _transport(a, vset, trust, inbox_a), _transport(b, vset, trust, inbox_b)
        await ta.start()
        await tb.start()
        try:
            ta.send(b.key.key_id, {"hello": b"from a"})
            tb.broadcast({"hello": b"from b"})
            assert await _until(lambda: inbox_a and inbox_b)
            assert inbox_b == [(a.key.key_id, {"hello": b"from a"})]
            assert inbox_a == [(b.key.key_id, {"hello": b"from b"})]
            assert ta.connected_peers() == [b.key.key_id]
            assert (ta.stats.frames_out, ta.stats.frames_in) == (1, 1)
            assert (tb.stats.frames_out, tb.stats.frames_in) == (1, 1)
        finally:
            await ta.stop()
            await tb.stop()

    asyncio.run(run())


def test_frames_for_an_absent_peer_past_the_queue_limit_are_dropped_and_counted(tmp_path: Path) -> None:
    a, b = _Identity(tmp_path, "a"), _Identity(tmp_path, "b")
    vset = ValidatorSet.of([a.validator, b.validator])

    async def run() -> None:
        ta = _transport(a, vset, [a.cert_pem, b.cert_pem], [])
        await ta.start()  # b never listens
        try:
            for number in range(SEND_QUEUE_FRAMES_MAX + 5):
                ta.send(b.key.key_id, {"n": number})
            assert ta.stats.frames_dropped == 5
            assert ta.stats.frames_out == 0
        finally:
            await ta.stop()

    asyncio.run(run())


def test_a_send_queue_is_bounded_in_bytes_too(tmp_path: Path) -> None:
    """Regression (issue 19): the queue was bounded by count only (4,096 frames of up to 4 MiB)."""
    a, b = _Identity(tmp_path, "a"), _Identity(tmp_path, "b")
    vset = ValidatorSet.of([a.validator, b.validator])
    big = {"junk": bytes(FRAME_BYTES_MAX // 2)}

    async def run() -> None:
        ta = _transport(a, vset, [a.cert_pem, b.cert_pem], [])
        await ta.start()  # b never listens
        try:
            sent = 4 * SEND_QUEUE_BYTES_MAX // (FRAME_BYTES_MAX // 2)
            for _ in range(sent):
                ta.send(b.key.key_id, big)
            queue = ta._out[b.key.key_id].queue
            assert 0 < sum(len(frame) for frame in queue) <= SEND_QUEUE_BYTES_MAX
            assert ta.stats.frames_dropped == sent - len(queue)
        finally:
            await ta.stop()

    asyncio.run(run())


def test_a_disconnected_peer_is_cut_off_and_refused_for_a_while(tmp_path: Path) -> None:
    a, b = _Identity(tmp_path, "a"), _Identity(tmp_path, "b")
    vset = ValidatorSet.of([a.validator, b.validator])
    trust = [a.cert_pem, b.cert_pem]

    async def run() -> None:
        inbox_a: list[tuple[str, object]] = []
        ta, tb = _transport(a, vset, trust, inbox_a), _transport(b, vset, trust, [])
        await ta.start()
        await tb.start()
        try:
            tb.send(a.key.key_id, {"n": 0})
            assert await _until(lambda: len(inbox_a) == 1)
            ta.disconnect(b.key.key_id, 60_000)
            assert ta.stats.disconnected == 1
            for number in range(1, 20):
                tb.send(a.key.key_id, {"n": number})
                await asyncio.sleep(0.05)
            assert inbox_a == [(b.key.key_id, {"n": 0})]
        finally:
            await ta.stop()
            await tb.stop()

    asyncio.run(run())


def test_peer_with_key_outside_the_set_is_refused(tmp_path: Path) -> None:
    """A trusted certificate whose key is not pinned by the current set is refused both ways,
    and an unknown self-signed certificate fails the handshake."""
    a, b, c = _Identity(tmp_path, "a"), _Identity(tmp_path, "b"), _Identity(tmp_path, "c")
    intruder = _Identity(tmp_path, "intruder")
    vset = ValidatorSet.of([a.validator, b.validator])
    trust = [a.cert_pem, b.cert_pem, c.cert_pem]  # c is trusted by TLS but not in the set

    async def run() -> None:
        inbox_b: list[tuple[str, object]] = []
        tb = _transport(b, vset, trust, inbox_b)
        await tb.start()
        try:
            # c dials b with a certificate b's TLS trusts: b refuses after the pin check.
            ctx_c = tls.client_context(c.key_file, c.cert_file, trust)
            reader, writer = await asyncio.open_connection("127.0.0.1", b.port, ssl=ctx_c)
            writer.write(encode_frame({"evil": True}))
            await writer.drain()
            assert await reader.read() == b""  # b closed the connection
            writer.close()
            # The intruder's certificate is not a trust anchor: the handshake fails.
            ctx_i = tls.client_context(intruder.key_file, intruder.cert_file, trust + [intruder.cert_pem])
            with pytest.raises((ConnectionError, OSError, asyncio.IncompleteReadError)):
                r2, w2 = await asyncio.open_connection("127.0.0.1", b.port, ssl=ctx_i)
                w2.write(encode_frame({"evil": True}))
                await w2.drain()
                if await r2.read() == b"":
                    raise ConnectionError("closed by b")
            await asyncio.sleep(0.2)
            assert inbox_b == []
            assert tb.stats.refused >= 1
        finally:
            await tb.stop()

    asyncio.run(run())


def test_a_certificate_put_into_the_directory_is_trusted_without_a_restart(tmp_path: Path) -> None:
    """a starts trusting only itself, so b (in the set) cannot connect either way; once
    b's certificate is put into a's certs/ and a refreshes, the live contexts accept it."""
    a, b = _Identity(tmp_path, "a"), _Identity(tmp_path, "b")
    vset = ValidatorSet.of([a.validator, b.validator])
    certs_a = tmp_path / "certs_a"
    certs_a.mkdir()
    (certs_a / "a.pem").write_bytes(a.cert_pem)

    async def run() -> None:
        inbox_a: list[tuple[str, object]] = []
        inbox_b: list[tuple[str, object]] = []
        anchors = tls.load_trust_dir(certs_a)
        server_a = tls.server_context(a.key_file, a.cert_file, anchors)
        client_a = tls.client_context(a.key_file, a.cert_file, anchors)
        trust_a = tls.TrustDirectory(certs_a, (server_a, client_a), anchors)
        ta = Transport(my_key_id=a.key.key_id, listen=("127.0.0.1", a.port), server_ctx=server_a,
                       client_ctx=client_a, validators=lambda: vset,
                       on_frame=lambda peer, value: inbox_a.append((peer, value)))
        tb = _transport(b, vset, [a.cert_pem, b.cert_pem], inbox_b)
        await ta.start()
        await tb.start()
        try:
            tb.send(a.key.key_id, {"n": 1})
            ta.send(b.key.key_id, {"n": 2})
            assert not await _until(lambda: inbox_a or inbox_b, timeout_s=1.0)
            # (b's own dial may look connected for a moment: in TLS 1.3 the client finishes
            # before the server has checked its certificate; a then drops it.)
            assert ta.connected_peers() == []
            assert trust_a.refresh() == ([], [])  # nothing new yet
            (certs_a / "junk.pem").write_bytes(b"not a certificate")
            (certs_a / "b.pem").write_bytes(b.cert_pem)
            assert trust_a.refresh() == (["b.pem"], ["junk.pem"])
            assert trust_a.refresh() == ([], [])  # each file content once
            tb.send(a.key.key_id, {"n": 3})
            ta.send(b.key.key_id, {"n": 4})
            # Frames written into b's refused connection before b noticed are lost (counted as
            # sent); b notices the refusal, redials, and what it sends now arrives.
            assert await _until(lambda: (b.key.key_id, {"n": 3}) in inbox_a
                                and (a.key.key_id, {"n": 4}) in inbox_b, timeout_s=10.0)
            assert ta.connected_peers() == [b.key.key_id]
        finally:
            await ta.stop()
            await tb.stop()

    asyncio.run(run())


def test_dialler_refuses_a_listener_with_another_key(tmp_path: Path) -> None:
    """a dials b's address, but c (trusted certificate, not b's key) answers: nothing is sent."""
    a, b, c = _Identity(tmp_path, "a"), _Identity(tmp_path, "b"), _Identity(tmp_path, "c")
    c.port = b.port  # c listens where b should be
    vset = ValidatorSet.of([a.validator, b.validator])
    trust = [a.cert_pem, b.cert_pem, c.cert_pem]
    vset_c = ValidatorSet.of([a.validator, Validator("c", c.key.public_key, 1, b.validator.address,
                                                      c.validator.tls_spki_sha256)])

    async def run() -> None:
        inbox_c: list[tuple[str, object]] = []
        tc = _transport(c, vset_c, trust, inbox_c)
        ta = _transport(a, vset, trust, [])
        await tc.start()
        await ta.start()
        try:
            ta.send(b.key.key_id, {"secret": b"for b only"})
            await asyncio.sleep(0.5)
            assert inbox_c == []
            assert ta.connected_peers() == []
            assert ta.stats.refused >= 1
        finally:
            await ta.stop()
            await tc.stop()

    asyncio.run(run())


def test_frame_limits() -> None:
    with pytest.raises(FrameError):
        encode_frame(b"x" * (FRAME_BYTES_MAX + 1))

    async def run(raw: bytes) -> object:
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        return await read_frame(reader)

    assert asyncio.run(run(encode_frame([1, "two"]))) == [1, "two"]
    with pytest.raises(FrameError):
        asyncio.run(run((FRAME_BYTES_MAX + 1).to_bytes(4, "big")))
    with pytest.raises(FrameError):
        asyncio.run(run((0).to_bytes(4, "big")))
    with pytest.raises(FrameError):  # non-canonical: map keys out of order
        asyncio.run(run(b"\x00\x00\x00\x05\xa2\x61b\x01\x61a"))


def test_frames_queued_for_a_peer_unreachable_too_long_are_dropped_not_replayed_to_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("node.transport.SEND_QUEUE_STALE_MS", 150)
    a, b = _Identity(tmp_path, "a"), _Identity(tmp_path, "b")
    vset = ValidatorSet.of([a.validator, b.validator])
    trust = [a.cert_pem, b.cert_pem]

    async def run() -> None:
        ta = _transport(a, vset, trust, [])
        await ta.start()  # b is down
        inbox_b: list[tuple[str, object]] = []
        tb = _transport(b, vset, trust, inbox_b)
        try:
            for number in range(10):
                ta.send(b.key.key_id, {"stale": number})
            assert await _until(lambda: ta.stats.frames_dropped == 10)
            await tb.start()  # b is back
            ta.send(b.key.key_id, {"fresh": 1})
            assert await _until(lambda: inbox_b)
            assert inbox_b == [(a.key.key_id, {"fresh": 1})]
        finally:
            await ta.stop()
            await tb.stop()

    asyncio.run(run())
