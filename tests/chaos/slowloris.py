"""slowloris: many half-open connections against one validator's API — each sends a
request head one byte a second, and reconnects when cut off. That validator still
answers other clients in time, the chain keeps committing, and no attack connection
outlives the request-head deadline.

What holds it: the API server's head deadline (``API_HEADER_TIMEOUT_S_DEFAULT``,
``408 request-timeout``) and its cap on connections per client address
(``API_CLIENT_CONNECTIONS_MAX_DEFAULT``, ``503 too-many-connections`` at once), both
in :mod:`node.api.server`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from cli.devnet import Devnet
from cli.loadgen import note_transaction
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from node.api.constants import API_CLIENT_CONNECTIONS_MAX_DEFAULT, API_HEADER_TIMEOUT_S_DEFAULT
from tests.chaos._limits import HeightWatch, client_at, devnet_up

NAME = "slowloris"

ATTACKER_ADDRESS = "127.0.0.7"
HONEST_ADDRESS = "127.0.0.1"
SLOW_CONNECTIONS = 600  # attack connections kept open at once, if the node let them (quick: 300)
SLOW_CONNECTIONS_QUICK = 300
ATTACK_S = 30.0  # how long the attack lasts (quick: ATTACK_S_QUICK)
ATTACK_S_QUICK = 18.0  # longer than ATTACK_LIFETIME_S_MAX, so a connection never cut off shows
TRICKLE_S = 1.0  # one header byte per connection this often
REFUSED_PAUSE_S = 1.0  # an attack connection refused at once tries again after this
HONEST_EVERY_S = 0.5  # another client asks the attacked node this often
HONEST_ANSWER_S_MAX = 5.0  # bound: each of its requests is answered within this
HONEST_COMMIT_S_MAX = 20.0  # bound: its transactions (submitted to the attacked node) commit within this
HEIGHT_STALL_S_MAX = 10.0  # bound: the height never stands still longer than this
# bound: no attack connection lives longer than the head deadline plus slack for a busy machine
ATTACK_LIFETIME_S_MAX = API_HEADER_TIMEOUT_S_DEFAULT + 4.0
assert ATTACK_LIFETIME_S_MAX < ATTACK_S_QUICK <= ATTACK_S


@dataclass
class AttackStats:
    opened: int = 0
    refused: int = 0  # answered 503 too-many-connections at once
    timed_out: int = 0  # answered 408 request-timeout
    other_close: int = 0
    lifetimes: list[float] = field(default_factory=list)


async def _slow_connection(host: str, port: int, until: float, stats: AttackStats) -> None:
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection(host, port, local_addr=(ATTACKER_ADDRESS, 0))
        except OSError:
            await asyncio.sleep(REFUSED_PAUSE_S)
            continue
        stats.opened += 1
        opened = time.monotonic()
        answer = b""
        try:
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            while time.monotonic() < until:
                try:
                    chunk = await asyncio.wait_for(reader.read(4096), TRICKLE_S)
                except TimeoutError:
                    writer.write(b"a")
                    continue
                if not chunk:
                    break
                answer += chunk
        except OSError:
            pass
        finally:
            writer.close()
        stats.lifetimes.append(time.monotonic() - opened)  # also of one still open at the end
        if time.monotonic() >= until:
            break
        if b"too-many-connections" in answer:
            stats.refused += 1
            await asyncio.sleep(REFUSED_PAUSE_S)
        elif b"request-timeout" in answer:
            stats.timed_out += 1
        else:
            stats.other_close += 1


async def _honest(api: str, genesis: Genesis, until: float, latencies: list[float], failures: list[str],
                  commits: list[float]) -> None:
    key = SigningKey.generate()
    async with client_at(HONEST_ADDRESS, timeout_s=HONEST_COMMIT_S_MAX + HONEST_ANSWER_S_MAX) as client:
        n = 0
        while time.monotonic() < until:
            n += 1
            started = time.monotonic()
            try:
                if n % 4:
                    answer = await client.get(f"{api}/v1/blocks/latest" if n % 2 else f"{api}/health")
                else:
                    tx = note_transaction(key, genesis.chain_id, int(time.time() * 1000))
                    answer = await client.post(f"{api}/v1/transactions", json={"tx": tx.to_b64()},
                                               params={"wait": "commit",
                                                       "timeout_ms": int(HONEST_COMMIT_S_MAX * 1000)})
            except httpx.HTTPError as exc:
                failures.append(f"request {n}: {type(exc).__name__}")
                continue
            took = time.monotonic() - started
            if answer.status_code != 200:
                failures.append(f"request {n}: {answer.status_code} {answer.text[:80]}")
            elif n % 4:
                latencies.append(took)
            else:
                commits.append(took)
            await asyncio.sleep(HONEST_EVERY_S)


async def _node_counters(api: str) -> dict[str, float]:
    """The attacked node's API guard counters from its /metrics."""
    wanted = ("imi_api_connections_refused_total", "imi_api_request_timeouts_total")
    async with client_at(HONEST_ADDRESS, timeout_s=HONEST_ANSWER_S_MAX) as client:
        text = (await client.get(f"{api}/metrics")).text
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
            if line.split(" ")[0] in wanted}


