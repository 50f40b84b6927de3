"""`make run`: the zero-visit story on a local 4-validator consortium, narrated.

Real validator processes (LevelDB, mutual TLS between them) are started with the
``imi devnet`` machinery, and each agency's issuer service with ``imi issue serve``;
then, step by step (:mod:`cli.demo.story` does the work):

1. trustees (2 of 3) accredit a public security bureau and a civil affairs bureau;
   a transaction read from ONE validator is proven against its commit certificate;
2. a citizen creates an encrypted wallet, a did:imi with a pre-committed recovery key,
   and enrols ONCE, at the public security bureau's counter (offer + PIN); the civil affairs
   bureau then issues without a visit (the wallet presents the bureau's identity credential
   over OpenID4VP); three credentials bound to that DID;
3. a community service asks "resident of Chancheng? over 18? no criminal record?" and
   learns exactly that — verified by a light client reading one validator, and by
   ``POST /v1/verify`` on another;
4. one validator is killed (kill -9); the three others keep committing;
5. the bureau suspends, then revokes a credential; verification says why it fails;
6. the phone is lost: the DID is rotated with the recovery kit's key; the credentials
   work again with the new key, and the old key is rejected.

Exit 0 when every step turned out as told. ``--keep`` leaves the consortium running
and prints its URLs (stop it with ``imi devnet down --dir DIR``).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.status import Status
from rich.table import Table

from cli.demo.agencies import NAMES_ZH, STATUS_LIST_SIZE, Accredited, Agency
from cli.demo.citizen import WALLET_PASSWORD, Citizen, Enrolled
from cli.demo.consortium import KILLED, Crash, NodeProof
from cli.demo.counter import CounterOutcome
from cli.demo.errors import ScenarioError
from cli.demo.issuer_process import IssuerProcess, VerifierProcess
from cli.demo.recovery import Recovery
from cli.demo.service import SERVICE_AUD, Outcome, StatusChange, service_requests
from cli.demo.story import Story, check_story, run_story
from ledger.errors import LedgerError

TITLES = {
    "consortium": "1 · The consortium starts; trustees accredit two agencies",
    "citizen": "2 · A citizen: wallet, did:imi, recovery kit; enrolled once at one door, three credentials",
    "verification": "3 · The community sharing service asks three questions",
    "crash": "4 · A validator dies (kill -9); the consortium keeps going",
    "status": "5 · The bureau suspends, then revokes a credential (through its issuer service)",
    "recovery": "6 · The citizen loses the phone and recovers the DID",
}
QUESTIONS = {
    "address.district": "Resident of which district?",
    "age_equal_or_over.18": "Over 18?",
    "no_criminal_record": "No criminal record?",
}
WITHHELD_LABELS = {
    "given_name": "given name", "family_name": "family name", "birthdate": "birth date",
    "national_id": "national ID number", "address.street_address": "street address",
    "checked_on": "date of the record check",
}


def _short(text: str, keep: int = 22) -> str:
    return text if len(text) <= keep + 1 else text[:keep] + "…"


def _answer(value: Any) -> str:
    if value is True:
        return "[green]yes[/]"
    if value is False:
        return "[red]no[/]"
    return f"[green]{value}[/]"


def _verdict(valid: bool, reason: str | None) -> str:
    return "[green]valid[/]" if valid else f"[red]rejected: {reason}[/]"


class Narrator:
    """Renders the scenario's events with rich; one spinner at a time for every wait."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._status: Status | None = None

    @contextlib.contextmanager
    def wait(self, label: str) -> Iterator[None]:
        """A spinner while waiting; nested waits just relabel the running spinner."""
        if self._status is not None:
            self._status.update(f"[cyan]{label}…")
            yield
            return
        self._status = self.console.status(f"[cyan]{label}…", spinner="dots")
        try:
            with self._status:
                yield
        finally:
            self._status = None

    def __call__(self, event: str, result: object) -> None:
        getattr(self, "on_" + event.replace("-", "_"))(result)

    # --- events --------------------------------------------------------------------------------
    def on_step(self, step: object) -> None:
        self.console.print()
        self.console.rule(f"[bold]{TITLES[str(step)]}")

    def on_validators(self, nodes: object) -> None:
        table = Table(title="validators (each its own OS process)", title_justify="left")
        for column in ("name", "pid", "API", "height", "up"):
            table.add_column(column)
        for n in nodes:  # type: ignore[attr-defined]
            table.add_row(n["name"], str(n["pid"]), n["api"], str(n["height"]), "[green]up[/]" if n["up"] else "DOWN")
        self.console.print(table)

    def on_services(self, agencies: list[Agency]) -> None:
        for agency in agencies:
            if agency.service is not None:
                remote = agency.service.remote_enrolment_url
                self.console.print(f"issuer service of {agency.name}: imi issue serve (pid "
                                   f"{agency.service.process.pid}) at {agency.service.url} (OpenID4VCI"
                                   + (f"; remote enrolment at {remote}, registered on the ledger as a service "
                                      "that may ask the resident identity number)" if remote else ")"))

    def on_enrolled(self, enrolled: Enrolled) -> None:
        types = ", ".join(vct.rsplit("/", 2)[-2] for vct in enrolled.vcts)
        zh = NAMES_ZH.get(enrolled.agency, enrolled.agency)
        if enrolled.visit:
            text = (f"[bold]enrolled once, at the counter of {enrolled.agency}[/]: staff made {enrolled.staff_offers} "
                    f"offer(s) with a PIN; the wallet redeemed them → {types}\n"
                    f"[bold]只登记一次：在{zh}柜台[/]，工作人员出示凭证要约和 PIN，钱包领取 → {types}\n"
                    f"enrolment recorded there: {enrolled.subject} → {_short(enrolled.holder, 30)} via {enrolled.via}")
            title, style = "the one visit · 唯一一次到场", "yellow"
        else:
            text = (f"[bold]{enrolled.agency} issued without a visit[/]: imi wallet enrol presented the resident "
                    f"identity over OpenID4VP, sharing only {', '.join(enrolled.shared)}; the agency matched it "
                    f"to its register and offered → {types} (no staff, no PIN)\n"
                    f"[bold]{zh}免到场签发[/]：钱包以 OpenID4VP 出示居民身份凭证，只披露 {', '.join(enrolled.shared)}；"
                    f"核对登记后签发 → {types}（无需工作人员，无需 PIN）\n"
                    f"enrolment recorded there: {enrolled.subject} → {_short(enrolled.holder, 30)} via "
                    f"{_short(enrolled.via, 30)}")
            title, style = "no visit · 免到场", "green"
        self.console.print(Panel(text, title=title, title_align="left", border_style=style))

    def on_agencies(self, acc: Accredited) -> None:
        self.console.print(f"trustees sign governance with [bold]{acc.trustees_signing} of "
                           f"{acc.trustees_total}[/] keys (from the devnet directory)")
        for agency, height in zip(acc.agencies, acc.heights, strict=True):
            types = "\n".join(f"  • {vct}" for vct in agency.vcts)
            self.console.print(Panel(
                f"did:imi     {agency.did}\naccredited  gov.issuer_accredit at height {height}\n"
                f"types       published with vct.publish:\n{types}\n"
                f"status list {agency.list_id} ({STATUS_LIST_SIZE} entries, 2 bits: valid/revoked/suspended)",
                title=agency.name, title_align="left", border_style="blue"))

    def on_proof(self, proof: NodeProof) -> None:
        self.console.print(Panel(
            f"read {proof.tx_type} {proof.tx_id[:16]}… from [bold]{proof.reader}[/] only\n"
            f"  commit certificate: {proof.signers} of {proof.validators} validator signatures "
            f"(> 2/3 of the genesis set) over block {proof.height}  [green]✓[/]\n"
            f"  RFC 9162 inclusion proof: leaf {proof.leaf_index} of {proof.tree_size} under log_root "
            f"{proof.log_root[:16]}…  [green]✓[/]",
            title="a node's answer, checked without trusting the node", title_align="left", border_style="green"))

    def on_citizen(self, citizen: Citizen) -> None:
        self.console.print(Panel(
            f"did:imi        {citizen.did}\n"
            f"phone wallet   {citizen.wallet_path.name} (Argon2id + XSalsa20-Poly1305)\n"
            f"               the DID's current key {_short(citizen.key_id, 12)} and the credentials\n"
            f"backup         {citizen.backup_path.name} (the same encrypted wallet, copied off the phone)\n"
            f"recovery kit   {citizen.kit_path.name} (encrypted, kept off the phone)\n"
            f"               the pre-committed next key {_short(citizen.next_key_id, 12)} "
            f"(the ledger holds only its digest)",
            title="the citizen", title_align="left", border_style="magenta"))
        table = Table(title="credentials received from the issuer services (nonce + proof of possession of "
                            "the DID key; cnf.kid = the DID)", title_justify="left")
        for column in ("credential type", "issuer", "how", "status entry", "anchor on the ledger"):
            table.add_column(column)
        visited = {e.agency: e.visit for e in citizen.enrolments}
        for held in citizen.credentials.values():
            how = "counter" if visited.get(held.issuer) else "no visit"
            table.add_row(held.vct.rsplit("/", 2)[-2], held.issuer, how, f"{held.list_id}#{held.status_idx}",
                          held.anchor[:16] + "…")
        self.console.print(table)

    def _verdicts(self, outcome: Outcome, title: str) -> None:
        table = Table(title=title, title_justify="left")
        for column in ("presentation", "checked by", "verdict"):
            table.add_column(column)
        for v in outcome.verdicts:
            table.add_row(v.vct.rsplit("/", 2)[-2], v.via + (f" (height {v.height})" if v.height else ""),
                          _verdict(v.valid, v.reason))
        self.console.print(table)

    def on_verification(self, outcome: Outcome) -> None:
        request = service_requests()
        self.console.print(Panel(
            f"aud {SERVICE_AUD}, a fresh nonce per question set\n"
            + "\n".join(f"  • {r.vct and next(iter(r.vct)).rsplit('/', 2)[-2]}: "
                        f"{', '.join(r.paths_to_disclose())}" for r in request.values())
            + "\nthe citizen's wallet answers with ONE presentation per credential, disclosing only that",
            title="PresentationRequest", title_align="left", border_style="cyan"))
        self._verdicts(outcome, "verification: light client (proofs from one validator) and POST /v1/verify")
        learned = Table(title="what the service learned", title_justify="left")
        learned.add_column("question")
        learned.add_column("answer")
        for path, question in QUESTIONS.items():
            learned.add_row(question, _answer(outcome.learned.get(path, "—")))
        withheld = Table(title="what it did NOT learn", title_justify="left")
        withheld.add_column("claim in the credentials")
        withheld.add_column("")
        for path, hidden in outcome.withheld.items():
            withheld.add_row(WITHHELD_LABELS.get(path, path), "[yellow]withheld[/]" if hidden else "[red]LEAKED[/]")
        self.console.print(learned)
        self.console.print(withheld)

    def on_counter(self, counter: CounterOutcome) -> None:
        lines = [f"{counter.service} — registered on the ledger by the trustees, with the claims it may ask",
                 "asks ONE question at its counter: a signed OpenID4VP request (DCQL), shown as a QR code:",
                 f"  {_short(counter.request_uri, 72)}",
                 ("the citizen's wallet checked the request's signature with the service's DID key and "
                  "its registration on the ledger, then shared only:")]
        lines += [f"  • {d['vct'].rsplit('/', 2)[-2]}: {', '.join(d['claims'])}" for d in counter.disclosed]
        verdict = counter.verdict
        lines.append("counter's verdict: " + _verdict(bool(verdict.get("valid")), verdict.get("reason")) + "  "
                     + ", ".join(f"{path} = {_answer(value)}" for path, value in counter.learned.items()))
        self.console.print(Panel("\n".join(lines), title="OpenID4VP at the counter", title_align="left",
                                 border_style="cyan"))

    def on_crash(self, crash: Crash) -> None:
        self.console.print(f"[red]kill -9[/] {crash.killed} (pid {crash.pid}); still up: {', '.join(crash.alive)}")
        self.console.print(f"the consortium committed again with 3 of 4: height {crash.height_before} → "
                           f"{crash.height_after}  [green]✓[/]")

    def on_after_crash(self, outcome: Outcome) -> None:
        readers = list(dict.fromkeys(v.via for v in outcome.verdicts))
        state = "[green]all valid[/]" if outcome.all_valid else "[red]FAILED[/]"
        self.console.print(f"verification again via {' and '.join(readers)}: {state}")

    def on_status(self, changes: list[StatusChange]) -> None:
        table = Table(title="status.set on the no-criminal-record credential", title_justify="left")
        for column in ("issuer sets", "at height", "light client", "POST /v1/verify"):
            table.add_column(column)
        for change in changes:
            local, remote = change.verdicts
            table.add_row(change.status, str(change.height), _verdict(local.valid, local.reason),
                          _verdict(remote.valid, remote.reason))
        self.console.print(table)

    def on_recovery(self, rec: Recovery) -> None:
        lines = [f"new phone: {rec.new_wallet.name} restored from the encrypted backup",
                 f"did.rotate signed by the recovery kit's key (DID version {rec.version}, committed by height {rec.height})",
                 (f"  controller key {_short(rec.old_key, 12)} → {_short(rec.new_key, 12)}; "
                  f"a new next key is committed (new kit {rec.new_kit.name})")]
        lines += [f"  {v.vct.rsplit('/', 2)[-2]} with the new key via {v.via}: {_verdict(v.valid, v.reason)}"
                  for v in rec.verdicts_new_key]
        old = rec.verdict_old_key
        lines.append(f"  the lost phone's answer (old key) via {old.via}: {_verdict(old.valid, old.reason)}")
        self.console.print(Panel("\n".join(lines), title="recovery by pre-rotation", title_align="left",
                                 border_style="magenta"))


