"""The zero-visit story as plain functions over the library (``make run`` narrates it).

Each step takes the state built by the previous ones and returns a small structured
result, so :mod:`cli.demo` can narrate it and ``tests/test_flow_zero_visit.py`` can
assert it without any terminal output:

0. :func:`start_consortium` — 4 validators (``imi devnet`` machinery);
   :func:`node_proof` reads a committed transaction back from ONE validator and checks
   its commit certificate and RFC 9162 inclusion proof.
1. :func:`accredit_agencies` — each agency creates its did:imi, the trustees (k of n)
   accredit it, it publishes its credential types and creates a status list.
2. :func:`onboard_citizen` — an encrypted wallet and a did:imi
   (:func:`identity.holder.create_did`) whose pre-committed next key goes to a separate
   encrypted *recovery kit*; each agency runs its issuer HTTP service
   (:mod:`identity.http.issuer_service` on loopback) and the citizen receives three credentials
   through it (nonce, proof of possession), bound to the DID (``cnf.kid`` = the bare DID,
   so a key rotation keeps them usable) and anchored on the ledger by the issuer.
3. :func:`ask_and_verify` — the community service's three questions; one presentation per
   credential; verified locally by a light client reading ONE validator, and by
   ``POST /v1/verify`` on another validator (its certificate checked too).
4. :func:`kill_validator` — ``kill -9`` one validator; the consortium keeps committing.
5. :func:`suspend_then_revoke` — the bureau's staff call its issuer service
   (``status.set`` on the ledger); verification fails ``suspended``, then ``revoked``.
6. :func:`recover_did` — the phone is lost: the encrypted wallet backup is restored on a new
   phone and ``did.rotate`` is signed by the recovery kit's key
   (:func:`identity.holder.rotate_did`); the DID-bound credentials verify with the new key,
   a presentation signed with the old key (the lost phone) is rejected.

Nothing here prints. Waiting (for commits, for a validator to catch up) goes through a
``wait`` callback that returns a context manager, so a caller can show a spinner.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from cli.devnet import Devnet
from identity import did as didmod
from identity.errors import IdentityError
from identity.fetcher import IdentityHttpFetcher
from identity.holder import create_did, request_credential, rotate_did
from identity.http.issuer_service import create_issuer_app
from identity.issuer_agent import IssuerAgent, Register, RegisterEntry
from identity.ledger_client import NodeClient
from identity.ledger_trust import LedgerHolderKeys, LedgerIssuerKeys, LedgerStatusLists
from identity.light_client import LightClient
from identity.request import PresentationRequest, lookup
from identity.verifier import verify_presentation
from identity.wallet import KdfParams, Wallet
from ledger.block import BlockHeader, CommitCertificate
from ledger.encoding import Value
from ledger.errors import LedgerError
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from ledger.merkle import leaf_hash, verify_inclusion
from ledger.tx import Transaction

Wait = Callable[[str], AbstractContextManager[object]]
Narrate = Callable[[str, object], None]

VALIDATORS = 4
HEARTBEAT_MS = 500
STATUS_LIST_SIZE = 1024  # entries per list: many holders share one list (herd privacy)
STATUS_BITS = 2  # valid / revoked / suspended
CATCH_UP_TIMEOUT_S = 30.0
WALLET_PASSWORD = "correct horse battery staple"  # a demo citizen's password
KIT_PASSWORD = "recovery kit passphrase, written on paper"

PSB_IDENTITY_VCT = "https://psb.foshan.gov.example/credentials/identity/v1"
PSB_RECORD_VCT = "https://psb.foshan.gov.example/credentials/no-criminal-record/v1"
CIVIL_RESIDENCE_VCT = "https://civil.foshan.gov.example/credentials/residence/v1"

CITIZEN_CLAIMS: dict[str, dict[str, Any]] = {
    PSB_IDENTITY_VCT: {"given_name": "Mei", "family_name": "Li", "birthdate": "1990-06-15",
                       "national_id": "440604199006150021", "nationality": "CN"},
    PSB_RECORD_VCT: {"no_criminal_record": True, "national_id": "440604199006150021",
                     "checked_on": "2026-11-01"},
    CIVIL_RESIDENCE_VCT: {"given_name": "Mei", "family_name": "Li",
                          "address": {"street_address": "18 Zumiao Road, Room 1203", "district": "Chancheng",
                                      "city": "Foshan", "province": "Guangdong"}},
}
# What the service must NOT learn (claim paths of the credentials above).
WITHHELD_PATHS = ("given_name", "family_name", "birthdate", "national_id", "address.street_address",
                  "checked_on")
SERVICE_AUD = "https://share.chancheng-community.example"
# Who does what: transactions go to v0, the service's light client reads v1, the remote
# verdict comes from v2, and v3 is the validator that dies. After the crash the service
# also reads v2 and asks v0 for the remote verdict.
WRITER, SERVICE_READER, REMOTE_VERIFIER, KILLED = "v0", "v1", "v2", "v3"
ROLES = (WRITER, SERVICE_READER, REMOTE_VERIFIER, KILLED)
STEPS = ("consortium", "citizen", "verification", "crash", "status", "recovery")


def _no_wait(_label: str) -> AbstractContextManager[object]:
    return contextlib.nullcontext()


def _silent(_event: str, _result: object) -> None:
    return None


class ScenarioError(Exception):
    """A step did not turn out as the story says; ``step`` names it."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step


