r"""Benchmark: presentations verified per second, end to end through the verifier service.

A 4-validator devnet (``cli.devnet.Devnet``: real consensus, LevelDB, mutual TLS), an
accredited agency with a published type and status list (:func:`bench.issue.agency`), a
service DID registered by the trustees (``gov.service_register``) to ask for that type's
``given_name`` and ``age_equal_or_over.18``, and ``imi verifier serve`` as its own process
(light client reads over the first validator). Before the clock, the agency signs one
credential per round (distinct, so no verifier cache can recognise a presentation) into
its own wallet (:class:`identity.wallet.Wallet`), and the wallet side reads the service's
key and registration from the ledger once (a wallet that has met the service before).

``CLIENTS`` concurrent clients each run rounds of: staff ``POST /v1/requests`` (DCQL) →
the wallet fetches the request object (``request_uri``), checks its signature and the
question against the registration (:func:`identity.oid4vp.open_request`,
:func:`identity.services.may_ask`) and builds the ``vp_token`` as a wallet does
(:func:`identity.oid4vp.wallet_answer`: a KB-JWT over the chosen disclosures) → ``POST
/v1/responses`` (``direct_post``) → staff ``GET /v1/requests/{id}``, which must say
``done`` and ``valid``. The wallet's work is inside the clock (it is part of the latency)
and its CPU time is also reported on its own.

Figures (``python -m bench present [--quick]``):

* ``present.verifications_per_s`` — verdicts per wall-clock second over all rounds;
* ``present.latency_ms_p50`` / ``.latency_ms_p99`` — one round, request to verdict;
* ``present.wallet_cpu_ms_p50`` — the wallet side of one round (thread CPU time in this
  process: request object check and ``vp_token``);
* ``present.verifier_cpu_ms_per_verification`` — CPU time (user + system, Linux ``/proc``)
  of the ``imi verifier serve`` process per round: its four HTTP exchanges, the request
  object's signature, the ledger reads and the check;
* ``present.check_cpu_ms`` — the verifier's own check of one response, per CPU second of
  this process: the service's function (:func:`~identity.http.verifier_service.ledger_verify_one`
  under :func:`identity.oid4vp.check_response`) over a light client configured as ``imi
  verifier serve`` configures it (reads reused for ``VERIFIER_READ_REUSE_MS``), on fresh
  ``vp_token`` answers for credentials (and holder keys) it has not seen, after one
  warm-up response;
* ``present.verify_cold_ms`` — ``bench verify``'s cold figure (its own function:
  one presentation with every check, no cache, per CPU second) measured in the same
  rounds: each round checks ``CHECKS_PER_ROUND`` fresh responses, then runs the cold
  function for ``COLD_S`` CPU seconds, back to back, each from a collected heap (the
  garbage of building the responses is not the check's; medians over ``CHECK_ROUNDS``
  rounds); ``present.check_vs_verify_cold`` is the median of the per-round ratios (the
  check must stay ≤ 1) and ``present.verifier_cpu_vs_verify_cold`` divides the service
  process's CPU per round by the cold figure (the whole service also pays its four HTTP
  exchanges and the request object's signature);
* ``present.verify_cold_fresh_ms`` — the same cold verification over as many distinct
  presentations as the check sees in a round, each its own credential and holder key,
  each verified once (:func:`bench.verify.fresh_costs`): the cold figure re-presents
  one presentation, whose key and text stay in memory; ``present.check_vs_verify_cold_fresh``
  divides the check by it, so what remains is the service's own work (OpenID4VP, ledger
  trust) rather than meeting new credentials; ``present.verify_cold_fresh_vs_cold`` divides
  it by the cold figure (median of the per-round ratios): the ratio a service whose own
  work cost nothing would reach, since every check meets a one-time credential — the
  floor under ``present.check_vs_verify_cold``.

Wall-clock rates on a shared machine: everything (validators, verifier, clients) runs on it.
"""

from __future__ import annotations

