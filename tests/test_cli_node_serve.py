"""`imi node start` freezes what start-up allocated out of the cyclic GC once the validator runs."""

from __future__ import annotations

import asyncio
import gc

import pytest

from cli.node_cmd import _serve


class _Service:
    def __init__(self, *, fail_before_running: bool) -> None:
        self.running = asyncio.Event()
        self.fail_before_running = fail_before_running
        self.frozen_while_running = -1

    async def run(self) -> None:
        if self.fail_before_running:
            raise RuntimeError("could not start")
        self.running.set()
        for _ in range(3):
            await asyncio.sleep(0)
        self.frozen_while_running = gc.get_freeze_count()


def test_start_up_objects_are_frozen_once_the_validator_runs() -> None:
    gc.unfreeze()
    service = _Service(fail_before_running=False)
    try:
        asyncio.run(_serve(service))
        assert service.frozen_while_running > 0
    finally:
        gc.unfreeze()


def test_a_validator_that_fails_to_start_raises_and_freezes_nothing() -> None:
    gc.unfreeze()
    with pytest.raises(RuntimeError, match="could not start"):
        asyncio.run(_serve(_Service(fail_before_running=True)))
    assert gc.get_freeze_count() == 0
