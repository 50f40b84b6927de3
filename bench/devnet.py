"""Devnet benchmark: 4 validator processes on loopback, load through the REST API.

Figures (printed as ``name value`` lines):

* ``devnet.tx_per_s`` — committed transactions per second at saturation: every
  transaction is pre-signed, then submitted without waiting (``202``) by
  ``SATURATION_CONCURRENCY`` clients spread over the validators; the rate is
  committed transactions over the time from the first submit to the last commit
  (read from the head's ``log_size``).
* ``devnet.latency_ms_p50`` / ``devnet.latency_ms_p99`` — submit-to-commit latency
  (``?wait=commit``) at half that rate, open loop (each transaction starts at its
  scheduled time, whether or not earlier ones finished).
* ``devnet.cpu_us_per_tx_per_validator`` — user+system CPU of the validator
  processes during the saturation phase, per committed transaction, per validator.

Everything (validators, clients) shares this machine's cores, so the figures are
a floor for a real deployment. ``quick`` runs fewer transactions.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

import httpx

from cli.devnet import Devnet
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from ledger.tx import Transaction
from node.loadgen import note_transaction, percentile, submit_and_wait

SATURATION_CONCURRENCY = 64
SENDERS = 64
COMMIT_WAIT_S_MAX = 120.0


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _presign(chain_id: str, count: int) -> list[Transaction]:
    keys = [SigningKey.generate() for _ in range(SENDERS)]
    now = int(time.time() * 1000) + 60_000  # valid for two minutes from now
    return [note_transaction(keys[i % SENDERS], chain_id, now) for i in range(count)]


async def _log_size(client: httpx.AsyncClient, api: str) -> int:
    response = await client.get(f"{api}/v1/blocks/latest")
    return int(response.json()["header"]["log_size"])


async def _saturate(apis: list[str], txs: list[Transaction]) -> tuple[int, float]:
    """Submit every tx (202, retry on 503); return (committed, seconds to the last commit)."""
    limits = httpx.Limits(max_connections=SATURATION_CONCURRENCY + 8)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:
        base = await _log_size(client, apis[0])
        queue = list(reversed(txs))
        began = time.perf_counter()

        async def worker(number: int) -> None:
            api = apis[number % len(apis)]
            while queue:
                tx = queue.pop()
                for _ in range(50):
                    try:
                        response = await client.post(f"{api}/v1/transactions", json={"tx": tx.to_b64()})
                    except httpx.HTTPError:
                        await asyncio.sleep(0.05)
                        continue
                    if response.status_code != 503:
                        break
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(worker(i) for i in range(SATURATION_CONCURRENCY)))
        deadline = time.perf_counter() + COMMIT_WAIT_S_MAX
        committed, last_change, seen = 0, time.perf_counter(), -1
        while time.perf_counter() < deadline:
            committed = await _log_size(client, apis[0]) - base
            if committed != seen:
                seen, last_change = committed, time.perf_counter()
            if committed >= len(txs) or time.perf_counter() - last_change > 10:
                break
            await asyncio.sleep(0.02)
        return committed, last_change - began


async def _latency(apis: list[str], chain_id: str, rate: float, count: int) -> list[float]:
    keys = [SigningKey.generate() for _ in range(SENDERS)]
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=60.0, limits=httpx.Limits(max_connections=512)) as client:
        began = time.perf_counter()

        async def one(index: int) -> None:
            await asyncio.sleep(max(0.0, began + index / rate - time.perf_counter()))
            tx = note_transaction(keys[index % SENDERS], chain_id, int(time.time() * 1000))
            sent = time.perf_counter()
            ok, _ = await submit_and_wait(client, apis[index % len(apis)], tx)
            if ok:
                latencies.append((time.perf_counter() - sent) * 1000)

        await asyncio.gather(*(one(i) for i in range(count)))
    return latencies


def run(quick: bool) -> dict[str, float]:
    saturation_txs = 1_500 if quick else 6_000
    latency_txs = 200 if quick else 1_000
    with tempfile.TemporaryDirectory(prefix="imi-bench-devnet-") as tmp:
        net = Devnet(Path(tmp) / "devnet")
        try:
            net.up(4)
            genesis = Genesis.loads((net.dir / "genesis.json").read_text())
            apis = [n.api for n in net.nodes()]
            pids = list(net.pids().values())
            txs = _presign(genesis.chain_id, saturation_txs)
            cpu_before = sum(_cpu_s(p) for p in pids)
            committed, seconds = asyncio.run(_saturate(apis, txs))
            cpu_after = sum(_cpu_s(p) for p in pids)
            rate = committed / seconds if seconds > 0 else 0.0
            latencies = asyncio.run(_latency(apis, genesis.chain_id, max(rate / 2, 1.0), latency_txs))
        finally:
            net.down()
    figures = {
        "devnet.tx_per_s": round(rate, 1),
        "devnet.latency_ms_p50": round(percentile(latencies, 0.50), 1),
        "devnet.latency_ms_p99": round(percentile(latencies, 0.99), 1),
        "devnet.cpu_us_per_tx_per_validator": round((cpu_after - cpu_before) * 1e6 / max(committed, 1) / 4, 1),
        "devnet.committed": float(committed),
        "devnet.latency_committed": float(len(latencies)),
    }
    for key in sorted(figures):
        print(f"{key} {figures[key]}", flush=True)
    return figures


__all__ = ["run"]
