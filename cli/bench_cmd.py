"""`imi bench`: load and measure a running consortium through its REST API."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli._common import fail
from cli.loadgen import LOAD_CONCURRENCY_MAX, LOAD_TXS_MAX, LoadResult, run_load

app = typer.Typer(help="Load and measure a running consortium.", no_args_is_help=True)


@app.command("load")
def load(
    url: list[str] = typer.Option(..., "--url", help="Node API base URL; repeat to spread load over validators."),
    txs: int = typer.Option(1000, "--txs", min=1, max=LOAD_TXS_MAX, help="Transactions to submit."),
    concurrency: int = typer.Option(32, "--concurrency", "-c", min=1, max=LOAD_CONCURRENCY_MAX,
                                    help="Transactions in flight at once."),
    as_json: bool = typer.Option(False, "--json", help="Print figures as JSON."),
    ids_out: Path | None = typer.Option(None, "--ids-out",
                                           help="Write the id of every committed transaction, one per line."),
) -> None:
    """Submit signed test.note transactions with ?wait=commit; print committed tx/s and latency p50/p99.

    A progress bar of committed transactions goes to stderr when it is a terminal (never with --json).
    Exit code 1 if any transaction failed to commit.
    """
    try:
        if as_json or not sys.stderr.isatty():
            result = asyncio.run(run_load(url, txs, concurrency))
        else:
            result = _run_with_progress(url, txs, concurrency)
    except httpx.HTTPError as exc:
        fail(f"cannot reach {url[0]}: {exc}", reason="unreachable", as_json=as_json)
    if ids_out is not None:
        ids_out.write_text("".join(f"{tx_id}\n" for tx_id in result.committed_ids))
    summary = result.summary()
    if as_json:
        print(json.dumps(summary, sort_keys=True))
    else:
        _print_summary(result)
    if result.failed:
        raise typer.Exit(1)


def _run_with_progress(urls: list[str], txs: int, concurrency: int) -> LoadResult:
    columns = (TextColumn("load"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("load", total=txs)
        return asyncio.run(run_load(urls, txs, concurrency, progress=lambda n: progress.advance(task, n)))


def _print_summary(result: LoadResult) -> None:
    s = result.summary()
    print(f"committed {s['committed']}  failed {s['failed']}  in {s['duration_s']} s")
    print(f"throughput {s['tx_per_s']} tx/s committed")
    print(f"latency submit→commit p50 {s['latency_ms_p50']} ms  p99 {s['latency_ms_p99']} ms")
    for reason, count in s["failures_by_reason"].items():
        print(f"  failed [{reason}]: {count}")
