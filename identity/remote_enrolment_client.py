"""The wallet's side of remote (zero-visit) enrolment: present, then receive from the same agency.

An agency that enrols remotely (:mod:`identity.remote_enrolment`) asks, over OpenID4VP, for
the identity credential another agency issued. The wallet treats it as any request
(:func:`identity.presenter.prepare`: request object signed by the agency's DID key, the
agency registered on the ledger as a service for exactly those claims, consent), then
:func:`enrol` answers and follows the answer's ``redirect_uri``, a credential offer:

* the offer is accepted only if its ``credential_issuer`` is the issuer endpoint that the
  DID document of the DID that asked (``client_id``) names, and that DID is an accredited
  issuer (light client) — a redirect to anyone else is refused before anything is signed;
* the first proof of the credential request is by the key (or DID) that presented — the
  holder the agency has just enrolled — further proofs of a batch by fresh keys.

Raises :class:`~identity.errors.Oid4vpError` (the agency's refusal reason, or
``no-offer``), :class:`~identity.issuance.IssuanceRequestError` (``issuer-untrusted``…)
or :class:`~identity.errors.WalletError`. The wallet changes in memory; the caller saves it.
"""

from __future__ import annotations

from typing import Any

from identity import presenter
from identity.constants import OFFER_SCHEME
from identity.errors import Oid4vpError
from identity.light_client import LightClient
from identity.oid4vci_client import receive
from identity.wallet import Wallet


def enrol(prepared: presenter.Prepared, *, wallet: Wallet, http: Any, ledger: LightClient, now: int,
          batch: int = 1, alg: str = "ES256", lang: str = "en", allow_http: bool = False) -> list[str]:
    """Present (the person agreed), then receive the agency's offered credentials bound first
    to the presenting holder; returns the new credentials' wallet ids."""
    holders_before = {c.id: c.holder_key for c in wallet.credentials()}  # before any one-time use
    answer = presenter.send(prepared, wallet=wallet, http=http, now=now, lang=lang)
    nonce = prepared.request.nonce  # the history records this answer under the request's nonce
    used = {r.credential for r in wallet.history() if r.nonce == nonce and r.credential}
    holders = {holders_before[c] for c in used if c in holders_before}
    if len(holders) != 1:
        raise Oid4vpError("the enrolment was answered with more than one holder", reason="ambiguous-holder")
    (holder,) = holders
    redirect = answer.get("redirect_uri")
    if not isinstance(redirect, str) or not redirect.startswith(OFFER_SCHEME):
        raise Oid4vpError("the agency answered without a credential offer", reason="no-offer")
    by_did = holder in wallet.dids()
    return receive(wallet, redirect, http=http, ledger=ledger, now=now, did=holder if by_did else None,
                   key_id=None if by_did else holder, batch=batch, alg=alg, allow_http=allow_http,
                   issuer_did=prepared.request.service_did)


__all__ = ["enrol"]
