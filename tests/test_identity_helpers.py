"""A tiny in-memory ledger for identity tests: dict state, Executor, signed tx builders.

No tests live here; other ``test_identity_*`` modules import :class:`World`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from identity import did as didmod
from identity.rules import IDENTITY_HANDLERS
from ledger.encoding import Value, decode
from ledger.execution import DEVNET_HANDLERS, BlockContext, Executor, genesis_state
from ledger.keys import SigningKey
from ledger.tx import Transaction
from tests.factories import CHAIN_ID, Consortium, consortium


def det_key(label: str) -> SigningKey:
    return SigningKey("EdDSA", hashlib.sha256(f"identity-test/{label}".encode()).digest())


class DictState:
    """The smallest StateReader: a dict of committed key -> value bytes."""

    def __init__(self, data: dict[bytes, bytes | None]) -> None:
        self.data = {k: v for k, v in data.items() if v is not None}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def apply(self, updates: dict[bytes, bytes | None]) -> None:
        for k, v in updates.items():
            if v is None:
                self.data.pop(k, None)
            else:
                self.data[k] = v


@dataclass
class Holder:
    """A DID controller: current key, committed next key, and the DID they derive."""

    key: SigningKey
    next_key: SigningKey
    label: str
    rotations: int = 0

    @property
    def did(self) -> str:
        return didmod.derive_did(self.inception.public_key.to_jwk(),
                                 didmod.key_commitment(self.inception_next.public_key.to_jwk()))

    inception: SigningKey = field(init=False)
    inception_next: SigningKey = field(init=False)

    def __post_init__(self) -> None:
        self.inception, self.inception_next = self.key, self.next_key

    def advance(self, new_next: SigningKey) -> None:
        """After a successful rotation: the next key is current, ``new_next`` is committed."""
        self.key, self.next_key = self.next_key, new_next


class World:
    """Genesis state + executor; ``run`` commits one transaction per block."""

    def __init__(self, *, policy: dict[str, Value] | None = None) -> None:
        self.c: Consortium = consortium()
        if policy:
            self.c.genesis.policy.update(policy)
        self.state = DictState(genesis_state(self.c.genesis))
        self.executor = Executor(CHAIN_ID, {**DEVNET_HANDLERS, **IDENTITY_HANDLERS})
        self.height = 0
        self.committed: set[bytes] = set()
        self._n = 0

    @property
    def now_ms(self) -> int:
        return self.c.genesis.time_ms + (self.height + 1) * 1000

    # --- transactions --------------------------------------------------------------
    def tx(self, type_: str, sender: str, payload: dict[str, Value], *signers: SigningKey) -> Transaction:
        self._n += 1
        nonce = hashlib.sha256(f"nonce{self._n}".encode()).digest()[:16]
        return Transaction.create(chain_id=CHAIN_ID, type=type_, sender=sender, payload=payload,
                                  expires_at_ms=self.now_ms + 600_000, nonce=nonce).sign(*signers)

    def gov(self, type_: str, payload: dict[str, Value], signers: list[SigningKey] | None = None,
            sender: str = "gov") -> Transaction:
        keys = self.c.trustee_keys[:2] if signers is None else signers
        return self.tx(type_, sender, payload, *keys)

    def run(self, tx: Transaction) -> str | None:
        """Execute ``tx`` in the next block; return its rejection reason, or None if committed."""
        ctx = BlockContext(CHAIN_ID, self.height + 1, self.now_ms, "proposer")
        result = self.executor.execute_block(self.state, [tx], ctx, self.committed.__contains__,
                                             strict=False)
        self.height += 1
        self.state.apply(result.updates)
        if result.rejected:
            return result.rejected[0][1]
        self.committed.add(tx.tx_id)
        return None

    def fork(self) -> World:
        """An independent copy (state, height, committed ids) sharing the immutable parts."""
        other = World.__new__(World)
        other.c, other.executor, other._n = self.c, self.executor, self._n
        other.state = DictState(dict(self.state.data))
        other.height, other.committed = self.height, set(self.committed)
        return other

    def ok(self, tx: Transaction) -> None:
        reason = self.run(tx)
        assert reason is None, f"{tx.type} rejected: {reason}"

    def value(self, key: bytes) -> Any:
        raw = self.state.get(key)
        return None if raw is None else decode(raw)

    # --- actors ------------------------------------------------------------------------
    def holder(self, label: str) -> Holder:
        return Holder(det_key(f"{label}/0"), det_key(f"{label}/1"), label)

    def create_tx(self, h: Holder, **extra: Value) -> Transaction:
        payload: dict[str, Value] = {
            "jwk": dict(h.key.public_key.to_jwk()),
            "next_key_commitment": didmod.key_commitment(h.next_key.public_key.to_jwk()),
            **extra,
        }
        return self.tx("did.create", h.did, payload, h.key)

    def new_did(self, label: str, **extra: Value) -> Holder:
        h = self.holder(label)
        self.ok(self.create_tx(h, **extra))
        return h

    def rotate_tx(self, h: Holder, new_next: SigningKey, *signers: SigningKey,
                  reveal: SigningKey | None = None) -> Transaction:
        revealed = reveal or h.next_key
        payload: dict[str, Value] = {
            "jwk": dict(revealed.public_key.to_jwk()),
            "next_key_commitment": didmod.key_commitment(new_next.public_key.to_jwk()),
        }
        return self.tx("did.rotate", h.did, payload, *(signers or (h.next_key,)))

    def deactivate_tx(self, h: Holder, *signers: SigningKey, reveal: SigningKey | None = None) -> Transaction:
        """``did.deactivate`` revealing ``reveal`` (default the committed next key), signed by
        ``signers`` (default that key)."""
        revealed = reveal or h.next_key
        return self.tx("did.deactivate", h.did, {"jwk": dict(revealed.public_key.to_jwk())},
                       *(signers or (revealed,)))

    def issuer(self, label: str, vcts: list[str]) -> Holder:
        h = self.new_did(label)
        self.ok(self.gov("gov.issuer_accredit", {"did": h.did, "name": label, "vcts": vcts}))
        return h
