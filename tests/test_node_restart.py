"""A validator restarted from its WAL never signs a second, different vote for one step.

In-process, with the real consensus core behind the real driver and WAL: the
validator prevotes the proposer's block, "crashes" (everything but the WAL file
is dropped), restarts and is then shown a conflicting proposal for the same
height and round by an equivocating proposer. Every prevote it sends for that
round must be for the first block.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ledger.block import PREVOTE, Vote
from ledger.keys import SigningKey
from node.consensus.core import Core
from node.consensus.messages import Proposal
from node.consensus.types import CoreConfig, Envelope
from node.driver import Driver
from node.service import timeouts_for
from node.wal import Wal
from tests.test_node_application import CHAIN, _app, _genesis, _note


def _prevotes(sent: list[Envelope], height: int, round_: int) -> list[Vote]:
    return [e.message for e in sent if isinstance(e.message, Vote) and e.message.kind == PREVOTE
            and e.message.height == height and e.message.round == round_]


def test_restarted_validator_does_not_prevote_a_conflicting_proposal(tmp_path: Path) -> None:
    keys = [SigningKey.generate() for _ in range(4)]
    genesis = _genesis(keys)
    config = CoreConfig(chain_id=CHAIN, timeouts=timeouts_for(20))
    proposer_key = next(k for k in keys if k.key_id == genesis.validators.proposer(1, 0).key_id)
    voter_key = next(k for k in keys if k != proposer_key)
    voter_app = _app(genesis, voter_key)

    # Two different blocks for (1, 0), both signed by the proposer: equivocation.
    first_app, second_app = _app(genesis, proposer_key), _app(genesis, proposer_key)
    assert second_app.mempool is not None
    second_app.mempool.add(_note())
    first = Proposal(CHAIN, 1, 0, first_app.build_block(1, 0), -1, proposer_key.key_id).signed(proposer_key)
    second = Proposal(CHAIN, 1, 0, second_app.build_block(1, 0), -1, proposer_key.key_id).signed(proposer_key)
    assert first.block.hash != second.block.hash

    def driver(sent: list[Envelope]) -> tuple[Driver, Wal]:
        wal, restored = Wal.open(tmp_path / "wal.log")
        return Driver(core_factory=lambda records: Core(config, voter_key, voter_app, records),
                      wal=wal, restored=restored, app=voter_app, send=sent.append, tick_ms=20,
                      heartbeat_ms=1000, has_work=lambda: 0), wal

    async def run() -> tuple[list[Envelope], list[Envelope]]:
        before: list[Envelope] = []
        d1, wal1 = driver(before)
        d1.start_core()
        d1.tick()
        d1.step(first)
        await asyncio.sleep(0)  # the group fsync, then the sends
        wal1.close()  # crash: only the WAL file survives

        after: list[Envelope] = []
        d2, wal2 = driver(after)
        d2.start_core()
        d2.tick()
        d2.step(second)
        d2.step(first)
        await asyncio.sleep(0)
        wal2.close()
        return before, after

    before, after = asyncio.run(run())
    signed_before = _prevotes(before, 1, 0)
    assert [v.block_hash for v in signed_before] == [first.block.hash]
    signed_after = _prevotes(after, 1, 0)
    assert signed_after, "the restarted validator re-sends its prevote"
    assert {v.block_hash for v in signed_after} == {first.block.hash}
