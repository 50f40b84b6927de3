"""The demo's product services, run as a deployment runs them: each its own OS process (own
session) on a free loopback port, and the demo waits for its ``/health``.

* An agency's issuer service: ``imi issue init`` writes the issuer directory, ``imi issue
  serve`` serves it. The directory holds the issuer's assertion key (mode 0600), its
  register (what the agency knows about its subjects), the admin token of the staff
  endpoints (mode 0600), the issuer's store (``issuer.sqlite``: enrolments and issued
  records) and the service's log (``serve.log``).
* A registered service's verifier: ``imi verifier serve`` with the service DID's key
  (``service_key.jwk``, 0600) and its staff token (``staff_token``, 0600).

``launch_*`` spawns without waiting (so several services can start side by side);
``start_*`` also waits for health. :meth:`ServiceProcess.stop` ends the process (SIGTERM,
then SIGKILL after a grace period); a process that does not become healthy is stopped
before the error is raised. ``ServiceProcess.args`` is the service's command line, so it
can be started again on the same port (``imi devnet up --demo`` after ``down``).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Self

import httpx

from cli._consortium import LOOPBACK, free_ports
from cli.demo.errors import ScenarioError
from identity.http.remote_enrolment import PATH as REMOTE_ENROLMENT_PATH
from identity.issuer_agent import IssuerConfig
from identity.issuer_store import Enrolment, IssuerStore
from ledger.files import write_atomic
from ledger.keys import SigningKey

ISSUER_START_TIMEOUT_S: Final = 60.0  # python start-up and imports on a loaded machine included
ISSUER_STOP_GRACE_S: Final = 5.0
ISSUER_INIT_TIMEOUT_S: Final = 60.0
STATUS_HTTP_TIMEOUT_S: Final = 40.0  # a status action waits for its commit
HEALTH_HTTP_TIMEOUT_S: Final = 2.0  # one /health probe
HEALTH_POLL_S: Final = 0.1
LOG_TAIL_CHARS_MAX: Final = 600  # of the service's log, quoted when it failed to start
TOKEN_FILE: Final = "admin_token"  # the staff bearer token, in the service's directory (0600)
REMOTE_ENROLMENT_FILE: Final = "remote_enrolment.json"  # ``--remote-enrolment``, in the issuer directory
REMOTE_ENROLMENT_FLAG: Final = "--remote-enrolment"


@dataclass
class ServiceProcess:
    """A product service (``imi … serve``) running as its own OS process, logging to
    ``directory/serve.log``: wait for its health, stop it."""

    did: str
    directory: Path
    url: str
    process: subprocess.Popen[bytes]
    admin_token: str
    args: list[str] = field(default_factory=list)  # ``imi`` arguments that start it again

    @property
    def token_file(self) -> Path:
        return self.directory / TOKEN_FILE

    @property
    def log_file(self) -> Path:
        return self.directory / "serve.log"

    def wait_healthy(self, timeout_s: float = ISSUER_START_TIMEOUT_S) -> None:
        wait_for_health(self.url, self.process, log_file=self.log_file, timeout_s=timeout_s,
                        what=type(self).__name__)

    def started(self) -> Self:
        """Wait for health; on failure stop the process before the error is raised."""
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM the service's process group, SIGKILL after the grace period; wait for it."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=ISSUER_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def wait_for_health(url: str, process: subprocess.Popen[bytes], *, log_file: Path | None = None,
                    timeout_s: float = ISSUER_START_TIMEOUT_S, what: str = "service") -> None:
    """Return once ``url/health`` answers 200; :class:`ScenarioError` if ``process`` exits first
    (quoting the tail of ``log_file``) or ``timeout_s`` passes. The process is left as it is."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=HEALTH_HTTP_TIMEOUT_S) as http:
        while True:
            if process.poll() is not None:
                raise ScenarioError(what, f"{url} exited ({process.returncode}): {_log_tail(log_file)}")
            try:
                if http.get(f"{url}/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ScenarioError(what, f"{url} not healthy after {timeout_s} s")
            time.sleep(HEALTH_POLL_S)


def _log_tail(log_file: Path | None) -> str:
    if log_file is None:
        return "(no log)"
    try:
        return log_file.read_text(errors="replace")[-LOG_TAIL_CHARS_MAX:].strip()
    except OSError:
        return "(no log)"


def spawn_service(directory: Path, args: list[str], code_root: Path) -> subprocess.Popen[bytes]:
    """``python -m cli.main ARGS`` in its own session, output to ``directory/serve.log``."""
    with open(directory / "serve.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "cli.main", *args], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=code_root)


@dataclass
class IssuerProcess(ServiceProcess):
    """A running ``imi issue serve`` for the issuer directory ``directory``; ``offers_made``
    counts the staff offers made through :meth:`offer`."""

    offers_made: int = 0

    @property
    def remote_enrolment_url(self) -> str | None:
        """Where a wallet starts a zero-visit enrolment (``POST``), None if the service does not
        enrol remotely (its command line has no ``--remote-enrolment``)."""
        return remote_enrolment_url(self.url, self.args)

    def start_remote_enrolment(self) -> str:
        """``POST /remote-enrolment``, as the citizen's wallet app does: the ``openid4vp://`` URI."""
        if self.remote_enrolment_url is None:
            raise ScenarioError("remote enrolment", f"{self.url} does not enrol remotely")
        with httpx.Client(timeout=STATUS_HTTP_TIMEOUT_S) as http:
            response = http.post(self.remote_enrolment_url)
        if response.status_code != 200:
            raise ScenarioError("remote enrolment", f"issuer answered HTTP {response.status_code}: "
                                                    f"{response.text[:200]}")
        return str(response.json()["request_uri"])

    def records(self) -> list[dict[str, Any]]:
        """The agency's own records of what it issued (index, vct, subject, anchor, salt)."""
        store = IssuerStore(IssuerConfig.load(self.directory).store_path)
        try:
            return store.all()
        finally:
            store.close()

    def enrolment(self, subject: str) -> Enrolment | None:
        """The agency's own record of whom it enrolled as ``subject``, and how (``via``)."""
        store = IssuerStore(IssuerConfig.load(self.directory).store_path)
        try:
            return store.enrolment(subject)
        finally:
            store.close()

    def offer(self, subject: str, vcts: list[str]) -> tuple[str, str | None]:
        """``POST /v1/admin/offers`` as the agency's staff, one offer for ``vcts``: (offer URI, PIN)."""
        with httpx.Client(timeout=STATUS_HTTP_TIMEOUT_S) as http:
            response = http.post(f"{self.url}/v1/admin/offers", json={"subject": subject, "vcts": vcts},
                                 headers={"Authorization": f"Bearer {self.admin_token}"})
        if response.status_code != 200:
            raise ScenarioError("offer", f"issuer answered HTTP {response.status_code}: {response.text[:200]}")
        self.offers_made += 1
        return str(response.json()["offer_uri"]), response.json()["tx_code"]

    def status(self, action: str, idx: int) -> int:
        """``POST /v1/issuance/<action>`` as the agency's staff; returns the commit height."""
        with httpx.Client(timeout=STATUS_HTTP_TIMEOUT_S) as http:
            response = http.post(f"{self.url}/v1/issuance/{action}", json={"idx": idx},
                                 headers={"Authorization": f"Bearer {self.admin_token}"})
        if response.status_code != 200:
            raise ScenarioError("status", f"issuer {action} answered HTTP {response.status_code}: "
                                          f"{response.text[:200]}")
        return int(response.json()["height"])


def remote_enrolment_url(url: str, args: list[str]) -> str | None:
    """The remote enrolment endpoint of an issuer service at ``url`` started with ``args``."""
    return url + REMOTE_ENROLMENT_PATH if REMOTE_ENROLMENT_FLAG in args else None


def _imi(code_root: Path, *args: str) -> None:
    """Run one ``imi`` command to completion; ScenarioError with its one-line reason if it fails."""
    done = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=code_root, capture_output=True,
                          text=True, timeout=ISSUER_INIT_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise ScenarioError("issuer service", f"imi {' '.join(args[:2])}: {done.stderr.strip()[-300:]}")


def _new_token(directory: Path) -> str:
    token = secrets.token_urlsafe(24)
    write_atomic(directory / TOKEN_FILE, token + "\n")
    return token


def launch_issuer_process(directory: Path, *, did: str, key: SigningKey, list_id: str,
                          register: Mapping[str, Any], node: str, genesis: Path, code_root: Path,
                          remote_enrolment: Mapping[str, Any] | None = None) -> IssuerProcess:
    """Write the issuer directory (``imi issue init``) and spawn ``imi issue serve`` over ``node``
    (trusting ``genesis``) on a free loopback port; not waited for (:meth:`ServiceProcess.started`).
    ``remote_enrolment``: the JSON form of :class:`identity.remote_enrolment.RemoteEnrolmentConfig`,
    written to the directory and served with ``--remote-enrolment``."""
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / "issuer_key.jwk", json.dumps(key.to_private_jwk()))
    write_atomic(directory / "register.json", json.dumps(register))
    token = _new_token(directory)
    _imi(code_root, "issue", "init", "--issuer-dir", str(directory), "--did", did,
         "--key", str(directory / "issuer_key.jwk"), "--list-id", list_id,
         "--register", str(directory / "register.json"))
    port = free_ports(1)[0]
    args = ["issue", "serve", "--issuer-dir", str(directory), "--node", node, "--genesis", str(genesis),
            "--host", LOOPBACK, "--port", str(port), "--admin-token-file", str(directory / TOKEN_FILE)]
    if remote_enrolment is not None:
        write_atomic(directory / REMOTE_ENROLMENT_FILE, json.dumps(remote_enrolment))
        args += [REMOTE_ENROLMENT_FLAG, str(directory / REMOTE_ENROLMENT_FILE)]
    return IssuerProcess(did, directory, f"http://{LOOPBACK}:{port}", spawn_service(directory, args, code_root),
                         token, args)


def start_issuer_process(directory: Path, *, did: str, key: SigningKey, list_id: str,
                         register: Mapping[str, Any], node: str, genesis: Path,
                         code_root: Path) -> IssuerProcess:
    """:func:`launch_issuer_process`, returning once it answers ``/health``."""
    service = launch_issuer_process(directory, did=did, key=key, list_id=list_id, register=register, node=node,
                                    genesis=genesis, code_root=code_root)
    service.started()
    return service


@dataclass
class VerifierProcess(ServiceProcess):
    """A running ``imi verifier serve`` for a registered service (its counter page at ``/counter``)."""


def launch_verifier_process(directory: Path, *, did: str, key: SigningKey, node: str, genesis: Path,
                            code_root: Path) -> VerifierProcess:
    """Write the service's key and staff token to ``directory`` and spawn ``imi verifier serve``
    for ``did`` (registered on the ledger) over ``node``; not waited for."""
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / "service_key.jwk", json.dumps(key.to_private_jwk()))
    token = _new_token(directory)
    port = free_ports(1)[0]
    args = ["verifier", "serve", "--did", did, "--key", str(directory / "service_key.jwk"), "--node", node,
            "--genesis", str(genesis), "--host", LOOPBACK, "--port", str(port),
            "--token-file", str(directory / TOKEN_FILE)]
    return VerifierProcess(did, directory, f"http://{LOOPBACK}:{port}", spawn_service(directory, args, code_root),
                           token, args)


__all__ = [
    "REMOTE_ENROLMENT_FILE",
    "TOKEN_FILE",
    "IssuerProcess",
    "ServiceProcess",
    "VerifierProcess",
    "launch_issuer_process",
    "launch_verifier_process",
    "remote_enrolment_url",
    "spawn_service",
    "start_issuer_process",
]
