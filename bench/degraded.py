"""Throughput and latency with validators down: ``python -m bench degraded [--quick]``.

A real devnet (one process per validator) under the same closed-loop load twice:
``LOAD_CONCURRENCY`` clients, one transaction per request, each waiting for its
commit (``cli.loadgen.run_load`` against the first validator), first with every
validator up, then after ``kill -9`` of validators other than the one loaded.
Between the two a warm-up load lets the chain notice the dead ones (the proposer
rule needs ``PROPOSER_WINDOW_HEIGHTS`` certificates without them).

Figures, for 4 validators with one killed (``degraded.``) and 7 with two killed
(``degraded7.``): ``healthy_tx_per_s``, ``tx_per_s``, ``tx_ratio`` (degraded ÷
healthy), ``healthy_latency_ms_p50`` / ``_p99``, ``latency_ms_p50`` / ``_p99`` and
``p50_ratio`` (degraded ÷ healthy). Targets: ``tx_ratio`` >= 0.8, ``p50_ratio`` <= 1.5.
"""

from __future__ import annotations

import asyncio
from typing import Final

from bench.harness import running_devnet
from cli.loadgen import LoadResult, run_load

LOAD_CONCURRENCY: Final = 32
LOAD_TXS: Final = 4_000  # per measured phase
LOAD_TXS_QUICK: Final = 600
WARMUP_TXS: Final = 600  # after the kill, before measuring: the dead leave the round-0 rotation
WARMUP_TXS_QUICK: Final = 300
# (prefix, validators, how many killed)
SCENARIOS: Final = (("degraded", 4, 1), ("degraded7", 7, 2))


def _load(url: str, txs: int) -> LoadResult:
    return asyncio.run(run_load([url], txs, LOAD_CONCURRENCY))


def _scenario(validators: int, killed: int, txs: int, warmup_txs: int) -> dict[str, float]:
    with running_devnet("imi-bench-degraded-", validators) as (_, net):
        nodes = net.nodes()
        url = nodes[0].api
        _load(url, warmup_txs)
        healthy = _load(url, txs)
        for info in nodes[-killed:]:
            net.kill(info.name)
        _load(url, warmup_txs)
        degraded = _load(url, txs)
    healthy_p50 = healthy.latency_ms(0.50)
    return {
        "healthy_tx_per_s": round(healthy.tx_per_s, 1),
        "tx_per_s": round(degraded.tx_per_s, 1),
        "tx_ratio": round(degraded.tx_per_s / healthy.tx_per_s, 3) if healthy.tx_per_s else 0.0,
        "healthy_latency_ms_p50": round(healthy_p50, 1),
        "latency_ms_p50": round(degraded.latency_ms(0.50), 1),
        "latency_ms_p99": round(degraded.latency_ms(0.99), 1),
        "healthy_latency_ms_p99": round(healthy.latency_ms(0.99), 1),
        "p50_ratio": round(degraded.latency_ms(0.50) / healthy_p50, 3) if healthy_p50 else 0.0,
        "failed": float(healthy.failed + degraded.failed),
    }


def run(quick: bool) -> dict[str, float]:
    txs = LOAD_TXS_QUICK if quick else LOAD_TXS
    warmup = WARMUP_TXS_QUICK if quick else WARMUP_TXS
    figures: dict[str, float] = {}
    for prefix, validators, killed in SCENARIOS:
        result = _scenario(validators, killed, txs, warmup)
        for name in sorted(result):
            figures[f"{prefix}.{name}"] = result[name]
            print(f"{prefix}.{name} {result[name]}", flush=True)
    return figures


__all__ = ["run"]