async def _scenario(net: Devnet, quick: bool) -> list[str]:
    genesis = Genesis.loads((net.dir / "genesis.json").read_text())
    target = net.nodes()[0].api
    parts = urlsplit(target)
    host, port = parts.hostname or "127.0.0.1", int(parts.port or 80)
    connections = SLOW_CONNECTIONS_QUICK if quick else SLOW_CONNECTIONS
    until = time.monotonic() + (ATTACK_S_QUICK if quick else ATTACK_S)
    stats = AttackStats()
    latencies: list[float] = []
    commits: list[float] = []
    failures: list[str] = []
    stop = asyncio.Event()
    watch = HeightWatch(target)
    watching = asyncio.create_task(watch.run(stop))
    attack = asyncio.gather(*(_slow_connection(host, port, until, stats) for _ in range(connections)))
    await asyncio.sleep(1.0)  # let the attack take hold first
    await _honest(target, genesis, until, latencies, failures, commits)
    await attack
    stop.set()
    await watching
    counted = await _node_counters(target)
    longest = max(stats.lifetimes, default=0.0)
    print(f"  {NAME}: {connections} slow connections for {ATTACK_S_QUICK if quick else ATTACK_S:g} s against "
          f"{net.nodes()[0].name}: opened {stats.opened}, refused at once {stats.refused} "
          f"(cap {API_CLIENT_CONNECTIONS_MAX_DEFAULT} per client), cut off at the head deadline "
          f"{stats.timed_out}, longest {longest:.1f} s (bound {ATTACK_LIFETIME_S_MAX:g} s)")
    print(f"  {NAME}: other client: {len(latencies)} reads, slowest {max(latencies, default=0):.2f} s "
          f"(bound {HONEST_ANSWER_S_MAX:g} s); {len(commits)} commits, slowest {max(commits, default=0):.2f} s; "
          f"{len(failures)} failed; height +{watch.advanced}, longest stall {watch.longest_stall_s:.1f} s")
    print(f"  {NAME}: the node's own count (/metrics): {counted}")
    violations = [f"the attacked node failed another client: {failure}" for failure in failures[:5]]
    violations += [f"a read took {t:.1f} s (bound {HONEST_ANSWER_S_MAX:g} s)"
                   for t in latencies if t > HONEST_ANSWER_S_MAX]
    if not commits:
        violations.append("no transaction submitted to the attacked node committed")
    if watch.advanced == 0 or watch.longest_stall_s > HEIGHT_STALL_S_MAX:
        violations.append(f"height stood still for {watch.longest_stall_s:.1f} s "
                          f"(bound {HEIGHT_STALL_S_MAX:g} s; advanced {watch.advanced})")
    if longest > ATTACK_LIFETIME_S_MAX:
        violations.append(f"an attack connection lived {longest:.1f} s (bound {ATTACK_LIFETIME_S_MAX:g} s)")
    if stats.timed_out == 0:
        violations.append("no attack connection was cut off at the head deadline")
    return violations


def run(workdir: Path, *, quick: bool) -> list[str]:
    net = devnet_up(workdir, "slowloris", {})
    try:
        return asyncio.run(_scenario(net, quick))
    finally:
        net.down()


__all__ = ["NAME", "run"]
