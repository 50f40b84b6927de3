"""Benchmark: credentials issued per second, end to end through the issuer's HTTP endpoints.

A 4-validator devnet (``cli.devnet.Devnet``: real consensus, LevelDB, mutual TLS), an agency
accredited on it whose DID document names its issuer endpoint, and ``imi issue serve`` as
its own process (SQLite store, light client reads, ``anchor.put`` waited for commit — as an
agency runs it, behind a proxy on loopback: each wallet's address comes in
``X-Forwarded-For``, so the token endpoint's per-client rate limit sees many wallets, not
one). ``CLIENTS`` concurrent clients each play staff and wallet for one new
subject per round: ``POST /v1/admin/offers`` (an enrolment offer with a PIN), ``POST
/token``, ``POST /nonce``, then ``POST /credential`` with ``batch`` proofs by distinct
ES256 keys (generated before the clock starts).

Figures (``python -m bench issue [--quick]``):

* ``issue.credentials_per_s.batch1`` / ``.batch10`` — credentials handed out per wall-clock
  second over all rounds of that batch size;
* ``issue.request_ms_p50.batch1`` / ``.batch10`` — one offer-to-credentials round, median;
* ``issue.issuer_cpu_ms_per_credential.batch1`` / ``.batch10`` — CPU time (user + system) of
  the ``imi issue serve`` process per credential (Linux ``/proc``): on a busy shared machine
  the wall-clock rate says how much CPU the issuer got, this says how much it needs —
  ``1000 / cpu_ms`` is the rate one free core would sustain.

Wall-clock rates on a shared machine: everything (validators, issuer, clients) runs on it.
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, cast

import httpx

from bench.harness import CODE_ROOT, running_devnet
from cli._consortium import free_ports
from cli.demo.issuer_process import spawn_service, wait_for_health
from cli.devnet import Devnet
from identity.constants import ISSUER_SERVICE_TYPE, PRE_AUTHORIZED_GRANT
from identity.holder import register_did
from identity.issuance import make_proof
from identity.ledger_client import NodeClient
from identity.oid4vci import check_offer, parse_offer_uri
from ledger.encoding import Value
from ledger.genesis import Genesis
from ledger.keys import SigningKey

VCT: Final = "urn:imi:bench:1"
LIST_ID: Final = "bench-1"
LIST_SIZE: Final = 1 << 16
CLIENTS: Final = 16
ROUNDS: Final = {1: 160, 10: 32}  # requests per batch size
ROUNDS_QUICK: Final = {1: 32, 10: 8}
START_S_MAX: Final = 120
HTTP_TIMEOUT_S: Final = 120.0
CLAIMS: Final = {"given_name": "Bench", "family_name": "Mark", "birthdate": "1990-01-01"}
PREDICATES: Final = {"age_equal_or_over": [16, 18, 65]}  # the bench type's, derived from birthdate


def trustees(directory: Path) -> list[SigningKey]:
    """As many of the devnet's trustee keys (``imi devnet`` writes them) as governance needs."""
    genesis = Genesis.loads((directory / "genesis.json").read_text())
    return [SigningKey.from_private_jwk(json.loads(p.read_text()))
            for p in sorted((directory / "trustees").glob("*.jwk"))][: genesis.trustee_threshold]


def agency(net: Devnet, directory: Path, issuer_url: str) -> tuple[SigningKey, str]:
    """The agency: DID naming ``issuer_url``, accreditation by two trustees, type, status list."""
    node = NodeClient(net.nodes()[0].api)
    key = SigningKey.generate("ES256")
    did, _ = register_did(node, key, services=[{"id": "oid4vci", "type": ISSUER_SERVICE_TYPE, "endpoint": issuer_url}])
    node.submit(node.build("gov.issuer_accredit", "gov", {"did": did, "name": "Bench agency", "vcts": [VCT]},
                           *trustees(directory)))
    claims: list[Value] = [name for name in sorted(CLAIMS)]
    node.submit(node.build("vct.publish", did, {"vct": VCT, "name": "Bench", "claims": claims,
                                                "predicates": cast(Value, PREDICATES)}, key))
    node.submit(node.build("status.create_list", did, {"list_id": LIST_ID, "bits": 2, "size": LIST_SIZE}, key))
    node.close()
    return key, did


def _issuer_dir(directory: Path, key: SigningKey, did: str, subjects: int) -> Path:
    out = directory / "issuer"
    out.mkdir()
    (out / "issuer.jwk").write_text(json.dumps(key.to_private_jwk()))
    (out / "register.json").write_text(json.dumps({f"s{i}": {"claims": CLAIMS} for i in range(subjects)}))
    (out / "issuer.json").write_text(json.dumps({"did": did, "key": "issuer.jwk", "list_id": LIST_ID,
                                                 "register": "register.json"}))
    (out / "staff.token").write_text(secrets.token_urlsafe(24) + "\n")
    return out