import gc
import json
import secrets
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from bench import issue as issue_bench
from bench import verify as verify_bench
from bench.harness import CODE_ROOT, running_devnet
from cli._consortium import free_ports
from cli.demo.issuer_process import spawn_service, wait_for_health
from cli.devnet import Devnet
from cli.loadgen import percentile
from identity import dcql, jose, oid4vp, services
from identity.fetcher import IdentityHttpFetcher
from identity.holder import register_did
from identity.http.constants import VERIFIER_READ_REUSE_MS, VERIFIER_REQUEST_TTL_S
from identity.http.verifier_service import ledger_verify_one
from identity.ledger_client import NodeClient
from identity.ledger_trust import LedgerIssuerKeys, LedgerServiceKeys, LedgerStatusLists, status_uri
from identity.light_client import LightClient
from identity.sdjwt import HolderBinding, issue
from identity.verifier import StatusReference
from identity.wallet import KdfParams, Wallet
from ledger.genesis import Genesis
from ledger.keys import PublicKey, SigningKey

CLIENTS: Final = 16
ROUNDS: Final = 320
ROUNDS_QUICK: Final = 48
CHECK_ROUNDS: Final = 7  # rounds of the in-process check against bench verify's cold figure
CHECK_ROUNDS_QUICK: Final = 5
CHECKS_PER_ROUND: Final = 60  # fresh responses per round: the first renews the kept reads, untimed
WARM_UP_CHECKS: Final = 2  # responses checked once before the first round (first reads, lazy imports)
COLD_S: Final = 0.2  # CPU seconds of bench verify's cold function per round
PART_CALLS: Final = 2_000  # calls per round timing each part of the service's own work
WARM_UP_ROUNDS: Final = 4  # light client catch-up, first reads, lazy imports: before the clock
START_S_MAX: Final = 120
HTTP_TIMEOUT_S: Final = 120.0
FRESHNESS_MS: Final = 60_000
QUESTION: Final = {"credentials": [{"id": "pid", "format": "dc+sd-jwt",
                                    "meta": {"vct_values": [issue_bench.VCT]},
                                    "claims": [{"path": ["given_name"]},
                                               {"path": ["age_equal_or_over", "18"], "values": [True]}]}]}


@dataclass(frozen=True, slots=True)
class _Service:
    did: str
    key: SigningKey
    directory: Path
    url: str
    staff: dict[str, str]
    question: dict[str, Any]  # the DCQL query staff ask (within the registration)


def _register_service(net: Devnet, directory: Path, out: Path) -> tuple[str, SigningKey]:
    """A service DID, registered by the trustees to ask the bench type's two claims."""
    node = NodeClient(net.nodes()[0].api)
    key = SigningKey.generate("ES256")
    did, _ = register_did(node, key)
    node.submit(node.build("gov.service_register", "gov", {
        "did": did, "name": {"en": "Bench desk", "zh-CN": "基准服务台"},
        "purpose": {"en": "Age check", "zh-CN": "年龄核验"},
        "queries": [{"vct": issue_bench.VCT, "claims": [["given_name"], ["age_equal_or_over", "18"]]}]},
        *issue_bench.trustees(directory)))
    node.close()
    out.mkdir()
    (out / "service.jwk").write_text(json.dumps(key.to_private_jwk()))
    (out / "staff.token").write_text(secrets.token_urlsafe(24) + "\n")
    return did, key


def _serve(net: Devnet, service: _Service, port: int) -> subprocess.Popen[bytes]:
    """``imi verifier serve`` as its own process (log: ``serve.log`` in the service's
    directory), returned once it answers ``/health``."""
    proc = spawn_service(service.directory, [
        "verifier", "serve", "--did", service.did, "--key", str(service.directory / "service.jwk"),
        "--node", net.nodes()[0].api, "--genesis", str(net.dir / "genesis.json"), "--port", str(port),
        "--token-file", str(service.directory / "staff.token")], CODE_ROOT)
    try:
        wait_for_health(service.url, proc, log_file=service.directory / "serve.log", timeout_s=START_S_MAX,
                        what="imi verifier serve")
    except BaseException:
        proc.kill()
        raise
    return proc