def summary(console: Console, story: Story) -> bool:
    """The closing table; True when every step is OK."""
    checks = check_story(story)
    table = Table(title="zero-visit story", title_justify="left")
    for column in ("step", "what", "OK", "s"):
        table.add_column(column)
    for i, check in enumerate(checks, 1):
        ran = check.step in story.timings_s
        mark = "[green]OK[/]" if check.ok else ("[red]FAIL[/]" if ran else "[dim]not run[/]")
        table.add_row(str(i), check.summary, mark, f"{story.timings_s.get(check.step, 0):.1f}")
    console.print()
    console.print(table)
    if story.error:
        console.print(f"[red]stopped: {story.error}")
    return story.error is None and all(check.ok for check in checks)


def _kept(console: Console, story: Story) -> None:
    directory = story.consortium.net.dir
    lines = [f"{name}  API {api}   docs {api}/docs" for name, api in story.consortium.apis.items()
             if name != KILLED]
    lines.append(f"{KILLED}  killed in step 4; restart it with: imi devnet restart {KILLED} --dir {directory}")
    live = next(api for name, api in story.consortium.apis.items() if name != KILLED)
    for service in story.consortium.services:
        kind = "counter page" if isinstance(service, VerifierProcess) else "issuer service"
        where = f"{service.url}/counter" if kind == "counter page" else f"{service.url}/docs"
        lines.append(f"{kind} {where} (pid {service.process.pid}; staff token in {service.directory})")
        remote = service.remote_enrolment_url if isinstance(service, IssuerProcess) else None
        if remote:
            lines.append(f"  enrol without a visit: imi wallet enrol \"$(curl -s -X POST {remote} | jq -r .request_uri)\"")
    if story.citizen is not None:
        lines.append(f"wallet app: imi wallet serve --wallet {story.citizen.wallet_path} --node {live} "
                     f"--genesis {directory / 'genesis.json'}   (demo password {WALLET_PASSWORD!r})")
    pids = " ".join(str(s.process.pid) for s in story.consortium.services)
    lines.append(f"stop the services: kill {pids}" if pids else "(no service left running)")
    lines.append(f"audit the chain: imi ledger audit --node {live} --genesis {directory / 'genesis.json'}")
    lines.append(f"stop everything: imi devnet down --dir {directory}   (or .venv/bin/imi …)")
    console.print(Panel("\n".join(lines), title="the consortium is still running", title_align="left"))


