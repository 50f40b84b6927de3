"""Soak: ``python -m tests.soak --minutes 10`` (``make soak``).

A 4-validator devnet under continuous load (signed ``test.note`` transactions,
``?wait=commit``, to random live validators) while every ``--kill-every``
seconds a random validator is killed with SIGKILL and restarted a few seconds
later. At the end the load stops, every validator is brought up and given time
to converge, the devnet is shut down and each validator's LevelDB store is
opened directly to check that every acknowledged transaction is there and that
all stores hold the same block (hash and state root) at their common height.

Prints ``soak: acked N, lost 0, roots equal`` and exits 0, or exits 1 with what
went wrong. Bounded: it stops by itself after ``--minutes`` (+ convergence time).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx

from cli.devnet import Devnet
from cli.loadgen import note_transaction, submit_and_wait
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from ledger.kv import LevelKV
from ledger.storage import LedgerStore

CONCURRENCY = 16
DOWN_S = 3.0
CONVERGE_S = 120.0


async def _load(net: Devnet, chain_id: str, until: float, live: set[str], acked: list[bytes]) -> None:
    apis = {n.name: n.api for n in net.nodes()}
    rng = random.Random()
    async with httpx.AsyncClient(timeout=45.0) as client:

        async def worker() -> None:
            key = SigningKey.generate()
            while time.monotonic() < until:
                if not live:
                    await asyncio.sleep(0.1)
                    continue
                tx = note_transaction(key, chain_id, int(time.time() * 1000))
                ok, _ = await submit_and_wait(client, apis[rng.choice(sorted(live))], tx)
                if ok:
                    acked.append(tx.tx_id)
                else:
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def _chaos(net: Devnet, until: float, every_s: float, live: set[str]) -> int:
    rng = random.Random()
    kills = 0
    names = [n.name for n in net.nodes()]
    started = time.monotonic()
    while started + (kills + 1) * every_s + DOWN_S < until:
        # Kills on a fixed cadence (t = every, 2*every, ...), not every_s after the last restart.
        await asyncio.sleep(max(0.0, started + (kills + 1) * every_s - time.monotonic()))
        victim = rng.choice(names)
        live.discard(victim)
        await asyncio.to_thread(net.kill, victim)
        kills += 1
        print(f"soak: t+{int(time.monotonic() - started)}s kill -9 {victim}", flush=True)
        await asyncio.sleep(DOWN_S)
        await asyncio.to_thread(net.start, victim)
        await asyncio.to_thread(net.wait_healthy, [victim])
        live.add(victim)
    return kills


async def _run(net: Devnet, minutes: float, every_s: float) -> tuple[list[bytes], int]:
    genesis = Genesis.loads((net.dir / "genesis.json").read_text())
    until = time.monotonic() + minutes * 60
    live = {n.name for n in net.nodes()}
    acked: list[bytes] = []
    _, kills = await asyncio.gather(_load(net, genesis.chain_id, until, live, acked),
                                    _chaos(net, until, every_s, live))
    return acked, kills


def _wait_converged(net: Devnet) -> None:
    """Give the validators time to reach the same height (bounded by CONVERGE_S)."""
    deadline = time.monotonic() + CONVERGE_S
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            try:
                heights = {int(client.get(f"{n.api}/health").json()["height"]) for n in net.nodes()}
                if len(heights) == 1:
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.5)


def _check_stores(net: Devnet, acked: list[bytes]) -> tuple[int, bool, str]:
    """Open every store read-side after shutdown: (lost, roots equal, detail)."""
    stores = {n.name: LedgerStore(LevelKV(n.node_dir / "data" / "ledger", create=False)) for n in net.nodes()}
    try:
        lost = 0
        for name, store in stores.items():
            missing = sum(1 for tx_id in acked if store.tx(tx_id) is None)
            if missing:
                print(f"soak: {name} lacks {missing} acknowledged transactions", file=sys.stderr)
            lost = max(lost, missing)
        common = min(store.height() for store in stores.values())
        headers = {name: store.header(common) for name, store in stores.items()}
        pairs = {(h.hash, h.state_root) for h in headers.values() if h is not None}
        detail = f"common height {common}, heights " + ", ".join(
            f"{name}={store.height()}" for name, store in stores.items())
        return lost, len(pairs) == 1 and None not in headers.values(), detail
    finally:
        for store in stores.values():
            store.kv.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description="kill -9 soak test")
    parser.add_argument("--minutes", type=float, default=10.0, help="load duration")
    parser.add_argument("--kill-every", type=float, default=20.0, help="seconds between kills")
    parser.add_argument("--dir", type=Path, default=None, help="devnet directory (default: temporary)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="imi-soak-") as tmp:
        net = Devnet(args.dir or Path(tmp) / "devnet")
        try:
            net.up(4)
            acked, kills = asyncio.run(_run(net, args.minutes, args.kill_every))
            for node in net.nodes():  # a restart may still be in flight when the load stops
                if node.name not in net.pids() or not _is_up(net, node.name):
                    net.start(node.name)
            net.wait_healthy()
            _wait_converged(net)
        finally:
            net.down()
        lost, equal, detail = _check_stores(net, acked)
    print(f"soak: {kills} kills, {detail}")
    print(f"soak: acked {len(acked)}, lost {lost}, roots {'equal' if equal else 'DIFFER'}")
    return 0 if lost == 0 and equal and acked else 1


def _is_up(net: Devnet, name: str) -> bool:
    from cli.devnet import _alive

    return _alive(net.pids().get(name))


if __name__ == "__main__":
    raise SystemExit(main())
