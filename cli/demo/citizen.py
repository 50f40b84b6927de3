"""The citizen of the story: an encrypted wallet on the phone, a did:imi whose pre-committed
next key goes to a separate encrypted recovery kit, and three credentials received from the
agencies' issuer services.

:func:`onboard_citizen` — wallet and DID (:func:`identity.holder.create_did`), each agency's
issuer service started with its register, every credential requested over HTTP (nonce,
proof of possession of the DID's current key), bound to the DID (``cnf.kid`` = the bare
DID, so a key rotation keeps them usable) and anchored on the ledger by the issuer; then
an encrypted backup of the wallet.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cli.demo.agencies import (
    CIVIL_RESIDENCE_VCT,
    PSB_IDENTITY_VCT,
    PSB_RECORD_VCT,
    Agency,
    start_issuer_service,
)
from cli.demo.consortium import Consortium, Narrate, silent
from identity.fetcher import IdentityHttpFetcher
from identity.holder import create_did
from identity.light_client import LightClient
from identity.oid4vci_client import receive as receive_offer
from identity.wallet import KdfParams, Wallet, read_recovery_kit, write_recovery_kit
from ledger.keys import SigningKey

WALLET_PASSWORD = "correct horse battery staple"  # a demo citizen's password
KIT_PASSWORD = "recovery kit passphrase, written on paper"

CITIZEN_CLAIMS: dict[str, dict[str, Any]] = {
    PSB_IDENTITY_VCT: {"given_name": "Mei", "family_name": "Li", "birthdate": "1990-06-15",
                       "national_id": "440604199006150021", "nationality": "CN"},
    PSB_RECORD_VCT: {"no_criminal_record": True, "national_id": "440604199006150021",
                     "checked_on": "2026-11-01"},
    CIVIL_RESIDENCE_VCT: {"given_name": "Mei", "family_name": "Li",
                          "address": {"street_address": "18 Zumiao Road, Room 1203", "district": "Chancheng",
                                      "city": "Foshan", "province": "Guangdong"}},
}


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


def agency_register(agency: Agency, citizen_did: str) -> dict[str, Any]:
    """What the agency's records say about the citizen, keyed by the DID it enrolled (the JSON
    form of :class:`identity.issuer_agent.Register`, as the issuer directory holds it)."""
    by_vct = {vct: CITIZEN_CLAIMS[vct] for vct in agency.vcts}
    return {citizen_did: {"claims": {}, "by_vct": by_vct}}


def receive(c: Consortium, agency: Agency, citizen: Citizen, wallet: Wallet, vct: str) -> HeldCredential:
    """Staff make an offer (with a PIN); the wallet receives it over OpenID4VCI (issuer checked
    on the ledger, proof by the DID's current key); the agency anchors the credential on the
    ledger before handing it out."""
    assert agency.service is not None
    offer_uri, pin = agency.service.offer(citizen.did, vct)
    ledger = LightClient(c.genesis, IdentityHttpFetcher(c.apis[c.writer]))
    with c.wait(f"{agency.name}: issuing {vct.rsplit('/', 2)[-2]} (anchor.put, waiting for commit)"), \
            httpx.Client(timeout=40.0) as http:
        (wallet_id,) = receive_offer(wallet, offer_uri, http=http, ledger=ledger, now=int(time.time()),
                                     tx_code=pin, did=citizen.did)
    status = wallet.show(wallet_id)["status"]["status_list"]
    record = next(r for r in agency.service.records()
                  if r["subject"] == citizen.did and r["vct"] == vct and r["idx"] == status["idx"])
    held = HeldCredential(vct, agency.name, agency.list_id, int(status["idx"]), wallet_id, str(record["anchor"]))
    citizen.credentials[vct] = held
    return held


def onboard_citizen(c: Consortium, agencies: list[Agency], workdir: Path, *, fast: bool = False,
                    narrate: Narrate = silent) -> Citizen:
    """Step 2: wallet, DID and recovery kit; each agency's issuer service; every credential;
    then an encrypted backup of the wallet."""
    citizen = create_citizen(c, workdir, fast=fast)
    for agency in agencies:
        with c.wait(f"starting the issuer service of {agency.name}"):
            c.services.append(start_issuer_service(c, agency, agency_register(agency, citizen.did)))
    narrate("services", agencies)
    phone = citizen.phone()
    for agency in agencies:
        for vct in agency.vcts:
            receive(c, agency, citizen, phone, vct)
    phone.save()
    shutil.copyfile(citizen.wallet_path, citizen.backup_path)
    return citizen



__all__ = [
    "CITIZEN_CLAIMS",
    "Citizen",
    "HeldCredential",
    "agency_register",
    "create_citizen",
    "kdf_for",
    "new_kit",
    "onboard_citizen",
    "receive",
]
