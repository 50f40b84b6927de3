"""Driver: persist (fsync) before send, WAL replay into the core, height gating."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ledger.encoding import Value
from node.consensus.types import Envelope, Ready
from node.driver import Driver
from node.wal import Wal


class _FakeApp:
    def __init__(self) -> None:
        self.stored = 0

    def height(self) -> int:
        return self.stored


class _FakeCore:
    """Returns scripted Readies; remembers what it was restored from."""

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
    vote = {"t": "vote", "m": {"h": 1}}
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


def test_next_height_waits_for_work_or_heartbeat(tmp_path: Path) -> None:
    committed = Ready(committed=((object(), object()),))  # type: ignore[arg-type]

    class _Applying(_FakeApp):
        def apply_committed(self, block: object, certificate: object) -> bool:
            return True

    applying = _Applying()
    driver, wal, _ = _driver(tmp_path, [committed], [], applying)
    driver.start_core()
    driver.tick()  # commits: the next tick is held
    assert not driver._gate_open()
    driver.heartbeat_ms = 0
    assert driver._gate_open()
    wal.close()
