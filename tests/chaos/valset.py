"""Chaos scenario "valset-changes": a verifier keeps verifying after many validator-set changes.

Real validator processes (:class:`cli.devnet.Devnet`, 4 validators of power
:data:`VALIDATOR_POWER`). An agency is accredited and a citizen has a did:imi; then the
trustees make :data:`VALSET_CHANGES` validator-set changes with governance transactions,
one per block, every set distinct (absent validators of power 1 are added and removed:
x1, x2, -x1, x3, -x2, … so at most two are in the set and the four running validators
keep a quorum even with one of them slow). Then a presentation is verified through
``POST /v1/verify`` on two validators: it must be valid within :data:`VERIFY_ATTEMPTS_MAX`
requests (``503 valset-catching-up`` asks to retry while the verifier follows more than
``VALSET_CHANGES_FOLLOW_MAX`` changes at once) and :data:`VERIFY_TIME_S_MAX`. Before the
fix, every request built a light client from the genesis that followed at most 64 changes:
after 65 the verdict was ``invalid`` for good. The chain must keep committing throughout
(each change commits within :data:`COMMIT_TIME_S_MAX`).

The same count runs in the quick form: fewer changes would not cross the bound under test.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import httpx

from cli.demo.agencies import CIVIL_RESIDENCE_VCT, Agency, accredit_agencies, agencies_to_accredit
from cli.demo.consortium import Consortium
from cli.demo.errors import ScenarioError
from cli.devnet import Devnet
from identity import did as didmod
from identity.errors import IdentityError
from identity.ledger_constants import VALSET_CHANGES_FOLLOW_MAX
from identity.ledger_trust import status_uri
from identity.presentation import present
from identity.request import PresentationRequest
from identity.sdjwt import HolderBinding, issue
from ledger.errors import LedgerError
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from ledger.validators import Validator, ValidatorSet

NAME = "valset-changes"

VALIDATORS = 4
VALIDATOR_POWER = 5  # > 4: three running validators out-vote two absent ones of power 1
VALSET_CHANGES = VALSET_CHANGES_FOLLOW_MAX + 2  # more than one request follows at once
COMMIT_TIME_S_MAX = 30.0  # each governance transaction commits within this
VERIFY_ATTEMPTS_MAX = 1 + VALSET_CHANGES // VALSET_CHANGES_FOLLOW_MAX + 1
VERIFY_TIME_S_MAX = 60.0  # from the first verify request to a valid verdict, per validator
HEARTBEAT_MS = 500
STATUS_IDX = 3


def _phantom(i: int) -> Validator:
    """An absent validator (nobody runs it): it only changes the set's hash."""
    key = SigningKey("EdDSA", hashlib.sha256(f"chaos-valset-{i}".encode()).digest())
    return Validator(f"x{i}", key.public_key, 1, f"127.0.0.1:{1 + i}", hashlib.sha256(f"tls-{i}".encode()).digest())


def changes(count: int) -> list[tuple[str, dict[str, Any]]]:
    """Governance transactions making ``count`` changes, every resulting set distinct."""
    ops = [("gov.validator_add", 1)]
    for k in range(1, count):
        ops += [("gov.validator_add", k + 1), ("gov.validator_remove", k)]
    return [(t, {"validator": _phantom(i).to_value()} if t == "gov.validator_add" else {"key_id": _phantom(i).key_id})
            for t, i in ops[:count]]


def _with_power(net: Devnet) -> Genesis:
    """Give the generated devnet's validators :data:`VALIDATOR_POWER` (every genesis copy)."""
    genesis = Genesis.loads((net.dir / "genesis.json").read_text())
    powered = dataclasses.replace(genesis, validators=ValidatorSet.of(
        dataclasses.replace(v, power=VALIDATOR_POWER) for v in genesis.validators.validators))
    for path in [net.dir / "genesis.json", *(n.node_dir / "genesis.json" for n in net.nodes())]:
        path.write_text(powered.dumps())
    return powered


def _consortium(net: Devnet, genesis: Genesis) -> Consortium:
    trustees = [SigningKey.from_private_jwk(json.loads(p.read_text()))
                for p in sorted((net.dir / "trustees").glob("*.jwk"))]
    apis = {info.name: info.api for info in net.nodes()}
    return Consortium(net, genesis, trustees, apis, writer=min(apis))


def _presentation(agency: Agency, holder: SigningKey, holder_did: str,
                  request: PresentationRequest) -> str:
    now = int(time.time())
    credential = issue({"given_name": "Mei", "family_name": "Li", "address": {"locality": "Chancheng"}},
                       issuer_key=agency.key, iss=agency.did, vct=CIVIL_RESIDENCE_VCT,
                       holder=HolderBinding(kid=holder_did), iat=now,
                       status={"status_list": {"idx": STATUS_IDX, "uri": status_uri(agency.list_id)}},
                       kid=agency.kid).serialize()
    return present(credential, request.paths_to_disclose(), holder_key=holder, nonce=request.nonce,
                   aud=request.aud, iat=now)


