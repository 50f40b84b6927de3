"""one-sender-flood: one sender floods every validator with transactions (batches from
its own client address); other senders' transactions still commit in time, the chain
keeps committing, and no validator's pool holds more than the flooder's share.

What holds it: the mempool's per-sender quota (``MEMPOOL_SENDER_TXS_MAX``, answered
``429 sender-quota``), proposals that take senders round-robin, and the API's
per-client rate limit (set low here so it shows: ``429 rate-limited``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path

import httpx

from cli.devnet import Devnet
from cli.loadgen import note_transaction
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from ledger.tx import Transaction
from node.api.constants import API_BATCH_TXS_MAX, API_BODY_BYTES_MAX
from node.constants import MEMPOOL_SENDER_TXS_MAX
from tests.chaos._limits import HeightWatch, client_at, devnet_up

NAME = "one-sender-flood"

FLOOD_TXS = 12_000  # the flooder's transactions (quick: FLOOD_TXS_QUICK), all from one key
FLOOD_TXS_QUICK = 3_000
FLOOD_BATCH_TXS = 160  # per POST /v1/transactions/batch (~71 KiB: under API_BODY_BYTES_MAX)
FLOOD_IN_FLIGHT = 4  # batch requests in flight at once
FLOODER_ADDRESS = "127.0.0.9"
HONEST_ADDRESS = "127.0.0.1"  # the scenario's own probes (/metrics, /health: not rate-limited)
HONEST_ADDRESS_BASE = "127.0.1."  # other sender i connects from 127.0.1.<i + 1>: its own client
HONEST_SENDERS = 8  # other senders, each with its own key (quick: 4)
HONEST_TXS_EACH = 3  # submitted one after the other with ?wait=commit
HONEST_HEAD_START_S = 1.0  # the flood runs this long before the others start
HONEST_COMMIT_S_MAX = 30.0  # bound: each of the others' transactions commits within this
HEIGHT_STALL_S_MAX = 10.0  # bound: the height never stands still longer than this
POOL_TXS_MAX = MEMPOOL_SENDER_TXS_MAX + HONEST_SENDERS * HONEST_TXS_EACH  # bound on any pool
# Per-client rate limit for this devnet: low enough that the flooder meets it.
# Each other sender makes HONEST_TXS_EACH requests, so a burst of that many never limits it.
RATE_ENV = {"IMI_API_CLIENT_RATE_PER_S": "1", "IMI_API_CLIENT_BURST": str(HONEST_TXS_EACH)}
_NOTE_B64_CHARS = 450  # one test.note in base64url, with its JSON quoting (438 measured)
assert FLOOD_BATCH_TXS <= API_BATCH_TXS_MAX and FLOOD_BATCH_TXS * _NOTE_B64_CHARS < API_BODY_BYTES_MAX


async def _flood(apis: list[str], txs: list[Transaction], reasons: Counter[str]) -> None:
    batches = [txs[i:i + FLOOD_BATCH_TXS] for i in range(0, len(txs), FLOOD_BATCH_TXS)]
    queue: asyncio.Queue[tuple[int, list[Transaction]]] = asyncio.Queue()
    for item in enumerate(batches):
        queue.put_nowait(item)
    async with client_at(FLOODER_ADDRESS) as client:

        async def sender() -> None:
            while not queue.empty():
                i, batch = queue.get_nowait()
                try:
                    answer = await client.post(f"{apis[i % len(apis)]}/v1/transactions/batch",
                                               json={"txs": [tx.to_b64() for tx in batch]})
                except httpx.HTTPError as exc:
                    reasons[f"transport:{type(exc).__name__}"] += len(batch)
                    continue
                if answer.status_code != 200:
                    reasons[str(answer.json().get("reason", answer.status_code))] += len(batch)
                    await asyncio.sleep(0.05)
                    continue
                for result in answer.json()["results"]:
                    reasons[result["status"] if result["status"] != "rejected"
                            else result["problem"]["reason"]] += 1

        await asyncio.gather(*(sender() for _ in range(FLOOD_IN_FLIGHT)))


async def _honest(apis: list[str], genesis: Genesis, senders: int, latencies: list[float],
                  failures: list[str]) -> None:
    await asyncio.sleep(HONEST_HEAD_START_S)
    rng = random.Random(19)

    async def one_sender(i: int) -> None:
        key = SigningKey.generate()
        async with client_at(f"{HONEST_ADDRESS_BASE}{i + 1}") as client:
            for _ in range(HONEST_TXS_EACH):
                tx = note_transaction(key, genesis.chain_id, int(time.time() * 1000))
                started = time.monotonic()
                try:
                    answer = await client.post(
                        f"{rng.choice(apis)}/v1/transactions",
                        params={"wait": "commit", "timeout_ms": int(HONEST_COMMIT_S_MAX * 1000)},
                        json={"tx": tx.to_b64()})
                except httpx.HTTPError as exc:
                    failures.append(f"{tx.tx_id.hex()[:12]}: {type(exc).__name__}")
                    continue
                took = time.monotonic() - started
                if answer.status_code != 200:
                    failures.append(f"{tx.tx_id.hex()[:12]}: {answer.status_code} "
                                    f"{answer.json().get('reason')}")
                    continue
                latencies.append(took)

    await asyncio.gather(*(one_sender(i) for i in range(senders)))


async def _pool_sizes(apis: list[str], stop: asyncio.Event, peaks: list[int]) -> None:
    async with client_at(HONEST_ADDRESS, timeout_s=5.0) as client:
        while not stop.is_set():
            for api in apis:
                try:
                    text = (await client.get(f"{api}/metrics")).text
                except httpx.HTTPError:
                    continue
                for line in text.splitlines():
                    if line.startswith("imi_mempool_txs "):
                        peaks.append(int(float(line.split()[1])))
            await asyncio.sleep(0.2)


async def _scenario(net: Devnet, quick: bool) -> list[str]:
    genesis = Genesis.loads((net.dir / "genesis.json").read_text())
    apis = [node.api for node in net.nodes()]
    flooder = SigningKey.generate()
    now_ms = int(time.time() * 1000)
    flood_txs = [note_transaction(flooder, genesis.chain_id, now_ms)
                 for _ in range(FLOOD_TXS_QUICK if quick else FLOOD_TXS)]
    senders = HONEST_SENDERS // 2 if quick else HONEST_SENDERS
    reasons: Counter[str] = Counter()
    latencies: list[float] = []
    failures: list[str] = []
    peaks: list[int] = []
    stop = asyncio.Event()
    watch = HeightWatch(apis[1])
    watching = asyncio.gather(watch.run(stop), _pool_sizes(apis, stop, peaks))
    started = time.monotonic()
    await asyncio.gather(_flood(apis, flood_txs, reasons),
                         _honest(apis, genesis, senders, latencies, failures))
    took = time.monotonic() - started
    stop.set()
    await watching
    print(f"  {NAME}: flood of {len(flood_txs)} txs from one sender in {took:.1f} s: {dict(reasons)}")
    print(f"  {NAME}: others' txs committed {len(latencies)}/{senders * HONEST_TXS_EACH}, "
          f"latency max {max(latencies, default=0):.2f} s (bound {HONEST_COMMIT_S_MAX:g} s); "
          f"height +{watch.advanced}, longest stall {watch.longest_stall_s:.1f} s; "
          f"largest pool {max(peaks, default=0)} (bound {POOL_TXS_MAX})")
    violations = [f"another sender's transaction did not commit: {failure}" for failure in failures]
    violations += [f"another sender's transaction took {t:.1f} s to commit (bound {HONEST_COMMIT_S_MAX:g} s)"
                   for t in latencies if t > HONEST_COMMIT_S_MAX]
    if watch.advanced == 0 or watch.longest_stall_s > HEIGHT_STALL_S_MAX:
        violations.append(f"height stood still for {watch.longest_stall_s:.1f} s "
                          f"(bound {HEIGHT_STALL_S_MAX:g} s; advanced {watch.advanced})")
    if max(peaks, default=0) > POOL_TXS_MAX:
        violations.append(f"a validator's pool held {max(peaks)} transactions (bound {POOL_TXS_MAX})")
    if reasons["mempool-full"]:
        violations.append(f"{reasons['mempool-full']} flood transactions met a full pool (quota not applied)")
    return violations


def run(workdir: Path, *, quick: bool) -> list[str]:
    net = devnet_up(workdir, "flood", RATE_ENV)
    try:
        return asyncio.run(_scenario(net, quick))
    finally:
        net.down()


__all__ = ["NAME", "run"]
