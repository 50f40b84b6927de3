"""Consensus-path timings: histogram semantics, the milestones a height goes through,
the driver's measurements (fake clock), and their export at /metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from node.api.app import create_app
from node.api.metrics import TIMING_HELP
from node.consensus.types import Envelope, Ready
from node.driver import Driver
from node.timings import HISTOGRAM_BUCKETS, ConsensusTimings, LatencyHistogram
from node.wal import Wal
from tests.test_node_api_support import InProcessNode
from tests.test_node_driver import _Block, _FakeApp, _FakeCore


@pytest.fixture()
def node() -> InProcessNode:
    return InProcessNode()


def test_a_bound_counts_observations_up_to_and_including_it() -> None:
    histogram = LatencyHistogram((0.01, 0.1, 1.0))
    for seconds in (0.0, 0.01, 0.010001, 0.1, 5.0, -1.0):
        histogram.observe(seconds)
    snapshot = histogram.snapshot()
    assert snapshot["buckets"] == [[0.01, 3], [0.1, 5], [1.0, 5]]  # -1 counts as 0
    assert snapshot["count"] == 6 and snapshot["sum"] == pytest.approx(5.120001)


@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=50))
def test_cumulative_counts_match_a_direct_count(values: list[float]) -> None:
    bounds = (0.005, 0.05, 0.5, 5.0)
    histogram = LatencyHistogram(bounds)
    for value in values:
        histogram.observe(value)
    assert histogram.snapshot()["buckets"] == [[b, sum(1 for v in values if v <= b)] for b in bounds]
    assert histogram.snapshot()["count"] == len(values)


def test_bounds_must_increase() -> None:
    for bounds in ((), (0.1, 0.1), (0.2, 0.1)):
        with pytest.raises(ValueError):
            LatencyHistogram(bounds)


def _count(timings: ConsensusTimings, name: str) -> int:
    return int(timings.snapshot()[name]["count"])


def _sum(timings: ConsensusTimings, name: str) -> float:
    return float(timings.snapshot()[name]["sum"])


def test_a_height_from_entry_and_from_its_proposal_to_its_block_stored() -> None:
    timings = ConsensusTimings()
    timings.entered(7, 10.0)
    timings.proposal(7, 10.02)
    timings.proposal(7, 10.03)  # a second proposal (later round): the first one counts
    timings.stored(7, 10.05, 0.004)
    assert _sum(timings, "height") == pytest.approx(0.05)
    assert _sum(timings, "proposal_to_commit") == pytest.approx(0.03)
    assert _sum(timings, "block_store") == pytest.approx(0.004)
    assert _count(timings, "block_interval") == 0  # no block before this one
    # The next proposal arrives before this validator entered height 8: it still counts.
    timings.proposal(8, 10.06)
    timings.entered(8, 10.07)
    timings.stored(8, 10.10, 0.002)
    assert _count(timings, "height") == 2 and _sum(timings, "height") == pytest.approx(0.08)
    assert _sum(timings, "proposal_to_commit") == pytest.approx(0.07)
    assert _sum(timings, "block_interval") == pytest.approx(0.05)
    # Proposals for heights far ahead or behind are not remembered.
    timings.proposal(20, 11.0)
    timings.proposal(3, 11.0)
    timings.entered(9, 11.0)
    timings.stored(9, 11.1, 0.001)
    assert _count(timings, "proposal_to_commit") == 2


def test_the_driver_times_heights_stores_and_wal_syncs(tmp_path: Path) -> None:
    """Fake clock: each reading advances it by 1 ms; the height (entered on the first core
    call, its block stored three calls later) and the WAL fsync are measured."""
    now = [0.0]

    def clock() -> float:
        now[0] += 0.001
        return now[0]

    class Core(_FakeCore):
        height = 1

    class App(_FakeApp):
        def apply_committed(self, block: object, certificate: object) -> bool:
            now[0] += 0.010  # the store takes 10 ms
            self.stored += 1
            return True

    block = _Block(3, height=1)
    script = [Ready(persist=({"t": "height", "h": 1},), send=(Envelope("VOTE"),)),
              Ready(committed=((block, object()),))]  # type: ignore[arg-type]
    wal, restored = Wal.open(tmp_path / "wal.log")

    async def run() -> ConsensusTimings:
        driver = Driver(core_factory=lambda records: Core(records, script), wal=wal, restored=restored,
                        app=App(), send=lambda envelope: None, tick_ms=10, heartbeat_ms=1000,  # type: ignore[arg-type]
                        has_work=lambda: 0, clock=clock)
        driver.start_core()
        driver.tick()
        await asyncio.sleep(0)  # the group fsync
        driver.tick()
        return driver.timings

    timings = asyncio.run(run())
    wal.close()
    assert _count(timings, "wal_sync") == 1
    assert _count(timings, "block_store") == 1 and _sum(timings, "block_store") == pytest.approx(0.011)
    assert _count(timings, "height") == 1
    assert 0.012 < _sum(timings, "height") < 0.02


def test_metrics_export_the_timings_as_prometheus_histograms(node: InProcessNode) -> None:
    timings = ConsensusTimings()
    timings.entered(1, 0.0)
    timings.proposal(1, 0.01)
    timings.stored(1, 0.04, 0.003)
    timings.wal_synced(0.0015)
    node.status = lambda: {"consensus_timings": timings.snapshot()}  # type: ignore[method-assign]
    lines = TestClient(create_app(node)).get("/metrics").text.splitlines()
    for line in ('imi_consensus_height_seconds_bucket{le="0.035"} 0.0',
                 'imi_consensus_height_seconds_bucket{le="0.05"} 1.0',
                 'imi_consensus_height_seconds_bucket{le="+Inf"} 1.0',
                 "imi_consensus_height_seconds_count 1.0",
                 'imi_consensus_proposal_to_commit_seconds_bucket{le="0.035"} 1.0',
                 'imi_consensus_wal_sync_seconds_bucket{le="0.002"} 1.0',
                 'imi_consensus_wal_sync_seconds_bucket{le="0.001"} 0.0',
                 'imi_consensus_block_store_seconds_bucket{le="0.005"} 1.0',
                 "imi_consensus_block_interval_seconds_count 0.0"):
        assert line in lines, line
    assert any(line.startswith("imi_consensus_height_seconds_sum 0.04") for line in lines)


def test_every_consensus_histogram_has_help_text_for_metrics() -> None:
    # What api_metrics asserted at import until a review: a histogram without a help
    # text would be kept by the driver but never exported.
    assert set(TIMING_HELP) == set(HISTOGRAM_BUCKETS)
    assert set(ConsensusTimings().snapshot()) == set(HISTOGRAM_BUCKETS)