@dataclass(frozen=True, slots=True)
class StepCheck:
    """One step's verdict for the summary: did it turn out as the story says?"""

    step: str
    ok: bool
    summary: str


# --- the consortium ------------------------------------------------------------------------------
@dataclass
class Consortium:
    """A running devnet and the trustees' keys (the devnet directory holds them)."""

    net: Devnet
    genesis: Genesis
    trustees: list[SigningKey]
    apis: dict[str, str]
    writer: str  # the validator transactions go to (never killed in the story)
    wait: Wait = _no_wait
    services: list[IssuerService] = field(default_factory=list)  # the agencies' issuer services
    _clients: dict[str, NodeClient] = field(default_factory=dict)

    @property
    def chain_id(self) -> str:
        return self.genesis.chain_id

    def client(self, name: str | None = None) -> NodeClient:
        name = name or self.writer
        if name not in self._clients:
            self._clients[name] = NodeClient(self.apis[name])
        return self._clients[name]

    def submit(self, type_: str, sender: str, payload: Mapping[str, Value], *keys: SigningKey) -> dict[str, Any]:
        """Build, sign, submit to the writer and wait for the commit; the node's answer."""
        node = self.client()
        with self.wait(f"{type_} → {self.writer}, waiting for commit"):
            return node.submit(node.build(type_, sender, payload, *keys, chain_id=self.chain_id))

    def gov(self, type_: str, payload: Mapping[str, Value]) -> dict[str, Any]:
        """A governance transaction signed by the first k trustees (k = the genesis threshold)."""
        return self.submit(type_, "gov", payload, *self.trustees[: self.genesis.trustee_threshold])

    def height(self, name: str) -> int:
        with httpx.Client(timeout=5.0) as http:
            return int(http.get(f"{self.apis[name]}/health").json()["height"])

    def wait_height(self, name: str, height: int, timeout_s: float = CATCH_UP_TIMEOUT_S) -> None:
        """Until validator ``name`` has committed ``height`` (reads there then see the write)."""
        deadline = time.monotonic() + timeout_s
        with self.wait(f"{name} catching up to height {height}"):
            while self.height(name) < height:
                if time.monotonic() > deadline:
                    raise ScenarioError("catch-up", f"{name} did not reach height {height} in {timeout_s} s")
                time.sleep(0.05)

    def close(self) -> None:
        """Stop the issuer services and close the node clients (the validators keep running)."""
        for service in self.services:
            service.stop()
        self.services.clear()
        for client in self._clients.values():
            client.close()
        self._clients.clear()


