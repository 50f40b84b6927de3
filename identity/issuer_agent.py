"""An accredited agency's issuer, as a library: enrol people, issue SD-JWT VCs over OpenID4VCI.

:class:`IssuerAgent` holds the issuer DID and its assertion key, a
:class:`~identity.ledger_client.NodeClient` (writes), a
:class:`~identity.light_client.LightClient` (verified reads), one Token Status List, the
agency's :class:`Register` (what it knows about each subject: claims, keyed by the
agency's own subject id) and its :class:`~identity.issuer_store.IssuerStore`
(enrolments and issued records). It is what :mod:`identity.http.issuer_service` serves.

The one door. A credential goes only to the holder *enrolled* for a subject:

* **Staff** (authenticated by the service) call :meth:`IssuerAgent.enrol` to bind a subject
  to a holder (a did:imi, or a key thumbprint), or :meth:`IssuerAgent.create_offer` to
  make an OpenID4VCI credential offer with a pre-authorized code and a PIN (``tx_code``).
* A wallet redeems the offer (:meth:`token`, :meth:`new_nonce`, :meth:`credential`). If the
  subject is not enrolled yet, the offer is an *enrolment* offer (it always carries a PIN):
  the holder of the request's first proof becomes the enrolled holder. Once enrolled,
  every credential request for the subject must include a proof by the enrolled holder
  (the DID's current key, or the enrolled key) — a bare subject id, a fresh key or a
  public DID gets nothing. Further proofs in the same request (batch issuance) bind one
  credential each to other keys of the same wallet.

Issuing follows the published credential type (:class:`~identity.credtypes.CredentialType`,
read through the light client and reused for ``CREDENTIAL_TYPE_CACHE_S``): only a vct whose
definition this issuer published is offered or issued; the register's record of the subject
must hold only the type's claims (and the sources of its predicates, e.g. ``birthdate``) —
checked when staff make an offer and again before a credential request consumes anything;
the credential carries exactly the listed claims the record holds, disclosable exactly as
the definition says, and each predicate with exactly its published thresholds.

Then: check the accreditation for the ``vct`` on the ledger, pick random unused
indices of the status list (herd privacy), reserve them durably in the store, sign the
SD-JWT VCs with ``status`` and ``cnf``, submit one ``anchor.put`` with their salted digests
(:mod:`identity.anchors`) and wait for commit. Only then are the credentials handed out.

Time is an argument everywhere (``now``, integer seconds).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from identity import did as didmod
from identity import jose
from identity import oid4vci as vci
from identity.anchors import anchor_digest, new_salt
from identity.constants import (
    BATCH_SIZE_MAX,
    CREDENTIAL_LIFETIME_S_DEFAULT,
    CREDENTIAL_TYPE_CACHE_S,
    METADATA_CACHE_S,
    PREPARED_KEYS_MAX,
    STATUS_INVALID,
    STATUS_SUSPENDED,
    STATUS_VALID,
)
from identity.credtypes import CredentialType, CredentialTypeCache
from identity.errors import (
    IdentityError,
    IssuanceError,
    KeyBindingError,
    LightClientError,
    NotFoundError,
    StatusListError,
    SubmitError,
)
from identity.issuance import IssuanceRequestError, parse_proof
from identity.issuer_store import Enrolment, IssuerStore
from identity.ledger_client import NodeClient
from identity.ledger_trust import LedgerHolderKeys, status_uri
from identity.light_client import LightClient
from identity.request import lookup
from identity.sdjwt import HolderBinding, issue
from identity.status_list import allocate_index
from ledger.errors import KeyError_, LedgerError
from ledger.keys import PublicKey, SigningKey

REGISTER_SUBJECTS_MAX: Final = 100_000
SUBJECT_CHARS_MAX: Final = 256
STATUS_ACTIONS: Final[Mapping[str, int]] = {
    "revoke": STATUS_INVALID, "suspend": STATUS_SUSPENDED, "reinstate": STATUS_VALID,
}


class IssuerLedgerError(IdentityError):
    """The ledger could not be read or refused a write (``reason`` from the node or light client)."""

    reason = "ledger-unavailable"


# --- the agency's register ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RegisterEntry:
    """What the agency knows about one subject: claims per credential type.

    ``claims`` apply to every vct the issuer offers unless ``by_vct`` has an entry for it.
    """

    claims: Mapping[str, Any]
    by_vct: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def claims_for(self, vct: str) -> Mapping[str, Any]:
        return self.by_vct.get(vct, self.claims)


def _typed(value: object) -> object:
    """A register value as an index key: strings and integers with their type, anything else
    (absent, nested, boolean) as one key no question asks for."""
    return (type(value).__name__, value) if type(value) in (str, int) else None


class Register:
    """Subject (the agency's own subject id, e.g. a file number) → :class:`RegisterEntry`.

    JSON form: ``{"<subject>": {"claims": {...}, "by_vct": {vct: {...}}?}}``. The register
    says *what* to issue about a subject; *to whom* is the enrolment (:class:`IssuerStore`).
    """

    __slots__ = ("_entries", "_indexes", "_lock")

    def __init__(self, entries: Mapping[str, RegisterEntry]) -> None:
        if len(entries) > REGISTER_SUBJECTS_MAX:
            raise ValueError(f"a register holds at most {REGISTER_SUBJECTS_MAX} subjects")
        self._entries = dict(entries)
        # (dotted paths) -> (their typed values) -> subjects; built on first use, dropped on put
        self._indexes: dict[tuple[str, ...], dict[tuple[object, ...], list[str]]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Register:
        """Build from the JSON form; raises ValueError on a bad shape."""
        if not isinstance(data, Mapping):
            raise ValueError("register must be a JSON object")  # noqa: TRY004 - one type for bad JSON
        entries: dict[str, RegisterEntry] = {}
        for subject, item in data.items():
            if not isinstance(item, Mapping) or not isinstance(item.get("claims"), Mapping) \
                    or set(item) - {"claims", "by_vct"} or not 0 < len(str(subject)) <= SUBJECT_CHARS_MAX:
                raise ValueError(f"register entry {subject!r} must be {{claims, by_vct?}}")
            by_vct = item.get("by_vct", {})
            if not isinstance(by_vct, Mapping) or not all(isinstance(v, Mapping) for v in by_vct.values()):
                raise ValueError(f"register entry {subject!r}: by_vct must map vct to claims")
            entries[str(subject)] = RegisterEntry(dict(item["claims"]), dict(by_vct))
        return cls(entries)

    @classmethod
    def load(cls, path: Path) -> Register:
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read register {str(path)!r}: {exc}") from exc

    def get(self, subject: str) -> RegisterEntry | None:
        return self._entries.get(subject)

    def put(self, subject: str, claims: Mapping[str, Any]) -> None:
        """Add or replace a subject."""
        with self._lock:
            if subject not in self._entries and len(self._entries) >= REGISTER_SUBJECTS_MAX:
                raise ValueError(f"a register holds at most {REGISTER_SUBJECTS_MAX} subjects")
            self._entries[subject] = RegisterEntry(dict(claims), {})
            self._indexes.clear()

    def find(self, wanted: Sequence[tuple[str, object]]) -> list[str]:
        """The subjects whose claim at each dotted path equals its wanted value (same type:
        the string "1" is not the number 1). One index per set of paths, built on first use
        (not a scan of the register per question) and dropped when the register changes."""
        paths, key = tuple(path for path, _ in wanted), tuple(_typed(value) for _, value in wanted)
        if None in key:  # only strings and integers identify anyone
            return []
        with self._lock:
            index = self._indexes.get(paths)
            if index is None:
                index = {}
                for subject, entry in self._entries.items():
                    values = tuple(_typed(lookup(entry.claims, path)) for path in paths)
                    index.setdefault(values, []).append(subject)
                self._indexes[paths] = index
            return sorted(index.get(key, []))

    def subjects(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, subject: object) -> bool:
        return subject in self._entries

    def __len__(self) -> int:
        return len(self._entries)


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

    @property
    def status_claim(self) -> dict[str, Any]:
        return {"status_list": {"idx": self.idx, "uri": status_uri(self.list_id)}}


def _denied(exc: IssuanceRequestError, error: str = vci.INVALID_PROOF) -> vci.OAuthError:
    out = vci.OAuthError(error, f"{exc} [{exc.reason}]")
    out.__cause__ = exc
    return out


# --- the agent -------------------------------------------------------------------------
class IssuerAgent:
    """An accredited issuer over the ledger. Thread-safe: status-index allocation, signing and
    recording are serialised; the wait for the anchor's commit is not."""

    def __init__(
        self,
        did: str,
        key: SigningKey,
        node: NodeClient,
        client: LightClient,
        list_id: str,
        register: Register,
        *,
        credential_issuer: str,
        store: IssuerStore | None = None,
        lifetime_s: int = CREDENTIAL_LIFETIME_S_DEFAULT,
        display: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        if not didmod.is_did(did):
            raise ValueError(f"{did!r} is not a did:imi")
        if lifetime_s <= 0:
            raise ValueError("lifetime_s must be positive")
        if not credential_issuer.startswith(("https://", "http://")) or credential_issuer.endswith("/"):
            raise ValueError("credential_issuer must be an http(s) URL without a trailing slash")
        self.did = did
        self.key = key
        self.node = node
        self.client = client
        self.list_id = list_id
        self.register = register
        self.credential_issuer = credential_issuer
        self.records = store or IssuerStore()
        self.lifetime_s = lifetime_s
        self.display = {vct: dict(names) for vct, names in (display or {}).items()}
        self.offers = vci.OfferBook(credential_issuer)
        self.tokens = vci.TokenBook()
        self.nonces = vci.NonceMint()
        self._holder_keys = jose.PreparedKeys(PREPARED_KEYS_MAX)  # DID keys of holders, prepared once
        self._lock = threading.RLock()  # guards the light client, index allocation and records
        self._metadata: tuple[int, dict[str, Any]] | None = None
        self._chain_id: str | None = None  # read from the node once
        self._accredited: tuple[int, dict[str, Any]] | None = None
        self._status_list: dict[str, Any] | None = None
        self._types = CredentialTypeCache(ttl_s=CREDENTIAL_TYPE_CACHE_S)

    @property
    def kid(self) -> str:
        """The JOSE ``kid`` of issued credentials: a DID URL of the assertion key."""
        return f"{self.did}#{self.key.key_id}"

    # --- metadata -------------------------------------------------------------------------
    def metadata(self, now: int) -> dict[str, Any]:
        """Credential Issuer metadata from the ledger (accredited vcts and their published
        definitions), reused for :data:`METADATA_CACHE_S`."""
        cached = self._metadata
        if cached is not None and now - cached[0] < METADATA_CACHE_S:
            return cached[1]
        record = self._accreditation(now)
        configurations = {}
        for vct in record.get("vcts", []):
            try:
                definition = self._read_type(vct, now)
            except NotFoundError:
                continue  # accredited but not published yet: nothing to offer
            if definition["issuer"] != self.did:
                continue  # another issuer's definition: not ours to issue
            names = self.display.get(vct) or {"zh-CN": str(definition["name"]), "en": str(definition["name"])}
            configurations[vct] = vci.credential_configuration(definition, names, self.key.alg)
        name = str(record.get("name", self.did))
        metadata = vci.issuer_metadata(self.credential_issuer, issuer_did=self.did,
                                       issuer_name=self.display.get("", {"zh-CN": name, "en": name}),
                                       configurations=configurations)
        self._metadata = (now, metadata)
        return metadata

    def _read_type(self, vct: str, now: int) -> dict[str, Any]:
        """The published definition of ``vct`` as certified on the ledger (and into the type
        cache: a new version replaces the old one). Raises NotFoundError, IssuerLedgerError."""
        try:
            with self._lock:
                record = self.client.credential_type(vct, now * 1000)
            self._types.put(CredentialType.from_record(record), now * 1000)
        except NotFoundError:
            raise
        except (LightClientError, KeyError_, ValueError) as exc:
            raise IssuerLedgerError(f"cannot read type {vct}: {exc}", reason="ledger-unavailable") from exc
        return record

    def credential_type(self, vct: str, now: int) -> CredentialType:
        """The definition of ``vct`` this issuer published (cached for ``CREDENTIAL_TYPE_CACHE_S``).
        Raises IssuanceRequestError (``vct-not-published``, ``vct-other-issuer``), IssuerLedgerError."""
        found = self._types.get(vct, now * 1000)
        if found is None:
            try:
                self._read_type(vct, now)
            except NotFoundError as exc:
                raise IssuanceRequestError(f"{vct!r} is not a published credential type",
                                           reason="vct-not-published") from exc
            found = self._types.get(vct, now * 1000)
            assert found is not None  # just put
        if found.issuer != self.did:
            raise IssuanceRequestError(f"{vct!r} is published by another issuer", reason="vct-other-issuer")
        return found

    def typed_claims(self, subject: str, vct: str, now: int) -> tuple[CredentialType, Mapping[str, Any]]:
        """The definition of ``vct`` and the register's record of ``subject`` for it, checked
        against each other. Raises IssuanceRequestError (``unknown-subject``,
        ``vct-not-published``, ``vct-other-issuer``, ``claims-not-in-type``,
        ``predicate-not-derivable``, ``predicate-source-missing``, ``bad-predicate-source``)."""
        entry = self.register.get(subject)
        if entry is None:
            raise IssuanceRequestError("the agency knows no such subject", reason="unknown-subject")
        definition = self.credential_type(vct, now)
        record = entry.claims_for(vct)
        try:
            definition.check_record(record)
        except IssuanceError as exc:
            raise IssuanceRequestError(str(exc), reason=exc.reason) from exc
        return definition, record

    def _accreditation(self, now: int) -> dict[str, Any]:
        """The issuer's accreditation record, read through the light client at most every
        :data:`METADATA_CACHE_S` (a suspension takes effect here within that time; verifiers
        check the accreditation themselves on every presentation)."""
        cached = self._accredited
        if cached is not None and now - cached[0] < METADATA_CACHE_S:
            return cached[1]
        try:
            with self._lock:
                record = self.client.issuer(self.did, now * 1000)
        except NotFoundError as exc:
            raise IssuanceError(f"{self.did} is not an accredited issuer", reason="issuer-not-accredited") from exc
        except (LightClientError, KeyError_) as exc:
            raise IssuerLedgerError(f"cannot read the accreditation: {exc}", reason="ledger-unavailable") from exc
        if record.get("status") != "accredited":
            raise IssuanceError(f"issuer is {record.get('status')}", reason="issuer-not-accredited")
        self._accredited = (now, record)
        return record

    # --- staff: enrolment and offers ---------------------------------------------------------
    def enrol(self, subject: str, *, did: str | None = None, jwk: Mapping[str, Any] | None = None,
              now: int) -> Enrolment:
        """Staff: bind ``subject`` (known to the register) to a holder DID (active on the
        ledger) or public JWK. Raises IssuanceRequestError (unknown-subject, bad-holder,
        holder-did-unknown)."""
        if subject not in self.register:
            raise IssuanceRequestError("the agency knows no such subject", reason="unknown-subject")
        if (did is None) == (jwk is None):
            raise IssuanceRequestError("enrol a holder by exactly one of did or jwk", reason="bad-holder")
        if did is not None:
            if not didmod.is_did(did):
                raise IssuanceRequestError("holder did must be a did:imi", reason="bad-holder")
            self._resolve_active(did, now)
            return self.records.enrol(subject, "did", did, via="staff", at=now)
        try:
            thumbprint = PublicKey.from_jwk(dict(jwk or {})).thumbprint()
        except (KeyError_, ValueError, TypeError) as exc:
            raise IssuanceRequestError(f"holder jwk is not usable: {exc}", reason="bad-holder") from exc
        return self.records.enrol(subject, "jwk", thumbprint, via="staff", at=now)

    def create_offer(self, subject: str, vcts: list[str], now: int, *, batch: int = 1,
                     tx_code: bool = True) -> vci.CreatedOffer:
        """Staff: a credential offer for ``subject``. For a subject not enrolled yet it is an
        enrolment offer and always carries a PIN. Raises IssuanceRequestError
        (unknown-subject, vct-not-offered, bad-batch, tx-code-required)."""
        if subject not in self.register:
            raise IssuanceRequestError("the agency knows no such subject", reason="unknown-subject")
        if not 1 <= batch <= BATCH_SIZE_MAX:
            raise IssuanceRequestError(f"batch must be 1..{BATCH_SIZE_MAX}", reason="bad-batch")
        offered = self.metadata(now)["credential_configurations_supported"]
        if not vcts or any(v not in offered for v in vcts):
            raise IssuanceRequestError("this issuer does not offer that credential type", reason="vct-not-offered")
        for vct in vcts:  # refused now, at the counter, not later at the wallet
            self.typed_claims(subject, vct, now)
        enrol = self.records.enrolment(subject) is None
        if enrol and not tx_code:
            raise IssuanceRequestError("an enrolment offer needs a PIN", reason="tx-code-required")
        grant = vci.Grant(subject, tuple(dict.fromkeys(vcts)), batch, enrol)
        return self.offers.create(grant, now, tx_code=tx_code)

    # --- wallets: OpenID4VCI --------------------------------------------------------------------
    def token(self, form: Mapping[str, str], now: int) -> dict[str, Any]:
        """Token endpoint (pre-authorized code grant): a single-use code (and its PIN) for an
        access token."""
        code, tx_code = vci.parse_token_request(form)
        grant = self.offers.redeem(code, tx_code, now)
        token = self.tokens.issue(grant, now)
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.tokens.ttl_s}

    def new_nonce(self, now: int) -> str:
        return self.nonces.issue(now)

    def credential(self, authorization: str | None, body: object, now: int) -> list[IssuedCredential]:
        """Credential endpoint: one credential per proof in ``proofs.jwt``, for the grant's
        subject, to the holder keys proven — only if one of them is the enrolled holder
        (or the grant enrols the first). Raises :class:`~identity.oid4vci.OAuthError`,
        IssuanceError, IssuerLedgerError."""
        token = vci.bearer_token(authorization)
        grant = self.tokens.get(token, now)
        request = vci.parse_credential_request(body)
        vct = request.configuration_id
        if vct not in self.metadata(now)["credential_configurations_supported"]:
            raise vci.OAuthError(vci.UNKNOWN_CREDENTIAL_CONFIGURATION, "no such credential configuration")
        if vct not in grant.configuration_ids:
            raise vci.OAuthError(vci.INSUFFICIENT_SCOPE, "the access token does not cover this configuration "
                                 "(or it was issued under this token already)", status=403)
        nonces, holders, bindings = self._check_proofs(request.proofs, now)
        try:  # before anything is consumed or stored: a record the type refuses gets nothing
            typed = self.typed_claims(grant.subject, vct, now)
        except IssuanceRequestError as exc:
            raise _denied(exc, vci.CREDENTIAL_REQUEST_DENIED) from exc
        enrolment = self.records.enrolment(grant.subject)
        if enrolment is None and not grant.enrol:
            raise vci.OAuthError(vci.CREDENTIAL_REQUEST_DENIED, "the subject is not enrolled")
        if enrolment is not None and (enrolment.kind, enrolment.holder) not in holders:
            raise vci.OAuthError(vci.CREDENTIAL_REQUEST_DENIED,
                                 "no proof is by the holder enrolled for this subject")
        taken = self.tokens.take(token, vct, now)  # once per configuration, even for racing requests
        for nonce in nonces:
            self.nonces.consume(nonce, now)
        if enrolment is None:
            kind, holder = holders[0]
            self.records.enrol(grant.subject, kind, holder, via="offer", at=now)
            self.tokens.mark_enrolled(token)
        try:  # beyond the offer's batch the issuer issues fewer, for the first proofs (spec §8.3)
            return self._issue(grant.subject, bindings[:grant.batch_max], vct, now, typed)
        except Exception as exc:  # nothing handed out (e.g. the ledger unreachable): may be asked again
            self.tokens.give_back(token, vct, taken, now)
            if isinstance(exc, IssuanceRequestError):  # e.g. the subject left the register
                raise _denied(exc, vci.CREDENTIAL_REQUEST_DENIED) from exc
            raise

    def _check_proofs(self, proofs: tuple[str, ...], now: int
                      ) -> tuple[list[str], list[tuple[str, str]], list[HolderBinding]]:
        nonces: list[str] = []
        holders: list[tuple[str, str]] = []
        bindings: list[HolderBinding] = []
        for token in proofs:
            try:
                parsed = parse_proof(token, aud=self.credential_issuer, now=now)
            except IssuanceRequestError as exc:
                raise _denied(exc) from exc
            self.nonces.check(parsed.nonce, now)
            try:
                if parsed.did is not None:
                    parsed.verify_with(self._current_did_key(parsed.did, parsed.key_id or "", now))
                    binding = HolderBinding(kid=parsed.did)
                else:
                    assert parsed.jwk is not None
                    parsed.verify_with(jose.PreparedKey(parsed.jwk))
                    binding = HolderBinding(jwk=parsed.jwk.to_jwk())
            except IssuanceRequestError as exc:
                raise _denied(exc) from exc
            holder = vci.holder_of(parsed)
            if holder in holders:
                raise vci.OAuthError(vci.INVALID_PROOF, "each proof of a batch needs its own key")
            if parsed.nonce not in nonces:  # the proofs of one batch may share a c_nonce
                nonces.append(parsed.nonce)
            holders.append(holder)
            bindings.append(binding)
        return nonces, holders, bindings

    def _resolve_active(self, did: str, now: int) -> None:
        with self._lock:
            try:
                self.client.resolve_did(did, now * 1000)  # tells "not on the ledger" from "ledger down"
            except NotFoundError as exc:
                raise IssuanceRequestError(f"{did} is not on the ledger", reason="holder-did-unknown") from exc
            except (LightClientError, KeyError_) as exc:
                raise IssuerLedgerError(f"cannot resolve {did}: {exc}", reason="ledger-unavailable") from exc

    def _current_did_key(self, did: str, key_id: str, now: int) -> jose.PreparedKey:
        self._resolve_active(did, now)
        with self._lock:  # one light client, shared by the service's worker threads
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
    def _issue(self, subject: str, holders: list[HolderBinding], vct: str, now: int,
               typed: tuple[CredentialType, Mapping[str, Any]]) -> list[IssuedCredential]:
        """Issue ``vct`` of the published type with the register's record of ``subject`` (both
        from :meth:`typed_claims`), one credential per holder; record them durably, anchor
        them on the ledger and wait for commit."""
        definition, subject_record = typed
        try:
            claims = definition.issuable(subject_record, dt.datetime.fromtimestamp(now, tz=dt.UTC).date())
        except IssuanceError as exc:
            raise IssuanceRequestError(str(exc), reason=exc.reason) from exc
        record = self._accreditation(now)
        if vct not in record.get("vcts", []):
            raise IssuanceRequestError(f"this issuer is not accredited for {vct!r}", reason="vct-not-offered")
        with self._lock:
            indices = self._allocate(len(holders), now)
            out: list[tuple[str, int, str, str, HolderBinding]] = []
            for idx, holder in zip(indices, holders, strict=True):
                credential = issue(
                    claims, issuer_key=self.key, iss=self.did, vct=vct, holder=holder,
                    disclosable=definition.disclosable_claims,
                    iat=now, exp=now + self.lifetime_s, kid=self.kid,
                    status={"status_list": {"idx": idx, "uri": status_uri(self.list_id)}},
                ).serialize()
                salt = new_salt()
                out.append((credential, idx, anchor_digest(credential, salt).hex(), salt.hex(), holder))
            self.records.add_many([
                {"list_id": self.list_id, "idx": idx, "vct": vct, "subject": subject,
                 "holder_kind": "did" if h.kid is not None else "jwk",
                 "holder": h.kid if h.kid is not None else PublicKey.from_jwk(dict(h.jwk or {})).thumbprint(),
                 "iat": now, "anchor": digest, "salt": salt} for _, idx, digest, salt, h in out])
        # the indices are reserved durably: concurrent requests anchor (and wait for the commit)
        # side by side, and the node puts their anchor.put transactions into one block
        answer = self._submit("anchor.put", {"digests": [bytes.fromhex(d) for _, _, d, _, _ in out]})
        height = answer.get("height")
        return [IssuedCredential(c, vct, subject, self.list_id, idx, digest, salt,
                                 height if isinstance(height, int) else None, h.to_cnf())
                for c, idx, digest, salt, h in out]

    def _allocate(self, count: int, now: int) -> list[int]:
        """``count`` random unused indices; precondition: the lock is held. The list's owner
        and size never change, so it is read from the ledger once."""
        record = self._status_list
        if record is None:
            try:
                record = self.client.status_list(self.list_id, now * 1000)
            except (LightClientError, KeyError_) as exc:
                raise IssuerLedgerError(f"cannot read status list {self.list_id}: {exc}",
                                        reason="ledger-unavailable") from exc
            if record.get("issuer") != self.did:
                raise IssuanceError(f"status list {self.list_id} belongs to another issuer",
                                    reason="not-list-owner")
            self._status_list = record
        lst, bits = record["lst"], record["bits"]
        try:  # against the store's own set of given-out indices: no copy per request
            return self.records.choose_unused(self.list_id, count, lambda taken: allocate_index(lst, bits, taken))
        except StatusListError as exc:
            raise IssuanceError(str(exc), reason=exc.reason) from exc

    def credential_status(self, idx: int, now: int) -> int:
        """The ledger's status code of entry ``idx`` of this issuer's list (light client, under
        the lock: the light client is shared by the service's threads)."""
        with self._lock:
            try:
                return self.client.status(self.list_id, idx, now * 1000)
            except (LightClientError, KeyError_) as exc:
                raise IssuerLedgerError(f"cannot read status list {self.list_id}: {exc}",
                                        reason="ledger-unavailable") from exc

    def status_fill(self) -> tuple[int, int | None]:
        """Indices given out, and the list's capacity once it was read (first issuance)."""
        record = self._status_list
        capacity = len(record["lst"]) * 8 // int(record["bits"]) if record is not None else None
        return self.records.used_count(self.list_id), capacity

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
            if self._chain_id is None:
                self._chain_id = self.node.chain_id()
            return self.node.submit(self.node.build(type_, self.did, payload, self.key, chain_id=self._chain_id))
        except SubmitError as exc:
            raise IssuerLedgerError(f"{type_}: {exc}", reason=exc.reason) from exc
        except LedgerError as exc:
            raise IssuerLedgerError(f"{type_}: {exc}", reason=exc.reason) from exc


# --- an issuer directory --------------------------------------------------------------
ISSUER_CONFIG: Final = "issuer.json"


@dataclass(frozen=True, slots=True)
class IssuerConfig:
    """``<dir>/issuer.json``: ``{did, key, list_id, register, store?, lifetime_s?, display?}``;
    the file names (``key``: the issuer's private JWK, ``register``, ``store``) are relative
    to the directory. ``store`` (SQLite) defaults to ``issuer.sqlite``; ``display`` maps a
    vct (``""`` for the issuer itself) to names by locale (``zh-CN``, ``en``)."""

    did: str
    key_path: Path
    list_id: str
    register_path: Path
    store_path: Path
    lifetime_s: int = CREDENTIAL_LIFETIME_S_DEFAULT
    display: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

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
        display = data.get("display", {})
        if not isinstance(display, dict) or not all(
                isinstance(v, dict) and all(isinstance(n, str) for n in v.values()) for v in display.values()):
            raise ValueError("display must map a vct to {locale: name}")
        return cls(str(data["did"]), directory / str(data["key"]), str(data["list_id"]),
                   directory / str(data["register"]), directory / str(data.get("store", "issuer.sqlite")),
                   lifetime, display)

    def agent(self, node: NodeClient, client: LightClient, credential_issuer: str) -> IssuerAgent:
        """The agent this directory describes (reads the key and register, opens the store)."""
        try:
            key = SigningKey.from_private_jwk(json.loads(self.key_path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError_) as exc:
            raise ValueError(f"cannot read issuer key {str(self.key_path)!r}: {exc}") from exc
        return IssuerAgent(self.did, key, node, client, self.list_id, Register.load(self.register_path),
                           credential_issuer=credential_issuer, store=IssuerStore(self.store_path),
                           lifetime_s=self.lifetime_s, display=self.display)


__all__ = [
    "ISSUER_CONFIG",
    "STATUS_ACTIONS",
    "SUBJECT_CHARS_MAX",
    "IssuedCredential",
    "IssuerAgent",
    "IssuerConfig",
    "IssuerLedgerError",
    "Register",
    "RegisterEntry",
]
