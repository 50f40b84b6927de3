"""The demo agencies: two bureaus accredited by the trustees, their credential types and status
lists on the ledger, and their issuer services — for the story of ``make run`` and for
``imi devnet up --demo`` alike (over any :class:`~cli.demo.setup.DemoLedger`).

:func:`accredit_agencies` — each agency creates its did:imi, the trustees (k of n) accredit
it, it publishes its credential types and creates a status list.
:func:`launch_issuer_service` / :func:`start_issuer_service` — the agency's ``imi issue
serve`` process (:mod:`cli.demo.issuer_process`) over the site's node, with the agency's
register; the agency's DID document then names that endpoint.
:func:`remote_enrolment_config` — the one door: every agency but the public security bureau
accepts the bureau's resident identity credential, presented over OpenID4VP, as the proof of
who a person is (its register's ``national_id`` must equal the credential's); such an agency
is registered as a service that may ask exactly that claim (``gov.service_register``) and its
issuer service runs with ``--remote-enrolment``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cli.demo.issuer_process import IssuerProcess, launch_issuer_process
from cli.demo.setup import DemoLedger
from identity import did as didmod
from identity.constants import ISSUER_SERVICE_TYPE
from identity.remote_enrolment import RemoteEnrolmentConfig
from ledger.encoding import Value
from ledger.keys import SigningKey

STATUS_LIST_SIZE = 1024  # entries per list: many holders share one list (herd privacy)
STATUS_BITS = 2  # valid / revoked / suspended

PSB_IDENTITY_VCT = "https://psb.foshan.gov.example/credentials/identity/v1"
PSB_RECORD_VCT = "https://psb.foshan.gov.example/credentials/no-criminal-record/v1"
CIVIL_RESIDENCE_VCT = "https://civil.foshan.gov.example/credentials/residence/v1"
# Remote enrolment: the register field (of an entry's ``claims``) → the identity credential's claim.
REMOTE_ENROLMENT_MATCH: dict[str, str] = {"national_id": "national_id"}
NAMES_ZH: dict[str, str] = {"Foshan Public Security Bureau": "佛山市公安局",
                            "Foshan Civil Affairs Bureau": "佛山市民政局"}
ENROLMENT_PURPOSE: dict[str, Value] = {
    "en": "Enrol you without a visit: the resident identity number on your identity credential is "
          "checked against our register, then our credentials are issued to your wallet",
    "zh-CN": "免到场登记：核对您身份凭证上的公民身份号码与本机构登记一致后，向您的钱包签发本机构凭证",
}


@dataclass
class Agency:
    """An accredited issuer: its DID keys, its credential types and its status list."""

    name: str
    key: SigningKey
    next_key: SigningKey
    vcts: dict[str, dict[str, Any]]  # vct → definition published on the ledger
    list_id: str
    service: IssuerProcess | None = None  # started in step 2

    @property
    def did(self) -> str:
        return didmod.derive_did(self.key.public_key.to_jwk(), didmod.key_commitment(self.next_key.public_key.to_jwk()))

    @property
    def kid(self) -> str:
        return f"{self.did}#{self.key.key_id}"


def _new_agency(name: str, vcts: dict[str, dict[str, Any]], list_prefix: str) -> Agency:
    """A new agency (new keys); its status list id ends with the end of its DID, as list ids are
    unique on a chain and a rerun on the same devnet accredits new agencies."""
    agency = Agency(name, SigningKey.generate(), SigningKey.generate(), vcts, "")
    agency.list_id = f"{list_prefix}-{agency.did[-8:]}"
    return agency


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


def accredit_agencies(c: DemoLedger, agencies: list[Agency] | None = None) -> Accredited:
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



def remote_enrolment_config(agency: Agency, agencies: list[Agency]) -> dict[str, Any] | None:
    """The ``--remote-enrolment`` configuration of ``agency`` among the demo ``agencies``: accept
    the resident identity credential of the agency that issues it, matched on the national id,
    and offer every type ``agency`` publishes; None for the identity issuer itself (the one door)."""
    identity = next((a for a in agencies if PSB_IDENTITY_VCT in a.vcts), None)
    if identity is None or identity is agency:
        return None
    return {"accept": [{"issuer": identity.did, "vct": PSB_IDENTITY_VCT, "match": dict(REMOTE_ENROLMENT_MATCH)}],
            "offer": sorted(agency.vcts)}


def register_enrolment_service(ledger: DemoLedger, agency: Agency, config: Mapping[str, Any]) -> dict[str, Any]:
    """The trustees register ``agency`` as a service (``gov.service_register``) that may ask
    exactly the claims its remote enrolment ``config`` matches, so wallets answer it."""
    queries: list[Value] = [dict(q) for q in RemoteEnrolmentConfig.from_json(config).registration_queries()]
    return ledger.gov("gov.service_register", {
        "did": agency.did, "name": {"en": agency.name, "zh-CN": NAMES_ZH.get(agency.name, agency.name)},
        "purpose": dict(ENROLMENT_PURPOSE), "queries": queries})


def launch_issuer_service(ledger: DemoLedger, agency: Agency, register: Mapping[str, Any],
                          remote_enrolment: Mapping[str, Any] | None = None) -> IssuerProcess:
    """The agency's issuer service as an ``imi issue serve`` process in
    ``DIR/issuers/<list id>`` (writes to the site's node, reads it through a light client
    rooted in the devnet's genesis), spawned but not waited for; the agency's DID document
    then names its endpoint (what a wallet checks on the ledger). ``register``: the JSON form
    of :class:`identity.issuer_agent.Register`. With ``remote_enrolment`` (see
    :func:`remote_enrolment_config`) the agency is first registered as a service for its
    claims (:func:`register_enrolment_service`), and the process enrols remotely."""
    site = ledger.site
    if remote_enrolment is not None:
        register_enrolment_service(ledger, agency, remote_enrolment)
    service = launch_issuer_process(site.directory / "issuers" / agency.list_id, did=agency.did, key=agency.key,
                                    list_id=agency.list_id, register=register, node=site.node,
                                    genesis=site.genesis_file, code_root=site.code_root,
                                    remote_enrolment=remote_enrolment)
    agency.service = service
    try:
        ledger.submit("did.update", agency.did, {"services": [{"id": "oid4vci", "type": ISSUER_SERVICE_TYPE,
                                                               "endpoint": service.url}]}, agency.key)
    except BaseException:
        service.stop()
        raise
    return service


def start_issuer_service(ledger: DemoLedger, agency: Agency, register: Mapping[str, Any],
                         remote_enrolment: Mapping[str, Any] | None = None) -> IssuerProcess:
    """:func:`launch_issuer_service`, returning once the service answers ``/health``."""
    return launch_issuer_service(ledger, agency, register, remote_enrolment).started()


__all__ = [
    "CIVIL_RESIDENCE_VCT",
    "PSB_IDENTITY_VCT",
    "PSB_RECORD_VCT",
    "REMOTE_ENROLMENT_MATCH",
    "STATUS_LIST_SIZE",
    "Accredited",
    "Agency",
    "accredit_agencies",
    "agencies_to_accredit",
    "launch_issuer_service",
    "register_enrolment_service",
    "remote_enrolment_config",
    "start_issuer_service",
]
