"""`imi devnet`: A local consortium of validators as OS processes.

``up`` generates a genesis and keys under ``--dir`` (unless one is there),
starts every validator as its own process (own session, log file
``DIR/logs/<name>.log``), writes ``DIR/pids.json`` and returns once every
validator answers ``/health``. ``status``, ``kill`` (SIGKILL, for crash
tests), ``restart`` and ``down`` act on that directory. Ports are free loopback
ports chosen at generation time, below the kernel's ephemeral range where it is known
(:func:`cli._consortium.free_ports`).

``up --demo`` also starts the demo agencies' issuer services and a demo verifier
(:mod:`cli.demo.devnet_demo`, recorded in ``DIR/demo.json``); ``status`` lists them
(``agencies``, ``verifiers``) and ``down`` stops them before the validators.

:class:`Devnet` is the same as a Python API, used by the tests, the soak test,
the benchmark and ``make run``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import typer

from cli._common import fail, print_json
from cli._consortium import create_consortium
from cli._processes import is_recorded_process, process_identity
from cli.demo.devnet_demo import (
    DEMO_FILE,
    DemoService,
    DemoServices,
    set_up,
    start_again,
    unenrolled_subjects,
)
from cli.demo.issuer_process import remote_enrolment_url
from cli.demo.setup import Site
from ledger.errors import ImiError
from ledger.files import PUBLIC_FILE_MODE, write_atomic

app = typer.Typer(help="A local consortium of validators as OS processes.", no_args_is_help=True)

HEALTH_TIMEOUT_S = 60.0
STOP_GRACE_S = 5.0
SERVICE_HEALTH_TIMEOUT_S = 2.0  # one /health probe of a demo service by ``status``
UP_ERRORS = (RuntimeError, TimeoutError, OSError, ValueError, ImiError)  # what ``up`` reports as one line


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    node_dir: Path
    api: str  # base URL

    @property
    def log_file(self) -> Path:
        return self.node_dir.parent.parent / "logs" / f"{self.name}.log"


def _signal(pid: int, sig: int) -> None:
    """Send ``sig`` to ``pid``; a process that is already gone is not an error."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _stop_all(pids: list[int]) -> None:
    """SIGTERM every live pid, SIGKILL those left after the grace period; wait until all are gone."""
    for pid in pids:
        if _alive(pid):
            _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    for pid in pids:
        while _alive(pid):
            time.sleep(0.02)


def _service_pid(entry: DemoService) -> int | None:
    """A demo service's recorded pid, None if it has none or the pid now names another process."""
    if entry.pid and is_recorded_process(entry.pid, entry.identity):
        return entry.pid
    return None


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap our own exited children
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie that is not our child still answers kill(0)
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


