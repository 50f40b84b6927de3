"""``imi devnet up --demo``: the demo agencies' issuer services and a demo verifier on a devnet.

:func:`set_up` accredits the demo agencies (:mod:`cli.demo.agencies`: did:imi, trustees'
accreditation, credential types published, status lists), starts each agency's issuer
service with its register of fictional people (:mod:`cli.demo.people`) — every agency but
the public security bureau with the same remote enrolment as ``make run`` (it accepts the
bureau's resident identity credential, matched on the national id, and is registered as a
service for that claim; :func:`cli.demo.agencies.remote_enrolment_config`) — and registers a
demo service on the ledger that may ask EVERY claim of every demo credential type
(predicate members such as ``age_equal_or_over.21`` included, :func:`every_claim`), then
starts its verifier service. Scripts then drive them with the CLI alone (``imi issue
offer``, ``imi wallet receive``, ``imi verifier request``, ``imi wallet present``).

What runs is recorded in ``DIR/demo.json`` (:class:`DemoServices`; public: it names token
*files*, never a token), written as each service is spawned, so ``imi devnet down`` stops
even the services of an ``up`` that died half way. Each entry keeps the service's command
line (``--remote-enrolment`` in it gives the agency's ``remote_enrolment_url``):
``imi devnet up --demo`` on a devnet that has a demo starts the same services again
(same directories, ports, DIDs, enrolments) instead of accrediting new agencies.

This module does not import :mod:`cli.devnet` (which imports it); liveness of pids and
stopping them is :class:`cli.devnet.Devnet`'s business.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

from cli._processes import process_identity
from cli.demo.agencies import (
    Agency,
    accredit_agencies,
    agencies_to_accredit,
    launch_issuer_service,
    remote_enrolment_config,
)
from cli.demo.issuer_process import ServiceProcess, spawn_service
from cli.demo.people import register_for
from cli.demo.setup import NodeLedger, Site, open_verifier
from identity.issuer_agent import IssuerConfig, Register
from identity.issuer_store import IssuerStore
from ledger.encoding import Value
from ledger.files import PUBLIC_FILE_MODE, write_atomic

DEMO_FILE: Final = "demo.json"
VERIFIER_SLUG: Final = "demo-verifier"
VERIFIER_NAME: Final[dict[str, Value]] = {"en": "Devnet demo verifier", "zh-CN": "开发网演示核验服务"}
VERIFIER_PURPOSE: Final[dict[str, Value]] = {
    "en": "Scripts and tests on a devnet: may ask any claim the demo agencies issue",
    "zh-CN": "开发网上的脚本与测试：可询问演示机构签发的任何信息",
}


@dataclass
class DemoService:
    """One demo service as ``demo.json`` records it. ``args``: its ``imi`` command line;
    ``pid``: its process while running (None once stopped), ``identity``: that process's
    identity (:func:`cli._processes.process_identity`: a pid reused by another program is
    not this service); ``vcts``: an issuer's types."""

    name: str
    did: str
    url: str
    directory: str
    admin_token_file: str
    args: list[str]
    pid: int | None = None
    vcts: list[str] = field(default_factory=list)
    identity: str | None = None

    @classmethod
    def of(cls, name: str, service: ServiceProcess, vcts: list[str] | None = None) -> DemoService:
        return cls(name, service.did, service.url, str(service.directory.resolve()),
                   str(service.token_file.resolve()), list(service.args), service.process.pid, vcts or [],
                   process_identity(service.process.pid))


@dataclass
class DemoServices:
    """The content of ``DIR/demo.json``: the agencies' issuer services and the verifiers."""

    agencies: list[DemoService] = field(default_factory=list)
    verifiers: list[DemoService] = field(default_factory=list)

    def all(self) -> list[DemoService]:
        return [*self.agencies, *self.verifiers]

    @classmethod
    def load(cls, directory: Path) -> DemoServices | None:
        """The record of ``directory``, None if it has no demo; ValueError if it is unreadable."""
        path = directory / DEMO_FILE
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            return cls([DemoService(**e) for e in data["agencies"]], [DemoService(**e) for e in data["verifiers"]])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a demo record ({exc})") from exc

    def save(self, directory: Path) -> None:
        text = json.dumps({"agencies": [asdict(e) for e in self.agencies],
                           "verifiers": [asdict(e) for e in self.verifiers]}, indent=2, sort_keys=True)
        write_atomic(directory / DEMO_FILE, text, mode=PUBLIC_FILE_MODE)


