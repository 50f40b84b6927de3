"""The community sharing service of the story: its three questions, the citizen's answers,
and the service's verdicts.

:func:`ask_and_verify` — "resident of Chancheng? over 18? no criminal record?": one
presentation per credential, each disclosing only what it asks; every answer verified
locally by a light client reading ONE validator (trusting only certificates), and by
``POST /v1/verify`` on another validator (its certificate checked too). The outcome says
what the service learned and that the other claims never reached it.
:func:`suspend_then_revoke` — the bureau suspends, then revokes a credential; the service's
verdicts give the reasons ``suspended`` and ``revoked``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from cli.demo.agencies import (
    CIVIL_RESIDENCE_VCT,
    PSB_IDENTITY_VCT,
    PSB_RECORD_VCT,
    Agency,
)
from cli.demo.citizen import CITIZEN_CLAIMS, Citizen
from cli.demo.consortium import Consortium, certified_header
from cli.demo.errors import ScenarioError
from identity.fetcher import IdentityHttpFetcher
from identity.ledger_trust import LedgerHolderKeys, LedgerIssuerKeys, LedgerStatusLists
from identity.light_client import LightClient
from identity.request import PresentationRequest, lookup
from identity.verifier import verify_presentation
from identity.wallet import Wallet

SERVICE_AUD = "https://share.chancheng-community.example"
# What the service must NOT learn (claim paths of the citizen's credentials).
WITHHELD_PATHS = ("given_name", "family_name", "birthdate", "national_id", "address.street_address",
                  "checked_on")


def service_requests(nonce: str | None = None) -> dict[str, PresentationRequest]:
    """Resident of Chancheng? Over 18? No criminal record? — one request per credential type,
    all bound to the same fresh nonce and the service's ``aud``."""
    nonce = nonce or secrets.token_urlsafe(16)
    return {
        CIVIL_RESIDENCE_VCT: PresentationRequest(nonce=nonce, aud=SERVICE_AUD, vct=frozenset({CIVIL_RESIDENCE_VCT}),
                                                 claims=("address.district",)),
        PSB_IDENTITY_VCT: PresentationRequest(nonce=nonce, aud=SERVICE_AUD, vct=frozenset({PSB_IDENTITY_VCT}),
                                              predicates=("age_equal_or_over.18",)),
        PSB_RECORD_VCT: PresentationRequest(nonce=nonce, aud=SERVICE_AUD, vct=frozenset({PSB_RECORD_VCT}),
                                            predicates=("no_criminal_record",)),
    }


def answer_requests(wallet: Wallet, requests: Mapping[str, PresentationRequest]) -> dict[str, str]:
    """One presentation per request, each disclosing exactly what it asks (the wallet records it)."""
    now = int(time.time())
    answers = {vct: wallet.answer(request, now=now) for vct, request in requests.items()}
    wallet.save()
    return answers


@dataclass(frozen=True, slots=True)
class Verdict:
    """One presentation's verdict at one validator: local (light client) or remote (/v1/verify)."""

    vct: str
    via: str  # "light client ← v1" or "POST /v1/verify @ v2"
    valid: bool
    reason: str | None
    disclosed: Mapping[str, Any]
    height: int | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    verdicts: list[Verdict]
    learned: dict[str, Any]  # what the service learned, by question
    withheld: dict[str, bool]  # claim path → True when it reached the verifier in no verdict

    @property
    def all_valid(self) -> bool:
        return all(v.valid for v in self.verdicts)

    def reasons(self, vct: str) -> set[str | None]:
        return {v.reason for v in self.verdicts if v.vct == vct}


def verify_locally(c: Consortium, reader: str, vct: str, presentation: str,
                   request: PresentationRequest) -> Verdict:
    """The service's own check: a light client reading ONE validator, trusting only certificates."""
    fetcher = IdentityHttpFetcher(c.apis[reader])
    try:
        client = LightClient(c.genesis, fetcher)
        with c.wait(f"light client ← {reader}: proofs against certificates"):
            result = verify_presentation(presentation, request, issuer_keys=LedgerIssuerKeys(client),
                                         holder_keys=LedgerHolderKeys(client), status=LedgerStatusLists(client),
                                         now=int(time.time()))
    finally:
        fetcher.close()
    return Verdict(vct, f"light client ← {reader}", result.valid, None if result.valid else result.reason,
                   dict(result.claims or {}))


