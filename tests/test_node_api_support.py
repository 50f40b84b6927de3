"""API test support: the in-process node over the test consortium, and proof checks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ledger.execution import DEVNET_HANDLERS, Handler
from ledger.kv import KV
from ledger.merkle import leaf_hash, verify_consistency, verify_inclusion
from node.api.offload import CpuPool
from tests.devnode import DevNode
from tests.factories import Consortium, consortium


class InProcessNode(DevNode):
    """A :class:`DevNode` over the deterministic test consortium (every validator signs)."""

    def __init__(
        self,
        kv: KV | None = None,
        *,
        members: Consortium | None = None,
        handlers: Mapping[str, Handler] = DEVNET_HANDLERS,
        auto_commit: bool = True,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.consortium = members or consortium()
        super().__init__(self.consortium.genesis, list(self.consortium.keys.values()), kv, handlers=handlers,
                         auto_commit=auto_commit, clock_ms=clock_ms, name="v0")


def check_inclusion(body: dict[str, Any]) -> None:
    """Verify an API inclusion proof against the header it came with."""
    proof = body["inclusion_proof"]
    assert proof["root"] == body["header"]["log_root"]
    assert proof["tree_size"] == body["header"]["log_size"]
    verify_inclusion(proof["leaf_index"], proof["tree_size"], leaf_hash(bytes.fromhex(proof["leaf"])),
                     [bytes.fromhex(h) for h in proof["hashes"]], bytes.fromhex(proof["root"]))


def check_consistency(body: dict[str, Any]) -> None:
    verify_consistency(body["from_size"], body["to_size"], bytes.fromhex(body["from_header"]["log_root"]),
                       bytes.fromhex(body["to_header"]["log_root"]), [bytes.fromhex(h) for h in body["hashes"]])


__all__ = ["InProcessNode", "check_consistency", "check_inclusion"]


@contextmanager
def cpu_pool_held(pool: CpuPool, timeout_s: float, *, on_worker: Callable[[], None] = lambda: None) -> Iterator[None]:
    """The API's CPU pool kept busy for the block (one job holding a worker; with one worker
    and no queue, the pool is full): ``on_worker`` runs first on the worker's thread. The job
    ends, and its thread is joined, on leaving the block."""
    release = threading.Event()

    def occupy() -> None:
        on_worker()
        release.wait(timeout_s)

    holder = threading.Thread(target=lambda: asyncio.run(pool.run(occupy)))
    holder.start()
    try:
        deadline = time.monotonic() + timeout_s
        while pool.in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        yield
    finally:
        release.set()
        holder.join(timeout_s)
