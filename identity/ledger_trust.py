"""The verifier's trust, taken from the ledger through the light client.

Adapters from :mod:`identity.light_client` to the resolver protocols of
:mod:`identity.verifier`, so a verifier checks a presentation against certified
ledger state and never against a single node's word:

* :class:`LedgerIssuerKeys` — ``iss`` is an issuer's did:imi; the JOSE ``kid`` (a DID
  URL ``did:imi:…#<thumbprint>`` or the bare thumbprint) names one of its
  ``assertionMethod`` keys; the issuer must be *accredited* (not suspended or
  removed), and the vct list comes from its accreditation. The key comes with the
  published credential types (:class:`LedgerCredentialTypes`), so every credential is
  also checked against the definition of its ``vct``.
* :class:`LedgerCredentialTypes` — ``vct/<vct>`` definitions, each reused for
  ``CREDENTIAL_TYPE_CACHE_S`` from a :class:`~identity.credtypes.CredentialTypeCache`
  (pass a long-lived one with ``types_cache=``; a resolver built per request and
  given none reads the definition afresh each time).
* :class:`LedgerHolderKeys` — ``cnf.kid`` is the holder's did:imi (bare: its current
  controller key, so a credential survives key rotation) or a DID URL naming an
  ``authentication`` key; ``cnf.jwk`` works as in :class:`~identity.verifier.CnfHolderKeys`.
* :class:`LedgerStatusLists` — ``status.status_list.uri`` is ``urn:imi:status:<list id>``
  (:func:`status_uri`); the whole list is read (herd privacy: the node learns which
  list, not which entry) and must be fresh per the light client's bound.

Resolver calls carry no time, so each adapter takes a ``clock_ms`` (tests pass a
fixed one); status checks use the verifier's ``now`` (seconds).

Every resolution reads the ledger afresh (accreditation, DID documents and keys
can change at any height); only the preparation of a key — point validation,
thumbprint, the library key object — is remembered, in a bounded
:class:`~identity.jose.PreparedKeys` keyed by the JWK's members. With a light client
that keeps its current reads a moment (``reuse_ms``), :class:`LedgerIssuerKeys` also
keeps each issuer key it resolved together with the two reads it came from (the
accreditation record and the DID record) and answers again from it only while the
light client answers with those very reads: the result is a pure function of them and
the ``kid``, so a new read of either means a new resolution. Each resolver owns
one (``PREPARED_KEYS_MAX`` keys) unless its caller passes a longer-lived one
(``keys=``): resolvers are cheap to build per request, and a service that builds
them per request passes the cache it keeps for its life (the node's ``/v1/verify``,
the issuer agent).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from identity import did as didmod
from identity import jose
from identity.constants import ISSUER_RESOLUTIONS_KEPT_MAX, PREPARED_KEYS_MAX
from identity.credtypes import CredentialType, CredentialTypeCache
from identity.errors import (
    CredentialTypeError,
    IssuerError,
    KeyBindingError,
    LightClientError,
    NotFoundError,
    Oid4vpError,
    StatusError,
)
from identity.light_client import LightClient, Verified
from identity.verifier import CnfHolderKeys, CredentialStatus, IssuerKey, StatusReference
from ledger import statekeys
from ledger.errors import KeyError_
from ledger.keys import PublicKey
from ledger.lru import BoundedLRU

STATUS_URI_PREFIX = "urn:imi:status:"


def status_uri(list_id: str) -> str:
    """The ``status_list.uri`` an issuer puts in credentials for a ledger status list."""
    return STATUS_URI_PREFIX + list_id


def _wall_ms() -> int:
    return int(time.time() * 1000)


def _jwks(document: Mapping[str, Any], purpose: str) -> dict[str, Mapping[str, Any]]:
    """Fragment (key id) → public JWK for the document's keys with ``purpose``."""
    methods = {m["id"]: m["publicKeyJwk"] for m in document.get("verificationMethod", [])}
    out: dict[str, Mapping[str, Any]] = {}
    for ref in document.get(purpose, []):
        if ref in methods:
            out[ref.split("#", 1)[1]] = methods[ref]
    return out


