"""Helpers of the Byzantine-peer scenarios (lying-height, junk-proposals, kill9-under-load).

Watching a devnet from outside: heights over the API, resident memory from
``/proc``, node-status counters from ``/metrics``; and starting the Byzantine
impostor process (:mod:`tests.chaos._byzantine`) in place of one validator.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from cli.devnet import Devnet

CODE_ROOT = Path(__file__).resolve().parents[2]  # the impostor runs this checkout's code
SAMPLE_INTERVAL_S = 0.25
IMPOSTOR_STOP_GRACE_S = 5.0


def heights(net: Devnet, names: list[str], client: httpx.Client) -> dict[str, int]:
    """Committed height of each named validator that answers ``/health``."""
    found: dict[str, int] = {}
    for name in names:
        try:
            found[name] = int(client.get(f"{net.node(name).api}/health").json()["height"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            continue
    return found


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def counters(net: Devnet, name: str, client: httpx.Client) -> dict[str, float]:
    """The counters and gauges of one validator's ``/metrics`` (sample name -> value)."""
    text = client.get(f"{net.node(name).api}/metrics").text
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples}


@dataclass
class Progress:
    """Heights and memory of the honest validators, sampled while something happens."""

    started: float = field(default_factory=time.monotonic)
    first: int | None = None  # lowest honest height at the first sample
    last: int = 0  # lowest honest height at the last sample
    last_advance: float = field(default_factory=time.monotonic)
    longest_stall_s: float = 0.0  # longest time the lowest honest height did not move
    rss_peak_mib: dict[str, float] = field(default_factory=dict)

    def sample(self, net: Devnet, honest: list[str], client: httpx.Client) -> None:
        now = time.monotonic()
        found = heights(net, honest, client)
        if len(found) == len(honest):
            low = min(found.values())
            if self.first is None:
                self.first, self.last, self.last_advance = low, low, now
            elif low > self.last:
                self.last, self.last_advance = low, now
        self.longest_stall_s = max(self.longest_stall_s, now - self.last_advance)
        pids = net.pids()
        for name in honest:
            self.rss_peak_mib[name] = max(self.rss_peak_mib.get(name, 0.0), rss_mib(pids.get(name, 0)))

    def watch(self, net: Devnet, honest: list[str], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                self.sample(net, honest, client)
                time.sleep(SAMPLE_INTERVAL_S)

    @property
    def advanced(self) -> int:
        return 0 if self.first is None else self.last - self.first


IMPOSTOR_READY_S_MAX = 40.0  # an impostor is a new process that starts and dials over TLS first


def wait_until_counted(net: Devnet, honest: list[str], metric: str, progress: Progress | None = None,
                       impostor: subprocess.Popen[bytes] | None = None) -> None:
    """Until every honest validator's ``metric`` is above 0, at most IMPOSTOR_READY_S_MAX: on a
    loaded machine the impostor may reach the validators late. With ``progress`` the heights
    keep being sampled meanwhile; with ``impostor`` the wait ends early once that process
    has exited (it will never be counted). The scenario then judges the counters itself."""
    deadline = time.monotonic() + IMPOSTOR_READY_S_MAX
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            if all(counters(net, n, client).get(metric, 0.0) for n in honest):
                return
            if impostor is not None and impostor.poll() is not None:
                return
            if progress is None:
                time.sleep(0.25)
            else:
                progress.watch(net, honest, 1.0)


def impostor_failure(process: subprocess.Popen[bytes], log_file: Path) -> str | None:
    """A violation if the impostor exited before it was stopped (it runs longer than any
    observation): its exit status and the last line of its log. A dead impostor attacks
    nobody, and without this a scenario could only say that no attack was seen."""
    if process.poll() is None:
        return None
    lines = [line for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
    last = lines[-1] if lines else "(no output)"
    return f"the impostor exited early with status {process.returncode}: {last} (see {log_file})"


def start_impostor(net: Devnet, name: str, mode: str, seconds: float, log_file: Path) -> subprocess.Popen[bytes]:
    """Stop validator ``name`` and start the Byzantine impostor with its identity."""
    net.kill(name)
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.chaos._byzantine", "--dir", str(net.node(name).node_dir),
             "--mode", mode, "--seconds", str(seconds)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=str(CODE_ROOT))


def stop_impostor(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(IMPOSTOR_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


__all__ = ["IMPOSTOR_READY_S_MAX", "Progress", "counters", "heights", "impostor_failure", "rss_mib",
           "start_impostor", "stop_impostor", "wait_until_counted"]