def _wallets(directory: Path, agency: tuple[SigningKey, str], count: int, *, first: int = 0) -> list[Wallet]:
    """One wallet per round, each holding one credential of its own (status index ``first`` + round)."""
    key, did = agency
    now = int(time.time())
    out: list[Wallet] = []
    for i in range(first, first + count):
        wallet = Wallet.create(directory / f"wallet-{i}.json", "bench", kdf=KdfParams.fastest())
        holder = wallet.public_key(wallet.new_key("ES256"))
        credential = issue(dict(issue_bench.CLAIMS), issuer_key=key, iss=did, vct=issue_bench.VCT,
                           holder=HolderBinding.from_key(holder), iat=now - 60,
                           status={"status_list": {"idx": i, "uri": status_uri(issue_bench.LIST_ID)}},
                           kid=f"{did}#{key.key_id}", predicates=issue_bench.PREDICATES).serialize()
        wallet.add_credential(credential, now=now)
        out.append(wallet)
    return out


class _KnownService:
    """The wallet's view of the service, read through the light client once: its key
    (for the request object's signature) and its registration (what it may ask)."""

    def __init__(self, light: LightClient, did: str, kid: str) -> None:
        now_ms = int(time.time() * 1000)
        self.key: PublicKey = LedgerServiceKeys(light, clock_ms=lambda: now_ms)(did, kid)
        self.record: dict[str, Any] = light.service(did, now_ms)

    def resolve(self, did: str, kid: str) -> PublicKey:
        if f"{did}#{self.key.key_id}" != kid:
            raise RuntimeError(f"unexpected request object kid {kid}")
        return self.key


def _round(http: httpx.Client, service: _Service, known: _KnownService, wallet: Wallet) -> float:
    """One question answered; returns the wallet's CPU seconds. Raises if the verdict is not valid."""
    made = http.post(service.url + "/v1/requests", json={"dcql_query": service.question}, headers=service.staff)
    if made.status_code != 200:
        raise RuntimeError(f"request refused: HTTP {made.status_code} {made.text[:200]}")
    client_id, request_uri = oid4vp.parse_authorization_uri(made.json()["request_uri"])
    request_object = http.get(request_uri).text
    cpu = time.thread_time()
    now = int(time.time())
    request = oid4vp.open_request(request_object, client_id=client_id, service_key=known.resolve, now=now)
    if services.may_ask(known.record, request.dcql_query):
        raise RuntimeError("the verifier asked beyond its registration")
    token = oid4vp.wallet_answer(wallet, request, now=now, verifier="Bench desk")
    cpu = time.thread_time() - cpu
    posted = http.post(request.response_uri, data={"vp_token": json.dumps(token), "state": request.state})
    if posted.status_code != 200:
        raise RuntimeError(f"response refused: HTTP {posted.status_code} {posted.text[:200]}")
    verdict = http.get(f"{service.url}/v1/requests/{made.json()['id']}", headers=service.staff).json()
    if verdict.get("state") != "done" or verdict.get("valid") is not True:
        raise RuntimeError(f"verdict not valid: {verdict}")
    return cpu


def _measure(service: _Service, known: _KnownService, wallets: list[Wallet]) -> tuple[float, list[float], list[float]]:
    """(verdicts per second, latencies, wallet CPU seconds) over ``wallets`` (one round each)."""
    latencies: list[float] = []
    wallet_cpu: list[float] = []
    done = threading.Lock()
    clients = [httpx.Client(timeout=HTTP_TIMEOUT_S) for _ in range(CLIENTS)]  # opened before the clock

    def client(c: int) -> None:
        for i in range(c, len(wallets), CLIENTS):
            start = time.perf_counter()
            cpu = _round(clients[c], service, known, wallets[i])
            with done:
                latencies.append(time.perf_counter() - start)
                wallet_cpu.append(cpu)

    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(client, range(CLIENTS)))
        elapsed = time.perf_counter() - start
    finally:
        for http in clients:
            http.close()
    return len(wallets) / elapsed, latencies, wallet_cpu


Check = Callable[[list[Wallet]], float]