class LedgerCredentialTypes:
    """:class:`~identity.verifier.CredentialTypes`: published definitions read through the
    light client, reused from ``cache`` while fresh."""

    __slots__ = ("_cache", "_client", "_clock_ms")

    def __init__(self, client: LightClient, *, clock_ms: Callable[[], int] = _wall_ms,
                 cache: CredentialTypeCache | None = None) -> None:
        self._client = client
        self._clock_ms = clock_ms
        self._cache = cache if cache is not None else CredentialTypeCache()

    def definition(self, vct: str) -> CredentialType:
        now_ms = self._clock_ms()
        found = self._cache.get(vct, now_ms)
        if found is not None:
            return found
        try:
            found = CredentialType.from_record(self._client.credential_type(vct, now_ms))
        except NotFoundError as exc:
            raise CredentialTypeError(f"{vct[:120]!r} is not a published type", reason="vct-not-published") from exc
        except (LightClientError, KeyError_, ValueError) as exc:
            raise CredentialTypeError(f"type {vct[:120]!r} cannot be verified on the ledger: {exc}",
                                      reason="vct-unavailable") from exc
        self._cache.put(found, now_ms)
        return found


class LedgerIssuerKeys:
    """:class:`~identity.verifier.IssuerKeyResolver` over the ledger; the keys it returns
    come with :class:`LedgerCredentialTypes` (sharing ``types_cache`` if given)."""

    __slots__ = ("_client", "_clock_ms", "_keys", "_resolved", "_types")

    def __init__(self, client: LightClient, *, clock_ms: Callable[[], int] = _wall_ms,
                 keys: jose.PreparedKeys | None = None, types_cache: CredentialTypeCache | None = None) -> None:
        self._client = client
        self._clock_ms = clock_ms
        self._keys = keys if keys is not None else jose.PreparedKeys(PREPARED_KEYS_MAX)
        self._types = LedgerCredentialTypes(client, clock_ms=clock_ms, cache=types_cache)
        # (iss, kid) -> (accreditation read, DID read, the key resolved from exactly those)
        self._resolved: BoundedLRU[tuple[str, str], tuple[Verified, Verified, IssuerKey]] = \
            BoundedLRU(ISSUER_RESOLUTIONS_KEPT_MAX)

    def resolve(self, iss: str, header: Mapping[str, Any]) -> IssuerKey:
        if not didmod.is_did(iss):
            raise IssuerError(f"issuer {iss[:80]!r} is not a did:imi", reason="unknown-issuer")
        kid = header.get("kid")
        now_ms = self._clock_ms()
        client = self._client
        try:
            accreditation = client.get_verified(statekeys.issuer_key(iss), now_ms)
            did_read = client.get_verified(statekeys.did_key(iss), now_ms)
        except (LightClientError, KeyError_) as exc:
            raise IssuerError(f"issuer {iss} cannot be verified on the ledger: {exc}",
                              reason="unknown-issuer") from exc
        kept = self._resolved.get((iss, kid)) if isinstance(kid, str) else None
        if kept is not None and kept[0] is accreditation and kept[1] is did_read:
            return kept[2]
        try:
            record = client.record(accreditation, "issuer-not-found")
            document = client.did_resolution(did_read, iss)["didDocument"]
        except NotFoundError as exc:
            raise IssuerError(f"{iss} is not an accredited issuer", reason="unknown-issuer") from exc
        except (LightClientError, KeyError_) as exc:
            raise IssuerError(f"issuer {iss} cannot be verified on the ledger: {exc}",
                              reason="unknown-issuer") from exc
        if record.get("status") != "accredited":
            raise IssuerError(f"issuer {iss} is {record.get('status')}", reason="issuer-not-accredited")
        if not isinstance(kid, str):
            raise IssuerError("issuer JWT has no kid", reason="unknown-issuer")
        fragment = kid.split("#", 1)[1] if kid.startswith(iss + "#") else kid
        jwk = _jwks(document, didmod.ASSERTION_METHOD).get(fragment)
        if jwk is None:
            raise IssuerError(f"{kid!r} is not an assertion key of {iss}", reason="unknown-issuer")
        try:
            key = self._keys.from_jwk(jwk)
        except KeyError_ as exc:
            raise IssuerError(f"{kid!r} is not a usable key: {exc}", reason="unknown-issuer") from exc
        found = IssuerKey(key, frozenset(record.get("vcts", [])), self._types)
        if client.reuse_ms:  # reads are kept a moment: the same reads may come again
            self._resolved.put((iss, kid), (accreditation, did_read, found))
        return found