def demo(directory: Path, workdir: Path, *, keep: bool, fast: bool, console: Console | None = None) -> int:
    console = console or Console()
    narrator = Narrator(console)
    console.rule("[bold]imi — zero visit: a citizen proves residence, age and a clean record remotely")
    started = time.monotonic()
    try:
        story = run_story(directory, workdir, narrate=narrator, wait=narrator.wait, fast=fast, keep=keep)
    except (RuntimeError, TimeoutError, OSError, ScenarioError, LedgerError) as exc:
        console.print(f"[red]the consortium did not start: {exc}")
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; all validators stopped")
        return 130
    ok = summary(console, story)
    console.print(f"total {time.monotonic() - started:.1f} s")
    if keep and ok:
        _kept(console, story)
    else:
        console.print("all validators stopped")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cli.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave the consortium running, print its URLs")
    parser.add_argument("--dir", type=Path, default=None, help="devnet directory (default: a temporary one)")
    parser.add_argument("--fast", action="store_true", help="cheapest wallet KDF (tests and quick looks)")
    args = parser.parse_args(argv)
    if args.dir is not None:
        citizen = args.dir / f"citizen-{int(time.time())}"  # a rerun on the same devnet: a new citizen
        return demo(args.dir, citizen, keep=args.keep, fast=args.fast)
    if args.keep:
        base = Path(tempfile.mkdtemp(prefix="imi-devnet-"))
        return demo(base / "devnet", base / "citizen", keep=True, fast=args.fast)
    with tempfile.TemporaryDirectory(prefix="imi-devnet-") as tmp:
        return demo(Path(tmp) / "devnet", Path(tmp) / "citizen", keep=False, fast=args.fast)


