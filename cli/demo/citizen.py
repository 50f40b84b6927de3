"""The citizen of the story: an encrypted wallet on the phone, a did:imi whose pre-committed
next key goes to a separate encrypted recovery kit, and three credentials — enrolled ONCE, at
one door.

:func:`onboard_citizen` — wallet and DID (:func:`identity.holder.create_did`); each agency's
issuer service started with its register (fictional people and the citizen, each agency
keying them by its own subject id); then:

* the one visit (:func:`visit_counter`): at the public security bureau's counter, staff make
  one credential offer for the citizen's resident identity number, with a PIN; the wallet
  redeems it over OpenID4VCI, proving possession of the DID's current key, which enrols the
  DID there and brings both of the bureau's credentials (``cnf.kid`` = the DID, so a key
  rotation keeps them usable);
* no visit (:func:`enrol_without_visit`): every other agency (civil affairs) enrols the citizen
  remotely: its issuer service starts an OpenID4VP request, the wallet — ``imi wallet enrol
  URI --yes``, a process, as a person's wallet is — presents the bureau's identity credential,
  the agency matches the national id against its register, enrols the same DID and answers
  with a credential offer the wallet redeems (no staff, no PIN);

then an encrypted backup of the wallet. Every credential is anchored on the ledger by its
issuer before it is handed out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

from cli.demo.agencies import (
    CIVIL_RESIDENCE_VCT,
    PSB_IDENTITY_VCT,
    PSB_RECORD_VCT,
    Agency,
    launch_issuer_service,
    remote_enrolment_config,
)
from cli.demo.consortium import Consortium, Narrate, silent
from cli.demo.errors import ScenarioError
from cli.demo.people import PEOPLE, Person, register_for, subject_id
from identity.fetcher import IdentityHttpFetcher
from identity.holder import create_did
from identity.light_client import LightClient
from identity.oid4vci_client import receive as receive_offer
from identity.wallet import KdfParams, Wallet, read_recovery_kit, write_recovery_kit
from ledger.keys import SigningKey

WALLET_COMMAND_TIMEOUT_S: Final = 120.0  # one `imi wallet …` process, python start-up on a loaded machine included
WALLET_PASSWORD = "correct horse battery staple"  # a demo citizen's password
KIT_PASSWORD = "recovery kit passphrase, written on paper"

CITIZEN: Final = Person("440604199006150021", "FS-CC-1990-0615-2", "Mei", "Li", "1990-06-15", "Chancheng",
                        "18 Zumiao Road, Room 1203", True)
_CITIZEN_TYPES: Final = {PSB_IDENTITY_VCT: ("given_name", "family_name", "birthdate", "national_id", "nationality"),
                         PSB_RECORD_VCT: ("no_criminal_record", "national_id", "checked_on"),
                         CIVIL_RESIDENCE_VCT: ("given_name", "family_name", "address")}
CITIZEN_CLAIMS: Final[dict[str, dict[str, Any]]] = {
    vct: {name: CITIZEN.claims()[name] for name in names} for vct, names in _CITIZEN_TYPES.items()}


@dataclass
class HeldCredential:
    """A credential as the citizen and its issuer know it (no claim values)."""

    vct: str
    issuer: str  # agency name
    list_id: str
    status_idx: int
    wallet_id: str
    anchor: str  # hex digest put on the ledger by the issuer


@dataclass(frozen=True, slots=True)
class Enrolled:
    """How an agency came to know the citizen's wallet: ``via`` as the agency's own store records
    it (``offer``: a counter offer redeemed with its PIN; ``remote:<issuer DID>``: an identity
    credential of that issuer presented over OpenID4VP)."""

    agency: str
    subject: str  # the agency's own id for the citizen
    holder: str  # whom the agency enrolled: the citizen's DID
    via: str
    staff_offers: int  # offers the agency's staff made for the citizen (each with a PIN)
    shared: tuple[str, ...] = ()  # remote: the claims the wallet disclosed to enrol
    vcts: tuple[str, ...] = ()  # the credential types then received

    @property
    def visit(self) -> bool:
        return self.staff_offers > 0


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
    enrolments: list[Enrolled] = field(default_factory=list)  # in order: the one visit, then none

    def phone(self) -> Wallet:
        return Wallet.open(self.wallet_path, WALLET_PASSWORD)

    def kit_key(self) -> SigningKey:
        """The pre-committed next key, decrypted from the recovery kit."""
        return read_recovery_kit(self.kit_path, KIT_PASSWORD)


def kdf_for(fast: bool) -> KdfParams:
    return KdfParams.fastest() if fast else KdfParams()


def new_kit(path: Path, fast: bool) -> SigningKey:
    """A new next key, written to an encrypted recovery kit before any transaction names it."""
    next_key = SigningKey.generate("EdDSA")
    write_recovery_kit(path, KIT_PASSWORD, next_key, kdf=kdf_for(fast))
    return next_key


def create_citizen(c: Consortium, workdir: Path, *, fast: bool = False) -> Citizen:
    """Wallet + ``did.create`` (:func:`identity.holder.create_did`); the next key goes to the kit."""
    workdir.mkdir(parents=True, exist_ok=True)
    phone = Wallet.create(workdir / "phone-wallet.imi", WALLET_PASSWORD, kdf=kdf_for(fast))
    with c.wait(f"did.create → {c.writer}, waiting for commit"):
        did, next_key = create_did(phone, c.client(), next_key=new_kit(workdir / "recovery-kit.imi", fast))
    phone.save()
    return Citizen(did, phone.path, workdir / "wallet-backup.imi", workdir / "recovery-kit.imi", phone.dids()[did],
                   next_key.key_id)


def _held(agency: Agency, wallet: Wallet, wallet_id: str, subject: str) -> HeldCredential:
    """A received credential as the citizen and its issuer know it (the issuer's record of it)."""
    assert agency.service is not None
    shown = wallet.show(wallet_id)
    vct, status = str(shown["vct"]), shown["status"]["status_list"]
    record = next(r for r in agency.service.records()
                  if r["subject"] == subject and r["vct"] == vct and r["idx"] == status["idx"])
    return HeldCredential(vct, agency.name, agency.list_id, int(status["idx"]), wallet_id, str(record["anchor"]))


def _enrolled(agency: Agency, subject: str, shared: tuple[str, ...], held: list[HeldCredential]) -> Enrolled:
    """The agency's own record of the enrolment, and how many offers its staff made."""
    assert agency.service is not None
    enrolment = agency.service.enrolment(subject)
    if enrolment is None:
        raise ScenarioError("enrolment", f"{agency.name} has no enrolment for {subject}")
    return Enrolled(agency.name, subject, enrolment.holder, enrolment.via, agency.service.offers_made, shared,
                    tuple(h.vct for h in held))


def visit_counter(c: Consortium, agency: Agency, citizen: Citizen, wallet: Wallet) -> Enrolled:
    """The one visit: staff make one offer (with a PIN) for every type the agency issues; the
    wallet redeems it over OpenID4VCI (issuer checked on the ledger, proof by the DID's current
    key; one access token, one credential request per type) — which enrols the DID; the agency
    anchors each credential before handing it out."""
    assert agency.service is not None
    subject = subject_id(agency, CITIZEN)
    ledger = LightClient(c.genesis, IdentityHttpFetcher(c.apis[c.writer]))
    offer_uri, pin = agency.service.offer(subject, sorted(agency.vcts))
    with c.wait(f"{agency.name}: the counter's offer + PIN, redeemed (anchor.put, waiting for commit)"), \
            httpx.Client(timeout=40.0) as http:
        ids = receive_offer(wallet, offer_uri, http=http, ledger=ledger, now=int(time.time()), tx_code=pin,
                            did=citizen.did)
    held = [_held(agency, wallet, wallet_id, subject) for wallet_id in ids]
    citizen.credentials.update((h.vct, h) for h in held)
    return _enrolled(agency, subject, (), held)


def run_wallet(c: Consortium, citizen: Citizen, *args: str) -> dict[str, Any]:
    """``imi wallet ARGS --json`` on the citizen's wallet as its own process (password from the
    environment, as a person's wallet app holds it); its JSON answer, ScenarioError if it fails."""
    command = [sys.executable, "-m", "cli.main", "wallet", *args, "--json", "--wallet", str(citizen.wallet_path),
               "--node", c.apis[c.writer], "--genesis", str(c.site.genesis_file)]
    env = {**os.environ, "IMI_WALLET_PASSWORD": WALLET_PASSWORD}
    try:
        done = subprocess.run(command, cwd=c.site.code_root, env=env, capture_output=True, text=True,
                              timeout=WALLET_COMMAND_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ScenarioError("wallet", f"imi wallet {args[0]} did not finish in {WALLET_COMMAND_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
        raise ScenarioError("wallet", f"imi wallet {args[0]} exited {done.returncode}: {lines[-1]}")
    try:
        answer = json.loads(done.stdout)
    except ValueError as exc:
        raise ScenarioError("wallet", f"imi wallet {args[0]} printed no JSON: {done.stdout[-200:]}") from exc
    if not isinstance(answer, dict):
        raise ScenarioError("wallet", f"imi wallet {args[0]} printed {type(answer).__name__}, not an object")
    return answer


def enrol_without_visit(c: Consortium, agency: Agency, citizen: Citizen) -> Enrolled:
    """No visit: the agency's issuer service starts an OpenID4VP enrolment request; ``imi wallet
    enrol URI --yes`` presents the identity credential it asks for and receives the agency's
    credentials, bound to the same DID. No staff, no PIN."""
    assert agency.service is not None
    uri = agency.service.start_remote_enrolment()
    with c.wait(f"{agency.name}: imi wallet enrol (identity presented over OpenID4VP, then OpenID4VCI)"):
        answer = run_wallet(c, citizen, "enrol", uri, "--yes")
    ids = answer.get("ids")
    if answer.get("sent") is not True or not isinstance(ids, list) or not ids:
        raise ScenarioError("remote enrolment", f"{agency.name}: the wallet received nothing: {answer}")
    wallet, subject = citizen.phone(), subject_id(agency, CITIZEN)
    held = [_held(agency, wallet, str(wallet_id), subject) for wallet_id in ids]
    citizen.credentials.update((h.vct, h) for h in held)
    shared = tuple(claim for item in answer.get("disclosed", []) for claim in item.get("claims", []))
    return _enrolled(agency, subject, shared, held)


def onboard_citizen(c: Consortium, agencies: list[Agency], workdir: Path, *, fast: bool = False,
                    narrate: Narrate = silent) -> Citizen:
    """Step 2: wallet, DID and recovery kit; each agency's issuer service; the one visit, then
    every other agency without a visit; then an encrypted backup of the wallet."""
    citizen = create_citizen(c, workdir, fast=fast)
    people = (*PEOPLE, CITIZEN)
    with c.wait("starting the agencies' issuer services"):
        launched = [launch_issuer_service(c, agency, register_for(agency, people),
                                          remote_enrolment_config(agency, agencies)) for agency in agencies]
        c.services.extend(launched)
        for service in launched:
            service.started()
    narrate("services", agencies)
    door = next(agency for agency in agencies if remote_enrolment_config(agency, agencies) is None)
    phone = citizen.phone()
    citizen.enrolments.append(visit_counter(c, door, citizen, phone))
    phone.save()
    narrate("enrolled", citizen.enrolments[-1])
    for agency in agencies:
        if agency is not door:
            citizen.enrolments.append(enrol_without_visit(c, agency, citizen))
            narrate("enrolled", citizen.enrolments[-1])
    shutil.copyfile(citizen.wallet_path, citizen.backup_path)
    return citizen


__all__ = [
    "CITIZEN",
    "CITIZEN_CLAIMS",
    "Citizen",
    "Enrolled",
    "HeldCredential",
    "create_citizen",
    "enrol_without_visit",
    "kdf_for",
    "new_kit",
    "onboard_citizen",
    "run_wallet",
    "visit_counter",
]
