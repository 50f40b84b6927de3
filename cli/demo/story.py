"""The zero-visit story, step by step, as plain functions over the library and the product's
services (``make run`` narrates it; ``tests/test_flow_zero_visit.py`` asserts it).

Each step takes the state built by the previous ones and returns a small structured
result, so :mod:`cli.demo.narration` can narrate it and a test can assert it without any
terminal output:

1. consortium — 4 validators (:mod:`cli.demo.consortium`); two agencies accredited
   (:mod:`cli.demo.agencies`); a transaction read from ONE validator proven against its
   commit certificate;
2. citizen — wallet, did:imi, recovery kit; the agencies' issuer services started as
   ``imi issue serve`` processes; enrolled ONCE, at the public security bureau's counter
   (offer + PIN: identity and record); the civil affairs bureau then issues the residence
   credential without a visit (remote enrolment: ``imi wallet enrol`` presents the bureau's
   identity credential over OpenID4VP) (:mod:`cli.demo.citizen`);
3. verification — the community service, registered on the ledger, asks its three questions
   as one OpenID4VP request at its counter (:mod:`cli.demo.counter`); the wallet checks the
   request against the ledger and shares only the answers; each answer is also checked by a
   light client reading one validator and by ``POST /v1/verify`` (:mod:`cli.demo.service`);
4. crash — ``kill -9`` one validator; the consortium keeps committing;
5. status — the bureau suspends, then revokes; verification says why it fails;
6. recovery — the phone is lost; the DID is rotated with the recovery kit's key
   (:mod:`cli.demo.recovery`).

Nothing here prints.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cli.demo.agencies import (
    CIVIL_RESIDENCE_VCT,
    PSB_IDENTITY_VCT,
    PSB_RECORD_VCT,
    Accredited,
    accredit_agencies,
)
from cli.demo.citizen import Citizen, onboard_citizen
from cli.demo.consortium import (
    KILLED,
    REMOTE_VERIFIER,
    SERVICE_READER,
    WRITER,
    Consortium,
    Crash,
    Narrate,
    NodeProof,
    Wait,
    consortium_status,
    kill_validator,
    no_wait,
    node_proof,
    silent,
    start_consortium,
)
from cli.demo.counter import QUESTION_PATHS, CounterOutcome, ask_at_counter, open_counter
from cli.demo.recovery import Recovery, recover_did
from cli.demo.service import Outcome, StatusChange, ask_and_verify, suspend_then_revoke
from ledger.errors import ImiError

STEPS = ("consortium", "citizen", "verification", "crash", "status", "recovery")


@dataclass(frozen=True, slots=True)
class StepCheck:
    """One step's verdict for the summary: did it turn out as the story says?"""

    step: str
    ok: bool
    summary: str



@dataclass
class Story:
    """Every step's result, in order; filled by :func:`run_story`."""

    consortium: Consortium
    proof: NodeProof | None = None
    accredited: Accredited | None = None
    citizen: Citizen | None = None
    verification: Outcome | None = None
    counter: CounterOutcome | None = None
    crash: Crash | None = None
    after_crash: list[Outcome] = field(default_factory=list)
    status_changes: list[StatusChange] = field(default_factory=list)
    recovery: Recovery | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    error: str | None = None




@contextlib.contextmanager
def _timed(story: Story, step: str, narrate: Narrate) -> Iterator[None]:
    narrate("step", step)
    start = time.monotonic()
    try:
        yield
    finally:
        story.timings_s[step] = round(time.monotonic() - start, 2)


def _step_consortium(story: Story, narrate: Narrate) -> None:
    c = story.consortium
    narrate("validators", consortium_status(c))
    story.accredited = accredit_agencies(c)
    narrate("agencies", story.accredited)
    story.proof = node_proof(c, story.accredited.accreditation_txs[0], SERVICE_READER)
    narrate("proof", story.proof)


def _step_crash(story: Story, narrate: Narrate) -> None:
    c, citizen = story.consortium, story.citizen
    assert citizen is not None
    story.crash = kill_validator(c, KILLED)
    narrate("crash", story.crash)
    for reader, remote in ((SERVICE_READER, REMOTE_VERIFIER), (REMOTE_VERIFIER, WRITER)):
        outcome = ask_and_verify(c, citizen.phone(), reader=reader, remote=remote)
        story.after_crash.append(outcome)
        narrate("after-crash", outcome)


def _check_consortium(story: Story) -> StepCheck:
    acc, proof = story.accredited, story.proof
    ok = acc is not None and len(acc.agencies) == 2 and proof is not None and 3 * proof.signers > 2 * proof.validators
    return StepCheck("consortium", ok, "4 validators up; 2 agencies accredited by 2-of-3 trustees; "
                                       "a tx read from one node proven against its certificate")


def _check_citizen(story: Story) -> StepCheck:
    citizen, acc = story.citizen, story.accredited
    ok = citizen is not None and acc is not None and len(citizen.credentials) == 3
    if ok and citizen is not None and acc is not None:
        psb = acc.agencies[0]
        visits = [(e.agency, e.via, e.holder) for e in citizen.enrolments if e.visit]
        remote = [(e.via, e.holder, e.shared) for e in citizen.enrolments if not e.visit]
        ok = (visits == [(psb.name, "offer", citizen.did)]
              and remote == [(f"remote:{psb.did}", citizen.did, ("national_id",))] * (len(acc.agencies) - 1))
    return StepCheck("citizen", ok, "encrypted wallet, did:imi with a pre-committed recovery key; enrolled once "
                                    "at the bureau's counter (offer + PIN), civil affairs issues without a "
                                    "visit (remote enrolment); 3 DID-bound credentials")


