"""How fast a validator that was away catches up: ``python -m bench catchup [--quick]``.

A real 4-validator devnet (one process per validator). One validator is killed
(``kill -9``); the other three are driven at saturation (pre-signed transactions in
batches through ``POST /v1/transactions/batch``, as :mod:`bench.devnet` measures its
saturation) until they committed ``LOAD_TXS`` transactions; that phase's committed
rate is the healthy saturation commit rate (three of four validators are enough for
a quorum, and the proposer rule keeps the dead one out of the round-0 rotation). The
load then stops, the killed validator is started again, and the clock runs from its
start until its height reaches the head the others held when it was started. It
fetches, verifies (every commit certificate, every root) and applies every block.

Figures (``name value`` lines):

* ``catchup.tx_per_s`` — transactions it applied per second, over the wall time from
  its process start to the head (start-up included);
* ``catchup.ratio_vs_commit`` — that ÷ the saturation commit rate of the same run;
* ``catchup.commit_tx_per_s`` — the saturation commit rate (three validators);
* ``catchup.node_tx_per_s`` — the node's own catch-up rate (``imi_sync_tx_per_s``);
* ``catchup.txs``, ``catchup.blocks``, ``catchup.from_height``, ``catchup.to_height``,
  ``catchup.seconds``;
* ``catchup.load_heights``, ``catchup.load_late_round_heights`` — heights committed
  while the validator was away, and how many of them needed a round beyond 0;
  ``catchup.load_late_round_s`` — the block-time gaps before those heights, of
  ``catchup.load_heights_s`` in all (what a dead validator still costs after the
  proposer rule: the figure behind the unreachable-proposer decision, docs/consensus.md);
  ``catchup.load_round_max`` — the highest round any of them needed.

Validators and the load client share this machine's cores.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.devnet import SATURATION_BATCH_TXS, _saturate
from bench.harness import running_devnet
from cli.devnet import Devnet
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from ledger.tx import Transaction

LOAD_TXS: Final = 150_000  # at least 50,000 (issue 20); more so the start-up weighs what it does in an hour away
LOAD_TXS_QUICK: Final = 2_000
LOAD_SENDERS: Final = 256  # the mempool holds at most MEMPOOL_SENDER_TXS_MAX per sender
LOAD_TTL_MS: Final = 3_600_000  # pre-signed transactions stay valid this long
CATCH_UP_S_MAX: Final = 1_800.0  # the restarted validator must be at the head within this
SETTLE_S_MAX: Final = 60.0  # after the load, the three live validators agree on a head within this
POLL_S: Final = 0.1


def _presign(chain_id: str, count: int) -> list[Transaction]:
    keys = [SigningKey.generate() for _ in range(LOAD_SENDERS)]
    expires = int(time.time() * 1000) + LOAD_TTL_MS
    return [Transaction.create(chain_id=chain_id, type="test.note", sender=keys[i % LOAD_SENDERS].key_id,
                               payload={"data": i.to_bytes(8, "big")}, expires_at_ms=expires)
            .sign(keys[i % LOAD_SENDERS]) for i in range(count)]


def _header(client: httpx.Client, api: str, height: int | str) -> dict[str, int]:
    header: dict[str, int] = client.get(f"{api}/v1/blocks/{height}").json()["header"]
    return header


def _height(client: httpx.Client, api: str) -> int:
    try:
        return int(client.get(f"{api}/health").json()["height"])
    except (httpx.HTTPError, ValueError, KeyError):
        return -1


def _settled_head(client: httpx.Client, apis: list[str]) -> int:
    """The height the live validators all reached once the load stopped."""
    deadline = time.monotonic() + SETTLE_S_MAX
    while True:
        heights = [_height(client, api) for api in apis]
        if min(heights) == max(heights) or time.monotonic() > deadline:
            return min(heights)
        time.sleep(POLL_S)


def _late_rounds(client: httpx.Client, api: str, first: int, last: int) -> tuple[int, float, float, int]:
    """Of heights ``first .. last``: how many were decided after round 0, the seconds
    between their block and the one before, the seconds the heights took in all, and the
    highest round."""
    headers = {h: _header(client, api, h) for h in range(max(1, first - 1), last + 1)}
    late = [h for h in range(first, last + 1) if headers[h]["round"] > 0 and h - 1 in headers]
    late_s = sum(headers[h]["time_ms"] - headers[h - 1]["time_ms"] for h in late) / 1000
    total_s = (headers[last]["time_ms"] - headers[min(headers)]["time_ms"]) / 1000
    return len(late), late_s, total_s, max(headers[h]["round"] for h in range(first, last + 1))


def _node_tx_per_s(client: httpx.Client, api: str) -> float:
    text = client.get(f"{api}/metrics").text
    for family in text_string_to_metric_families(text):
        if family.name == "imi_sync_tx_per_s":
            return float(family.samples[0].value)
    return 0.0


def _measure(net: Devnet, txs: int) -> dict[str, float]:
    nodes = net.nodes()
    victim, live = nodes[-1], nodes[:-1]
    apis = [n.api for n in live]
    chain_id = Genesis.loads((net.dir / "genesis.json").read_text()).chain_id
    load = _presign(chain_id, txs)
    with httpx.Client(timeout=30.0) as client:
        net.kill(victim.name)
        from_height = _height(client, apis[0])
        committed, load_s = asyncio.run(_saturate(apis, load, SATURATION_BATCH_TXS))
        head = _settled_head(client, apis)
        started = time.monotonic()
        net.start(victim.name)
        deadline = started + CATCH_UP_S_MAX
        while _height(client, victim.api) < head:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{victim.name} not at height {head} after {CATCH_UP_S_MAX} s")
            time.sleep(POLL_S)
        seconds = time.monotonic() - started
        caught_txs = (_header(client, apis[0], head)["log_size"]
                      - (_header(client, apis[0], from_height)["log_size"] if from_height > 0 else 0))
        node_rate = _node_tx_per_s(client, victim.api)
        late, late_s, heights_s, round_max = _late_rounds(client, apis[0], from_height + 1, head)
    commit_rate = committed / load_s if load_s > 0 else 0.0
    rate = caught_txs / seconds
    return {
        "tx_per_s": round(rate, 1),
        "ratio_vs_commit": round(rate / commit_rate, 2) if commit_rate else 0.0,
        "commit_tx_per_s": round(commit_rate, 1),
        "node_tx_per_s": round(node_rate, 1),
        "txs": float(caught_txs),
        "blocks": float(head - from_height),
        "from_height": float(from_height),
        "to_height": float(head),
        "seconds": round(seconds, 2),
        "load_heights": float(head - from_height),
        "load_late_round_heights": float(late),
        "load_late_round_s": round(late_s, 2),
        "load_heights_s": round(heights_s, 2),
        "load_round_max": float(round_max),
    }


def run(quick: bool) -> dict[str, float]:
    with running_devnet("imi-bench-catchup-") as (_, net):
        result = _measure(net, LOAD_TXS_QUICK if quick else LOAD_TXS)
    figures = {f"catchup.{name}": value for name, value in result.items()}
    for name in sorted(figures):
        print(f"{name} {figures[name]}", flush=True)
    return figures


__all__ = ["run"]