def _verify(api: str, presentation: str, request: PresentationRequest) -> tuple[bool, int, float, str]:
    """(valid, requests made, seconds, last answer) asking until valid or a bound is hit."""
    start = time.monotonic()
    last = ""
    with httpx.Client(timeout=30.0) as http:
        for attempt in range(1, VERIFY_ATTEMPTS_MAX + 1):
            response = http.post(f"{api}/v1/verify", json={"presentation": presentation,
                                                           "request": request.to_json()})
            last = f"{response.status_code} {response.text[:200]}"
            body = response.json()
            if response.status_code == 200 and body.get("valid") is True:
                return True, attempt, time.monotonic() - start, last
            if not (response.status_code == 503 and body.get("reason") == "valset-catching-up"):
                break
            if time.monotonic() - start > VERIFY_TIME_S_MAX:
                break
    return False, attempt, time.monotonic() - start, last


def _set_hash(api: str) -> str:
    with httpx.Client(timeout=10.0) as http:
        return str(http.get(f"{api}/v1/blocks/latest").json()["header"]["validator_set_hash"])


def run(workdir: Path, *, quick: bool) -> list[str]:
    """The scenario; returns its violations (empty = pass). ``quick`` runs the same count."""
    violations: list[str] = []
    net = Devnet(workdir / "valset-net")
    c: Consortium | None = None
    try:
        net.create(VALIDATORS, heartbeat_ms=HEARTBEAT_MS)
        genesis = _with_power(net)
        net.up(VALIDATORS, heartbeat_ms=HEARTBEAT_MS)
        c = _consortium(net, genesis)
        agency = agencies_to_accredit()[1]  # civil affairs: one credential type, one status list
        accredit_agencies(c, [agency])
        holder, holder_next = SigningKey.generate(), SigningKey.generate()
        holder_did = didmod.derive_did(holder.public_key.to_jwk(),
                                       didmod.key_commitment(holder_next.public_key.to_jwk()))
        c.submit("did.create", holder_did, {"jwk": dict(holder.public_key.to_jwk()),
                                            "next_key_commitment": didmod.key_commitment(
                                                holder_next.public_key.to_jwk())}, holder)
        request = PresentationRequest(nonce="chaos-valset", aud="https://verifier.example",
                                      vct=frozenset({CIVIL_RESIDENCE_VCT}), claims=("given_name",))
        readers = sorted(c.apis)[:2]
        before = [_verify(c.apis[r], _presentation(agency, holder, holder_did, request), request) for r in readers]
        violations += [f"{r}: verification before the changes failed: {v[3]}" for r, v in zip(readers, before,
                                                                                                strict=True)
                       if not v[0]]
        start, slowest = time.monotonic(), 0.0
        for type_, payload in changes(VALSET_CHANGES):
            t0 = time.monotonic()
            c.gov(type_, payload)
            slowest = max(slowest, time.monotonic() - t0)
        took = time.monotonic() - start
        print(f"  {NAME}: {VALSET_CHANGES} validator-set changes committed in {took:.1f} s "
              f"(slowest {slowest:.2f} s, bound {COMMIT_TIME_S_MAX} s)")
        if slowest > COMMIT_TIME_S_MAX:
            violations.append(f"a governance transaction took {slowest:.1f} s to commit (bound {COMMIT_TIME_S_MAX})")
        c.wait_height(c.writer, c.height(c.writer) + 3)  # the last change is in force
        if _set_hash(c.apis[c.writer]) == genesis.validators.hash.hex():
            violations.append("the validator set in force is still the genesis set")
        presentation = _presentation(agency, holder, holder_did, request)
        for reader in readers:
            c.wait_height(reader, c.height(c.writer))
            ok, attempts, seconds, last = _verify(c.apis[reader], presentation, request)
            print(f"  {NAME}: {reader} POST /v1/verify after {VALSET_CHANGES} changes: "
                  f"{'valid' if ok else 'NOT valid'} after {attempts} request(s), {seconds:.2f} s "
                  f"(bounds {VERIFY_ATTEMPTS_MAX} requests, {VERIFY_TIME_S_MAX} s)")
            if not ok:
                violations.append(f"{reader}: no valid verdict after {VALSET_CHANGES} validator-set changes "
                                  f"({attempts} requests, {seconds:.1f} s): {last}")
    except (ScenarioError, httpx.HTTPError, IdentityError, LedgerError, OSError, RuntimeError, ValueError,
            KeyError) as exc:  # a step that could not run is a violation, never a crash of the runner
        violations.append(f"scenario failed: {type(exc).__name__}: {exc}")
    finally:
        if c is not None:
            c.close()
        net.down()
    return violations


__all__ = ["NAME", "run"]