class Devnet:
    """A devnet directory: genesis, node directories, logs and the pids of running validators."""

    def __init__(self, directory: Path, *, code_root: Path | None = None) -> None:
        """``code_root``: the checkout whose code the validators run (default: this one;
        ``python -m bench.ab`` points it at another revision's worktree)."""
        self.dir = directory
        self.code_root = code_root if code_root is not None else Path(__file__).resolve().parent.parent

    # --- layout ----------------------------------------------------------------------
    @property
    def pids_file(self) -> Path:
        return self.dir / "pids.json"

    def nodes(self) -> list[NodeInfo]:
        out = []
        for config_file in sorted((self.dir / "validators").glob("*/node.json")):
            config = json.loads(config_file.read_text())
            out.append(NodeInfo(config["name"], config_file.parent, f"http://{config['api']}"))
        return out

    def node(self, name: str) -> NodeInfo:
        for info in self.nodes():
            if info.name == name:
                return info
        raise KeyError(name)

    def _recorded(self) -> dict[str, tuple[int, str | None]]:
        """``pids.json``: name -> (pid, process identity or None; :mod:`cli._processes`).
        A file written before identities were recorded maps names to bare pids. ValueError
        if the file is not one of those."""
        if not self.pids_file.exists():
            return {}
        out: dict[str, tuple[int, str | None]] = {}
        try:
            for name, entry in json.loads(self.pids_file.read_text()).items():
                pid, identity = (entry["pid"], entry.get("identity")) if isinstance(entry, dict) else (entry, None)
                if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
                    raise ValueError(f"pid of {name!r} is not a positive integer")
                out[name] = (pid, identity if isinstance(identity, str) else None)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{self.pids_file}: not a pids file ({exc})") from exc
        return out

    def pids(self) -> dict[str, int]:
        """The recorded validator pids, leaving out any whose pid now names another process
        (the validator ended and the pid was reused): those are gone, never to be signalled."""
        return {name: pid for name, (pid, identity) in self._recorded().items()
                if is_recorded_process(pid, identity)}

    def _record_pid(self, name: str, pid: int) -> None:
        recorded = self._recorded()
        recorded[name] = (pid, process_identity(pid))
        text = json.dumps({n: {"pid": p, "identity": i} for n, (p, i) in recorded.items()}, indent=2, sort_keys=True)
        write_atomic(self.pids_file, text, mode=PUBLIC_FILE_MODE)

    # --- lifecycle -------------------------------------------------------------------
    def create(self, validators: int = 4, *, heartbeat_ms: int | None = None) -> None:
        if not (self.dir / "genesis.json").exists():
            create_consortium(self.dir, validators=validators, trustees=3, threshold=2,
                              chain_id="imi-devnet", heartbeat_ms=heartbeat_ms, devnet=True)

    def start(self, name: str, env: dict[str, str] | None = None) -> int:
        """Start one validator process (own session); returns its pid."""
        info = self.node(name)
        info.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(info.log_file, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "node", "start", "--dir", str(info.node_dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env={**os.environ, **(env or {})},
                cwd=str(self.code_root),
            )
        self._record_pid(name, process.pid)
        return process.pid

    def up(self, validators: int = 4, *, heartbeat_ms: int | None = None,
           env: dict[str, str] | None = None, timeout_s: float = HEALTH_TIMEOUT_S, demo: bool = False) -> None:
        """Create (if needed) and start every validator; return once all are healthy and
        each holds a committed block (so ``GET /v1/blocks/latest`` answers on every API).
        ``demo``: then start the demo services too (:meth:`up_demo`). On failure everything
        is stopped before the error is raised."""
        self.create(validators, heartbeat_ms=heartbeat_ms)
        try:
            for info in self.nodes():
                if not _alive(self.pids().get(info.name)):
                    self.start(info.name, env)
            self.wait_healthy(height=1, timeout_s=timeout_s)
            if demo:
                self.up_demo()
        except BaseException:
            self.down()
            raise

    def demo(self) -> DemoServices | None:
        """The demo services recorded in ``DIR/demo.json`` (None: this devnet has no demo)."""
        return DemoServices.load(self.dir)

    def up_demo(self) -> DemoServices:
        """Start the demo services over the first validator (running validators required): set
        the demo up the first time (new agencies and verifier on the chain); later, start again
        each recorded service that is not running. A first set-up that fails leaves no record."""
        record = self.demo()
        if record is None:
            record = DemoServices()
            try:
                set_up(Site(self.dir.resolve(), self.nodes()[0].api, self.code_root), record,
                       lambda done: done.save(self.dir))
            except BaseException:
                (self.dir / DEMO_FILE).unlink(missing_ok=True)
                raise
            return record
        start_again(record, [entry for entry in record.all() if not _alive(_service_pid(entry))], self.code_root,
                    lambda done: done.save(self.dir))
        return record

    def wait_healthy(self, names: list[str] | None = None, *, height: int = 0,
                     timeout_s: float = HEALTH_TIMEOUT_S) -> None:
        """Wait until each validator (all, or ``names``) answers ``/health`` with at least
        ``height`` committed blocks."""
        wanted = [n for n in self.nodes() if names is None or n.name in names]
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            for info in wanted:
                while True:
                    if not _alive(self.pids().get(info.name)):
                        raise RuntimeError(f"validator {info.name} exited; see {info.log_file}")
                    try:
                        answer = client.get(f"{info.api}/health")
                        if answer.status_code == 200 and int(answer.json()["height"]) >= height:
                            break
                    except (httpx.HTTPError, ValueError, KeyError, TypeError):
                        pass
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"validator {info.name} not healthy at height {height} "
                                           f"after {timeout_s} s")
                    time.sleep(0.1)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one validator (default: kill -9) and wait for it to be gone."""
        pid = self.pids().get(name)
        if not _alive(pid):
            return
        assert pid is not None
        os.kill(pid, sig)
        deadline = time.monotonic() + STOP_GRACE_S
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)

    def restart(self, name: str, *, kill_signal: int = signal.SIGTERM,
                env: dict[str, str] | None = None) -> int:
        self.kill(name, kill_signal)
        pid = self.start(name, env)
        self.wait_healthy([name])
        return pid

    def down(self) -> None:
        """Stop the demo services, then every validator: SIGTERM, then SIGKILL after a grace
        period. A process already gone (``kill -9``) is skipped; an unreadable ``demo.json``
        does not keep the validators running."""
        try:
            record = self.demo()
        except ValueError:
            record = None
        if record is not None:
            _stop_all([pid for pid in map(_service_pid, record.all()) if pid])
            for entry in record.all():
                entry.pid = entry.identity = None
            record.save(self.dir)
        _stop_all(list(self.pids().values()))
        if self.pids_file.exists():
            self.pids_file.unlink()

    def status(self) -> dict[str, Any]:
        """Per validator: name, pid, api, up, height, state_root, head hash; per demo agency and
        verifier (see :meth:`_agency_status`): name, URL, DID, staff token file, pid, up.
        ValueError if ``demo.json`` or an issuer directory is unreadable."""
        nodes = []
        pids = self.pids()
        with httpx.Client(timeout=2.0) as client:
            for info in self.nodes():
                pid = pids.get(info.name)
                entry: dict[str, Any] = {"name": info.name, "pid": pid, "api": info.api, "up": False,
                                         "height": None, "state_root": None, "block_hash": None}
                if _alive(pid):
                    try:
                        latest = client.get(f"{info.api}/v1/blocks/latest")
                        health = client.get(f"{info.api}/health")
                        entry["up"] = health.status_code == 200
                        entry["height"] = health.json().get("height")
                        if latest.status_code == 200:
                            header = latest.json()["header"]
                            entry.update(height=header["height"], state_root=header["state_root"],
                                         block_hash=header["hash"])
                    except (httpx.HTTPError, ValueError, KeyError):
                        pass
                nodes.append(entry)
            record = self.demo()
            agencies = [] if record is None else [self._agency_status(e, client) for e in record.agencies]
            verifiers = [] if record is None else [self._verifier_status(e, client) for e in record.verifiers]
        return {"dir": str(self.dir), "nodes": nodes, "agencies": agencies, "verifiers": verifiers}

    @staticmethod
    def _service_up(entry: DemoService, client: httpx.Client) -> bool:
        if not _alive(_service_pid(entry)):
            return False
        try:
            return client.get(f"{entry.url}/health", timeout=SERVICE_HEALTH_TIMEOUT_S).status_code == 200
        except httpx.HTTPError:
            return False

    def _agency_status(self, entry: DemoService, client: httpx.Client) -> dict[str, Any]:
        """``subjects``: the register's people not enrolled yet, from the issuer's own store;
        ``remote_enrolment_url``: where a wallet starts a zero-visit enrolment (POST), or None."""
        return {"name": entry.name, "issuer_url": entry.url, "did": entry.did, "vcts": entry.vcts,
                "subjects": unenrolled_subjects(Path(entry.directory)), "admin_token_file": entry.admin_token_file,
                "remote_enrolment_url": remote_enrolment_url(entry.url, entry.args),
                "pid": entry.pid, "up": self._service_up(entry, client)}

    def _verifier_status(self, entry: DemoService, client: httpx.Client) -> dict[str, Any]:
        return {"name": entry.name, "url": entry.url, "did": entry.did, "admin_token_file": entry.admin_token_file,
                "pid": entry.pid, "up": self._service_up(entry, client)}


# --- commands ----------------------------------------------------------------------------
@app.command("up")
def up(
    validators: int = typer.Option(4, "--validators", min=1, max=32, help="Number of validators."),
    directory: Path = typer.Option(Path("devnet"), "--dir", help="Devnet directory."),
    heartbeat_ms: int | None = typer.Option(None, "--heartbeat-ms", min=100, help="Idle block interval."),
    demo: bool = typer.Option(False, "--demo", help="Also start the demo agencies' issuer services (registers "
                              "of fictional people) and a demo verifier allowed to ask every demo claim."),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """Generate (if needed) and start a local devnet; returns when every validator is healthy and holds a block
    (and, with --demo, every demo service answers)."""
    net = Devnet(directory)
    try:
        net.up(validators, heartbeat_ms=heartbeat_ms, demo=demo)
    except UP_ERRORS as exc:
        fail(str(exc), reason="devnet-failed", as_json=as_json)
    _print_status(net, as_json)


@app.command("status")
def status(
    directory: Path = typer.Option(Path("devnet"), "--dir", help="Devnet directory."),
    as_json: bool = typer.Option(False, "--json", help="JSON with `nodes`, and the demo's `agencies` "
                                 "({name, issuer_url, did, vcts, subjects, admin_token_file, "
                                 "remote_enrolment_url, pid, up}) and `verifiers` ({name, url, did, "
                                 "admin_token_file, pid, up})."),
) -> None:
    """Show each validator's pid, API, height and state root, and the demo services (--demo)."""
    if not (directory / "genesis.json").exists():
        fail(f"no devnet in {directory}", reason="not-found", as_json=as_json)
    _print_status(Devnet(directory), as_json)


