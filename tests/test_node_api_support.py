"""API test support: the in-process node over the test consortium, and proof checks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ledger.execution import DEVNET_HANDLERS, Handler
from ledger.kv import KV
from ledger.merkle import leaf_hash, verify_consistency, verify_inclusion
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