def verify_remotely(c: Consortium, node: str, vct: str, presentation: str,
                    request: PresentationRequest) -> Verdict:
    """``POST /v1/verify`` on validator ``node``; its answer's certificate is checked too."""
    with c.wait(f"POST /v1/verify @ {node}"), httpx.Client(timeout=30.0) as http:
        response = http.post(f"{c.apis[node]}/v1/verify",
                             json={"presentation": presentation, "request": request.to_json()})
    if response.status_code != 200:
        raise ScenarioError("verify", f"{node} answered HTTP {response.status_code}: {response.text[:200]}")
    body = response.json()
    header, _ = certified_header(body, c.genesis)
    return Verdict(vct, f"POST /v1/verify @ {node}", bool(body["valid"]), body.get("reason"),
                   dict(body.get("disclosed") or {}), header.height)


def _learned(verdicts: list[Verdict]) -> dict[str, Any]:
    claims: dict[str, Any] = {}
    for v in verdicts:
        if v.valid:
            for path in ("address.district", "age_equal_or_over.18", "no_criminal_record"):
                value = lookup(v.disclosed, path)
                if isinstance(value, (str, bool)):
                    claims.setdefault(path, value)
    return claims


def _leaves(node: Any) -> Iterator[Any]:
    """Every scalar inside a JSON value."""
    if isinstance(node, Mapping):
        for value in node.values():
            yield from _leaves(value)
    elif isinstance(node, list):
        for value in node:
            yield from _leaves(value)
    else:
        yield node


def _withheld(verdicts: list[Verdict]) -> dict[str, bool]:
    """Claim path → True when neither the path nor the citizen's value for it reached the service."""
    received = [dict(v.disclosed) for v in verdicts]
    scalars = {leaf for claims in received for leaf in _leaves(claims)}
    out: dict[str, bool] = {}
    for path in WITHHELD_PATHS:
        values = {lookup(claims, path) for claims in CITIZEN_CLAIMS.values()} - {lookup({}, path)}
        path_seen = any(lookup(claims, path) is not lookup({}, path) for claims in received)
        out[path] = not path_seen and not (values & scalars)
    return out


def ask_and_verify(c: Consortium, wallet: Wallet, *, reader: str, remote: str,
                   requests: Mapping[str, PresentationRequest] | None = None) -> Outcome:
    """Step 3: the citizen answers each request; the service verifies each answer twice."""
    requests = requests or service_requests()
    answers = answer_requests(wallet, requests)
    verdicts: list[Verdict] = []
    for vct, presentation in answers.items():
        verdicts.append(verify_locally(c, reader, vct, presentation, requests[vct]))
        verdicts.append(verify_remotely(c, remote, vct, presentation, requests[vct]))
    return Outcome(verdicts, _learned(verdicts), _withheld(verdicts))


def set_status(c: Consortium, agency: Agency, list_id: str, idx: int, action: str, readers: list[str]) -> int:
    """The agency's staff ``POST /v1/issuance/<action>`` (a ``status.set`` on the ledger);
    returns the commit height once every reader has it."""
    assert agency.service is not None
    with c.wait(f"{agency.name}: {action} {list_id}#{idx}, waiting for commit"):
        height = agency.service.status(action, idx)
    for reader in readers:
        c.wait_height(reader, height)
    return height


@dataclass(frozen=True, slots=True)
class StatusChange:
    status: str  # "suspended" | "revoked"
    height: int
    verdicts: list[Verdict]



def suspend_then_revoke(c: Consortium, agency: Agency, citizen: Citizen, vct: str, *,
                        reader: str, remote: str) -> list[StatusChange]:
    """Step 5: suspend, verify; revoke, verify (both local and remote verdicts)."""
    credential = citizen.credentials[vct]
    changes = []
    for action, name in (("suspend", "suspended"), ("revoke", "revoked")):
        height = set_status(c, agency, credential.list_id, credential.status_idx, action, [reader, remote])
        request = service_requests()[vct]
        presentation = answer_requests(citizen.phone(), {vct: request})[vct]
        changes.append(StatusChange(name, height, [
            verify_locally(c, reader, vct, presentation, request),
            verify_remotely(c, remote, vct, presentation, request)]))
    return changes



__all__ = [
    "SERVICE_AUD",
    "WITHHELD_PATHS",
    "Outcome",
    "StatusChange",
    "Verdict",
    "answer_requests",
    "ask_and_verify",
    "service_requests",
    "set_status",
    "suspend_then_revoke",
    "verify_locally",
    "verify_remotely",
]