def start_consortium(directory: Path, *, wait: Wait = _no_wait, heartbeat_ms: int = HEARTBEAT_MS) -> Consortium:
    """``imi devnet up`` with 4 validators in ``directory``; returns once all are healthy."""
    net = Devnet(directory)
    with wait(f"starting {VALIDATORS} validators (LevelDB, mutual TLS between them)"):
        net.up(VALIDATORS, heartbeat_ms=heartbeat_ms)
    try:
        genesis = Genesis.loads((directory / "genesis.json").read_text())
        trustees = [SigningKey.from_private_jwk(json.loads(p.read_text()))
                    for p in sorted((directory / "trustees").glob("*.jwk"))]
        apis = {info.name: info.api for info in net.nodes()}
        if sorted(apis) != sorted(ROLES) or len(trustees) < genesis.trustee_threshold:
            raise ScenarioError("consortium", f"{directory} is not a {VALIDATORS}-validator devnet with its "
                                              "trustee keys")
    except BaseException:
        net.down()
        raise
    return Consortium(net, genesis, trustees, apis, writer=WRITER, wait=wait)


def consortium_status(c: Consortium) -> list[dict[str, Any]]:
    """Per validator: name, pid, api, up, height (``imi devnet status``)."""
    return list(c.net.status()["nodes"])


# --- step 0: one node's answer, checked against the genesis ------------------------------------
@dataclass(frozen=True, slots=True)
class NodeProof:
    tx_id: str
    tx_type: str
    reader: str
    height: int
    signers: int
    validators: int
    leaf_index: int
    tree_size: int
    log_root: str


def _anchor(body: Mapping[str, Any], genesis: Genesis) -> tuple[BlockHeader, CommitCertificate]:
    """Header + certificate from a node's answer, verified against the genesis validator set."""
    header = BlockHeader.from_json(body["header"])
    certificate = CommitCertificate.from_json(body["certificate"])
    certificate.verify(header, genesis.validators)
    return header, certificate


def node_proof(c: Consortium, tx_id: str, reader: str) -> NodeProof:
    """Read transaction ``tx_id`` from validator ``reader`` only; verify certificate and inclusion."""
    with httpx.Client(timeout=10.0) as http:
        answer = http.get(f"{c.apis[reader]}/v1/transactions/{tx_id}").json()
    header, certificate = _anchor(answer, c.genesis)
    proof = answer["inclusion_proof"]
    verify_inclusion(proof["leaf_index"], proof["tree_size"], leaf_hash(bytes.fromhex(tx_id)),
                     [bytes.fromhex(h) for h in proof["hashes"]], header.log_root)
    tx = Transaction.from_b64(answer["tx"]["b64"])
    if tx.tx_id.hex() != tx_id:
        raise ScenarioError("node proof", f"{reader} returned another transaction than {tx_id}")
    return NodeProof(tx_id, tx.type, reader, header.height, len(certificate.signatures),
                     len(c.genesis.validators.validators), proof["leaf_index"], proof["tree_size"],
                     header.log_root.hex())


# --- step 1: agencies ---------------------------------------------------------------------------
@dataclass
class Agency:
    """An accredited issuer: its DID keys, its credential types and its status list."""

    name: str
    key: SigningKey
    next_key: SigningKey
    vcts: dict[str, dict[str, Any]]  # vct → definition published on the ledger
    list_id: str
    service: IssuerService | None = None  # started in step 2

    @property
    def did(self) -> str:
        return didmod.derive_did(self.key.public_key.to_jwk(), didmod.key_commitment(self.next_key.public_key.to_jwk()))

    @property
    def kid(self) -> str:
        return f"{self.did}#{self.key.key_id}"


def _new_agency(name: str, vcts: dict[str, dict[str, Any]], list_id: str) -> Agency:
    return Agency(name, SigningKey.generate(), SigningKey.generate(), vcts, list_id)


def agencies_to_accredit() -> list[Agency]:
    """The public security bureau (identity, no criminal record) and the civil affairs bureau."""
    psb = _new_agency("Foshan Public Security Bureau", {
        PSB_IDENTITY_VCT: {"name": "Resident identity", "claims": ["given_name", "family_name", "birthdate",
                                                                   "national_id", "nationality"],
                           "predicates": {"age_equal_or_over": [14, 16, 18, 21, 65]}},
        PSB_RECORD_VCT: {"name": "No criminal record", "claims": ["no_criminal_record", "national_id",
                                                                  "checked_on"]},
    }, "psb-2026-01")
    civil = _new_agency("Foshan Civil Affairs Bureau", {
        CIVIL_RESIDENCE_VCT: {"name": "Residence", "claims": ["given_name", "family_name", "address"]},
    }, "civil-2026-01")
    return [psb, civil]


