"""The wallet's side of OpenID4VP over HTTP: resolve a request, show it, answer or refuse.

:func:`prepare` takes an ``openid4vp://`` URI, fetches the request object, checks its
signature with the service's key on the ledger (light client), reads the service's
registration and compares the question with it, and works out exactly what would be
disclosed and from which credential. Nothing is signed or sent until the person
agrees: then :func:`send` answers with the fewest disclosures (the service's registered
name goes to the wallet's history), or :func:`decline` tells the service no.

A request from a service that is not registered, is suspended, or asks beyond its
registration is refused by :func:`prepare` (``Oid4vpError`` ``beyond-registration`` /
``invalid_client``), and the refusal is recorded in the wallet's history: the person
can see who tried to ask for more.

Each disclosure names the credential that will answer (:meth:`identity.wallet.Wallet.choose`:
a one-time credential of its batch never presented before) and whether it was presented
before (``reused``: every credential of its batch is used up, so this service could link
this answer to an earlier one — the consent screen says so). With the wallet set to
``refuse`` in that case, :func:`prepare` refuses (``batch-used-up``, recorded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from identity import oid4vp, services
from identity.constants import OID4VP_REQUEST_OBJECT_CHARS_MAX
from identity.errors import LightClientError, NotFoundError, Oid4vpError, WalletError
from identity.ledger_trust import LedgerServiceKeys
from identity.light_client import LightClient
from identity.wallet import Wallet


@dataclass(frozen=True, slots=True)
class Disclosure:
    """One presentation the wallet would send: from which credential, which claim paths."""

    query_id: str
    vct: str
    issuer: str
    paths: tuple[str, ...]
    credential: str = ""  # the wallet's id of the credential that will answer
    reused: bool = False  # that credential was presented before (its batch is used up)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A verified request, the service as registered on the ledger, and what would be disclosed."""

    request: oid4vp.AuthorizationRequest
    service: dict[str, Any]
    disclosures: tuple[Disclosure, ...]

    def name(self, lang: str) -> str:
        return str(self.service.get("name", {}).get(lang) or self.request.service_did)

    @property
    def names(self) -> dict[str, str]:
        """The service's registered name in each language."""
        return _names(self.service) or {}

    def purpose(self, lang: str) -> str:
        return str(self.service.get("purpose", {}).get(lang, ""))


def prepare(uri: str, *, wallet: Wallet, light: LightClient, http: Any, now_ms: int) -> Prepared:
    """Resolve and check the request at ``uri``; raises :class:`Oid4vpError` (recorded in the
    wallet's history, unsaved) when it must be refused, or ``access_denied`` when nothing held
    can answer."""
    client_id, request_uri = oid4vp.parse_authorization_uri(uri)
    request_object = _fetch(http, request_uri)
    request = oid4vp.open_request(request_object, client_id=client_id,
                                  service_key=LedgerServiceKeys(light, clock_ms=lambda: now_ms),
                                  now=now_ms // 1000)
    try:
        record: dict[str, Any] | None = light.service(request.service_did, now_ms)
    except NotFoundError:
        record = None
    except LightClientError as exc:
        raise Oid4vpError(f"the service's registration cannot be read: {exc}", reason="ledger-unavailable") from exc
    faults = services.may_ask(record, request.dcql_query)
    if faults:
        reason = "beyond-registration" if record is not None and record.get("status") == services.REGISTERED \
            else "invalid_client"
        wallet.record_refusal(now_ms // 1000, request.client_id, _name(record), reason, "; ".join(faults),
                              verifier_names=_names(record))
        raise Oid4vpError("; ".join(faults), reason=reason)
    assert record is not None
    try:
        disclosures = _disclosures(wallet, request, now_ms // 1000)
    except WalletError as exc:  # the person's setting refuses to reuse a used-up batch
        wallet.record_refusal(now_ms // 1000, request.client_id, _name(record), exc.reason, str(exc),
                              verifier_names=_names(record))
        raise
    return Prepared(request, record, disclosures)


def _disclosures(wallet: Wallet, request: oid4vp.AuthorizationRequest, now: int) -> tuple[Disclosure, ...]:
    chosen: dict[str, Disclosure] = {}
    for item in request.dcql_query.credentials:
        for question in oid4vp.presentation_requests(request, item):
            if wallet.candidates(question, now=now):
                choice = wallet.choose(question, now=now)
                summary = wallet.show(choice.credential)
                chosen[item.id] = Disclosure(item.id, str(summary.get("vct")), str(summary.get("iss")),
                                             question.paths_to_disclose(), choice.credential, choice.reused)
                break
    required = oid4vp.required_query_ids(request.dcql_query, lambda query_id: query_id in chosen)
    return tuple(chosen[query_id] for query_id in required)


def send(prepared: Prepared, *, wallet: Wallet, http: Any, now: int, lang: str = "en") -> dict[str, Any]:
    """Answer (the person agreed): the ``vp_token`` posted to the service, recorded with its
    registered name. Returns the service's answer body. The caller saves the wallet."""
    token = oid4vp.wallet_answer(wallet, prepared.request, now=now, verifier=prepared.name(lang),
                                 verifier_names=prepared.names)
    return _post(http, prepared.request, {"vp_token": json.dumps(token), "state": prepared.request.state})


def decline(prepared: Prepared, *, wallet: Wallet, http: Any, now: int, lang: str = "en") -> None:
    """Tell the service no (``error=access_denied``) and record it."""
    wallet.record_refusal(now, prepared.request.client_id, prepared.name(lang), "declined", "the person said no",
                          verifier_names=prepared.names)
    _post(http, prepared.request, {"error": "access_denied", "state": prepared.request.state})


def _name(record: dict[str, Any] | None) -> str | None:
    names = _names(record)
    return None if names is None else names.get("en")


def _names(record: dict[str, Any] | None) -> dict[str, str] | None:
    """A registration's name per language (``{"en": …, "zh-CN": …}``), if it has one."""
    names = None if record is None else record.get("name")
    return {str(k): str(v) for k, v in names.items()} if isinstance(names, dict) else None


def _fetch(http: Any, url: str) -> str:
    try:
        response = http.get(url, headers={"Accept": "application/oauth-authz-req+jwt"})
    except Exception as exc:
        raise Oid4vpError(f"cannot fetch the request object: {exc}", reason="request-unavailable") from exc
    if response.status_code != 200 or len(response.content) > OID4VP_REQUEST_OBJECT_CHARS_MAX:
        raise Oid4vpError(f"the service answered HTTP {response.status_code} for the request object",
                          reason="request-unavailable")
    text: str = response.text
    return text.strip()


def _post(http: Any, request: oid4vp.AuthorizationRequest, form: dict[str, str]) -> dict[str, Any]:
    try:
        response = http.post(request.response_uri, data=form)
    except Exception as exc:
        raise Oid4vpError(f"cannot reach the service: {exc}", reason="service-unavailable") from exc
    if response.status_code != 200:
        reason = "service-refused"
        try:
            reason = str(response.json().get("reason", reason))
        except ValueError:
            pass
        raise Oid4vpError(f"the service answered HTTP {response.status_code}", reason=reason)
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


__all__ = ["Disclosure", "Prepared", "decline", "prepare", "send"]
