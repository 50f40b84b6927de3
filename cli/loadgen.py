"""Load generator: signed ``test.note`` transactions over the REST API.

Each worker owns a fresh Ed25519 key (the sender of a ``test.note`` is its
signer's key id) and submits one transaction at a time with ``?wait=commit``,
so ``concurrency`` bounds the transactions in flight. Workers spread over the
given URLs round-robin; a worker whose validator is unreachable or overloaded
counts that transaction as failed and moves on to the next URL (a transaction
is never resubmitted, so a failure is never double-counted as a commit). A transaction counts as committed only when a node
answered 200 with ``status: committed``; its id is then recorded, so a test can
later check that nothing acknowledged was lost.

Used by ``imi bench load``, ``bench/devnet.py`` and the soak test. Figures are
submit-to-commit latency as the client sees it (milliseconds) and committed
transactions per second of wall time.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from ledger.constants import require_limits
from ledger.keys import SigningKey
from ledger.tx import Transaction

LOAD_NOTE_BYTES: Final = 32  # random payload per transaction
LOAD_TTL_MS: Final = 60_000  # expires_at_ms = now + this
LOAD_WAIT_MS: Final = 30_000  # ?timeout_ms= asked of the node
LOAD_HTTP_TIMEOUT_S: Final = 45.0  # client-side bound, above LOAD_WAIT_MS
LOAD_CONCURRENCY_MAX: Final = 4_096
LOAD_TXS_MAX: Final = 10_000_000
LOAD_FAILOVER_PAUSE_S: Final = 0.05  # after a transport error or 503, before the next URL
_OVERLOADED = frozenset({"mempool-full", "too-many-waiters", "http-502", "http-503"})


def check_limits() -> None:
    """Raise :class:`~ledger.errors.LimitError` if the client would give up before the node
    answers. Called at import: unlike an ``assert`` it also runs under ``python -O``."""
    require_limits(__name__, (
        ("LOAD_HTTP_TIMEOUT_S * 1000 > LOAD_WAIT_MS", LOAD_HTTP_TIMEOUT_S * 1000 > LOAD_WAIT_MS),
    ))


check_limits()


@dataclass(slots=True)
class LoadResult:
    """Outcome of one load run."""

    committed: int = 0
    failed: int = 0
    duration_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    failures_by_reason: Counter[str] = field(default_factory=Counter)
    committed_ids: list[str] = field(default_factory=list)

    @property
    def tx_per_s(self) -> float:
        return self.committed / self.duration_s if self.duration_s > 0 else 0.0

    def latency_ms(self, quantile: float) -> float:
        return percentile(self.latencies_ms, quantile)

    def summary(self) -> dict[str, Any]:
        """The figures ``imi bench load --json`` prints."""
        return {
            "committed": self.committed,
            "failed": self.failed,
            "duration_s": round(self.duration_s, 3),
            "tx_per_s": round(self.tx_per_s, 2),
            "latency_ms_p50": round(self.latency_ms(0.50), 2),
            "latency_ms_p99": round(self.latency_ms(0.99), 2),
            "failures_by_reason": dict(sorted(self.failures_by_reason.items())),
        }


def percentile(values: Sequence[float], quantile: float) -> float:
    """Nearest-rank percentile (0 for no values). Requires 0 <= quantile <= 1."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(quantile * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def note_transaction(key: SigningKey, chain_id: str, now_ms: int) -> Transaction:
    """A signed ``test.note`` from ``key`` with a random payload, valid for 60 s."""
    return Transaction.create(
        chain_id=chain_id, type="test.note", sender=key.key_id,
        payload={"data": secrets.token_bytes(LOAD_NOTE_BYTES)},
        expires_at_ms=now_ms + LOAD_TTL_MS,
    ).sign(key)


