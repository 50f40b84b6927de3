"""The load generator and `imi bench load` against an in-process node."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli._consortium import free_ports
from cli.loadgen import LoadResult, percentile, run_load
from cli.main import app as cli_app
from node.api.app import create_app
from tests.serving import serve_in_thread
from tests.test_node_api_support import InProcessNode


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.5) == 0.0
    assert percentile([5.0], 0.99) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50.0 and percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0 and percentile(values, 0.0) == 1.0


def test_run_load_commits_every_transaction_and_reports_ids() -> None:
    node = InProcessNode()
    app = create_app(node)

    async def go() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            result = await run_load(["http://node"], 40, 8, client=client)
        assert result.committed == 40 and result.failed == 0
        assert len(set(result.committed_ids)) == 40
        for tx_id in result.committed_ids:
            assert node.store.tx(bytes.fromhex(tx_id)) is not None
        summary = result.summary()
        assert summary["tx_per_s"] > 0 and summary["latency_ms_p99"] >= summary["latency_ms_p50"] > 0

    asyncio.run(go())


def test_run_load_counts_failures_by_reason() -> None:
    node = InProcessNode(auto_commit=False)
    app = create_app(node)

    async def go() -> LoadResult:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            return await run_load(["http://node"], 3, 3, client=client)

    result = asyncio.run(go())
    assert result.committed == 0 and result.failed == 3
    assert dict(result.failures_by_reason) == {"commit-timeout": 3}


class _OneHostDown(httpx.AsyncBaseTransport):
    """Requests to host ``down`` fail to connect; the rest go to the app in process."""

    def __init__(self, app: object) -> None:
        self.inner = httpx.ASGITransport(app=app)  # type: ignore[arg-type]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "down":
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


def test_run_load_moves_off_an_unreachable_validator() -> None:
    node = InProcessNode()
    app = create_app(node)

    async def go() -> LoadResult:
        async with httpx.AsyncClient(transport=_OneHostDown(app)) as client:
            return await run_load(["http://down", "http://node"], 10, 1, client=client)

    result = asyncio.run(go())
    assert result.committed == 9 and dict(result.failures_by_reason) == {"transport-ConnectError": 1}


@pytest.fixture()
def served_node() -> Iterator[tuple[str, InProcessNode]]:
    """The API over uvicorn on a loopback port, in a thread."""
    node = InProcessNode()
    with serve_in_thread(create_app(node)) as port:
        yield f"http://127.0.0.1:{port}", node


def test_bench_load_cli_json_and_ids_out(served_node: tuple[str, InProcessNode], tmp_path: Path) -> None:
    url, node = served_node
    ids_file = tmp_path / "ids.txt"
    result = CliRunner().invoke(cli_app, ["bench", "load", "--url", url, "--url", url, "--txs", "20",
                                          "--concurrency", "4", "--json", "--ids-out", str(ids_file)])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["committed"] == 20 and figures["failed"] == 0
    assert {"tx_per_s", "latency_ms_p50", "latency_ms_p99"} <= set(figures)
    ids = ids_file.read_text().split()
    assert len(ids) == 20 and all(node.store.tx(bytes.fromhex(i)) is not None for i in ids)


def test_bench_load_cli_unreachable_exits_1() -> None:
    result = CliRunner().invoke(cli_app, ["bench", "load", "--url", f"http://127.0.0.1:{free_ports(1)[0]}",
                                          "--txs", "1", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.output)["reason"] == "unreachable"