def _checker(light: LightClient, service: _Service) -> Check:
    """The verifier's check as the service runs it (one :func:`ledger_verify_one` for its
    life): a function of fresh wallets → CPU ms per response checked. Each wallet answers
    a request of its own, built before the clock; a response that is not valid raises."""
    verify_one = ledger_verify_one(light)

    def check(request: oid4vp.AuthorizationRequest, token: dict[str, list[str]]) -> None:
        now = int(time.time())
        verdict = oid4vp.check_response(request, token, lambda p, q: verify_one(p, q, now))
        if not verdict.valid:
            raise RuntimeError(f"check failed: {verdict.reason} {verdict.detail}")

    def run(wallets: list[Wallet]) -> float:
        responses = []
        for wallet in wallets:
            now = int(time.time())
            request = oid4vp.new_request(service.did, service.url + "/v1/responses",
                                         dcql.parse_query(service.question), nonce=secrets.token_urlsafe(24),
                                         state=secrets.token_urlsafe(24), now=now, lifetime_s=VERIFIER_REQUEST_TTL_S)
            responses.append((request, oid4vp.wallet_answer(wallet, request, now=now)))
        # The light client's kept reads are renewed once per VERIFIER_READ_REUSE_MS whatever
        # the rate (one fetch and proof check per key and second); the first response of the
        # round renews them untimed, so the figure is the per-verification work, as at the
        # rates the service runs (at 2,000 checks per second a renewal is ~2 µs per check).
        check(*responses[0])
        gc.collect()  # the garbage of building the responses is not the check's
        start = time.process_time()
        for request, token in responses[1:]:
            check(request, token)
        return (time.process_time() - start) * 1000 / (len(responses) - 1)
    return run


def _service_parts_us(light: LightClient, service: _Service, wallet: Wallet) -> tuple[float, float, float]:
    """CPU µs per call of (issuer resolution, status lookup, OpenID4VP layer) for one
    response of ``wallet``, each called :data:`PART_CALLS` times after one untimed call
    (which renews the light client's kept reads, as the check's first response does)."""
    now = int(time.time())
    request = oid4vp.new_request(service.did, service.url + "/v1/responses", dcql.parse_query(service.question),
                                 nonce=secrets.token_urlsafe(24), state=secrets.token_urlsafe(24), now=now,
                                 lifetime_s=VERIFIER_REQUEST_TTL_S)
    token = oid4vp.wallet_answer(wallet, request, now=now)
    presentation = next(iter(token.values()))[0]
    question = oid4vp.presentation_requests(request, request.dcql_query.credentials[0])[0]
    result = ledger_verify_one(light)(presentation, question, now)
    if not result.valid:
        raise RuntimeError(f"check failed: {result.reason} {result.detail}")
    jws = jose.parse(presentation.split("~", 1)[0])
    entry = jws.payload["status"]["status_list"]
    reference = StatusReference(entry["idx"], entry["uri"])
    issuer_keys, status = LedgerIssuerKeys(light, clock_ms=lambda: now * 1000), LedgerStatusLists(light)

    def per_call_us(part: Callable[[], object]) -> float:
        part()
        start = time.process_time()
        for _ in range(PART_CALLS):
            part()
        return (time.process_time() - start) * 1e6 / PART_CALLS

    return (per_call_us(lambda: issuer_keys.resolve(jws.payload["iss"], jws.header)),
            per_call_us(lambda: status.check(reference, now=now)),
            per_call_us(lambda: oid4vp.check_response(request, token, lambda p, q: result)))


# figure -> digits it is rounded to, for the in-process check's figures (keys of _check_vs_cold)
CHECK_FIGURES: Final = {
    "check_cpu_ms": 3, "verify_cold_ms": 3, "check_vs_verify_cold": 2, "verify_cold_fresh_ms": 3,
    "check_vs_verify_cold_fresh": 2, "verify_cold_fresh_vs_cold": 2, "fresh_holder_key_us": 1,
    "fresh_text_us": 1, "issuer_resolution_us": 1, "status_lookup_us": 1, "oid4vp_layer_us": 1,
}


