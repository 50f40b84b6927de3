"""`imi devnet` never signals a recorded pid that now names another process, and picks
ports no outgoing connection can take before its servers bind them.

After a validator or demo service ends (a reboot, a kill -9) the kernel may give its pid to
an unrelated program. pids.json and demo.json keep each pid with its process's identity
(cli._processes), so ``down`` leaves such a stranger alone and ``up``/``status`` see the
recorded process as gone. Each test runs a real stranger process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli._processes import is_recorded_process, process_identity
from cli.demo.devnet_demo import DemoService, DemoServices
from cli.devnet import Devnet

linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process identities need /proc")


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process
    process.kill()
    process.wait(timeout=10)


@linux_only
def test_a_process_identity_names_one_process(stranger: subprocess.Popen[bytes]) -> None:
    mine, theirs = process_identity(os.getpid()), process_identity(stranger.pid)
    assert mine and theirs and mine != theirs
    assert process_identity(stranger.pid) == theirs  # stable for the process's life
    assert is_recorded_process(stranger.pid, theirs)
    assert not is_recorded_process(stranger.pid, mine)  # the same pid under another identity: reused
    assert is_recorded_process(stranger.pid, None)  # nothing recorded: the pid alone decides


@linux_only
def test_down_leaves_a_stranger_with_a_recorded_validator_pid_alone(
        tmp_path: Path, stranger: subprocess.Popen[bytes]) -> None:
    net = Devnet(tmp_path)
    net.pids_file.write_text(json.dumps({"v0": {"pid": stranger.pid, "identity": "another-boot/1"}}))
    assert net.pids() == {}  # the validator is gone; its pid is someone else's now
    net.down()
    assert stranger.poll() is None, "down signalled a process that is not the validator"
    net.pids_file.write_text(json.dumps({"v0": {"pid": stranger.pid, "identity": process_identity(stranger.pid)}}))
    assert net.pids() == {"v0": stranger.pid}  # the recorded process itself is stopped
    net.down()
    assert stranger.wait(timeout=15) is not None and not net.pids_file.exists()


@linux_only
def test_a_pids_file_of_bare_pids_still_reads(tmp_path: Path, stranger: subprocess.Popen[bytes]) -> None:
    net = Devnet(tmp_path)
    net.pids_file.write_text(json.dumps({"v0": stranger.pid}))
    assert net.pids() == {"v0": stranger.pid}
    net._record_pid("v1", stranger.pid)
    saved = json.loads(net.pids_file.read_text())
    assert saved == {"v0": {"pid": stranger.pid, "identity": None},
                     "v1": {"pid": stranger.pid, "identity": process_identity(stranger.pid)}}


@linux_only
def test_down_leaves_a_stranger_with_a_recorded_service_pid_alone(
        tmp_path: Path, stranger: subprocess.Popen[bytes]) -> None:
    def service(identity: str | None) -> DemoService:
        return DemoService("verifier", "did:imi:x", "http://127.0.0.1:9", str(tmp_path), str(tmp_path / "t"),
                           ["verifier", "serve"], stranger.pid, [], identity)

    DemoServices([], [service("another-boot/1")]).save(tmp_path)
    net = Devnet(tmp_path)
    net.down()
    assert stranger.poll() is None, "down signalled a process that is not the demo service"
    record = net.demo()
    assert record is not None and record.verifiers[0].pid is None  # recorded as stopped
    DemoServices([], [service(process_identity(stranger.pid))]).save(tmp_path)
    net.down()
    assert stranger.wait(timeout=15) is not None


@linux_only
def test_free_ports_are_picked_below_the_ephemeral_range(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ports a devnet binds seconds later are outside the range connect() takes source ports
    from, so no outgoing connection can take one meanwhile; a port in use is skipped."""
    import socket

    from cli import _consortium
    from cli._consortium import PICKED_PORT_LOW, _ephemeral_low, free_ports

    high = _ephemeral_low()
    assert high is not None
    for _ in range(20):
        ports = free_ports(8)
        assert len(set(ports)) == 8 and all(PICKED_PORT_LOW <= p < high for p in ports)
    held = socket.socket()
    held.bind(("127.0.0.1", free_ports(1)[0]))
    held.listen()
    taken = held.getsockname()[1]
    real_sample = _consortium.random.sample
    monkeypatch.setattr(_consortium.random, "sample", lambda seq, k: [taken, *real_sample(seq, k - 1)])
    try:  # the busy port comes up first and is passed over
        ports = free_ports(4)
        assert taken not in ports and len(set(ports)) == 4 and all(PICKED_PORT_LOW <= p < high for p in ports)
    finally:
        held.close()


@pytest.mark.parametrize("text", ["not json", "[]", '{"v0": "12"}', '{"v0": {"identity": "x"}}', '{"v0": -3}'])
def test_a_pids_file_that_is_not_one_is_an_error_of_one_line(tmp_path: Path, text: str) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    (tmp_path / "genesis.json").write_text("{}")
    (tmp_path / "pids.json").write_text(text)
    for command in (["devnet", "down"], ["devnet", "status"]):
        result = CliRunner().invoke(app, [*command, "--dir", str(tmp_path)])
        assert result.exit_code == 1, (command, result.output)
        assert "Traceback" not in result.output and "pids.json" in result.output, (command, result.output)
    assert (tmp_path / "pids.json").read_text() == text  # nothing rewritten