def _serve(net: Devnet, issuer: Path, port: int) -> subprocess.Popen[bytes]:
    """``imi issue serve`` for ``issuer`` as its own process (log: ``serve.log`` beside it),
    returned once it answers ``/health``."""
    proc = spawn_service(issuer.parent, [
        "issue", "serve", "--issuer-dir", str(issuer), "--node", net.nodes()[0].api,
        "--genesis", str(net.dir / "genesis.json"), "--port", str(port),
        "--admin-token-file", str(issuer / "staff.token"), "--trusted-proxy", "127.0.0.1"], CODE_ROOT)
    try:
        wait_for_health(f"http://127.0.0.1:{port}", proc, log_file=issuer.parent / "serve.log",
                        timeout_s=START_S_MAX, what="imi issue serve")
    except BaseException:
        proc.kill()
        raise
    return proc


def _round(http: httpx.Client, url: str, staff: dict[str, str], subject: str, keys: list[SigningKey]) -> int:
    """One subject: offer, token, nonce, credentials; returns the number of credentials."""
    made = http.post(url + "/v1/admin/offers", json={"subject": subject, "vcts": [VCT], "batch": len(keys)},
                     headers=staff).json()
    code = check_offer(parse_offer_uri(made["offer_uri"])[0]).code
    n = int(subject[1:])
    wallet = {"x-forwarded-for": f"10.0.{n // 250}.{n % 250 + 1}"}  # one address per wallet
    token = http.post(url + "/token", data={"grant_type": PRE_AUTHORIZED_GRANT, "pre-authorized_code": code,
                                            "tx_code": made["tx_code"]}, headers=wallet).json()["access_token"]
    nonce = http.post(url + "/nonce").json()["c_nonce"]
    now = int(time.time())
    proofs = [make_proof(k, aud=url, nonce=nonce, iat=now) for k in keys]
    answer = http.post(url + "/credential", json={"credential_configuration_id": VCT, "proofs": {"jwt": proofs}},
                       headers={"authorization": f"Bearer {token}"})
    if answer.status_code != 200:
        raise RuntimeError(f"credential request failed: HTTP {answer.status_code} {answer.text[:200]}")
    return len(answer.json()["credentials"])


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (0.0 where /proc is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(url: str, staff: dict[str, str], batch: int, rounds: int, first: int) -> tuple[float, float, int]:
    keys = [[SigningKey.generate("ES256") for _ in range(batch)] for _ in range(rounds)]
    latencies: list[float] = []
    # One connection pool per client, opened before the clock: building an httpx.Client costs
    # tens of ms of CPU (its TLS context), which would otherwise be timed as the issuer's.
    clients = [httpx.Client(timeout=HTTP_TIMEOUT_S) for _ in range(CLIENTS)]

    def client(c: int) -> int:
        issued = 0
        for i in range(c, rounds, CLIENTS):
            start = time.perf_counter()
            issued += _round(clients[c], url, staff, f"s{first + i}", keys[i])
            latencies.append(time.perf_counter() - start)
        return issued

    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            total = sum(pool.map(client, range(CLIENTS)))
        elapsed = time.perf_counter() - start
    finally:
        for http in clients:
            http.close()
    return total / elapsed, statistics.median(latencies) * 1000, total


def run(quick: bool) -> dict[str, float]:
    rounds = ROUNDS_QUICK if quick else ROUNDS
    figures: dict[str, float] = {}
    with running_devnet("imi-bench-issue-") as (tmp, net):
        directory = net.dir
        proc = None
        try:
            port = free_ports(1)[0]
            url = f"http://127.0.0.1:{port}"
            key, did = agency(net, directory, url)
            total = sum(rounds.values())
            issuer = _issuer_dir(tmp, key, did, total + 1)
            proc = _serve(net, issuer, port)
            staff = {"authorization": f"Bearer {(issuer / 'staff.token').read_text().strip()}"}
            with httpx.Client(timeout=HTTP_TIMEOUT_S) as http:  # warm-up: metadata, light client
                _round(http, url, staff, f"s{total}", [SigningKey.generate("ES256")])
            first = 0
            for batch, count in sorted(rounds.items()):
                cpu_before = cpu_s(proc.pid)
                rate, p50, total_issued = _measure(url, staff, batch, count, first)
                cpu_ms = (cpu_s(proc.pid) - cpu_before) * 1000 / total_issued
                first += count
                if cpu_ms > 0:
                    figures[f"issue.issuer_cpu_ms_per_credential.batch{batch}"] = round(cpu_ms, 2)
                figures[f"issue.credentials_per_s.batch{batch}"] = round(rate, 1)
                figures[f"issue.request_ms_p50.batch{batch}"] = round(p50, 1)
        finally:
            if proc is not None:
                proc.kill()
                proc.wait(timeout=30)
    for name in sorted(figures):
        print(f"{name} {figures[name]}", flush=True)
    return figures
