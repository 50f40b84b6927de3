"""Real processes: a 4-validator devnet under load survives kill -9 of the proposer.

Checks: all validators report (over the API) the same block hash at a common
height above every height seen before the restart; after shutdown, every
transaction acknowledged as committed is in every validator's store
(including the one that was killed, after it caught up); nobody saw the
restarted validator equivocate (it replayed its WAL instead of signing anew).
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cli.devnet import Devnet
from cli.loadgen import note_transaction, submit_and_wait
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from ledger.kv import LevelKV
from ledger.storage import LedgerStore
from node.api.metrics import consensus_timing_metric
from node.timings import HISTOGRAM_BUCKETS

pytestmark = pytest.mark.xdist_group("devnet")

TXS = 500
CONCURRENCY = 32
KILL_AFTER_ACKS = 150
LOAD_S_MAX = 120.0  # the load phase stops by itself after this long


async def _height(client: httpx.AsyncClient, api: str) -> int:
    return int((await client.get(f"{api}/health")).json()["height"])


async def _load_with_kill(net: Devnet, genesis: Genesis) -> tuple[list[str], str]:
    """Submit TXS notes to random live validators; kill -9 the proposer after KILL_AFTER_ACKS."""
    nodes = {n.name: n.api for n in net.nodes()}
    names_by_key = {v.key_id: v.name for v in genesis.validators.validators}
    live = set(nodes)
    acked: list[str] = []
    killed = ""
    killing: list[bool] = []
    remaining = TXS
    rng = random.Random(4)
    deadline = time.monotonic() + LOAD_S_MAX
    async with httpx.AsyncClient(timeout=45.0) as client:

        async def worker() -> None:
            nonlocal remaining, killed
            key = SigningKey.generate()
            while remaining > 0 and time.monotonic() < deadline:
                remaining -= 1
                name = rng.choice(sorted(live))
                tx = note_transaction(key, genesis.chain_id, int(time.time() * 1000))
                ok, _ = await submit_and_wait(client, nodes[name], tx)
                if ok:
                    acked.append(tx.tx_id.hex())
                if len(acked) >= KILL_AFTER_ACKS and not killing:
                    killing.append(True)  # no await between test and set: one killer only
                    height = await _height(client, nodes[min(live)])
                    killed = names_by_key[genesis.validators.proposer(height + 1, 0).key_id]
                    live.discard(killed)
                    await asyncio.to_thread(net.kill, killed)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return acked, killed


def _missing(net: Devnet, ids: list[str]) -> dict[str, int]:
    """After shutdown: how many of ``ids`` each validator's LevelDB store lacks."""
    missing = {}
    for node in net.nodes():
        store = LedgerStore(LevelKV(node.node_dir / "data" / "ledger", create=False))
        try:
            missing[node.name] = sum(1 for tx_id in ids if store.tx(bytes.fromhex(tx_id)) is None)
        finally:
            store.kv.close()
    return missing


async def _converge(net: Devnet, min_height: int, timeout_s: float) -> dict[str, str]:
    """Wait until every validator has a block at a common height >= min_height; return its hashes."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=5.0) as client:
        while True:
            try:
                heights = [await _height(client, n.api) for n in net.nodes()]
                common = min(heights)
                if common >= min_height:
                    hashes = {}
                    for n in net.nodes():
                        block = (await client.get(f"{n.api}/v1/blocks/{common}")).json()
                        hashes[n.name] = block["header"]["hash"]
                    return hashes
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"validators did not converge to height {min_height}")
            await asyncio.sleep(0.5)


def test_kill9_proposer_under_load_loses_nothing(tmp_path: Path) -> None:
    net = Devnet(tmp_path / "devnet")
    try:
        net.up(4, heartbeat_ms=500)
        genesis = Genesis.loads((net.dir / "genesis.json").read_text())
        acked, killed = asyncio.run(_load_with_kill(net, genesis))
        assert killed, "the load finished before the kill"
        assert len(acked) >= TXS * 0.8, f"only {len(acked)} of {TXS} acknowledged"
        net.start(killed)
        net.wait_healthy([killed])
        heights = asyncio.run(_heights(net))
        hashes = asyncio.run(_converge(net, max(heights.values()) + 1, timeout_s=90))
        assert len(set(hashes.values())) == 1, hashes
        for node in net.nodes():
            if node.name != killed:  # where the commit latency went, as each validator saw it
                counts = _histogram_counts(httpx.get(f"{node.api}/metrics", timeout=5.0).text)
                for name in HISTOGRAM_BUCKETS:
                    assert counts[consensus_timing_metric(name)] > 0, (node.name, name, counts)
    finally:
        net.down()
    assert _missing(net, acked) == {n.name: 0 for n in net.nodes()}
    for node in net.nodes():
        assert "equivocation" not in node.log_file.read_text(), f"{node.name} saw equivocation"


def _histogram_counts(metrics_text: str) -> dict[str, float]:
    """``name -> count`` of each histogram of a Prometheus text page."""
    return {family.name: sample.value for family in text_string_to_metric_families(metrics_text)
            if family.type == "histogram" for sample in family.samples if sample.name == family.name + "_count"}


async def _heights(net: Devnet) -> dict[str, int]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        return {n.name: await _height(client, n.api) for n in net.nodes()}