@dataclass(frozen=True, slots=True)
class Accredited:
    agencies: list[Agency]
    accreditation_txs: list[str]  # tx ids of gov.issuer_accredit
    heights: list[int]
    trustees_signing: int
    trustees_total: int


def accredit_agencies(c: Consortium, agencies: list[Agency] | None = None) -> Accredited:
    """Each agency: did.create, trustees' gov.issuer_accredit, vct.publish per type, status list."""
    agencies = agencies if agencies is not None else agencies_to_accredit()
    tx_ids, heights = [], []
    for agency in agencies:
        c.submit("did.create", agency.did, {
            "jwk": dict(agency.key.public_key.to_jwk()),
            "next_key_commitment": didmod.key_commitment(agency.next_key.public_key.to_jwk())}, agency.key)
        vcts: list[Value] = [vct for vct in sorted(agency.vcts)]
        answer = c.gov("gov.issuer_accredit", {"did": agency.did, "name": agency.name, "vcts": vcts})
        tx_ids.append(str(answer["id"]))
        heights.append(int(answer["height"]))
        for vct, definition in agency.vcts.items():
            c.submit("vct.publish", agency.did, {"vct": vct, **definition}, agency.key)
        c.submit("status.create_list", agency.did, {"list_id": agency.list_id, "bits": STATUS_BITS,
                                                    "size": STATUS_LIST_SIZE}, agency.key)
    return Accredited(agencies, tx_ids, heights, c.genesis.trustee_threshold, len(c.genesis.trustees))


# --- the agencies' issuer services (identity.http.issuer_service over HTTP, on loopback) ------------
class IssuerService:
    """One agency's issuer HTTP service (:func:`identity.http.issuer_service.create_issuer_app`),
    served by uvicorn in a thread on a free loopback port."""

    def __init__(self, agent: IssuerAgent, admin_token: str) -> None:
        self.agent = agent
        self.admin_token = admin_token
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(create_issuer_app(agent, admin_token=admin_token), log_level="warning",
                                lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"issuer {agent.did[-8:]}", daemon=True)

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise ScenarioError("issuer service", f"{self.url} did not start")
            time.sleep(0.02)

    def status(self, action: str, idx: int) -> int:
        """``POST /v1/issuance/<action>`` as the agency's staff; returns the commit height."""
        with httpx.Client(timeout=40.0) as http:
            response = http.post(f"{self.url}/v1/issuance/{action}", json={"idx": idx},
                                 headers={"Authorization": f"Bearer {self.admin_token}"})
        if response.status_code != 200:
            raise ScenarioError("status", f"issuer {action} answered HTTP {response.status_code}: "
                                          f"{response.text[:200]}")
        return int(response.json()["height"])

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10.0)
        self._socket.close()
        self.agent.node.close()


def start_issuer_service(c: Consortium, agency: Agency, register: Register) -> IssuerService:
    """The agency's :class:`IssuerAgent` (writes to the writer, reads it through a light client)
    behind its HTTP service; stopped with the consortium (:meth:`Consortium.close`)."""
    fetcher = IdentityHttpFetcher(c.apis[c.writer])
    agent = IssuerAgent(agency.did, agency.key, NodeClient(c.apis[c.writer]), LightClient(c.genesis, fetcher),
                        agency.list_id, register)
    service = IssuerService(agent, secrets.token_urlsafe(24))
    service.start()
    c.services.append(service)
    agency.service = service
    return service


# --- step 2: the citizen ------------------------------------------------------------------------
@dataclass
class HeldCredential:
    """A credential as the citizen and its issuer know it (no claim values)."""

    vct: str
    issuer: str  # agency name
    list_id: str
    status_idx: int
    wallet_id: str
    anchor: str  # hex digest put on the ledger by the issuer


