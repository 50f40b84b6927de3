"""The holder's ledger-backed steps, over a :class:`~identity.wallet.Wallet`.

* :func:`create_did` — a new did:imi controlled by a fresh wallet key, with a pre-rotation
  next key that is returned (to be written to a recovery kit, away from the phone) and
  never stored in the wallet; :func:`register_did` is its ledger step for any key (an
  agency's, a service's).
* :func:`rotate_did` — ``did.rotate`` with the next key from the recovery kit: it becomes
  the wallet's current key for the DID, and a new next key is returned for a new kit.
  After losing the phone: a new wallet + the recovery kit is enough.

Receiving credentials (OpenID4VCI) is :func:`identity.oid4vci_client.receive`.

Every function changes the wallet in memory; the caller saves it (``wallet.save()``).
Times are arguments (``now``, integer seconds).
"""

from __future__ import annotations

from identity import did as didmod
from identity.ledger_client import NodeClient
from identity.wallet import Wallet
from ledger.encoding import Value
from ledger.keys import SigningKey


def register_did(node: NodeClient, key: SigningKey, *, next_key: SigningKey | None = None,
                 services: list[Value] | None = None) -> tuple[str, SigningKey]:
    """``did.create`` for ``key``, committing to ``next_key`` (default: a new key of the same
    algorithm) and naming ``services`` if any; return ``(did, next_key)``. Raises SubmitError."""
    next_key = next_key or SigningKey.generate(key.alg)
    commitment = didmod.key_commitment(next_key.public_key.to_jwk())
    did = didmod.derive_did(key.public_key.to_jwk(), commitment)
    document: dict[str, Value] = {"jwk": dict(key.public_key.to_jwk()), "next_key_commitment": commitment}
    if services:
        document["services"] = services
    node.submit(node.build("did.create", did, document, key))
    return did, next_key


def create_did(wallet: Wallet, node: NodeClient, *, alg: str = "EdDSA",
               next_key: SigningKey | None = None) -> tuple[str, SigningKey]:
    """Register a DID for a new wallet key; return ``(did, next_key)``. Raises SubmitError.
    Pass ``next_key`` to have it saved in a recovery kit *before* the DID exists."""
    key_id = wallet.new_key(alg)
    did, next_key = register_did(node, wallet.signing_key(key_id), next_key=next_key)
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


__all__ = ["create_did", "register_did", "rotate_did"]