def _check_vs_cold(light: LightClient, service: _Service, wallets: list[Wallet], rounds: int) -> dict[str, float]:
    """The figures of :data:`CHECK_FIGURES` (without the ``present.`` prefix), each the median
    over ``rounds``. Each round checks :data:`CHECKS_PER_ROUND` fresh responses (the first
    untimed), then runs ``bench verify``'s cold function for :data:`COLD_S` CPU seconds, back
    to back, so load from other processes hits both alike; ratios are taken within a round
    (as ``bench verify`` takes its own)."""
    check = _checker(light, service)
    check(wallets[:WARM_UP_CHECKS])  # warm-up: first reads, lazy imports
    cold = verify_bench.cold_verification(int(time.time()))
    samples: dict[str, list[float]] = {name: [] for name in CHECK_FIGURES}
    for r in range(rounds):
        first = WARM_UP_CHECKS + r * CHECKS_PER_ROUND
        check_ms = check(wallets[first: first + CHECKS_PER_ROUND])
        gc.collect()  # as before the check: each side starts from a collected heap
        cold_ms = 1000 / verify_bench.per_second(cold, COLD_S)
        gc.collect()
        fresh_ms, key_us, text_us = verify_bench.fresh_costs(int(time.time()), CHECKS_PER_ROUND)
        issuer_us, status_us, oid4vp_us = _service_parts_us(
            light, service, wallets[WARM_UP_CHECKS + rounds * CHECKS_PER_ROUND + r])
        for name, value in (("check_cpu_ms", check_ms), ("verify_cold_ms", cold_ms),
                            ("check_vs_verify_cold", check_ms / cold_ms), ("verify_cold_fresh_ms", fresh_ms),
                            ("check_vs_verify_cold_fresh", check_ms / fresh_ms),
                            ("verify_cold_fresh_vs_cold", fresh_ms / cold_ms), ("fresh_holder_key_us", key_us),
                            ("fresh_text_us", text_us), ("issuer_resolution_us", issuer_us),
                            ("status_lookup_us", status_us), ("oid4vp_layer_us", oid4vp_us)):
            samples[name].append(value)
    return {name: statistics.median(values) for name, values in samples.items()}


def run(quick: bool) -> dict[str, float]:
    rounds = ROUNDS_QUICK if quick else ROUNDS
    figures: dict[str, float] = {}
    with running_devnet("imi-bench-present-") as (tmp, net):
        directory = net.dir
        proc = None
        try:
            agency = issue_bench.agency(net, directory, "https://issuer.bench.example")
            port = free_ports(1)[0]
            did, key = _register_service(net, directory, tmp / "service")
            token = (tmp / "service" / "staff.token").read_text().strip()
            service = _Service(did, key, tmp / "service", f"http://127.0.0.1:{port}",
                               {"authorization": f"Bearer {token}"}, QUESTION)
            proc = _serve(net, service, port)
            wallets = _wallets(tmp, agency, WARM_UP_ROUNDS + rounds)
            light = LightClient(Genesis.loads((directory / "genesis.json").read_text()),
                                IdentityHttpFetcher(net.nodes()[0].api), FRESHNESS_MS,
                                reuse_ms=VERIFIER_READ_REUSE_MS)  # as imi verifier serve reads
            light.catch_up()
            known = _KnownService(light, did, f"{did}#{key.key_id}")
            _measure(service, known, wallets[:WARM_UP_ROUNDS])
            cpu_before = issue_bench.cpu_s(proc.pid)
            rate, latencies, wallet_cpu = _measure(service, known, wallets[WARM_UP_ROUNDS:])
            cpu_ms = (issue_bench.cpu_s(proc.pid) - cpu_before) * 1000 / rounds
            proc.kill()  # the in-process check below runs alone beside the validators
            proc.wait(timeout=30)
            proc = None
            check_rounds = CHECK_ROUNDS_QUICK if quick else CHECK_ROUNDS
            checked = _check_vs_cold(
                light, service, _wallets(tmp, agency, WARM_UP_CHECKS + check_rounds * (CHECKS_PER_ROUND + 1),
                                        first=len(wallets)),
                check_rounds)
        finally:
            if proc is not None:
                proc.kill()
                proc.wait(timeout=30)
    figures["present.verifications_per_s"] = round(rate, 1)
    figures["present.latency_ms_p50"] = round(statistics.median(latencies) * 1000, 1)
    figures["present.latency_ms_p99"] = round(percentile(latencies, 0.99) * 1000, 1)
    figures["present.wallet_cpu_ms_p50"] = round(statistics.median(wallet_cpu) * 1000, 2)
    figures.update({f"present.{name}": round(checked[name], digits) for name, digits in CHECK_FIGURES.items()})
    if cpu_ms > 0:  # /proc present
        figures["present.verifier_cpu_ms_per_verification"] = round(cpu_ms, 2)
        figures["present.verifier_cpu_vs_verify_cold"] = round(cpu_ms / checked["verify_cold_ms"], 2)
    for name in sorted(figures):
        print(f"{name} {figures[name]}", flush=True)
    return figures
