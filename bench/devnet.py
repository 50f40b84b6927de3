"""Devnet benchmark: 4 validator processes on loopback, load through the REST API.

Two workloads, each measured the same way — its saturation rate, then its
submit-to-commit latency at half that rate:

* **batched** (the named figures): pre-signed transactions in batches of
  ``SATURATION_BATCH_TXS`` through ``POST /v1/transactions/batch``, as an agency's
  issuing service or a gateway sends them;
* **one transaction per request** (``devnet.single_tx.*``): ``POST
  /v1/transactions``, as a citizen's wallet sends them.

Figures (printed as ``name value`` lines):

* ``devnet.tx_per_s`` — committed transactions per second at saturation: every
  transaction is submitted without waiting by ``SATURATION_CONCURRENCY`` clients
  spread over the validators; the rate is committed transactions over the time from
  the first submit to the last commit (read from the head's ``log_size``).
* ``devnet.latency_ms_p50`` / ``devnet.latency_ms_p99`` — submit-to-commit latency at
  half that rate with the same batches (``?wait=commit``), open loop (each batch
  starts at its scheduled time, whether or not earlier ones finished), over
  keep-alive connections opened before the clock starts. A transaction's latency is
  its batch's: the answer comes once every transaction of the batch is committed.
* ``devnet.cpu_us_per_tx_per_validator`` — user+system CPU of the validator
  processes during the saturation phase, per committed transaction, per validator.
* ``devnet.single_tx.tx_per_s``, ``.latency_ms_p50``, ``.latency_ms_p99``,
  ``.cpu_us_per_tx_per_validator`` — the same four for one transaction per request.

Context of each latency phase (``devnet.latency.*``, ``devnet.single_tx.latency.*``),
so a reader can tell where the time went and how busy the machine was:

* ``rate_tx_per_s`` — the rate offered (half the saturation rate);
* ``cpu_busy_pct`` — CPU of the validator processes over the phase, in % of all cores;
* ``runqueue_wait_pct`` — time a validator was ready to run but waited for a core, in
  % of the phase (mean of the validators; Linux ``/proc/<pid>/schedstat``);
* ``height_ms_mean``, ``proposal_to_commit_ms_mean``, ``block_interval_ms_mean``,
  ``wal_sync_ms_mean``, ``block_store_ms_mean`` — from the validators' own histograms
  (``/metrics``, :mod:`node.timings`), over the phase, all validators together.

Everything (validators, clients) shares this machine's cores, so the figures are
a floor for a real deployment. ``quick`` runs fewer transactions.

**Fixed rate** (``IMI_BENCH_DEVNET_RATE=700 python -m bench devnet``): no saturation
phase; the batched latency phase runs at that offered rate and prints
``devnet.at_rate.latency_ms_p50``, ``.latency_ms_p99`` and the ``devnet.at_rate.latency.*``
context. Comparing code at one rate removes the saturation figure's run-to-run
spread from the comparison; ``python -m bench.ab`` alternates two revisions that way,
running this harness against the other revision's validators
(``IMI_BENCH_VALIDATOR_CODE``: the checkout whose code the validators run).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.harness import running_devnet
from cli.devnet import Devnet
from cli.loadgen import note_transaction, percentile
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from ledger.tx import Transaction
from node.api.metrics import consensus_timing_metric
from node.timings import HISTOGRAM_BUCKETS

SATURATION_CONCURRENCY = 64
SATURATION_BATCH_TXS = 16  # transactions per POST /v1/transactions/batch at saturation
SENDERS = 64
LATENCY_CONNECTIONS_PER_API = 64  # opened before the half-rate phase starts; more are opened if needed
COMMIT_WAIT_S_MAX = 120.0
FIXED_RATE_TX_PER_S_MAX = 100_000.0
AT_RATE_WARMUP_TXS_MAX = 800  # the fixed-rate mode's warm-up, at a quarter of the rate


class _RawHttp:
    """A minimal HTTP/1.1 keep-alive client (one connection, one request at a time).

    httpx costs several milliseconds of client CPU per request, which on a small
    machine shared with the validators would measure the client, not the ledger.
    """

    def __init__(self, base_url: str) -> None:
        host, _, port = base_url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def post_json(self, path: str, body: bytes) -> tuple[int, bytes]:
        request = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        for attempt in range(2):
            try:
                await self.connect()
                assert self._reader is not None and self._writer is not None
                self._writer.write(request)
                head = await self._reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                return status, await self._reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


def _submit_body(tx: Transaction) -> bytes:
    return b'{"tx":"' + tx.to_b64().encode() + b'"}'


def _batch_body(txs: list[Transaction]) -> bytes:
    return b'{"txs":["' + b'","'.join(tx.to_b64().encode() for tx in txs) + b'"]}'


def _retryable(status: int, answer: bytes, batch: list[Transaction]) -> list[Transaction]:
    """The transactions of ``batch`` to send again: all on a 503, else those refused with 503."""
    if status == 503:
        return batch
    if status != 200:
        return []
    results = json.loads(answer)["results"]
    return [tx for tx, result in zip(batch, results, strict=True)
            if result["status"] == "rejected" and result["problem"]["status"] == 503]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _presign(chain_id: str, count: int) -> list[Transaction]:
    keys = [SigningKey.generate() for _ in range(SENDERS)]
    now = int(time.time() * 1000) + 9 * 60_000  # note_transaction adds 60 s: valid for ten minutes
    return [note_transaction(keys[i % SENDERS], chain_id, now) for i in range(count)]


async def _log_size(client: httpx.AsyncClient, api: str) -> int:
    response = await client.get(f"{api}/v1/blocks/latest")
    return int(response.json()["header"]["log_size"])


def _submit_request(txs: list[Transaction], wait: bool) -> tuple[str, bytes]:
    """(path, body) submitting ``txs``: one per request, or a batch."""
    query = "?wait=commit&timeout_ms=30000" if wait else ""
    if len(txs) == 1:
        return "/v1/transactions" + query, _submit_body(txs[0])
    return "/v1/transactions/batch" + query, _batch_body(txs)


async def _saturate(apis: list[str], txs: list[Transaction], batch_txs: int) -> tuple[int, float]:
    """Submit every tx, ``batch_txs`` per request, retrying those refused with 503; return
    (committed, seconds from the first submit to the last commit)."""
    async with httpx.AsyncClient(timeout=30.0) as client:
        base = await _log_size(client, apis[0])
        batches = [txs[i:i + batch_txs] for i in range(0, len(txs), batch_txs)]
        batches.reverse()
        began = time.perf_counter()

        async def worker(number: int) -> None:
            http = _RawHttp(apis[number % len(apis)])
            try:
                while batches:
                    batch = batches.pop()
                    for _ in range(100):
                        try:
                            status, answer = await http.post_json(*_submit_request(batch, wait=False))
                        except (OSError, asyncio.IncompleteReadError):
                            status, answer = 503, b""
                        batch = _retryable(status, answer, batch)
                        if not batch:
                            break
                        await asyncio.sleep(0.05)
            finally:
                http.close()

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


def _committed_count(status: int, answer: bytes, sent: int) -> int:
    """How many transactions of a ``?wait=commit`` request its answer reports committed."""
    if status != 200:
        return 0
    if sent == 1:
        return 1
    return sum(1 for result in json.loads(answer)["results"] if result["status"] == "committed")


async def _latency(apis: list[str], chain_id: str, rate: float, count: int, batch_txs: int) -> list[float]:
    """Open loop at ``rate`` tx/s, ``batch_txs`` per request, with ?wait=commit; the latency
    (ms) of each committed transaction (a batch's for each of its transactions)."""
    keys = [SigningKey.generate() for _ in range(SENDERS)]
    now = int(time.time() * 1000) + 60_000
    txs = [note_transaction(keys[i % SENDERS], chain_id, now) for i in range(count)]
    chunks = [txs[i:i + batch_txs] for i in range(0, count, batch_txs)]
    requests = [(*_submit_request(chunk, wait=True), len(chunk)) for chunk in chunks]
    latencies: list[float] = []
    # Keep-alive connections opened before the clock starts, as a long-running client
    # holds them (wrk does the same): connection set-up is not submit-to-commit time.
    idle: dict[str, list[_RawHttp]] = {api: [_RawHttp(api) for _ in range(LATENCY_CONNECTIONS_PER_API)]
                                       for api in apis}
    await asyncio.gather(*(http.connect() for pool in idle.values() for http in pool))
    began = time.perf_counter()

    async def one(number: int) -> None:
        await asyncio.sleep(max(0.0, began + number * batch_txs / rate - time.perf_counter()))
        api = apis[number % len(apis)]
        http = idle[api].pop() if idle[api] else _RawHttp(api)
        sent = time.perf_counter()
        path, body, size = requests[number]
        try:
            status, answer = await http.post_json(path, body)
        except (OSError, asyncio.IncompleteReadError):
            http.close()
            return
        elapsed_ms = (time.perf_counter() - sent) * 1000
        latencies.extend([elapsed_ms] * _committed_count(status, answer, size))
        idle[api].append(http)

    await asyncio.gather(*(one(number) for number in range(len(requests))))
    for pool in idle.values():
        for http in pool:
            http.close()
    return latencies


def _runqueue_wait_s(pid: int) -> float | None:
    """Seconds a process's main thread waited for a core while ready to run (Linux), or None."""
    try:
        with open(f"/proc/{pid}/schedstat") as handle:
            return int(handle.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def _timings(apis: list[str]) -> dict[str, tuple[float, float]] | None:
    """``name -> (sum seconds, count)`` of the consensus histograms (:mod:`node.timings`),
    over all validators; None if a validator's page cannot be read (the figures are
    context, not the result)."""
    totals = dict.fromkeys(HISTOGRAM_BUCKETS, (0.0, 0.0))
    by_metric = {consensus_timing_metric(name): name for name in HISTOGRAM_BUCKETS}
    for api in apis:
        try:
            page = httpx.get(f"{api}/metrics", timeout=10.0).text
        except httpx.HTTPError:
            return None
        for family in text_string_to_metric_families(page):
            name = by_metric.get(family.name)
            if family.type != "histogram" or name is None:
                continue
            samples = {sample.name.removeprefix(family.name): sample.value for sample in family.samples}
            total, count = totals[name]
            totals[name] = (total + samples.get("_sum", 0.0), count + samples.get("_count", 0.0))
    return totals


def _latency_phase(apis: list[str], pids: list[int], chain_id: str, rate: float, count: int,
                   batch_txs: int) -> tuple[list[float], dict[str, float]]:
    """The latency phase, and its context (module docstring)."""
    timings_before = _timings(apis)
    cpu_before = sum(_cpu_s(p) for p in pids)
    waits_before = [_runqueue_wait_s(p) for p in pids]
    began = time.perf_counter()
    latencies = asyncio.run(_latency(apis, chain_id, rate, count, batch_txs))
    wall = time.perf_counter() - began
    waits_after = [_runqueue_wait_s(p) for p in pids]
    cpu_after = sum(_cpu_s(p) for p in pids)
    timings_after = _timings(apis)
    context = {
        "rate_tx_per_s": round(rate, 1),
        "cpu_busy_pct": round((cpu_after - cpu_before) / (wall * (os.cpu_count() or 1)) * 100, 1),
    }
    waits = [after - before for before, after in zip(waits_before, waits_after, strict=True)
             if before is not None and after is not None]
    if waits:
        context["runqueue_wait_pct"] = round(sum(waits) / len(waits) / wall * 100, 1)
    if timings_before is not None and timings_after is not None:
        for name in HISTOGRAM_BUCKETS:
            total = timings_after[name][0] - timings_before[name][0]
            number = timings_after[name][1] - timings_before[name][1]
            if number > 0:
                context[f"{name}_ms_mean"] = round(total / number * 1000, 2)
    return latencies, context


def _workload(net: Devnet, chain_id: str, batch_txs: int, saturation_txs: int,
              latency_txs: int) -> dict[str, float]:
    """Saturation, then latency at half the rate found, for one request shape."""
    apis = [n.api for n in net.nodes()]
    pids = list(net.pids().values())
    txs = _presign(chain_id, saturation_txs)
    cpu_before = sum(_cpu_s(p) for p in pids)
    committed, seconds = asyncio.run(_saturate(apis, txs, batch_txs))
    cpu_after = sum(_cpu_s(p) for p in pids)
    rate = committed / seconds if seconds > 0 else 0.0
    latencies, context = _latency_phase(apis, pids, chain_id, max(rate / 2, 1.0), latency_txs, batch_txs)
    return {
        "tx_per_s": round(rate, 1),
        "cpu_us_per_tx_per_validator": round((cpu_after - cpu_before) * 1e6 / max(committed, 1) / 4, 1),
        "committed": float(committed),
        **_latency_figures(latencies, context),
    }


def _latency_figures(latencies: list[float], context: dict[str, float]) -> dict[str, float]:
    """A latency phase's named figures and its ``latency.*`` context."""
    figures = {
        "latency_ms_p50": round(percentile(latencies, 0.50), 1),
        "latency_ms_p99": round(percentile(latencies, 0.99), 1),
        "latency_committed": float(len(latencies)),
    }
    figures.update({f"latency.{name}": value for name, value in context.items()})
    return figures


def _fixed_rate() -> float | None:
    """The offered rate of ``IMI_BENCH_DEVNET_RATE``, None if unset; exits on a bad value."""
    text = os.environ.get("IMI_BENCH_DEVNET_RATE")
    if not text:
        return None
    try:
        rate = float(text)
    except ValueError:
        rate = 0.0
    if not 0 < rate <= FIXED_RATE_TX_PER_S_MAX:
        sys.exit(f"IMI_BENCH_DEVNET_RATE must be a rate in tx/s within (0, {FIXED_RATE_TX_PER_S_MAX}], e.g. 700")
    return rate


def _validator_code() -> Path | None:
    """The checkout of ``IMI_BENCH_VALIDATOR_CODE``, None if unset; exits if it is not one."""
    text = os.environ.get("IMI_BENCH_VALIDATOR_CODE")
    if not text:
        return None
    root = Path(text)
    if not (root / "cli" / "main.py").is_file():
        sys.exit(f"IMI_BENCH_VALIDATOR_CODE must be a checkout of imi (no cli/main.py in {root})")
    return root


def _at_rate(net: Devnet, chain_id: str, rate: float, latency_txs: int) -> dict[str, float]:
    """The batched latency phase at ``rate``, after a short warm-up at a quarter of it."""
    apis = [n.api for n in net.nodes()]
    pids = list(net.pids().values())
    warmup_txs = min(latency_txs, AT_RATE_WARMUP_TXS_MAX)
    asyncio.run(_latency(apis, chain_id, rate / 4, warmup_txs, SATURATION_BATCH_TXS))
    return _latency_figures(*_latency_phase(apis, pids, chain_id, rate, latency_txs, SATURATION_BATCH_TXS))


def run(quick: bool) -> dict[str, float]:
    saturation_txs = 1_500 if quick else 6_000
    latency_txs = 400 if quick else 6_000  # full: ~8 s at half rate: a few LevelDB compactions, not one by chance
    rate = _fixed_rate()
    code_root = _validator_code()
    with running_devnet("imi-bench-devnet-", code_root=code_root) as (_, net):
        chain_id = Genesis.loads((net.dir / "genesis.json").read_text()).chain_id
        if rate is not None:
            at_rate = _at_rate(net, chain_id, rate, latency_txs)
        else:
            batched = _workload(net, chain_id, SATURATION_BATCH_TXS, saturation_txs, latency_txs)
            single = _workload(net, chain_id, 1, saturation_txs, latency_txs)
    if rate is not None:
        figures = {f"devnet.at_rate.{name}": value for name, value in at_rate.items()}
    else:
        figures = {f"devnet.{name}": value for name, value in batched.items()}
        figures.update({f"devnet.single_tx.{name}": value for name, value in single.items()})
    for key in sorted(figures):
        print(f"{key} {figures[key]}", flush=True)
    return figures


__all__ = ["run"]