@dataclass
class Citizen:
    """The phone (an encrypted wallet with the DID's current key and the credentials), an
    encrypted backup of it (no use without a current key), and the recovery kit (another
    encrypted wallet, kept off the phone, with the pre-committed next key only)."""

    did: str
    wallet_path: Path
    backup_path: Path
    kit_path: Path
    key_id: str  # current controller key (on the phone)
    next_key_id: str  # pre-committed next key (in the kit)
    credentials: dict[str, HeldCredential] = field(default_factory=dict)  # by vct

    def phone(self) -> Wallet:
        return Wallet.open(self.wallet_path, WALLET_PASSWORD)

    def kit(self) -> Wallet:
        return Wallet.open(self.kit_path, KIT_PASSWORD)


def _kdf(fast: bool) -> KdfParams:
    return KdfParams.fastest() if fast else KdfParams()


def _new_kit(path: Path, next_key: SigningKey, fast: bool) -> tuple[Path, str]:
    kit = Wallet.create(path, KIT_PASSWORD, kdf=_kdf(fast))
    key_id = kit.import_key(next_key)
    kit.save()
    return kit.path, key_id


def create_citizen(c: Consortium, workdir: Path, *, fast: bool = False) -> Citizen:
    """Wallet + ``did.create`` (:func:`identity.holder.create_did`); the next key goes to the kit."""
    workdir.mkdir(parents=True, exist_ok=True)
    phone = Wallet.create(workdir / "phone-wallet.imi", WALLET_PASSWORD, kdf=_kdf(fast))
    with c.wait(f"did.create → {c.writer}, waiting for commit"):
        did, next_key = create_did(phone, c.client())
    phone.save()
    kit_path, next_id = _new_kit(workdir / "recovery-kit.imi", next_key, fast)
    return Citizen(did, phone.path, workdir / "wallet-backup.imi", kit_path, phone.dids()[did], next_id)


def agency_register(agency: Agency, citizen_did: str) -> Register:
    """What the agency's records say about the citizen, keyed by the DID it enrolled."""
    by_vct = {vct: CITIZEN_CLAIMS[vct] for vct in agency.vcts}
    return Register({citizen_did: RegisterEntry(claims={}, by_vct=by_vct)})


def receive(c: Consortium, agency: Agency, citizen: Citizen, wallet: Wallet, vct: str) -> HeldCredential:
    """The issuance protocol over HTTP (nonce, proof of possession of the DID's current key);
    the agency anchors the credential on the ledger before handing it out."""
    assert agency.service is not None
    with c.wait(f"{agency.name}: issuing {vct.rsplit('/', 2)[-2]} (anchor.put, waiting for commit)"):
        wallet_id = request_credential(wallet, agency.service.url, vct, now=int(time.time()), did=citizen.did)
    status = wallet.show(wallet_id)["status"]["status_list"]
    record = next(r for r in agency.service.agent.records.all()
                  if r["subject"] == citizen.did and r["vct"] == vct and r["idx"] == status["idx"])
    held = HeldCredential(vct, agency.name, agency.list_id, int(status["idx"]), wallet_id, str(record["anchor"]))
    citizen.credentials[vct] = held
    return held


def onboard_citizen(c: Consortium, agencies: list[Agency], workdir: Path, *, fast: bool = False,
                    narrate: Narrate = _silent) -> Citizen:
    """Step 2: wallet, DID and recovery kit; each agency's issuer service; every credential;
    then an encrypted backup of the wallet."""
    citizen = create_citizen(c, workdir, fast=fast)
    for agency in agencies:
        with c.wait(f"starting the issuer service of {agency.name}"):
            start_issuer_service(c, agency, agency_register(agency, citizen.did))
    narrate("services", agencies)
    phone = citizen.phone()
    for agency in agencies:
        for vct in agency.vcts:
            receive(c, agency, citizen, phone, vct)
    phone.save()
    shutil.copyfile(citizen.wallet_path, citizen.backup_path)
    return citizen


# --- step 3: the service's question -------------------------------------------------------------
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
    header, _ = _anchor(body, c.genesis)
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


# --- step 4: a validator dies -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Crash:
    killed: str
    pid: int | None
    alive: list[str]
    height_before: int
    height_after: int  # a block committed by the remaining 3 (did.update of nothing: a heartbeat)