def every_claim(agencies: list[Agency]) -> list[dict[str, Value]]:
    """Registration queries covering every claim and every predicate member of every type the
    ``agencies`` publish (``[{vct, claims: [["given_name"], ["age_equal_or_over", "18"], ...]}]``)."""
    queries: list[dict[str, Value]] = []
    for agency in agencies:
        for vct, definition in sorted(agency.vcts.items()):
            paths: list[Value] = [[name] for name in definition["claims"]]
            paths += [[predicate, str(t)] for predicate, thresholds in sorted(definition.get("predicates", {}).items())
                      for t in thresholds]
            queries.append({"vct": vct, "claims": paths})
    return queries


def set_up(site: Site, record: DemoServices, save: Callable[[DemoServices], None]) -> None:
    """Accredit the demo agencies, start their issuer services and the demo verifier over
    ``site`` (a running devnet), adding each service to ``record`` and calling ``save`` as
    soon as it is spawned; return once every service answers ``/health``. On failure every
    service started here is stopped before the error is raised (``ScenarioError``,
    ``ImiError`` from the ledger, ``ValueError``, ``OSError``)."""
    ledger = NodeLedger.open(site)
    agencies = agencies_to_accredit()
    accredit_agencies(ledger, agencies)
    launched: list[ServiceProcess] = []
    try:
        for agency in agencies:
            issuer = launch_issuer_service(ledger, agency, register_for(agency),
                                           remote_enrolment_config(agency, agencies))
            launched.append(issuer)
            record.agencies.append(DemoService.of(agency.name, issuer, sorted(agency.vcts)))
            save(record)
        verifier = open_verifier(ledger, slug=VERIFIER_SLUG, name=VERIFIER_NAME, purpose=VERIFIER_PURPOSE,
                                 queries=every_claim(agencies))
        launched.append(verifier)
        record.verifiers.append(DemoService.of(str(VERIFIER_NAME["en"]), verifier))
        save(record)
        for started in launched:
            started.started()
    except BaseException:
        for spawned in launched:
            spawned.stop()
        raise


def start_again(record: DemoServices, entries: list[DemoService], code_root: Path,
                save: Callable[[DemoServices], None]) -> None:
    """Start ``entries`` of ``record`` again with their recorded command lines, side by side,
    each ``pid`` saved as soon as it is spawned; return once they all answer ``/health``. On
    failure (``ScenarioError`` with a log's tail: e.g. a port is taken) every one started
    here is stopped (its pid cleared) before the error is raised."""
    spawned = []
    try:
        for entry in entries:
            directory = Path(entry.directory)
            spawned.append(ServiceProcess(entry.did, directory, entry.url, spawn_service(directory, entry.args, code_root),
                                          "", entry.args))
            entry.pid = spawned[-1].process.pid
            entry.identity = process_identity(entry.pid)
            save(record)
        for service in spawned:
            service.started()
    except BaseException:
        for service in spawned:
            service.stop()
        for entry in entries:
            entry.pid = entry.identity = None
        save(record)
        raise


def unenrolled_subjects(issuer_dir: Path) -> list[str]:
    """The subjects in the issuer's register that its store has no enrolment for (sorted);
    ValueError if the issuer directory is unreadable."""
    config = IssuerConfig.load(issuer_dir)
    register = Register.load(config.register_path)
    if not config.store_path.exists():  # the service never ran: nobody is enrolled (and no file is made)
        return register.subjects()
    store = IssuerStore(config.store_path)
    try:
        return [subject for subject in register.subjects() if store.enrolment(subject) is None]
    finally:
        store.close()


__all__ = [
    "DEMO_FILE",
    "VERIFIER_NAME",
    "DemoService",
    "DemoServices",
    "every_claim",
    "set_up",
    "start_again",
    "unenrolled_subjects",
]
