"""`imi devnet up --demo`, the scripts' contract of issues 17 and 18, on real processes.

One devnet with the demo services for the whole module, driven only as a script would drive
it: the `imi` CLI (each call its own process) and the JSON of `imi devnet status --json`.
Enrol a demo person by redeeming an offer (the person leaves `subjects`), answer the demo
verifier's OpenID4VP request for claims of that credential (the verdict holds only the asked
claims), enrol another person once at the bureau and then at civil affairs without a visit
(`imi wallet enrol` at the agency's `remote_enrolment_url`), check that the verifier may ask every claim of every demo type, and finally that
`devnet down` stops every process even after a `kill -9` of a service, and that `up --demo`
brings back the same services. The last of those tests stops the devnet: keep it last.

The tests at the top need no process: the registers and the verifier's registration
against the published types, the subjects read from an issuer's store, and an unreadable
``demo.json``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from cli._consortium import create_consortium
from cli.demo.agencies import PSB_IDENTITY_VCT, agencies_to_accredit
from cli.demo.devnet_demo import VERIFIER_NAME, VERIFIER_PURPOSE, every_claim, unenrolled_subjects
from cli.demo.people import PEOPLE, register_for
from cli.devnet import _alive
from identity import dcql, services
from identity.issuer_agent import IssuerConfig, Register
from identity.issuer_store import IssuerStore

pytestmark = pytest.mark.xdist_group("devnet")

REPO = Path(__file__).resolve().parent.parent
UP_TIMEOUT_S = 300.0  # 4 validators, 3 services and ~15 commits on a loaded 2-core machine
CLI_TIMEOUT_S = 120.0  # one `imi` call (a receive waits for an anchor's commit)
AGENCY_KEYS = {"name", "issuer_url", "did", "vcts", "subjects", "admin_token_file"}
VERIFIER_KEYS = {"name", "url", "did", "admin_token_file"}
PASSWORD_ENV = {"IMI_WALLET_PASSWORD": "demo wallet password"}


def imi(*args: str, env: dict[str, str] | None = None, timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, check=False, env={**os.environ, **(env or {})})


def imi_json(*args: str, env: dict[str, str] | None = None, timeout: float = CLI_TIMEOUT_S) -> Any:
    done = imi(*args, "--json", env=env, timeout=timeout)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return json.loads(done.stdout)


def status(directory: Path) -> dict[str, Any]:
    answer: dict[str, Any] = imi_json("devnet", "status", "--dir", str(directory))
    return answer


# --- without processes ---------------------------------------------------------------------------------
def test_each_register_holds_every_person_with_only_the_claims_the_published_type_lists() -> None:
    for agency in agencies_to_accredit():
        register = Register.from_json(register_for(agency))
        assert len(register) == len(PEOPLE)
        for subject in register.subjects():
            entry = register.get(subject)
            assert entry is not None and set(entry.by_vct) == set(agency.vcts)
            for vct, claims in entry.by_vct.items():
                assert claims and set(claims) <= set(agency.vcts[vct]["claims"]), (vct, sorted(claims))


def test_the_demo_verifier_is_registered_for_every_claim_and_predicate_member() -> None:
    agencies = agencies_to_accredit()
    registration = services.parse_registration({"name": VERIFIER_NAME, "purpose": VERIFIER_PURPOSE,
                                                "queries": every_claim(agencies)})  # as the ledger checks it
    allowed = services.allowed_claims(registration)
    for agency in agencies:
        for vct, definition in agency.vcts.items():
            wanted = [(name,) for name in definition["claims"]]
            wanted += [(name, str(t)) for name, ts in definition.get("predicates", {}).items() for t in ts]
            assert set(allowed[vct]) == set(wanted), vct
    assert ("age_equal_or_over", "21") in allowed[PSB_IDENTITY_VCT]
    asked = dcql.parse_query({"credentials": [{"id": "q", "format": "dc+sd-jwt", "meta": {"vct_values": [PSB_IDENTITY_VCT]},
                                               "claims": [{"path": ["age_equal_or_over", "20"]}]}]})
    assert dcql.beyond_registration(asked, allowed)  # a threshold nobody publishes stays refused


def test_subjects_are_the_register_minus_the_issuer_stores_enrolments(tmp_path: Path) -> None:
    (tmp_path / "register.json").write_text(json.dumps({s: {"claims": {"x": 1}} for s in ("a", "b", "c")}))
    (tmp_path / "issuer.json").write_text(json.dumps({"did": "did:imi:x", "key": "k.jwk", "list_id": "l",
                                                      "register": "register.json"}))
    assert unenrolled_subjects(tmp_path) == ["a", "b", "c"]
    assert not (tmp_path / "issuer.sqlite").exists()  # nothing created by looking
    store = IssuerStore(tmp_path / "issuer.sqlite")
    store.enrol("b", "jwk", "thumbprint", via="offer", at=1)
    store.close()
    assert unenrolled_subjects(tmp_path) == ["a", "c"]


def test_an_unreadable_demo_record_fails_status_in_one_line_and_never_blocks_down(tmp_path: Path) -> None:
    create_consortium(tmp_path, validators=1, trustees=1, threshold=1, chain_id="imi-demo-test", devnet=True)
    (tmp_path / "demo.json").write_text("{not json")
    shown = imi("devnet", "status", "--dir", str(tmp_path), "--json")
    assert shown.returncode == 1 and json.loads(shown.stdout)["reason"] == "bad-devnet-dir"
    assert "Traceback" not in shown.stderr
    stopped = imi_json("devnet", "down", "--dir", str(tmp_path))
    assert stopped["ok"] is True and stopped["services"] == []


# --- one devnet with the demo ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("demo") / "devnet"
    try:
        imi_json("devnet", "up", "--dir", str(directory), "--demo", timeout=UP_TIMEOUT_S)
        yield directory
    finally:
        imi("devnet", "down", "--dir", str(directory))


def _definition(node: str, vct: str) -> dict[str, Any]:
    """The credential type as published on the ledger."""
    answer = httpx.get(f"{node}/v1/credential-types/{quote(vct, safe='')}", timeout=10.0)
    assert answer.status_code == 200, answer.text
    definition: dict[str, Any] = answer.json()["credential_type"]
    return definition


def _pids(report: dict[str, Any]) -> list[int]:
    return [e["pid"] for e in report["nodes"] + report["agencies"] + report["verifiers"]]


def test_status_lists_the_demo_agencies_and_verifier(devnet: Path) -> None:
    report = status(devnet)
    assert all(node["up"] for node in report["nodes"])
    assert {a["name"] for a in report["agencies"]} == {"Foshan Public Security Bureau", "Foshan Civil Affairs Bureau"}
    for agency in report["agencies"]:
        assert AGENCY_KEYS <= set(agency) and agency["up"] is True
        assert agency["did"].startswith("did:imi:") and agency["issuer_url"].startswith("http://127.0.0.1:")
        assert agency["vcts"] and agency["subjects"]
        token = Path(agency["admin_token_file"])
        assert token.is_file() and oct(token.stat().st_mode & 0o777) == "0o600"
        accredited = httpx.get(f"{report['nodes'][0]['api']}/v1/issuers/{agency['did']}", timeout=10.0).json()["issuer"]
        assert accredited["status"] == "accredited" and sorted(accredited["vcts"]) == sorted(agency["vcts"])
    # the one door enrols at its counter only; every other agency also without a visit
    remote = {a["name"]: a["remote_enrolment_url"] for a in report["agencies"]}
    civil = next(a for a in report["agencies"] if "Civil" in a["name"])
    assert remote == {"Foshan Public Security Bureau": None,
                      "Foshan Civil Affairs Bureau": civil["issuer_url"] + "/remote-enrolment"}
    registration = httpx.get(f"{report['nodes'][0]['api']}/v1/services/{civil['did']}", timeout=10.0)
    assert registration.status_code == 200, registration.text
    assert registration.json()["service"]["queries"] == [{"vct": PSB_IDENTITY_VCT, "claims": [["national_id"]]}]
    (verifier,) = report["verifiers"]
    assert VERIFIER_KEYS <= set(verifier) and verifier["up"] is True
    assert oct(Path(verifier["admin_token_file"]).stat().st_mode & 0o777) == "0o600"


def test_enrol_by_offer_then_answer_the_demo_verifier(devnet: Path, tmp_path: Path) -> None:
    report = status(devnet)
    node, genesis = report["nodes"][0]["api"], str(devnet / "genesis.json")
    psb = next(a for a in report["agencies"] if "Public Security" in a["name"])
    vct = next(v for v in psb["vcts"] if _definition(node, v).get("predicates"))  # the resident identity
    subject = psb["subjects"][0]
    offer = imi_json("issue", "offer", "--issuer", psb["issuer_url"], "--token-file", psb["admin_token_file"],
                     "--subject", subject, "--vct", vct)
    assert offer["offer_uri"].startswith("openid-credential-offer://") and offer["tx_code"]

    env = {**PASSWORD_ENV, "IMI_WALLET": str(tmp_path / "wallet.imi")}
    imi_json("wallet", "init", "--insecure-fast-kdf", env=env)
    received = imi_json("wallet", "receive", offer["offer_uri"], "--tx-code", offer["tx_code"], "--node", node,
                        "--genesis", genesis, env=env)
    assert received["ok"] is True and len(received["ids"]) == 1 and received["issuer"] == psb["did"]
    after = next(a for a in status(devnet)["agencies"] if a["did"] == psb["did"])
    assert after["subjects"] == [s for s in psb["subjects"] if s != subject]  # enrolled: no longer offered

    threshold = str(_definition(node, vct)["predicates"]["age_equal_or_over"][-1])
    asked = [["family_name"], ["age_equal_or_over", threshold]]
    question = tmp_path / "question.json"
    question.write_text(json.dumps({"credentials": [{"id": "pid", "format": "dc+sd-jwt", "meta": {"vct_values": [vct]},
                                                     "claims": [{"path": p} for p in asked]}]}))
    (verifier,) = report["verifiers"]
    staff = ["--verifier", verifier["url"], "--token-file", verifier["admin_token_file"]]
    request = imi_json("verifier", "request", *staff, "--dcql", str(question))
    assert set(request) == {"id", "request_uri"} and request["request_uri"].startswith("openid4vp://")
    presented = imi_json("wallet", "present", request["request_uri"], "--yes", "--node", node, "--genesis", genesis,
                         env=env)
    assert presented["sent"] is True and presented["did"] == verifier["did"]
    verdict = imi_json("verifier", "result", *staff, "--id", request["id"])
    assert (verdict["state"], verdict["valid"], verdict["reason"]) == ("done", True, None), verdict
    claims = verdict["claims"]["pid"]
    assert set(claims) == {"vct", "iss", "family_name", f"age_equal_or_over.{threshold}"}  # only what was asked
    assert (claims["vct"], claims["iss"]) == (vct, psb["did"])
    assert isinstance(claims[f"age_equal_or_over.{threshold}"], bool) and claims["family_name"]


def test_enrol_once_at_the_bureau_then_at_civil_affairs_without_a_visit(devnet: Path, tmp_path: Path) -> None:
    report = status(devnet)
    node, genesis = report["nodes"][0]["api"], str(devnet / "genesis.json")
    psb = next(a for a in report["agencies"] if a["remote_enrolment_url"] is None)
    civil = next(a for a in report["agencies"] if a["remote_enrolment_url"] is not None)
    person = next(p for p in PEOPLE if p.national_id == psb["subjects"][-1])  # not the one enrolled above
    assert person.residence_file in civil["subjects"]
    offer = imi_json("issue", "offer", "--issuer", psb["issuer_url"], "--token-file", psb["admin_token_file"],
                     "--subject", person.national_id, "--vct", PSB_IDENTITY_VCT)
    env = {**PASSWORD_ENV, "IMI_WALLET": str(tmp_path / "wallet.imi")}
    imi_json("wallet", "init", "--insecure-fast-kdf", env=env)
    imi_json("wallet", "receive", offer["offer_uri"], "--tx-code", offer["tx_code"], "--node", node,
             "--genesis", genesis, env=env)

    started = httpx.post(civil["remote_enrolment_url"], timeout=CLI_TIMEOUT_S)
    assert started.status_code == 200, started.text
    enrolled = imi_json("wallet", "enrol", started.json()["request_uri"], "--yes", "--node", node,
                        "--genesis", genesis, env=env)
    assert enrolled["sent"] is True and enrolled["did"] == civil["did"] and len(enrolled["ids"]) == 1
    assert [d["claims"] for d in enrolled["disclosed"]] == [["national_id"]]  # nothing more than the match
    after = next(a for a in status(devnet)["agencies"] if a["did"] == civil["did"])
    assert after["subjects"] == [s for s in civil["subjects"] if s != person.residence_file]
    store = IssuerStore(IssuerConfig.load(Path(civil["admin_token_file"]).parent).store_path)
    try:
        enrolment = store.enrolment(person.residence_file)
    finally:
        store.close()
    assert enrolment is not None and enrolment.via == f"remote:{psb['did']}"


def test_the_demo_verifier_may_ask_every_claim_of_every_demo_type(devnet: Path, tmp_path: Path) -> None:
    report = status(devnet)
    node = report["nodes"][0]["api"]
    (verifier,) = report["verifiers"]
    staff = ["--verifier", verifier["url"], "--token-file", verifier["admin_token_file"]]
    credentials = []
    for i, vct in enumerate(sorted(v for a in report["agencies"] for v in a["vcts"])):
        definition = _definition(node, vct)
        paths = [[name] for name in definition["claims"]]
        paths += [[name, str(t)] for name, thresholds in definition.get("predicates", {}).items() for t in thresholds]
        credentials.append({"id": f"c{i}", "format": "dc+sd-jwt", "meta": {"vct_values": [vct]},
                            "claims": [{"path": p} for p in paths]})
    assert any(len(c["claims"]) > 5 for c in credentials)  # predicate members included
    question = tmp_path / "everything.json"
    question.write_text(json.dumps({"credentials": credentials}))
    assert imi_json("verifier", "request", *staff, "--dcql", str(question))["request_uri"].startswith("openid4vp://")
    credentials[0]["claims"].append({"path": ["blood_type"]})  # in no demo type: beyond the registration
    question.write_text(json.dumps({"credentials": credentials}))
    refused = imi("verifier", "request", *staff, "--dcql", str(question), "--json")
    assert refused.returncode == 1 and json.loads(refused.stdout)["reason"] == "beyond-registration"


def test_down_stops_every_process_even_a_killed_service_and_up_brings_the_demo_back(devnet: Path) -> None:
    before = status(devnet)
    (verifier,) = before["verifiers"]
    os.kill(verifier["pid"], signal.SIGKILL)
    stopped = imi_json("devnet", "down", "--dir", str(devnet))
    assert stopped["ok"] is True and len(stopped["stopped"]) == len(before["nodes"])
    assert sorted(stopped["services"]) == sorted(a["name"] for a in before["agencies"])  # not the killed one
    assert not [pid for pid in _pids(before) if _alive(pid)]

    again = imi_json("devnet", "up", "--dir", str(devnet), "--demo", timeout=UP_TIMEOUT_S)
    try:
        assert all(e["up"] for e in again["nodes"] + again["agencies"] + again["verifiers"])
        same = ("name", "did", "issuer_url", "subjects", "admin_token_file", "remote_enrolment_url")
        assert [{k: a[k] for k in same} for a in again["agencies"]] == [{k: a[k] for k in same}
                                                                        for a in before["agencies"]]
        assert [(v["did"], v["url"]) for v in again["verifiers"]] == [(verifier["did"], verifier["url"])]
    finally:
        imi_json("devnet", "down", "--dir", str(devnet))
    assert not [pid for pid in _pids(again) if _alive(pid)]
    after = status(devnet)
    assert not any(e["up"] or e["pid"] for e in after["agencies"] + after["verifiers"])