@app.command("kill")
def kill(
    name: str = typer.Argument(..., help="Validator name (v0, v1, ...)."),
    directory: Path = typer.Option(Path("devnet"), "--dir", help="Devnet directory."),
    as_json: bool = typer.Option(False, "--json", help="Print {ok, name, pid, was_running}."),
) -> None:
    """kill -9 one validator (crash test)."""
    net = Devnet(directory)
    try:
        net.node(name)  # an unknown name is an error, not a silent no-op
        pid = net.pids().get(name)
        was_running = _alive(pid)
        net.kill(name)
    except KeyError:
        fail(f"no validator {name} in {directory}", reason="not-found")
    except ValueError as exc:
        fail(str(exc), reason="bad-devnet-dir")
    if as_json:
        print_json({"ok": True, "name": name, "pid": pid, "was_running": was_running})
    else:
        print(f"killed {name}")


@app.command("restart")
def restart(
    name: str = typer.Argument(..., help="Validator name (v0, v1, ...)."),
    directory: Path = typer.Option(Path("devnet"), "--dir", help="Devnet directory."),
    as_json: bool = typer.Option(False, "--json", help="Print {ok, name, pid, api}."),
) -> None:
    """Stop (SIGTERM) and start one validator; returns when it is healthy."""
    net = Devnet(directory)
    try:
        info = net.node(name)
        pid = net.restart(name)
    except KeyError:
        fail(f"no validator {name} in {directory}", reason="not-found")
    except (RuntimeError, TimeoutError, OSError) as exc:
        fail(str(exc), reason="devnet-failed")
    except ValueError as exc:
        fail(str(exc), reason="bad-devnet-dir")
    if as_json:
        print_json({"ok": True, "name": name, "pid": pid, "api": info.api})
    else:
        print(f"restarted {name} (pid {pid})")