async def fetch_chain_id(client: httpx.AsyncClient, url: str) -> str:
    """The chain id a node serves: from ``/health``, else from the latest block header."""
    response = await client.get(f"{url}/health")
    if response.status_code == 200 and isinstance(response.json().get("chain_id"), str):
        return str(response.json()["chain_id"])
    response = await client.get(f"{url}/v1/blocks/latest")
    response.raise_for_status()
    return str(response.json()["header"]["chain_id"])


async def _first_chain_id(client: httpx.AsyncClient, bases: Sequence[str]) -> str:
    """Chain id from the first URL that answers; the last error if none does."""
    error: Exception | None = None
    for url in bases:
        try:
            return await fetch_chain_id(client, url)
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            error = exc
    assert error is not None
    raise error


async def submit_and_wait(client: httpx.AsyncClient, url: str, tx: Transaction) -> tuple[bool, str]:
    """POST one transaction with ``?wait=commit``; (committed?, reason or tx id)."""
    try:
        response = await client.post(
            f"{url}/v1/transactions",
            params={"wait": "commit", "timeout_ms": LOAD_WAIT_MS},
            json={"tx": tx.to_b64()},
        )
    except httpx.HTTPError as exc:
        return False, f"transport-{type(exc).__name__}"
    try:
        body = response.json()
    except ValueError:
        return False, f"http-{response.status_code}"
    if response.status_code == 200 and body.get("status") == "committed" and body.get("id") == tx.tx_id.hex():
        return True, tx.tx_id.hex()
    reason = body.get("reason") if isinstance(body, dict) else None
    return False, str(reason or f"http-{response.status_code}")


async def run_load(
    urls: Sequence[str],
    txs: int,
    concurrency: int,
    *,
    progress: Callable[[int], None] | None = None,
    client: httpx.AsyncClient | None = None,
) -> LoadResult:
    """Submit ``txs`` transactions with ``concurrency`` workers over ``urls``; wait for each commit.

    Requires ``urls`` non-empty, ``1 <= txs <= LOAD_TXS_MAX`` and
    ``1 <= concurrency <= LOAD_CONCURRENCY_MAX``. ``progress`` is called with 1
    after each transaction finishes (committed or not). ``client`` lets tests pass
    an in-process transport.
    """
    if not urls:
        raise ValueError("at least one URL is needed")
    if not 1 <= txs <= LOAD_TXS_MAX or not 1 <= concurrency <= LOAD_CONCURRENCY_MAX:
        raise ValueError("txs or concurrency out of range")
    bases = [u.rstrip("/") for u in urls]
    own_client = client is None
    if client is None:
        limits = httpx.Limits(max_connections=concurrency + len(bases), max_keepalive_connections=concurrency)
        client = httpx.AsyncClient(timeout=LOAD_HTTP_TIMEOUT_S, limits=limits)
    result = LoadResult()
    try:
        chain_id = await _first_chain_id(client, bases)
        remaining = txs

        async def worker(number: int) -> None:
            nonlocal remaining
            key = SigningKey.generate()
            turn = number
            while remaining > 0:
                remaining -= 1  # no await between test and decrement: no race in one loop
                tx = note_transaction(key, chain_id, int(time.time() * 1000))
                sent = time.perf_counter()
                ok, detail = await submit_and_wait(client, bases[turn % len(bases)], tx)
                if ok:
                    result.committed += 1
                    result.latencies_ms.append((time.perf_counter() - sent) * 1000)
                    result.committed_ids.append(detail)
                else:
                    result.failed += 1
                    result.failures_by_reason[detail] += 1
                    if detail.startswith("transport-") or detail in _OVERLOADED:
                        # A validator down or overloaded: move to the next one, without spinning.
                        turn += 1
                        await asyncio.sleep(LOAD_FAILOVER_PAUSE_S)
                if progress is not None:
                    progress(1)

        began = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(min(concurrency, txs))))
        result.duration_s = time.perf_counter() - began
    finally:
        if own_client:
            await client.aclose()
    return result


__all__ = [
    "LoadResult",
    "fetch_chain_id",
    "note_transaction",
    "percentile",
    "run_load",
    "submit_and_wait",
]
