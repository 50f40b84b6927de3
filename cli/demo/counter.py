"""The community service's counter over OpenID4VP: registered on the ledger, asks one question,
learns only the answer.

:func:`open_counter` gives the community sharing service a did:imi, has the trustees register
it on the ledger (its names, purpose and the claims it may ask) and starts its verifier service
the way a deployment runs it: ``imi verifier serve`` as its own OS process
(:func:`cli.demo.setup.open_verifier`).
:func:`ask_at_counter` is the zero-visit moment: the counter asks "resident of Chancheng? over
18? no criminal record?" as ONE DCQL query; the citizen's wallet fetches the signed request,
checks it with the service's key and registration on the ledger, and answers with the fewest
disclosures by ``direct_post``; the counter's verdict holds only the answers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import httpx

from cli.demo.agencies import CIVIL_RESIDENCE_VCT, PSB_IDENTITY_VCT, PSB_RECORD_VCT
from cli.demo.citizen import Citizen
from cli.demo.consortium import SERVICE_READER, Consortium
from cli.demo.errors import ScenarioError
from cli.demo.issuer_process import VerifierProcess
from cli.demo.setup import open_verifier
from identity import presenter
from identity.fetcher import IdentityHttpFetcher
from identity.light_client import LightClient
from ledger.encoding import Value

COUNTER_NAME: Final[dict[str, Value]] = {"en": "Chancheng community sharing service", "zh-CN": "禅城社区共享服务"}
COUNTER_PURPOSE: Final[dict[str, Value]] = {"en": "Join the community sharing service: residents of Chancheng, adults, "
                                "no criminal record",
                          "zh-CN": "加入社区共享服务：禅城居民、成年、无犯罪记录"}
# What the service is registered to ask, and asks: one credential query per credential.
QUESTION_PATHS: Final = {CIVIL_RESIDENCE_VCT: ["address", "district"], PSB_IDENTITY_VCT: ["age_equal_or_over", "18"],
                         PSB_RECORD_VCT: ["no_criminal_record"]}
PREDICATES: Final = frozenset({PSB_IDENTITY_VCT, PSB_RECORD_VCT})  # asked as yes/no (values: [true])
VERDICT_TIMEOUT_S: Final = 30.0
HTTP_TIMEOUT_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class CounterOutcome:
    """One question at the counter: what was asked, what the wallet checked and shared, the verdict."""

    service: str
    request_uri: str
    disclosed: list[dict[str, Any]]  # per credential: vct, issuer, claims shared
    verdict: dict[str, Any]  # {state, valid, reason, claims}

    @property
    def learned(self) -> dict[str, Any]:
        return {path: value for answers in (self.verdict.get("claims") or {}).values()
                for path, value in answers.items() if path not in ("vct", "iss")}


def dcql_question() -> dict[str, Any]:
    credentials = []
    for index, (vct, path) in enumerate(QUESTION_PATHS.items()):
        claim: dict[str, Any] = {"path": path, **({"values": [True]} if vct in PREDICATES else {})}
        credentials.append({"id": f"q{index}", "format": "dc+sd-jwt", "meta": {"vct_values": [vct]},
                            "claims": [claim]})
    return {"credentials": credentials}


def open_counter(c: Consortium) -> VerifierProcess:
    """Create the service's DID, register it on the ledger (trustees), start its verifier
    (reading the service reader validator)."""
    counter = open_verifier(c, slug="community", name=COUNTER_NAME, purpose=COUNTER_PURPOSE,
                            queries=[{"vct": vct, "claims": [list(path)]} for vct, path in QUESTION_PATHS.items()],
                            node=c.apis[SERVICE_READER])
    c.services.append(counter.started())
    return counter


def ask_at_counter(c: Consortium, counter: VerifierProcess, citizen: Citizen) -> CounterOutcome:
    """The counter asks; the wallet checks against the ledger and answers; the counter's verdict."""
    staff = {"Authorization": f"Bearer {counter.admin_token}"}
    with httpx.Client(timeout=HTTP_TIMEOUT_S) as http:
        with c.wait("the counter asks (a signed OpenID4VP request, one DCQL query)"):
            created = http.post(f"{counter.url}/v1/requests", json={"dcql_query": dcql_question()}, headers=staff)
        if created.status_code != 200:
            raise ScenarioError("counter", f"request refused: HTTP {created.status_code} {created.text[:200]}")
        request = created.json()
        wallet = citizen.phone()
        fetcher = IdentityHttpFetcher(c.apis[SERVICE_READER])
        try:
            light = LightClient(c.genesis, fetcher)
            with c.wait("the wallet checks the request against the ledger"):
                prepared = presenter.prepare(request["request_uri"], wallet=wallet, light=light, http=http,
                                             now_ms=int(time.time() * 1000))
            with c.wait("the wallet answers (direct_post)"):
                presenter.send(prepared, wallet=wallet, http=http, now=int(time.time()), lang="en")
            wallet.save()
        finally:
            fetcher.close()
        verdict = _verdict(c, http, counter, request["id"], staff)
    disclosed = [{"vct": d.vct, "issuer": d.issuer, "claims": list(d.paths)} for d in prepared.disclosures]
    return CounterOutcome(prepared.name("en"), request["request_uri"], disclosed, verdict)


def _verdict(c: Consortium, http: httpx.Client, counter: VerifierProcess, request_id: str,
             staff: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + VERDICT_TIMEOUT_S
    with c.wait("the counter's verdict"):
        while True:
            answer: dict[str, Any] = http.get(f"{counter.url}/v1/requests/{request_id}", headers=staff).json()
            if answer.get("state") != "pending":
                return answer
            if time.monotonic() > deadline:
                raise ScenarioError("counter", "no verdict in time")
            time.sleep(0.1)


__all__ = ["COUNTER_NAME", "CounterOutcome", "ask_at_counter", "dcql_question", "open_counter"]
