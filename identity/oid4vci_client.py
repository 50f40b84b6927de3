"""The wallet's side of OpenID4VCI 1.0: receive credentials from an offer, trusting only the ledger.

:func:`receive` runs the pre-authorized code flow against the issuer an offer names:

1. Resolve the offer (by value, or fetch ``credential_offer_uri``).
2. Read the Credential Issuer metadata; its ``credential_issuer`` must be the offer's.
3. **Check the issuer against the ledger** (light client, certified state): the metadata's
   ``imi_issuer_did`` is an accredited issuer, and its DID document has a service of type
   :data:`~identity.constants.ISSUER_SERVICE_TYPE` whose endpoint is exactly this
   ``credential_issuer``. A phishing "issuer" cannot pass: it cannot put its URL into an
   agency's DID document. Nothing is signed before this check.
4. Token (with the PIN, ``tx_code``), nonce, and one proof per holder key with
   ``aud`` = the verified ``credential_issuer``.
5. Verify every credential against the ledger (issuer signature by an assertion key of
   that DID, accreditation for the vct, status valid, ``cnf`` = the key we proved) before
   anything is stored; then store the batch and record the issuance in the wallet.

The first proof's holder is the one the agency enrols (or has enrolled): a DID when
``did`` is given, else the key this wallet used before with the same issuer, else a new
key. Further proofs (``batch`` > 1) use fresh keys, one credential each.

:func:`preview` runs steps 1–3 alone (nothing signed, nothing sent but reads) so a person
can see who the issuer is and what it offers before agreeing; :func:`receive` accepts its
result. The display names of each credential configuration (zh-CN and en, from the
issuer's metadata) are recorded with the issuance; holder keys made for proofs the issuer
answered with no credential (it issues at most the offer's batch) are forgotten.

Transport is an httpx-like client passed in (``get``/``post``). Plain ``http://`` is
refused except to a loopback host (development) or with ``allow_http`` (tests). Raises
:class:`~identity.issuance.IssuanceRequestError` (``reason``: the issuer's OAuth error
code, or one of ``bad-offer``, ``issuer-untrusted``, ``issuer-error``,
``issuer-unavailable``, ``credential-invalid``, ``tx-code-required``) or
:class:`~identity.errors.WalletError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from identity import did as didmod
from identity import oid4vci as vci
from identity.constants import BATCH_SIZE_MAX, ISSUER_SERVICE_TYPE, PRE_AUTHORIZED_GRANT
from identity.errors import (
    IdentityError,
    LightClientError,
    NotFoundError,
    VerificationError,
    WalletError,
)
from identity.issuance import IssuanceRequestError, make_proof
from identity.ledger_trust import LedgerIssuerKeys, LedgerStatusLists
from identity.light_client import LightClient
from identity.request import PresentationRequest
from identity.verifier import CnfHolderKeys, check_presentation
from identity.wallet import Wallet
from ledger.errors import KeyError_
from ledger.keys import SigningKey

RESPONSE_BYTES_MAX: Final = 512 * 1024
DISPLAY_NAME_CHARS_MAX: Final = 200  # a credential type's display name kept in the wallet
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    """An issuer endpoint checked against the ledger."""

    did: str
    credential_issuer: str
    metadata: Mapping[str, Any]


def _require_url(url: str, allow_http: bool) -> None:
    """https, or http to this machine (development), or any http when ``allow_http`` (tests)."""
    loopback = url.startswith("http://") and urlsplit(url).hostname in LOOPBACK_HOSTS
    if not url.startswith("https://") and not loopback and not (allow_http and url.startswith("http://")):
        raise IssuanceRequestError(f"{url[:100]!r}: the wallet talks to issuers over https only",
                                   reason="issuer-untrusted")


def _json_answer(response: Any, what: str) -> dict[str, Any]:
    if len(response.content) > RESPONSE_BYTES_MAX:
        raise IssuanceRequestError(f"{what}: answer too large", reason="issuer-error")
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict):
        code = body.get("error") or body.get("reason") if isinstance(body, dict) else None
        detail = body.get("error_description") or body.get("detail") if isinstance(body, dict) else None
        raise IssuanceRequestError(f"{what}: HTTP {response.status_code}: {detail or ''}".strip(),
                                   reason=str(code or "issuer-error"))
    return body


def _send(http: Any, method: str, url: str, what: str, **kwargs: Any) -> dict[str, Any]:
    try:
        response = http.request(method, url, **kwargs)
    except Exception as exc:  # transport failures become one typed error
        raise IssuanceRequestError(f"{what}: {url} unreachable: {exc}", reason="issuer-unavailable") from exc
    return _json_answer(response, what)


def resolve_offer(uri: str, http: Any, *, allow_http: bool = False) -> vci.CredentialOffer:
    """The offer of an ``openid-credential-offer://`` URI (fetched when by reference)."""
    offer, reference = vci.parse_offer_uri(uri)
    if reference is not None:
        _require_url(reference, allow_http)
        offer = _send(http, "GET", reference, "credential offer")
    return vci.check_offer(offer)


