"""A WAL corrupt in the middle stops `imi node start` with one line naming the file, the offset
and the repair command; `imi node wal-repair` says what a cut drops and cuts only with --truncate."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cli.devnet import Devnet
from cli.main import app
from tests.test_node_wal_mempool import _damaged_in_the_middle

runner = CliRunner()


def _node_dir(tmp_path: Path) -> tuple[Path, Path, bytes, int]:
    net = Devnet(tmp_path / "net")
    net.create(4)
    node_dir = net.nodes()[0].node_dir
    wal = node_dir / "data" / "wal.log"
    wal.parent.mkdir(parents=True, exist_ok=True)
    data, offset = _damaged_in_the_middle(wal)
    return node_dir, wal, data, offset


def test_start_refuses_a_wal_corrupt_in_the_middle(tmp_path: Path) -> None:
    node_dir, wal, data, offset = _node_dir(tmp_path)
    result = runner.invoke(app, ["node", "start", "--dir", str(node_dir)])
    assert result.exit_code == 1, result.output
    line = result.stderr.strip()
    assert "\n" not in line and "[wal-corrupt]" in line and str(wal) in line
    assert f"offset {offset}" in line and "imi node wal-repair" in line
    assert wal.read_bytes() == data


def test_wal_repair_reports_then_truncates_on_request(tmp_path: Path) -> None:
    node_dir, wal, data, offset = _node_dir(tmp_path)
    looked = runner.invoke(app, ["node", "wal-repair", "--dir", str(node_dir)])
    assert looked.exit_code == 1 and f"damaged at offset {offset}" in looked.stderr
    assert "2 intact records, naming heights up to 2" in looked.stderr and wal.read_bytes() == data
    cut = runner.invoke(app, ["node", "wal-repair", "--dir", str(node_dir), "--truncate", "--json"])
    report = json.loads(cut.stdout)
    assert cut.exit_code == 0 and report["truncated"] is True and report["dropped_records"] == 2
    assert wal.stat().st_size == offset == report["offset"]
    again = runner.invoke(app, ["node", "wal-repair", "--dir", str(node_dir)])
    assert again.exit_code == 0 and "intact, 1 records" in again.stdout
