"""The holder's ledger-backed steps, over a :class:`~identity.wallet.Wallet`.

* :func:`create_did` — a new did:imi controlled by a fresh wallet key, with a pre-rotation
  next key that is returned (to be written to a recovery kit, away from the phone) and
  never stored in the wallet.
* :func:`rotate_did` — ``did.rotate`` with the next key from the recovery kit: it becomes
  the wallet's current key for the DID, and a new next key is returned for a new kit.
  After losing the phone: a new wallet + the recovery kit is enough.
* :func:`request_credential` — the issuance protocol of :mod:`identity.issuance` against
  an issuer service (nonce → proof → credential), stored in the wallet.

Every function changes the wallet in memory; the caller saves it (``wallet.save()``).
Times are arguments (``now``, integer seconds).
"""

from __future__ import annotations

from typing import Any

from identity import did as didmod
from identity.errors import PresentationError, WalletError
from identity.issuance import IssuanceRequestError, make_proof
from identity.ledger_client import NodeClient
from identity.presentation import HeldCredential
from identity.wallet import Wallet
from ledger.keys import SigningKey


def create_did(wallet: Wallet, node: NodeClient, *, alg: str = "EdDSA",
               next_key: SigningKey | None = None) -> tuple[str, SigningKey]:
    """Register a DID for a new wallet key; return ``(did, next_key)``. Raises SubmitError.
    Pass ``next_key`` to have it saved in a recovery kit *before* the DID exists."""
    key_id = wallet.new_key(alg)
    key = wallet.signing_key(key_id)
    next_key = next_key or SigningKey.generate(alg)
    commitment = didmod.key_commitment(next_key.public_key.to_jwk())
    did = didmod.derive_did(key.public_key.to_jwk(), commitment)
    node.submit(node.build("did.create", did, {"jwk": dict(key.public_key.to_jwk()),
                                               "next_key_commitment": commitment}, key))
    wallet.set_did(did, key_id)
    return did, next_key


def rotate_did(wallet: Wallet, node: NodeClient, did: str, next_key: SigningKey,
               new_next: SigningKey | None = None) -> SigningKey:
    """``did.rotate`` revealing ``next_key`` (signed by it alone); the wallet then signs for
    ``did`` with ``next_key``. Returns the new next key (keep it in a new recovery kit; pass
    ``new_next`` to have it saved there before the rotation commits)."""
    new_next = new_next or SigningKey.generate(next_key.alg)
    node.submit(node.build("did.rotate", did, {
        "jwk": dict(next_key.public_key.to_jwk()),
        "next_key_commitment": didmod.key_commitment(new_next.public_key.to_jwk())}, next_key))
    wallet.set_did(did, wallet.import_key(next_key))
    return new_next


def _post(http: Any, url: str, body: dict[str, Any] | None) -> dict[str, Any]:
    try:
        response = http.post(url, json=body) if body is not None else http.post(url)
    except Exception as exc:  # transport failures become one typed error
        raise IssuanceRequestError(f"issuer {url} unreachable: {exc}", reason="issuer-unavailable") from exc
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if response.status_code != 200 or not isinstance(answer, dict):
        reason = str(answer.get("reason", "issuer-error")) if isinstance(answer, dict) else "issuer-error"
        detail = str(answer.get("detail", "")) if isinstance(answer, dict) else response.text[:200]
        raise IssuanceRequestError(f"issuer answered HTTP {response.status_code}: {detail}", reason=reason)
    return answer


def _check_received(credential: str, *, issuer: str, vct: str, cnf: dict[str, Any]) -> None:
    """The credential is the one asked for: this issuer, this type, bound to our key or DID."""
    try:
        payload = HeldCredential.parse(credential).payload
    except PresentationError as exc:
        raise IssuanceRequestError(f"issuer sent a malformed credential: {exc}", reason="issuer-error") from exc
    if payload.get("iss") != issuer or payload.get("vct") != vct or payload.get("cnf") != cnf:
        raise IssuanceRequestError("the credential is not the one requested (iss, vct or cnf differ)",
                                   reason="credential-mismatch")


def request_credential(
    wallet: Wallet,
    issuer_url: str,
    vct: str,
    *,
    now: int,
    did: str | None = None,
    key_id: str | None = None,
    subject: str | None = None,
    http: Any = None,
) -> str:
    """Ask the issuer service at ``issuer_url`` for ``vct``; store it; return its wallet id.

    Binding by DID (``did``, held in this wallet: ``cnf.kid`` = the DID) or by key
    (``key_id``, default the wallet's first key: ``cnf.jwk``; the agency needs ``subject``).
    ``http`` is an httpx-like client (default a new ``httpx.Client``).
    Raises IssuanceRequestError with the issuer's reason, or WalletError.
    """
    if did is not None and key_id is not None:
        raise WalletError("bind by DID or by key, not both", reason="bad-binding")
    if did is not None and did not in wallet.dids():
        raise WalletError(f"this wallet does not control {did}", reason="no-such-key")
    own = http is None
    if own:
        import httpx

        http = httpx.Client(timeout=40.0)
    try:
        base = issuer_url.rstrip("/")
        nonce = _post(http, base + "/v1/issuance/nonce", None)
        if not isinstance(nonce.get("nonce"), str) or not isinstance(nonce.get("aud"), str):
            raise IssuanceRequestError("issuer's nonce answer is malformed", reason="issuer-error")
        if did is not None:
            key = wallet.signing_key(did)
        else:
            ids = wallet.key_ids()
            key = wallet.signing_key(key_id if key_id is not None else (ids[0] if ids else ""))
        proof = make_proof(key, aud=nonce["aud"], nonce=nonce["nonce"], iat=now, did=did)
        body: dict[str, Any] = {"vct": vct, "proof": proof}
        if subject is not None:
            body["subject"] = subject
        answer = _post(http, base + "/v1/issuance/credential", body)
    finally:
        if own:
            http.close()
    credential = answer.get("credential")
    if not isinstance(credential, str):
        raise IssuanceRequestError("issuer's answer has no credential", reason="issuer-error")
    _check_received(credential, issuer=nonce["aud"], vct=vct,
                    cnf={"kid": did} if did is not None else {"jwk": dict(key.public_key.to_jwk())})
    return wallet.add_credential(credential, holder_key=did if did is not None else key.key_id, now=now)


__all__ = ["create_did", "request_credential", "rotate_did"]