def trusted_issuer(credential_issuer: str, http: Any, ledger: LightClient, now: int, *,
                   allow_http: bool = False) -> TrustedIssuer:
    """Metadata of ``credential_issuer``, checked against the ledger (module doc, step 3)."""
    _require_url(credential_issuer, allow_http)
    metadata = _send(http, "GET", credential_issuer + vci.ISSUER_METADATA_PATH, "issuer metadata")
    if metadata.get("credential_issuer") != credential_issuer:
        raise IssuanceRequestError("metadata names another credential_issuer", reason="issuer-untrusted")
    did = metadata.get("imi_issuer_did")
    if not isinstance(did, str) or not didmod.is_did(did):
        raise IssuanceRequestError("the issuer names no did:imi", reason="issuer-untrusted")
    try:
        record = ledger.issuer(did, now * 1000)
        document = ledger.resolve_did(did, now * 1000)["didDocument"]
    except NotFoundError as exc:
        raise IssuanceRequestError(f"{did} is not an accredited issuer", reason="issuer-untrusted") from exc
    except (LightClientError, KeyError_) as exc:
        raise IssuanceRequestError(f"cannot check {did} on the ledger: {exc}", reason="ledger-unavailable") from exc
    if record.get("status") != "accredited":
        raise IssuanceRequestError(f"{did} is {record.get('status')}", reason="issuer-untrusted")
    endpoints = {s.get("serviceEndpoint") for s in document.get("service", [])
                 if isinstance(s, dict) and s.get("type") == ISSUER_SERVICE_TYPE}
    if credential_issuer not in endpoints:
        raise IssuanceRequestError(f"{did}'s DID document does not name {credential_issuer} as its issuer "
                                   "endpoint", reason="issuer-untrusted")
    return TrustedIssuer(did, credential_issuer, metadata)


@dataclass(frozen=True, slots=True)
class Offered:
    """An offer and its issuer, checked against the ledger (steps 1–3), not yet redeemed."""

    offer: vci.CredentialOffer
    issuer: TrustedIssuer

    def configurations(self) -> Mapping[str, Any]:
        found = self.issuer.metadata.get("credential_configurations_supported")
        return found if isinstance(found, dict) else {}

    def vct(self, config_id: str) -> str:
        return str(self.configurations()[config_id].get("vct", config_id))

    def display(self, config_id: str) -> dict[str, str]:
        """{locale: name} of a configuration, from the metadata's ``display`` (zh-CN, en)."""
        config = self.configurations().get(config_id, {})
        meta = config.get("credential_metadata") if isinstance(config.get("credential_metadata"), dict) else config
        entries = meta.get("display") if isinstance(meta, dict) else None
        names: dict[str, str] = {}
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("locale") in vci.DISPLAY_LOCALES \
                    and isinstance(entry.get("name"), str):
                names.setdefault(str(entry["locale"]), entry["name"][:DISPLAY_NAME_CHARS_MAX])
        return names


def preview(offer_uri: str, *, http: Any, ledger: LightClient, now: int, allow_http: bool = False) -> Offered:
    """Resolve an offer and check its issuer on the ledger (module doc, steps 1–3)."""
    offer = resolve_offer(offer_uri, http, allow_http=allow_http)
    issuer = trusted_issuer(offer.credential_issuer, http, ledger, now, allow_http=allow_http)
    offered = Offered(offer, issuer)
    if not offered.configurations() or any(c not in offered.configurations() for c in offer.configuration_ids):
        raise IssuanceRequestError("the offer names a configuration the issuer does not publish",
                                   reason="bad-offer")
    return offered


def _first_holder(wallet: Wallet, issuer_did: str, did: str | None, alg: str,
                  key_id: str | None = None) -> tuple[SigningKey, str | None]:
    if key_id is not None:  # the key another door enrolled (remote enrolment)
        if key_id not in wallet.key_ids():
            raise WalletError(f"this wallet holds no key {key_id!r}", reason="no-such-key")
        return wallet.signing_key(key_id), None
    if did is not None:
        if did not in wallet.dids():
            raise WalletError(f"this wallet does not control {did}", reason="no-such-key")
        return wallet.signing_key(did), did
    before = wallet.holder_for(issuer_did)
    if before is not None and before in wallet.dids():
        return wallet.signing_key(before), before
    if before is not None:
        return wallet.signing_key(before), None
    return wallet.signing_key(wallet.new_key(alg)), None


def _verify(credential: str, issuer: TrustedIssuer, vct: str, cnf: Mapping[str, Any], ledger: LightClient,
            now: int) -> None:
    request = PresentationRequest(nonce="receive", aud=issuer.credential_issuer, vct=frozenset({vct}),
                                  trusted_issuers=frozenset({issuer.did}), require_key_binding=False)
    try:
        claims = check_presentation(credential, request, issuer_keys=LedgerIssuerKeys(ledger, clock_ms=lambda: now
                                                                                      * 1000),
                                    holder_keys=CnfHolderKeys(), status=LedgerStatusLists(ledger), now=now)
    except VerificationError as exc:
        raise IssuanceRequestError(f"received credential does not verify: {exc}",
                                   reason="credential-invalid") from exc
    if claims.get("cnf") != dict(cnf):
        raise IssuanceRequestError("received credential is bound to another key", reason="credential-invalid")


