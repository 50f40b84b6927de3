"""Driver: persist (fsync) before send, WAL replay into the core, height gating."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ledger.encoding import Value
from node.consensus.types import Envelope, Ready
from node.constants import BLOCK_INTERVAL_MS_MIN
from node.driver import Driver
from node.wal import Wal


class _FakeApp:
    def __init__(self) -> None:
        self.stored = 0

    def height(self) -> int:
        return self.stored


class _FakeCore:
    """Returns scripted Readies; remembers what it was restored from."""

    height = 0
    round = 0

    def __init__(self, restored: list[Value], script: list[Ready]) -> None:
        self.restored = restored
        self.script = script
        self.ticks = 0

    def tick(self) -> Ready:
        self.ticks += 1
        return self.script.pop(0) if self.script else Ready()

    def step(self, message: object) -> Ready:
        return self.script.pop(0) if self.script else Ready()


def _driver(tmp: Path, script: list[Ready], sent: list[tuple[Envelope, int]],
            app: _FakeApp | None = None) -> tuple[Driver, Wal, list[_FakeCore]]:
    wal, restored = Wal.open(tmp / "wal.log")
    cores: list[_FakeCore] = []

    def factory(records: list[Value]) -> Any:
        cores.append(_FakeCore(records, script))
        return cores[-1]

    def send(envelope: Envelope) -> None:
        # What is on disk at the moment of sending: the vote must already be there.
        sent.append((envelope, len(Wal.open(tmp / "wal.log")[1])))

    driver = Driver(core_factory=factory, wal=wal, restored=restored, app=app or _FakeApp(),  # type: ignore[arg-type]
                    send=send, tick_ms=10, heartbeat_ms=1000, has_work=lambda: 0)
    return driver, wal, cores


def test_messages_leave_only_after_their_records_are_durable(tmp_path: Path) -> None:
    vote: Value = {"t": "vote", "m": {"h": 1}}
    script = [Ready(persist=({"t": "height", "h": 1}, vote), send=(Envelope("VOTE"),))]
    sent: list[tuple[Envelope, int]] = []

    async def run() -> None:
        driver, wal, _ = _driver(tmp_path, script, sent)
        driver.start_core()
        driver.tick()
        assert sent == []  # queued until the group fsync at the end of this loop iteration
        await asyncio.sleep(0)
        assert sent == [(Envelope("VOTE"), 2)]
        wal.close()

    asyncio.run(run())


def test_restart_hands_the_core_the_records_of_its_height(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path / "wal.log")
    wal.append([{"t": "height", "h": 1}, {"t": "vote", "r": 0}, {"t": "height", "h": 2},
                {"t": "vote", "r": 0}, {"t": "vote", "r": 1}])
    wal.close()
    app = _FakeApp()
    app.stored = 1  # block 1 is stored; height 2 was in progress at the crash
    driver, wal, cores = _driver(tmp_path, [], [], app)
    driver.start_core()
    assert cores[0].restored == [{"t": "height", "h": 2}, {"t": "vote", "r": 0}, {"t": "vote", "r": 1}]
    # After catch-up moved the store past the WAL, the core starts after the head.
    app.stored = 9
    driver.start_core()
    assert cores[1].restored == [{"t": "height", "h": 9}]
    wal.close()


class _Header:
    def __init__(self, height: int) -> None:
        self.height = height


class _Block:
    def __init__(self, txs: int, height: int = 1) -> None:
        self.txs = (object(),) * txs
        self.header = _Header(height)


class _Applying(_FakeApp):
    def apply_committed(self, block: object, certificate: object) -> bool:
        self.stored += 1
        return True


def _commit(txs: int) -> Ready:
    return Ready(committed=((_Block(txs), object()),))  # type: ignore[arg-type]


def test_next_height_waits_for_work_or_heartbeat(tmp_path: Path) -> None:
    async def run() -> None:
        driver, wal, _ = _driver(tmp_path, [_commit(0)], [], _Applying())
        driver.start_core()
        driver.tick()  # commits: the next tick is held
        assert not driver._gate_open()
        driver.heartbeat_ms = 0
        assert driver._gate_open()
        wal.close()

    asyncio.run(run())


def test_the_wait_after_a_commit_scales_with_how_full_the_last_block_was(tmp_path: Path) -> None:
    async def run() -> None:
        script = [_commit(0), _commit(100), _commit(250), _commit(400)]
        driver, wal, _ = _driver(tmp_path, script, [], _Applying())
        driver.block_interval_ms, driver.batch_txs_min = 50, 250
        driver.start_core()
        waits = []
        for _ in range(4):
            driver.tick()
            waits.append(driver.block_wait_ms())
        assert waits == [BLOCK_INTERVAL_MS_MIN, 20.0, 50.0, 50.0]
        wal.close()

    asyncio.run(run())


def test_the_gate_opens_when_the_wait_ends_not_on_the_next_tick(tmp_path: Path) -> None:
    async def run() -> None:
        driver, wal, cores = _driver(tmp_path, [_commit(0)], [], _Applying())
        driver.tick_ms = 60_000  # no tick would come in time
        pending = [0]
        driver._has_work = lambda: pending[0]
        driver.start_core()
        driver.tick()  # commits block 1; the next height is held
        await asyncio.sleep(3 * BLOCK_INTERVAL_MS_MIN / 1000)
        assert cores[0].ticks == 1  # nothing pending: still held when the wait ended
        pending[0] = 1
        driver.wake()  # a transaction arrives after the wait: the height starts at once
        assert cores[0].ticks == 2
        driver.tick()  # (scripted) nothing more; now a commit with work already pending
        cores[0].script.append(_commit(0))
        driver.tick()
        assert driver._gated and cores[0].ticks == 4
        await asyncio.sleep(3 * BLOCK_INTERVAL_MS_MIN / 1000)
        assert cores[0].ticks == 5 and not driver._gated  # opened by the timer, not a tick
        wal.close()

    asyncio.run(run())


def test_the_wait_timer_opens_the_gate_even_when_it_fires_a_little_early(tmp_path: Path) -> None:
    """uvloop keeps timers in whole milliseconds against the loop's cached time, so the
    timer set for the wait after a commit can fire ~1 ms before the clock says the wait is
    over; it must still open the gate, or the height would wait for the next tick."""
    async def run() -> None:
        driver, wal, cores = _driver(tmp_path, [_commit(100)], [], _Applying())
        driver.tick_ms = 60_000  # no tick would come in time
        driver._has_work = lambda: 1
        driver.start_core()
        driver.tick()  # commits a 100-tx block: the wait is 20 ms
        assert driver._gated and driver.block_wait_ms() > 10
        driver.wake()  # a transaction arrives during the wait: held
        assert cores[0].ticks == 1
        driver._wait_ended()  # the timer, firing before the clock reaches the wait's end
        assert cores[0].ticks == 2 and not driver._gated
        wal.close()

    asyncio.run(run())


def test_the_peer_of_a_message_refused_for_its_byte_share_is_reported(tmp_path: Path) -> None:
    """Issue 19: a peer past its future-buffer budget is handed to the service (which cuts it off)."""

    class _BudgetCore(_FakeCore):
        def __init__(self) -> None:
            super().__init__([], [])
            self.dropped: dict[str, int] = {}

        def step(self, message: object) -> Ready:
            if message == "junk":
                self.dropped["over-budget"] = self.dropped.get("over-budget", 0) + 1
            return Ready()

    wal, restored = Wal.open(tmp_path / "wal.log")
    reported: list[str] = []
    driver = Driver(core_factory=lambda records: _BudgetCore(), wal=wal, restored=restored,
                    app=_FakeApp(), send=lambda envelope: None, tick_ms=10,  # type: ignore[arg-type]
                    heartbeat_ms=1000, has_work=lambda: 0, on_peer_over_budget=reported.append)
    driver.start_core()
    driver.step("fine", "honest")
    driver.step("junk", "byzantine")
    driver.step("junk")  # no transport peer (in-process): nobody to cut off
    assert reported == ["byzantine"]
