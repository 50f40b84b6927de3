"""Catch-up progress is visible: at /metrics, in /ready, and with `imi node status`."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cli.main import app as cli_app
from node.api.app import create_app
from tests.test_node_api_support import InProcessNode

SYNCING = {"syncing": True, "sync_target_height": 5000, "sync_blocks_applied": 1200, "sync_txs_applied": 600_000,
           "sync_blocks_per_s": 80.5, "sync_tx_per_s": 40250.0, "peers_connected": 3, "mempool_size": 0}


def _client(status: dict[str, Any]) -> TestClient:
    node = InProcessNode()
    node.status = lambda: status  # type: ignore[method-assign]
    return TestClient(create_app(node), raise_server_exceptions=False)


def test_metrics_show_the_catch_up_target_counts_and_rates() -> None:
    lines = _client(SYNCING).get("/metrics").text.splitlines()
    for line in ("imi_syncing 1.0", "imi_sync_target_height 5000.0", "imi_sync_blocks_applied_total 1200.0",
                 "imi_sync_txs_applied_total 600000.0", "imi_sync_blocks_per_s 80.5", "imi_sync_tx_per_s 40250.0"):
        assert line in lines, line


def test_ready_carries_the_catch_up_progress() -> None:
    answer = _client(SYNCING).get("/ready")
    assert answer.status_code == 503
    body = answer.json()
    assert body["syncing"] is True and "catching up from peers" in body["why"]
    assert (body["sync_target_height"], body["sync_blocks_per_s"], body["sync_tx_per_s"]) == (5000, 80.5, 40250.0)


def _route_to(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def get(url: str, timeout: float) -> httpx.Response:
        return client.get(url.removeprefix("http://node"))

    monkeypatch.setattr(httpx, "get", get)


def test_imi_node_status_shows_syncing_height_of_target_and_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client(SYNCING)
    _route_to(client, monkeypatch)
    height = client.get("/health").json()["height"]
    result = CliRunner().invoke(cli_app, ["node", "status", "--url", "http://node"])
    assert result.exit_code == 1  # syncing: not ready
    assert f"syncing: height {height} of 5000, 80.5 blocks/s, 40250.0 tx/s" in result.stdout
    result = CliRunner().invoke(cli_app, ["node", "status", "--url", "http://node", "--json"])
    answer = json.loads(result.stdout)
    assert result.exit_code == 1 and answer["ok"] is False and answer["reason"] == "not-ready"
    assert answer["syncing"] is True and answer["sync_target_height"] == 5000


def test_imi_node_status_of_an_unreachable_node_is_one_line_and_exit_1() -> None:
    result = CliRunner().invoke(cli_app, ["node", "status", "--url", "http://127.0.0.1:9", "--json"])
    assert result.exit_code == 1
    answer = json.loads(result.stdout)
    assert answer["ok"] is False and answer["reason"] == "unreachable"