def receive(wallet: Wallet, offer_uri: str | Offered, *, http: Any, ledger: LightClient, now: int,
            tx_code: str | None = None, did: str | None = None, batch: int = 1, alg: str = "ES256",
            allow_http: bool = False, key_id: str | None = None, issuer_did: str | None = None) -> list[str]:
    """Receive every credential an offer (a URI, or its :func:`preview`) names (module doc);
    returns their wallet ids.
    ``key_id`` (a wallet key) proves first instead of ``did`` or the remembered holder;
    ``issuer_did``: the offer must come from that DID's issuer endpoint (``issuer-untrusted``
    otherwise, before anything is signed). The wallet changes in memory; the caller saves it."""
    if not 1 <= batch <= BATCH_SIZE_MAX:
        raise WalletError(f"batch must be 1..{BATCH_SIZE_MAX}", reason="bad-batch")
    offered = offer_uri if isinstance(offer_uri, Offered) else preview(offer_uri, http=http, ledger=ledger,
                                                                       now=now, allow_http=allow_http)
    offer, issuer = offered.offer, offered.issuer
    if issuer_did is not None and issuer.did != issuer_did:
        raise IssuanceRequestError(f"the offer comes from {issuer.did}, not from {issuer_did}",
                                   reason="issuer-untrusted")
    if offer.tx_code is not None and not tx_code:
        raise IssuanceRequestError("this offer needs the PIN the agency gave you (--tx-code)",
                                   reason="tx-code-required")
    form = {"grant_type": PRE_AUTHORIZED_GRANT, "pre-authorized_code": offer.code}
    if offer.tx_code is not None:
        form["tx_code"] = str(tx_code)
    token = _send(http, "POST", issuer.credential_issuer + vci.TOKEN_PATH, "token", data=form)
    access = token.get("access_token")
    if not isinstance(access, str):
        raise IssuanceRequestError("token answer has no access_token", reason="issuer-error")
    stored: list[str] = []
    for config_id in offer.configuration_ids:
        stored += _receive_one(wallet, offered, config_id, access, http=http, ledger=ledger, now=now,
                               did=did, batch=batch, alg=alg, key_id=key_id)
    return stored


def _receive_one(wallet: Wallet, offered: Offered, config_id: str, access: str, *, http: Any,
                 ledger: LightClient, now: int, did: str | None, batch: int, alg: str,
                 key_id: str | None = None) -> list[str]:
    issuer, vct = offered.issuer, offered.vct(config_id)
    nonce = _send(http, "POST", issuer.credential_issuer + vci.NONCE_PATH, "nonce").get("c_nonce")
    if not isinstance(nonce, str):
        raise IssuanceRequestError("nonce answer has no c_nonce", reason="issuer-error")
    first_key, first_did = _first_holder(wallet, issuer.did, did, alg, key_id)
    keys: list[tuple[SigningKey, str | None]] = [(first_key, first_did)]
    keys += [(wallet.signing_key(wallet.new_key(alg)), None) for _ in range(batch - 1)]
    proofs = [make_proof(k, aud=issuer.credential_issuer, nonce=nonce, iat=now, did=d) for k, d in keys]
    answer = _send(http, "POST", issuer.credential_issuer + vci.CREDENTIAL_PATH, "credential",
                   json={"credential_configuration_id": config_id, "proofs": {"jwt": proofs}},
                   headers={"Authorization": f"Bearer {access}"})
    credentials = answer.get("credentials")
    if not isinstance(credentials, list) or not 0 < len(credentials) <= len(keys) \
            or not all(isinstance(c, dict) and isinstance(c.get("credential"), str) for c in credentials):
        raise IssuanceRequestError("credential answer is malformed", reason="issuer-error")
    received = []
    for entry, (key, key_did) in zip(credentials, keys, strict=False):
        cnf = {"kid": key_did} if key_did is not None else {"jwk": dict(key.public_key.to_jwk())}
        _verify(entry["credential"], issuer, vct, cnf, ledger, now)
        received.append((entry["credential"], key_did if key_did is not None else key.key_id))
    try:
        ids = [wallet.add_credential(c, holder_key=h, now=now) for c, h in received]
    except IdentityError as exc:
        raise WalletError(str(exc), reason=exc.reason) from exc
    for key, _ in keys[len(received):]:  # fresh keys (never the first) the issuer bound nothing to
        wallet.forget_key(key.key_id)
    wallet.record_issuance(at=now, iss=issuer.did, credential_issuer=issuer.credential_issuer, vct=vct,
                           credentials=ids, holder=first_did if first_did is not None else first_key.key_id,
                           display=offered.display(config_id))
    return ids


__all__ = ["Offered", "TrustedIssuer", "preview", "receive", "resolve_offer", "trusted_issuer"]
