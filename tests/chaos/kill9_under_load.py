"""kill -9 of a validator under load: nothing acknowledged is lost, all roots equal.

The approach of ``tests/test_node_devnet.py`` at a scenario's scale: clients
submit notes with ``?wait=commit`` to random live validators; after
``KILL_AFTER_ACKS`` acknowledgements the next height's proposer is killed with
SIGKILL while the load goes on; it is restarted, must catch up, and every
validator must then hold the same block (hash and state root) at a common height
above every height seen before the restart, within ``CONVERGE_S_MAX``. After
shutdown, every transaction acknowledged as committed must be in every
validator's store, the killed one's included.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import httpx

from cli.devnet import Devnet
from cli.loadgen import note_transaction, submit_and_wait
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from ledger.kv import LevelKV
from ledger.storage import LedgerStore

NAME = "kill9-under-load"

VALIDATORS = 4
HEARTBEAT_MS = 500
TXS_QUICK, TXS_FULL = 150, 1_000
KILL_AFTER_ACKS_QUICK, KILL_AFTER_ACKS_FULL = 50, 300
CONCURRENCY = 16
LOAD_S_MAX = 90.0  # the load phase stops by itself after this long
ACKED_SHARE_MIN = 0.8  # of the transactions sent, at least this share must be acknowledged
CONVERGE_S_MAX = 60.0  # restart to a common block on every validator


async def _load_with_kill(net: Devnet, genesis: Genesis, txs: int, kill_after: int) -> tuple[list[str], str]:
    """Submit ``txs`` notes to random live validators; kill -9 the proposer after ``kill_after`` acks."""
    apis = {n.name: n.api for n in net.nodes()}
    names_by_key = {v.key_id: v.name for v in genesis.validators.validators}
    live = set(apis)
    acked: list[str] = []
    killed: list[str] = []
    remaining = txs
    rng = random.Random(19)
    deadline = time.monotonic() + LOAD_S_MAX
    async with httpx.AsyncClient(timeout=45.0) as client:

        async def worker() -> None:
            nonlocal remaining
            key = SigningKey.generate()
            while remaining > 0 and time.monotonic() < deadline:
                remaining -= 1
                tx = note_transaction(key, genesis.chain_id, int(time.time() * 1000))
                ok, _ = await submit_and_wait(client, apis[rng.choice(sorted(live))], tx)
                if ok:
                    acked.append(tx.tx_id.hex())
                if len(acked) >= kill_after and not killed:
                    killed.append("")  # claimed before any await: one killer only
                    height = int((await client.get(f"{apis[min(live)]}/health")).json()["height"])
                    victim = names_by_key[genesis.validators.proposer(height + 1, 0).key_id]
                    killed[0] = victim
                    live.discard(victim)
                    await asyncio.to_thread(net.kill, victim)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return acked, killed[0] if killed else ""


async def _common_block(net: Devnet, above: int) -> dict[str, tuple[str, str]]:
    """Wait until every validator holds a block at a common height > ``above``:
    name -> (block hash, state root) at that height."""
    deadline = time.monotonic() + CONVERGE_S_MAX
    async with httpx.AsyncClient(timeout=5.0) as client:
        while True:
            try:
                heights = [int((await client.get(f"{n.api}/health")).json()["height"]) for n in net.nodes()]
                common = min(heights)
                if common > above:
                    found = {}
                    for n in net.nodes():
                        header = (await client.get(f"{n.api}/v1/blocks/{common}")).json()["header"]
                        found[n.name] = (header["hash"], header["state_root"])
                    return found
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"validators did not reach a common height above {above} "
                                   f"within {CONVERGE_S_MAX} s")
            await asyncio.sleep(0.5)


def _missing(net: Devnet, tx_ids: list[str]) -> dict[str, int]:
    """After shutdown: how many of ``tx_ids`` each validator's store lacks."""
    missing = {}
    for node in net.nodes():
        store = LedgerStore(LevelKV(node.node_dir / "data" / "ledger", create=False))
        try:
            missing[node.name] = sum(1 for tx_id in tx_ids if store.tx(bytes.fromhex(tx_id)) is None)
        finally:
            store.kv.close()
    return missing


def run(workdir: Path, *, quick: bool) -> list[str]:
    txs, kill_after = (TXS_QUICK, KILL_AFTER_ACKS_QUICK) if quick else (TXS_FULL, KILL_AFTER_ACKS_FULL)
    net = Devnet(workdir / "devnet")
    violations: list[str] = []
    acked: list[str] = []
    try:
        net.up(VALIDATORS, heartbeat_ms=HEARTBEAT_MS)
        genesis = Genesis.loads((net.dir / "genesis.json").read_text())
        started = time.monotonic()
        acked, killed = asyncio.run(_load_with_kill(net, genesis, txs, kill_after))
        load_s = time.monotonic() - started
        if not killed:
            return [f"the load ended ({len(acked)} acknowledged) before the kill"]
        if len(acked) < txs * ACKED_SHARE_MIN:
            violations.append(f"only {len(acked)} of {txs} transactions acknowledged")
        with httpx.Client(timeout=5.0) as client:
            seen = max(int(client.get(f"{n.api}/health").json()["height"]) for n in net.nodes() if n.name != killed)
        restarted = time.monotonic()
        net.start(killed)
        blocks = asyncio.run(_common_block(net, seen))
        print(f"{NAME}: {len(acked)} of {txs} acknowledged in {load_s:.1f} s, {killed} killed -9 after "
              f"{kill_after}; all at a common height above {seen} "
              f"{time.monotonic() - restarted:.1f} s after its restart")
        if len(set(blocks.values())) != 1:
            violations.append(f"validators disagree at a common height: {blocks}")
    finally:
        net.down()
    missing = _missing(net, acked)
    violations += [f"{name} lacks {count} acknowledged transaction(s)" for name, count in missing.items() if count]
    return violations