def _check_outcome(outcome: Outcome | None) -> bool:
    return (outcome is not None and outcome.all_valid and len(outcome.verdicts) == 6
            and outcome.learned == {"address.district": "Chancheng", "age_equal_or_over.18": True,
                                    "no_criminal_record": True}
            and all(outcome.withheld.values()))


def _check_counter(counter: CounterOutcome | None) -> bool:
    expected = {"address.district": "Chancheng", "age_equal_or_over.18": True, "no_criminal_record": True}
    shared = sorted(path for d in (counter.disclosed if counter else []) for path in d["claims"])
    return (counter is not None and counter.verdict.get("valid") is True and counter.learned == expected
            and shared == sorted(".".join(p) for p in QUESTION_PATHS.values()))


def _check_crash(story: Story) -> StepCheck:
    crash = story.crash
    ok = (crash is not None and crash.killed not in crash.alive and crash.height_after > crash.height_before
          and len(story.after_crash) == 2 and all(_check_outcome(o) for o in story.after_crash))
    return StepCheck("crash", ok, "kill -9 one validator; 3 of 4 keep committing; verification still "
                                  "succeeds (two readers)")


def _check_status(story: Story) -> StepCheck:
    got = [(change.status, {v.reason for v in change.verdicts}) for change in story.status_changes]
    ok = got == [("suspended", {"suspended"}), ("revoked", {"revoked"})]
    return StepCheck("status", ok, "suspended → reason suspended; revoked → reason revoked")


def _check_recovery(story: Story) -> StepCheck:
    rec = story.recovery
    ok = (rec is not None and rec.new_key != rec.old_key and all(v.valid for v in rec.verdicts_new_key)
          and not rec.verdict_old_key.valid)
    return StepCheck("recovery", ok, "did.rotate by the recovery kit; credentials verify with the new "
                                     "key; the old key is rejected")


def check_story(story: Story) -> list[StepCheck]:
    """Every step's verdict, in order (a step that did not run is not OK)."""
    return [_check_consortium(story), _check_citizen(story),
            StepCheck("verification", _check_counter(story.counter) and _check_outcome(story.verification),
                      "a registered service asks over OpenID4VP; the wallet checks it on the ledger; "
                      "the counter's verdict holds only the 3 answers, also verified by a light client "
                      "and POST /v1/verify"),
            _check_crash(story), _check_status(story), _check_recovery(story)]


def run_story(directory: Path, workdir: Path, *, narrate: Narrate = silent, wait: Wait = no_wait,
              fast: bool = False, keep: bool = False) -> Story:
    """Run steps 1–6 on a new devnet in ``directory`` (citizen files in ``workdir``).

    ``narrate(event, result)`` is called when a step begins (``"step"``, its name) and after
    each part of it; ``wait(label)`` wraps every wait. A step that raises ends the story:
    ``story.error`` says which and why (the summary shows the rest as not run). The devnet
    is stopped at the end — on success, failure or Ctrl-C — unless ``keep`` and every step
    ran. Only a devnet that cannot start raises (``RuntimeError``, ``TimeoutError``, ``OSError``,
    :class:`ScenarioError`, ``LedgerError`` for a bad genesis); it is stopped first.
    """
    narrate("step", "consortium")
    started = time.monotonic()
    story = Story(start_consortium(directory, wait=wait))
    start_s = time.monotonic() - started
    try:
        _run_steps(story, workdir, narrate, fast)
    except (ImiError, httpx.HTTPError, KeyError, ValueError) as exc:  # ScenarioError among them
        story.error = f"{type(exc).__name__}: {exc}"
    finally:
        if "consortium" in story.timings_s:  # step 1 includes starting the validators
            story.timings_s["consortium"] = round(story.timings_s["consortium"] + start_s, 2)
        kept = keep and story.error is None and story.recovery is not None
        story.consortium.close(keep_services=kept)
        if not kept:
            with wait("stopping the validators"):
                story.consortium.net.down()
    return story


def _run_steps(story: Story, workdir: Path, narrate: Narrate, fast: bool) -> None:
    c = story.consortium
    with _timed(story, "consortium", silent):
        _step_consortium(story, narrate)
    assert story.accredited is not None
    psb, civil = story.accredited.agencies
    with _timed(story, "citizen", narrate):
        story.citizen = onboard_citizen(c, [psb, civil], workdir, fast=fast, narrate=narrate)
        narrate("citizen", story.citizen)
    with _timed(story, "verification", narrate):
        story.counter = ask_at_counter(c, open_counter(c), story.citizen)
        narrate("counter", story.counter)
        story.verification = ask_and_verify(c, story.citizen.phone(), reader=SERVICE_READER,
                                            remote=REMOTE_VERIFIER)
        narrate("verification", story.verification)
    with _timed(story, "crash", narrate):
        _step_crash(story, narrate)
    with _timed(story, "status", narrate):
        story.status_changes = suspend_then_revoke(c, psb, story.citizen, PSB_RECORD_VCT,
                                                   reader=SERVICE_READER, remote=REMOTE_VERIFIER)
        narrate("status", story.status_changes)
    with _timed(story, "recovery", narrate):
        story.recovery = recover_did(c, story.citizen, workdir, reader=SERVICE_READER, remote=REMOTE_VERIFIER,
                                     vcts=[CIVIL_RESIDENCE_VCT, PSB_IDENTITY_VCT], fast=fast)
        narrate("recovery", story.recovery)


__all__ = ["STEPS", "StepCheck", "Story", "check_story", "run_story"]