@app.command("down")
def down(
    directory: Path = typer.Option(Path("devnet"), "--dir", help="Devnet directory."),
    as_json: bool = typer.Option(False, "--json", help="Print {ok, dir, stopped, services} (names of the "
                                 "validators and of the demo services that were running)."),
) -> None:
    """Stop the demo services and every validator of the devnet (data stays in DIR)."""
    if not (directory / "genesis.json").exists():
        fail(f"no devnet in {directory}", reason="not-found", as_json=as_json)
    net = Devnet(directory)
    try:
        stopped = sorted(name for name, pid in net.pids().items() if _alive(pid))
    except ValueError as exc:
        fail(str(exc), reason="bad-devnet-dir", as_json=as_json)
    try:
        record = net.demo()
    except ValueError:
        record = None  # down stops the validators all the same
    services = sorted(e.name for e in (record.all() if record else []) if _alive(_service_pid(e)))
    net.down()
    if as_json:
        print_json({"ok": True, "dir": str(directory), "stopped": stopped, "services": services})
    else:
        print("devnet stopped")


def _print_status(net: Devnet, as_json: bool) -> None:
    try:
        report = net.status()
    except ValueError as exc:
        fail(str(exc), reason="bad-devnet-dir", as_json=as_json)
    if as_json:
        print_json(report)
        return
    for entry in report["nodes"]:
        state = "up" if entry["up"] else "DOWN"
        root = (entry["state_root"] or "-")[:16]
        print(f"{entry['name']:6} {state:4} pid={entry['pid']} {entry['api']} "
              f"height={entry['height']} state_root={root}")
    for agency in report["agencies"]:
        print(f"issuer   {'up' if agency['up'] else 'DOWN':4} pid={agency['pid']} {agency['issuer_url']} "
              f"{agency['name']} ({len(agency['subjects'])} not enrolled) token={agency['admin_token_file']}"
              + (f" remote-enrolment={agency['remote_enrolment_url']}" if agency["remote_enrolment_url"] else ""))
    for verifier in report["verifiers"]:
        print(f"verifier {'up' if verifier['up'] else 'DOWN':4} pid={verifier['pid']} {verifier['url']} "
              f"{verifier['name']} token={verifier['admin_token_file']}")
    services = report["agencies"] + report["verifiers"]
    if not all(e["up"] for e in report["nodes"] + services):
        sys.stdout.flush()
        raise typer.Exit(1)