def kill_validator(c: Consortium, name: str) -> Crash:
    """``kill -9`` validator ``name``; then wait for the 3 others to commit a new block."""
    if name == c.writer:
        raise ScenarioError("kill", "the story keeps the writer alive; kill another validator")
    pid = c.net.pids().get(name)
    before = c.height(c.writer)
    c.net.kill(name)
    alive = [entry["name"] for entry in consortium_status(c) if entry["up"]]
    c.wait_height(c.writer, before + 2)
    return Crash(name, pid, alive, before, c.height(c.writer))


# --- step 5: suspend, then revoke ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StatusChange:
    status: str  # "suspended" | "revoked"
    height: int
    verdicts: list[Verdict]


def set_status(c: Consortium, agency: Agency, credential: HeldCredential, action: str, readers: list[str]) -> int:
    """The agency's staff ``POST /v1/issuance/<action>`` (a ``status.set`` on the ledger);
    returns the commit height once every reader has it."""
    assert agency.service is not None
    with c.wait(f"{agency.name}: {action} {credential.list_id}#{credential.status_idx}, waiting for commit"):
        height = agency.service.status(action, credential.status_idx)
    for reader in readers:
        c.wait_height(reader, height)
    return height


def suspend_then_revoke(c: Consortium, agency: Agency, citizen: Citizen, vct: str, *,
                        reader: str, remote: str) -> list[StatusChange]:
    """Step 5: suspend, verify; revoke, verify (both local and remote verdicts)."""
    credential = citizen.credentials[vct]
    changes = []
    for action, name in (("suspend", "suspended"), ("revoke", "revoked")):
        height = set_status(c, agency, credential, action, [reader, remote])
        request = service_requests()[vct]
        presentation = answer_requests(citizen.phone(), {vct: request})[vct]
        changes.append(StatusChange(name, height, [
            verify_locally(c, reader, vct, presentation, request),
            verify_remotely(c, remote, vct, presentation, request)]))
    return changes


# --- step 6: lost phone, recovery by the pre-committed key -------------------------------------
@dataclass(frozen=True, slots=True)
class Recovery:
    did: str
    old_key: str
    new_key: str
    height: int
    version: int
    new_wallet: Path
    new_kit: Path
    verdicts_new_key: list[Verdict]
    verdict_old_key: Verdict


def _did_version(c: Consortium, reader: str, did: str) -> tuple[str, int]:
    """(controller key id, version) of ``did`` read through the light client."""
    fetcher = IdentityHttpFetcher(c.apis[reader])
    try:
        resolved = LightClient(c.genesis, fetcher).resolve_did(did, int(time.time() * 1000))
    finally:
        fetcher.close()
    methods = resolved["didDocument"]["authentication"]
    return str(methods[0]).split("#", 1)[1], int(resolved["didDocumentMetadata"]["versionId"])


def restore_and_rotate(c: Consortium, citizen: Citizen, workdir: Path, *, fast: bool = False) -> tuple[int, Wallet, Path]:
    """The new phone: the encrypted backup restored, then ``did.rotate`` signed by the recovery
    kit's key (:func:`identity.holder.rotate_did`), committing to a key in a NEW kit.
    Returns (a height at or after the rotation, the new phone's wallet, the new kit)."""
    new_path = workdir / "new-phone-wallet.imi"
    shutil.copyfile(citizen.backup_path, new_path)
    new_phone = Wallet.open(new_path, WALLET_PASSWORD)
    next_key = citizen.kit().signing_key(citizen.next_key_id)
    with c.wait(f"did.rotate → {c.writer}, waiting for commit"):
        new_next = rotate_did(new_phone, c.client(), citizen.did, next_key)
    new_phone.save()
    kit_path, new_next_id = _new_kit(workdir / "recovery-kit-2.imi", new_next, fast)
    citizen.wallet_path, citizen.kit_path = new_path, kit_path
    citizen.key_id, citizen.next_key_id = next_key.key_id, new_next_id
    return c.height(c.writer), new_phone, kit_path


