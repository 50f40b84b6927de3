"""An accredited agency's issuer, as a library: issue SD-JWT VCs backed by the ledger.

:class:`IssuerAgent` holds the issuer DID and its assertion key, a
:class:`~identity.ledger_client.NodeClient` (writes), a
:class:`~identity.light_client.LightClient` (verified reads), one Token Status List
and the agency's :class:`Register` (what it already knows about each citizen).
It is what :mod:`identity.http.issuer_service` serves over HTTP, and what a script or the
demo calls directly:

* :meth:`IssuerAgent.new_nonce` / :meth:`IssuerAgent.issue_with_proof` — the holder
  protocol of :mod:`identity.issuance` (nonce, proof of possession).
* :meth:`IssuerAgent.issue_to` — issue to a subject with a binding the caller vouches for.
* :meth:`IssuerAgent.revoke` / :meth:`suspend` / :meth:`reinstate` — ``status.set``.

Issuing one credential: check the issuer's accreditation for the ``vct`` on the ledger,
pick a random unused index of the status list (herd privacy,
:func:`identity.status_list.allocate_index`), sign the SD-JWT VC with ``status`` and
``cnf``, submit ``anchor.put`` with its salted digest (:mod:`identity.anchors`) and wait
for commit. Only then is the credential handed out. The index and the anchor salt are
kept in the agency's own records (:class:`IssuerRecords`, optionally a JSON file), never
on the ledger.

Time is an argument everywhere (``now``, integer seconds).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from identity import did as didmod
from identity import jose
from identity.anchors import anchor_digest, new_salt
from identity.constants import (
    CREDENTIAL_LIFETIME_S_DEFAULT,
    PREPARED_KEYS_MAX,
    STATUS_INVALID,
    STATUS_SUSPENDED,
    STATUS_VALID,
)
from identity.errors import (
    IdentityError,
    IssuanceError,
    KeyBindingError,
    LightClientError,
    NotFoundError,
    StatusListError,
    SubmitError,
)
from identity.issuance import IssuanceRequestError, Nonce, NonceStore, parse_proof
from identity.ledger_client import NodeClient
from identity.ledger_trust import LedgerHolderKeys, status_uri
from identity.light_client import LightClient
from identity.sdjwt import HolderBinding, issue
from identity.status_list import allocate_index
from ledger.errors import KeyError_, LedgerError
from ledger.files import write_atomic
from ledger.keys import SigningKey

REGISTER_SUBJECTS_MAX: Final = 100_000
ISSUED_RECORDS_MAX: Final = 1_000_000
STATUS_ACTIONS: Final[Mapping[str, int]] = {
    "revoke": STATUS_INVALID, "suspend": STATUS_SUSPENDED, "reinstate": STATUS_VALID,
}


class IssuerLedgerError(IdentityError):
    """The ledger could not be read or refused a write (``reason`` from the node or light client)."""

    reason = "ledger-unavailable"


# --- the agency's register ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RegisterEntry:
    """What the agency knows about one citizen: claims per credential type.

    ``claims`` apply to every vct the issuer offers unless ``by_vct`` has an entry for it.
    ``holder_keys`` (RFC 7638 thumbprints), when non-empty, are the only keys a
    binding-by-JWK request for this subject may use.
    """

    claims: Mapping[str, Any]
    by_vct: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    holder_keys: frozenset[str] = frozenset()

    def claims_for(self, vct: str) -> Mapping[str, Any]:
        return self.by_vct.get(vct, self.claims)


class Register:
    """Subject (a holder DID, or the agency's own subject id) → :class:`RegisterEntry`.

    JSON form: ``{"<subject>": {"claims": {...}, "by_vct": {vct: {...}}?, "holder_keys": [..]?}}``.
    """

    __slots__ = ("_entries",)

    def __init__(self, entries: Mapping[str, RegisterEntry]) -> None:
        if len(entries) > REGISTER_SUBJECTS_MAX:
            raise ValueError(f"a register holds at most {REGISTER_SUBJECTS_MAX} subjects")
        self._entries = dict(entries)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Register:
        """Build from the JSON form; raises ValueError on a bad shape."""
        if not isinstance(data, Mapping):
            raise ValueError("register must be a JSON object")  # noqa: TRY004 - one type for bad JSON
        entries: dict[str, RegisterEntry] = {}
        for subject, item in data.items():
            if not isinstance(item, Mapping) or not isinstance(item.get("claims"), Mapping) \
                    or set(item) - {"claims", "by_vct", "holder_keys"}:
                raise ValueError(f"register entry {subject!r} must be {{claims, by_vct?, holder_keys?}}")
            by_vct = item.get("by_vct", {})
            keys = item.get("holder_keys", [])
            if not isinstance(by_vct, Mapping) or not all(isinstance(v, Mapping) for v in by_vct.values()):
                raise ValueError(f"register entry {subject!r}: by_vct must map vct to claims")
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise ValueError(f"register entry {subject!r}: holder_keys must be a list of strings")
            entries[str(subject)] = RegisterEntry(dict(item["claims"]), dict(by_vct), frozenset(keys))
        return cls(entries)

    @classmethod
    def load(cls, path: Path) -> Register:
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read register {str(path)!r}: {exc}") from exc

    def get(self, subject: str) -> RegisterEntry | None:
        return self._entries.get(subject)

    def put(self, subject: str, claims: Mapping[str, Any], *, holder_keys: frozenset[str] = frozenset()) -> None:
        """Add or replace a subject (e.g. a citizen who just registered a DID)."""
        if subject not in self._entries and len(self._entries) >= REGISTER_SUBJECTS_MAX:
            raise ValueError(f"a register holds at most {REGISTER_SUBJECTS_MAX} subjects")
        self._entries[subject] = RegisterEntry(dict(claims), {}, holder_keys)

    def __contains__(self, subject: object) -> bool:
        return subject in self._entries

    def __len__(self) -> int:
        return len(self._entries)


# --- the agency's records of what it issued -------------------------------------------
class IssuerRecords:
    """Used status indices and one record per issued credential (idx, vct, subject, anchor,
    salt, iat). In memory, or persisted to a JSON file (mode 0600, replaced atomically)."""

    __slots__ = ("_issued", "_path")

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._issued: list[dict[str, Any]] = []
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                self._issued = list(data["issued"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"issuer records {str(path)!r} are unreadable: {exc}") from exc

    def used(self, list_id: str) -> set[int]:
        return {int(r["idx"]) for r in self._issued if r["list_id"] == list_id}

    def add(self, record: dict[str, Any]) -> None:
        if len(self._issued) >= ISSUED_RECORDS_MAX:
            raise IssuanceError("issuer records are full", reason="records-full")
        self._issued.append(record)
        self._save()

    def all(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._issued]

    def _save(self) -> None:
        if self._path is None:
            return
        try:
            write_atomic(self._path, json.dumps({"issued": self._issued}))
        except OSError as exc:
            self._issued.pop()  # not recorded: the caller must not hand out the credential
            raise IssuanceError(f"cannot write issuer records: {exc.strerror or exc}",
                                reason="records-io-error") from exc


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    """One issued credential and its ledger traces (anchor digest and salt as hex)."""

    credential: str
    vct: str
    subject: str
    list_id: str
    idx: int
    anchor: str
    anchor_salt: str
    height: int | None
    cnf: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"credential": self.credential, "vct": self.vct, "status": self.status_claim,
                "anchor": self.anchor, "anchor_salt": self.anchor_salt, "height": self.height}

    @property
    def status_claim(self) -> dict[str, Any]:
        return {"status_list": {"idx": self.idx, "uri": status_uri(self.list_id)}}


# --- the agent -------------------------------------------------------------------------
class IssuerAgent:
    """An accredited issuer over the ledger. Thread-safe: issuance and status changes are
    serialised (one status-index allocation at a time)."""

    def __init__(
        self,
        did: str,
        key: SigningKey,
        node: NodeClient,
        client: LightClient,
        list_id: str,
        register: Register,
        *,
        records: IssuerRecords | None = None,
        lifetime_s: int = CREDENTIAL_LIFETIME_S_DEFAULT,
        nonces: NonceStore | None = None,
    ) -> None:
        if not didmod.is_did(did):
            raise ValueError(f"{did!r} is not a did:imi")
        if lifetime_s <= 0:
            raise ValueError("lifetime_s must be positive")
        self.did = did
        self.key = key
        self.node = node
        self.client = client
        self.list_id = list_id
        self.register = register
        self.records = records or IssuerRecords()
        self.lifetime_s = lifetime_s
        self.nonces = nonces or NonceStore()
        self._holder_keys = jose.PreparedKeys(PREPARED_KEYS_MAX)  # DID keys of holders, prepared once
        self._lock = threading.RLock()  # guards the light client, index allocation and records

    @property
    def kid(self) -> str:
        """The JOSE ``kid`` of issued credentials: a DID URL of the assertion key."""
        return f"{self.did}#{self.key.key_id}"

    # --- holder protocol ------------------------------------------------------------------
    def new_nonce(self, now: int) -> Nonce:
        return self.nonces.issue(now)

    def issue_with_proof(self, vct: str, proof: str, now: int, *, subject: str | None = None) -> IssuedCredential:
        """Issue ``vct`` to the holder who signed ``proof`` (see :mod:`identity.issuance`).

        Binding by DID: the subject is the DID, the proof key must be its current key, and
        ``cnf = {"kid": did}``. Binding by JWK: ``subject`` names the register entry (whose
        ``holder_keys``, if any, must contain the JWK) and ``cnf = {"jwk": ...}``.
        Raises IssuanceRequestError (the holder's fault), IssuanceError, IssuerLedgerError.
        """
        parsed = parse_proof(proof, aud=self.did, now=now)
        self.nonces.consume(parsed.nonce, now)  # before the signature: a nonce is burnt by any try
        if parsed.did is not None:
            if subject is not None and subject != parsed.did:
                raise IssuanceRequestError("subject must be the proof's DID", reason="subject-mismatch")
            parsed.verify_with(self._current_did_key(parsed.did, parsed.key_id or "", now))
            return self.issue_to(parsed.did, HolderBinding(kid=parsed.did), vct, now)
        assert parsed.jwk is not None
        parsed.verify_with(jose.PreparedKey(parsed.jwk))
        if subject is None:
            raise IssuanceRequestError("binding by JWK needs a subject", reason="unknown-subject")
        entry = self.register.get(subject)
        if entry is not None and entry.holder_keys and parsed.jwk.key_id not in entry.holder_keys:
            raise IssuanceRequestError("this key may not receive credentials for that subject",
                                       reason="holder-key-not-allowed")
        return self.issue_to(subject, HolderBinding(jwk=parsed.jwk.to_jwk()), vct, now)

    def _current_did_key(self, did: str, key_id: str, now: int) -> jose.PreparedKey:
        with self._lock:  # one light client, shared by the service's worker threads
            try:
                self.client.resolve_did(did, now * 1000)  # tells "not on the ledger" from "ledger down"
            except NotFoundError as exc:
                raise IssuanceRequestError(f"{did} is not on the ledger", reason="holder-did-unknown") from exc
            except (LightClientError, KeyError_) as exc:
                raise IssuerLedgerError(f"cannot resolve {did}: {exc}", reason="ledger-unavailable") from exc
            try:
                key = LedgerHolderKeys(self.client, clock_ms=lambda: now * 1000,
                                       keys=self._holder_keys).resolve({"kid": did})
            except KeyBindingError as exc:  # deactivated, or no usable key
                raise IssuanceRequestError(f"holder DID: {exc}", reason="holder-did-unknown") from exc
        if key.public_key.key_id != key_id:
            raise IssuanceRequestError("the proof key is not the DID's current key on the ledger",
                                       reason="holder-key-not-current")
        return key

    # --- issuing ----------------------------------------------------------------------------
    def issue_to(self, subject: str, holder: HolderBinding, vct: str, now: int) -> IssuedCredential:
        """Issue ``vct`` with the register's claims of ``subject`` to ``holder`` (trusted by
        the caller), record it, anchor it on the ledger and wait for commit."""
        entry = self.register.get(subject)
        if entry is None:
            raise IssuanceRequestError("the agency knows no such subject", reason="unknown-subject")
        self._check_accredited(vct, now)
        with self._lock:
            idx = self._allocate(now)
            credential = issue(
                entry.claims_for(vct), issuer_key=self.key, iss=self.did, vct=vct, holder=holder,
                iat=now, exp=now + self.lifetime_s, kid=self.kid,
                status={"status_list": {"idx": idx, "uri": status_uri(self.list_id)}},
            ).serialize()
            salt = new_salt()
            digest = anchor_digest(credential, salt)
            self.records.add({"list_id": self.list_id, "idx": idx, "vct": vct, "subject": subject,
                              "iat": now, "anchor": digest.hex(), "salt": salt.hex()})
            answer = self._submit("anchor.put", {"digests": [digest]})
        height = answer.get("height")
        return IssuedCredential(credential, vct, subject, self.list_id, idx, digest.hex(), salt.hex(),
                                height if isinstance(height, int) else None, holder.to_cnf())

    def _check_accredited(self, vct: str, now: int) -> None:
        try:
            with self._lock:
                record = self.client.issuer(self.did, now * 1000)
        except NotFoundError as exc:
            raise IssuanceError(f"{self.did} is not an accredited issuer", reason="issuer-not-accredited") from exc
        except (LightClientError, KeyError_) as exc:
            raise IssuerLedgerError(f"cannot read the accreditation: {exc}", reason="ledger-unavailable") from exc
        if record.get("status") != "accredited":
            raise IssuanceError(f"issuer is {record.get('status')}", reason="issuer-not-accredited")
        if vct not in record.get("vcts", []):
            raise IssuanceRequestError(f"this issuer is not accredited for {vct!r}", reason="vct-not-offered")

    def _allocate(self, now: int) -> int:
        try:
            record = self.client.status_list(self.list_id, now * 1000)
        except (LightClientError, KeyError_) as exc:
            raise IssuerLedgerError(f"cannot read status list {self.list_id}: {exc}",
                                    reason="ledger-unavailable") from exc
        if record.get("issuer") != self.did:
            raise IssuanceError(f"status list {self.list_id} belongs to another issuer", reason="not-list-owner")
        try:
            return allocate_index(record["lst"], record["bits"], self.records.used(self.list_id))
        except StatusListError as exc:
            raise IssuanceError(str(exc), reason=exc.reason) from exc

    # --- status -------------------------------------------------------------------------------
    def set_status(self, idx: int, action: str) -> int | None:
        """``action`` is ``revoke`` (final), ``suspend`` or ``reinstate``; returns the commit height.
        Raises IssuerLedgerError with the ledger's reason (``status-final``, ``invalid-transition``...)."""
        if action not in STATUS_ACTIONS:
            raise ValueError(f"action must be one of {sorted(STATUS_ACTIONS)}")
        if not isinstance(idx, int) or isinstance(idx, bool) or idx < 0:
            raise IssuanceRequestError("idx must be a non-negative integer", reason="bad-index")
        with self._lock:
            answer = self._submit("status.set", {"list_id": self.list_id,
                                                 "updates": [[idx, STATUS_ACTIONS[action]]]})
        height = answer.get("height")
        return height if isinstance(height, int) else None

    def revoke(self, idx: int) -> int | None:
        return self.set_status(idx, "revoke")

    def suspend(self, idx: int) -> int | None:
        return self.set_status(idx, "suspend")

    def reinstate(self, idx: int) -> int | None:
        return self.set_status(idx, "reinstate")

    def _submit(self, type_: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.node.submit(self.node.build(type_, self.did, payload, self.key))
        except SubmitError as exc:
            raise IssuerLedgerError(f"{type_}: {exc}", reason=exc.reason) from exc
        except LedgerError as exc:
            raise IssuerLedgerError(f"{type_}: {exc}", reason=exc.reason) from exc


# --- an issuer directory --------------------------------------------------------------
ISSUER_CONFIG: Final = "issuer.json"


@dataclass(frozen=True, slots=True)
class IssuerConfig:
    """``<dir>/issuer.json``: ``{did, key, list_id, register, records?, lifetime_s?}``; the
    file names (``key``: the issuer's private JWK, ``register``, ``records``) are relative
    to the directory. ``records`` defaults to ``issued.json``."""

    did: str
    key_path: Path
    list_id: str
    register_path: Path
    records_path: Path
    lifetime_s: int = CREDENTIAL_LIFETIME_S_DEFAULT

    @classmethod
    def load(cls, directory: Path) -> IssuerConfig:
        """Raises ValueError with a readable message on any defect."""
        path = directory / ISSUER_CONFIG
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read {str(path)!r}: {exc}") from exc
        if not isinstance(data, dict) or not {"did", "key", "list_id", "register"} <= set(data):
            raise ValueError(f"{str(path)!r} must hold did, key, list_id, register")
        lifetime = data.get("lifetime_s", CREDENTIAL_LIFETIME_S_DEFAULT)
        if not isinstance(lifetime, int) or lifetime <= 0:
            raise ValueError("lifetime_s must be a positive integer")
        return cls(str(data["did"]), directory / str(data["key"]), str(data["list_id"]),
                   directory / str(data["register"]), directory / str(data.get("records", "issued.json")),
                   lifetime)

    def agent(self, node: NodeClient, client: LightClient) -> IssuerAgent:
        """The agent this directory describes (reads the key and register)."""
        try:
            key = SigningKey.from_private_jwk(json.loads(self.key_path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError_) as exc:
            raise ValueError(f"cannot read issuer key {str(self.key_path)!r}: {exc}") from exc
        return IssuerAgent(self.did, key, node, client, self.list_id, Register.load(self.register_path),
                           records=IssuerRecords(self.records_path), lifetime_s=self.lifetime_s)


__all__ = [
    "ISSUER_CONFIG",
    "STATUS_ACTIONS",
    "IssuedCredential",
    "IssuerAgent",
    "IssuerConfig",
    "IssuerLedgerError",
    "IssuerRecords",
    "Register",
    "RegisterEntry",
]