class LedgerServiceKeys:
    """The key that signs a service's OpenID4VP request objects, from the ledger:
    an assertion key of the service's did:imi (:data:`identity.oid4vp.ServiceKeyResolver`)."""

    __slots__ = ("_client", "_clock_ms")

    def __init__(self, client: LightClient, *, clock_ms: Callable[[], int] = _wall_ms) -> None:
        self._client = client
        self._clock_ms = clock_ms

    def __call__(self, did: str, kid: str) -> PublicKey:
        try:
            result = self._client.resolve_did(did, self._clock_ms())
        except (LightClientError, KeyError_) as exc:
            raise Oid4vpError(f"service DID cannot be verified on the ledger: {exc}",
                              reason="invalid_client") from exc
        if result["didDocumentMetadata"]["deactivated"]:
            raise Oid4vpError("service DID is deactivated", reason="invalid_client")
        jwk = _jwks(result["didDocument"], didmod.ASSERTION_METHOD).get(kid.partition("#")[2])
        if jwk is None:
            raise Oid4vpError(f"{kid!r} is not an assertion key of {did}", reason="invalid_request_object")
        try:
            return PublicKey.from_jwk(jwk)
        except KeyError_ as exc:
            raise Oid4vpError(f"{kid!r} is not a usable key: {exc}", reason="invalid_request_object") from exc


class LedgerHolderKeys:
    """:class:`~identity.verifier.HolderKeyResolver`: ``cnf.kid`` DIDs via the ledger."""

    __slots__ = ("_client", "_clock_ms", "_jwk", "_keys")

    def __init__(self, client: LightClient, *, clock_ms: Callable[[], int] = _wall_ms,
                 keys: jose.PreparedKeys | None = None) -> None:
        self._client = client
        self._clock_ms = clock_ms
        self._keys = keys if keys is not None else jose.PreparedKeys(PREPARED_KEYS_MAX)
        self._jwk = CnfHolderKeys(keys=self._keys)

    def resolve(self, cnf: Mapping[str, Any]) -> jose.PreparedKey:
        kid = cnf.get("kid")
        if not isinstance(kid, str) or "jwk" in cnf:
            return self._jwk.resolve(cnf)
        did, _, fragment = kid.partition("#")
        if not didmod.is_did(did):
            raise KeyBindingError(f"holder key {kid[:80]!r} is not a did:imi URL", reason="unknown-holder-key")
        try:
            result = self._client.resolve_did(did, self._clock_ms())
        except (LightClientError, KeyError_) as exc:
            raise KeyBindingError(f"holder DID cannot be verified: {exc}", reason="unknown-holder-key") from exc
        if result["didDocumentMetadata"]["deactivated"]:
            raise KeyBindingError("holder DID is deactivated", reason="unknown-holder-key")
        jwks = _jwks(result["didDocument"], didmod.AUTHENTICATION)
        if not fragment:
            # the bare DID means its controller key: the first authentication method
            fragment = next(iter(jwks), "")
        jwk = jwks.get(fragment)
        if jwk is None:
            raise KeyBindingError(f"{kid!r} is not an authentication key", reason="unknown-holder-key")
        try:
            return self._keys.from_jwk(jwk)
        except KeyError_ as exc:
            raise KeyBindingError(f"{kid!r} is not a usable key: {exc}", reason="unknown-holder-key") from exc


class LedgerStatusLists:
    """:class:`~identity.verifier.StatusChecker` reading Token Status Lists from the ledger."""

    __slots__ = ("_client",)

    def __init__(self, client: LightClient) -> None:
        self._client = client

    def check(self, reference: StatusReference, *, now: int) -> CredentialStatus:
        if not reference.uri.startswith(STATUS_URI_PREFIX):
            raise StatusError(f"status uri {reference.uri[:80]!r} is not a ledger list",
                              reason="status-unavailable")
        list_id = reference.uri[len(STATUS_URI_PREFIX):]
        try:
            value = self._client.status(list_id, reference.idx, now * 1000)
        except LightClientError as exc:
            reason = "status-stale" if exc.reason in {"stale-header", "header-from-future"} \
                else "status-unavailable"
            raise StatusError(f"status list {list_id}: {exc}", reason=reason) from exc
        try:
            return CredentialStatus(value)
        except ValueError as exc:  # 3: application-specific, not known to be valid
            raise StatusError("unknown status value", reason="status-unavailable") from exc


__all__ = [
    "STATUS_URI_PREFIX",
    "LedgerCredentialTypes",
    "LedgerHolderKeys",
    "LedgerIssuerKeys",
    "LedgerServiceKeys",
    "LedgerStatusLists",
    "status_uri",
]