def recover_did(c: Consortium, citizen: Citizen, workdir: Path, *, reader: str, remote: str,
                vcts: list[str], fast: bool = False) -> Recovery:
    """Step 6: restore + rotate; the DID-bound credentials verify with the new key, the stolen
    phone's answers (old key) do not."""
    lost_phone, old_key = citizen.phone(), citizen.key_id  # the thief's copy: old key + credentials
    height, new_phone, new_kit = restore_and_rotate(c, citizen, workdir, fast=fast)
    for name in (reader, remote):
        c.wait_height(name, height)
    requests = service_requests()
    chosen = {vct: requests[vct] for vct in vcts}
    answers = answer_requests(new_phone, chosen)
    verdicts = []
    for vct, presentation in answers.items():
        verdicts.append(verify_locally(c, reader, vct, presentation, chosen[vct]))
        verdicts.append(verify_remotely(c, remote, vct, presentation, chosen[vct]))
    stolen = answer_requests(lost_phone, {vcts[0]: chosen[vcts[0]]})[vcts[0]]
    old = verify_locally(c, reader, vcts[0], stolen, chosen[vcts[0]])
    key_now, version = _did_version(c, reader, citizen.did)
    return Recovery(citizen.did, old_key, key_now, height, version, new_phone.path, new_kit, verdicts, old)


# --- the whole story ----------------------------------------------------------------------------
@dataclass
class Story:
    """Every step's result, in order; filled by :func:`run_story`."""

    consortium: Consortium
    proof: NodeProof | None = None
    accredited: Accredited | None = None
    citizen: Citizen | None = None
    verification: Outcome | None = None
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
    citizen = story.citizen
    ok = citizen is not None and len(citizen.credentials) == 3
    return StepCheck("citizen", ok, "encrypted wallet, did:imi with a pre-committed recovery key, "
                                    "3 DID-bound credentials")


def _check_outcome(outcome: Outcome | None) -> bool:
    return (outcome is not None and outcome.all_valid and len(outcome.verdicts) == 6
            and outcome.learned == {"address.district": "Chancheng", "age_equal_or_over.18": True,
                                    "no_criminal_record": True}
            and all(outcome.withheld.values()))


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
            StepCheck("verification", _check_outcome(story.verification),
                      "3 answers verified locally (light client, one node) and via POST /v1/verify; "
                      "only the answers disclosed"),
            _check_crash(story), _check_status(story), _check_recovery(story)]


def run_story(directory: Path, workdir: Path, *, narrate: Narrate = _silent, wait: Wait = _no_wait,
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
    except (ScenarioError, IdentityError, LedgerError, httpx.HTTPError, KeyError, ValueError) as exc:
        story.error = f"{type(exc).__name__}: {exc}"
    finally:
        if "consortium" in story.timings_s:  # step 1 includes starting the validators
            story.timings_s["consortium"] = round(story.timings_s["consortium"] + start_s, 2)
        story.consortium.close()
        if not (keep and story.error is None and story.recovery is not None):
            with wait("stopping the validators"):
                story.consortium.net.down()
    return story


def _run_steps(story: Story, workdir: Path, narrate: Narrate, fast: bool) -> None:
    c = story.consortium
    with _timed(story, "consortium", _silent):
        _step_consortium(story, narrate)
    assert story.accredited is not None
    psb, civil = story.accredited.agencies
    with _timed(story, "citizen", narrate):
        story.citizen = onboard_citizen(c, [psb, civil], workdir, fast=fast, narrate=narrate)
        narrate("citizen", story.citizen)
    with _timed(story, "verification", narrate):
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


__all__ = [
    "CIVIL_RESIDENCE_VCT",
    "KILLED",
    "PSB_IDENTITY_VCT",
    "PSB_RECORD_VCT",
    "REMOTE_VERIFIER",
    "SERVICE_READER",
    "STEPS",
    "WITHHELD_PATHS",
    "WRITER",
    "Accredited",
    "Agency",
    "Citizen",
    "Consortium",
    "Crash",
    "NodeProof",
    "Outcome",
    "Recovery",
    "ScenarioError",
    "StatusChange",
    "StepCheck",
    "Story",
    "Verdict",
    "accredit_agencies",
    "ask_and_verify",
    "check_story",
    "kill_validator",
    "node_proof",
    "onboard_citizen",
    "recover_did",
    "run_story",
    "start_consortium",
    "suspend_then_revoke",
]
