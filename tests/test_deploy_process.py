"""The image's command for real: `imi node start --dir NODE` configured by IMI_* variables
as compose sets them, its health check, and `imi ledger audit` against it over HTTP."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from typer.testing import CliRunner

from cli._consortium import free_ports
from cli.main import app as cli_app
from node.api.app import create_app
from tests.serving import serve_in_thread
from tests.test_node_api_support import InProcessNode

ROOT = Path(__file__).resolve().parent.parent
HEALTHCHECK = ROOT / "deploy" / "healthcheck.py"
START_TIMEOUT_S = 40.0


def _healthcheck(node_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(HEALTHCHECK), str(node_dir)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture()
def served_api() -> Iterator[int]:
    """A DevNode's API on a loopback port (uvicorn in a thread)."""
    node = InProcessNode()
    node.commit()
    with serve_in_thread(create_app(node)) as port:
        yield port


def _load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("imi_healthcheck", HEALTHCHECK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_healthcheck_probes_a_wildcard_api_on_loopback_and_fails_when_down(
    served_api: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    check = _load_healthcheck()
    (tmp_path / "node.json").write_text(json.dumps({"name": "v0", "listen": "v0:7000", "api": "127.0.0.1:1"}))
    monkeypatch.setenv("IMI_API", f"0.0.0.0:{served_api}")
    assert check.main(["healthcheck", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("ok: v0 at height 1")
    monkeypatch.setenv("IMI_API", f"127.0.0.1:{free_ports(1)[0]}")
    assert check.main(["healthcheck", str(tmp_path)]) == 1
    monkeypatch.delenv("IMI_API")
    assert check.main(["healthcheck", str(tmp_path / "nowhere")]) == 1
    assert capsys.readouterr().err.count("unhealthy:") == 2


@pytest.mark.xdist_group("devnet")
def test_node_start_as_the_image_runs_it_then_health_and_audit(tmp_path: Path) -> None:
    out = tmp_path / "consortium"
    created = CliRunner().invoke(cli_app, ["genesis", "new", "--dir", str(out), "--validators", "1",
                                           "--trustees", "1", "--threshold", "1", "--heartbeat-ms", "200"])
    assert created.exit_code == 0, created.output
    node_dir = out / "validators" / "v0"
    api_port = free_ports(1)[0]
    env = {**os.environ, "IMI_API": f"127.0.0.1:{api_port}", "IMI_DATA": str(tmp_path / "ledger-data"),
           "IMI_LOG_LEVEL": "WARNING"}
    log = (tmp_path / "node.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "node", "start", "--dir", str(node_dir)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{api_port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        height = 0
        while time.monotonic() < deadline and height < 3:
            assert proc.poll() is None, (tmp_path / "node.log").read_text()
            try:
                height = int(httpx.get(f"{url}/health", timeout=2).json()["height"])
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert height >= 3, (tmp_path / "node.log").read_text()
        assert _healthcheck(node_dir, env).returncode == 0
        assert (tmp_path / "ledger-data" / "wal.log").exists()  # IMI_DATA moved the data out
        result = CliRunner().invoke(cli_app, ["ledger", "audit", "--node", url, "--genesis",
                                              str(out / "genesis.json"), "--json"])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert summary["ok"] is True and summary["blocks"] >= 3
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()
