"""The zero-visit story of `make run` (the cli.demo package) on a real 4-validator devnet,
with the agencies' issuer services as `imi issue serve` processes.

One run of :func:`cli.demo.story.run_story` (cheapest wallet KDF) feeds every test here;
each test asserts one step's outcome: the accreditation and a node's answer proven
against its certificate, the citizen's DID-bound credentials, the one visit (offers with a
PIN at the bureau's counter) and the enrolment without a visit at civil affairs (its store's
enrolment ``via remote:<bureau DID>``, no staff offer there), the minimal-disclosure
verdicts (local light client and POST /v1/verify) with the withheld claims absent from
everything the verifier received, the crash of one validator, the status reasons
``suspended`` and ``revoked``, and recovery by the pre-committed key.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.demo import agencies, consortium, service
from cli.demo import story as sc
from cli.demo.citizen import CITIZEN
from cli.devnet import _alive

pytestmark = pytest.mark.xdist_group("devnet")

STORY_TIME_S_MAX = 120


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sc.Story]:
    base = tmp_path_factory.mktemp("zero-visit")
    started = time.monotonic()
    result = sc.run_story(base / "devnet", base / "citizen", fast=True)
    result.timings_s["total"] = time.monotonic() - started
    yield result


def test_every_step_turns_out_as_told(story: sc.Story) -> None:
    assert story.error is None, story.error
    checks = sc.check_story(story)
    assert [c.step for c in checks] == list(sc.STEPS)
    assert [c.step for c in checks if not c.ok] == []
    assert story.timings_s["total"] < STORY_TIME_S_MAX, story.timings_s


def test_the_devnet_is_stopped_afterwards(story: sc.Story) -> None:
    net = story.consortium.net
    assert net.pids() == {}
    assert story.consortium.services == []  # the issuer services are stopped too
    assert story.accredited is not None
    services = [agency.service for agency in story.accredited.agencies]
    assert all(s is not None for s in services) and len(services) == 2
    # each ran as its own `imi issue serve` process, now ended
    assert all(s.process.returncode is not None and s.process.pid != os.getpid() for s in services if s)
    assert not any(_alive(s.process.pid) for s in services if s)
    pids = [entry["pid"] for entry in consortium.consortium_status(story.consortium)]
    assert not any(_alive(pid) for pid in pids)


def test_two_agencies_accredited_and_a_read_proven(story: sc.Story) -> None:
    assert story.accredited is not None and story.proof is not None
    assert [a.name for a in story.accredited.agencies] == ["Foshan Public Security Bureau",
                                                           "Foshan Civil Affairs Bureau"]
    assert story.accredited.trustees_signing == 2 and story.accredited.trustees_total == 3
    assert story.proof.tx_type == "gov.issuer_accredit" and story.proof.reader == consortium.SERVICE_READER
    assert 3 * story.proof.signers > 2 * story.proof.validators


def test_the_citizen_holds_three_did_bound_credentials(story: sc.Story) -> None:
    citizen = story.citizen
    assert citizen is not None
    assert set(citizen.credentials) == {agencies.PSB_IDENTITY_VCT, agencies.PSB_RECORD_VCT, agencies.CIVIL_RESIDENCE_VCT}
    for held in citizen.credentials.values():  # issued through the service, anchored by the issuer
        assert len(bytes.fromhex(held.anchor)) == 32 and 0 <= held.status_idx < agencies.STATUS_LIST_SIZE
    assert len({(h.list_id, h.status_idx) for h in citizen.credentials.values()}) == 3
    for outcome in (story.verification, *story.after_crash):
        assert outcome is not None
        assert {v.disclosed["cnf"]["kid"] for v in outcome.verdicts} == {citizen.did}


def test_enrolled_once_at_the_bureau_and_without_a_visit_at_civil_affairs(story: sc.Story) -> None:
    assert story.accredited is not None and story.citizen is not None
    psb, civil = story.accredited.agencies
    assert psb.service is not None and civil.service is not None
    assert civil.service.remote_enrolment_url is not None and psb.service.remote_enrolment_url is None
    # the agencies' own stores (they outlive the services): how each came to know the citizen's DID
    door = psb.service.enrolment(CITIZEN.national_id)
    remote = civil.service.enrolment(CITIZEN.residence_file)
    assert door is not None and (door.kind, door.holder, door.via) == ("did", story.citizen.did, "offer")
    assert remote is not None and (remote.kind, remote.holder) == ("did", story.citizen.did)
    assert remote.via == f"remote:{psb.did}"
    # staff made one offer (with a PIN, both of the bureau's types) at the bureau only; civil
    # affairs issued without one
    assert (psb.service.offers_made, civil.service.offers_made) == (1, 0)
    assert [(e.agency, e.visit, e.shared) for e in story.citizen.enrolments] == [
        (psb.name, True, ()), (civil.name, False, ("national_id",))]
    residence = story.citizen.credentials[agencies.CIVIL_RESIDENCE_VCT]
    assert [(r["subject"], r["idx"]) for r in civil.service.records()] == [(CITIZEN.residence_file,
                                                                             residence.status_idx)]
    # the presented identity claims are compared, never kept
    kept = b"".join(p.read_bytes() for p in civil.service.directory.glob("issuer.sqlite*"))
    assert kept and CITIZEN.national_id.encode() not in kept


def test_the_service_learns_the_answers_and_nothing_else(story: sc.Story) -> None:
    outcome = story.verification
    assert outcome is not None and outcome.all_valid
    vias = {v.via for v in outcome.verdicts}
    assert vias == {f"light client ← {consortium.SERVICE_READER}", f"POST /v1/verify @ {consortium.REMOTE_VERIFIER}"}
    assert outcome.learned == {"address.district": "Chancheng", "age_equal_or_over.18": True,
                               "no_criminal_record": True}
    assert outcome.withheld == dict.fromkeys(service.WITHHELD_PATHS, True)
    received = json.dumps([dict(v.disclosed) for v in outcome.verdicts], ensure_ascii=False)
    for secret in ("Mei", "Li\"", "1990-06-15", "440604199006150021", "Zumiao", "2026-11-01", "birthdate",
                   "given_name", "national_id", "street_address"):
        assert secret not in received, f"{secret!r} reached the verifier"


def test_a_killed_validator_does_not_stop_the_consortium(story: sc.Story) -> None:
    crash = story.crash
    assert crash is not None
    assert crash.killed == consortium.KILLED and sorted(crash.alive) == sorted({"v0", "v1", "v2", "v3"} - {consortium.KILLED})
    assert crash.height_after > crash.height_before
    readers = [{v.via for v in o.verdicts} for o in story.after_crash]
    assert readers == [{f"light client ← {consortium.SERVICE_READER}", f"POST /v1/verify @ {consortium.REMOTE_VERIFIER}"},
                       {f"light client ← {consortium.REMOTE_VERIFIER}", f"POST /v1/verify @ {consortium.WRITER}"}]
    assert all(o.all_valid for o in story.after_crash)


def test_suspension_then_revocation_give_their_reasons(story: sc.Story) -> None:
    got = [(c.status, [(v.valid, v.reason) for v in c.verdicts]) for c in story.status_changes]
    assert got == [("suspended", [(False, "suspended"), (False, "suspended")]),
                   ("revoked", [(False, "revoked"), (False, "revoked")])]


def test_recovery_by_the_committed_key_keeps_the_credentials(story: sc.Story) -> None:
    rec = story.recovery
    assert rec is not None and story.citizen is not None
    assert rec.did == story.citizen.did and rec.version == 2 and rec.new_key != rec.old_key
    assert [(v.vct, v.valid) for v in rec.verdicts_new_key] == [
        (agencies.CIVIL_RESIDENCE_VCT, True), (agencies.CIVIL_RESIDENCE_VCT, True),
        (agencies.PSB_IDENTITY_VCT, True), (agencies.PSB_IDENTITY_VCT, True)]
    assert (rec.verdict_old_key.valid, rec.verdict_old_key.reason) == (False, "kb-bad-signature")


def test_demo_exits_nonzero_when_the_devnet_cannot_start(tmp_path: Path) -> None:
    from cli.demo.narration import demo

    (tmp_path / "genesis.json").write_text("{}")  # a devnet directory that is not one
    assert demo(tmp_path, tmp_path / "citizen", keep=False, fast=True) == 1


def test_an_issuer_service_that_cannot_start_is_stopped_and_reported(tmp_path: Path) -> None:
    from cli.demo.errors import ScenarioError
    from cli.demo.issuer_process import start_issuer_process
    from ledger.keys import SigningKey

    key = SigningKey.generate()
    did = "did:imi:FHdyPpwo2T4moncfqJSuxGBHgSnorCZQEidpQ6sV2gPL"
    with pytest.raises(ScenarioError) as caught:  # `imi issue serve` refuses a missing genesis: exit 1
        start_issuer_process(tmp_path / "issuer", did=did, key=key, list_id="l1", register={},
                             node="http://127.0.0.1:9", genesis=tmp_path / "missing-genesis.json",
                             code_root=Path(__file__).resolve().parent.parent)
    assert "exited (1)" in str(caught.value) and "genesis" in str(caught.value)
    assert (tmp_path / "issuer" / "issuer.json").exists()  # `imi issue init` ran first
    assert oct((tmp_path / "issuer" / "issuer_key.jwk").stat().st_mode & 0o777) == "0o600"
