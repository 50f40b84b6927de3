"""A populated identity ledger on a DevNode, for the identity API tests (no tests here).

Trustees accredit an issuer (agency) for :data:`VCT`, the agency publishes the type and
creates status list ``L1`` (entries 7 revoked, 9 suspended), the holder (alice) and the
agency have did:imi. Time is a settable clock so tests can age headers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from identity import did as didmod
from identity.ledger_trust import status_uri
from identity.presentation import present
from identity.request import PresentationRequest
from identity.rules import IDENTITY_HANDLERS
from identity.sdjwt import HolderBinding, issue
from ledger.execution import DEVNET_HANDLERS
from ledger.keys import SigningKey
from ledger.kv import KV
from ledger.tx import Transaction
from tests.factories import consortium
from tests.test_identity_helpers import Holder, det_key
from tests.test_node_api_support import InProcessNode

VCT = "https://credentials.example/pid/v1"
LIST_ID = "L1"
T0_MS = consortium().genesis.time_ms + 1_000_000
REQUEST = PresentationRequest(nonce="n-1", aud="https://rp.example", vct=frozenset({VCT}),
                              claims=("given_name",), predicates=("age_equal_or_over.18",))


@dataclass
class Clock:
    """A wall clock tests move by hand (milliseconds)."""

    now_ms: int = T0_MS

    def __call__(self) -> int:
        return self.now_ms


@dataclass
class Scene:
    node: InProcessNode
    clock: Clock
    alice: Holder = field(default_factory=lambda: Holder(det_key("alice/0"), det_key("alice/1"), "alice"))
    agency: Holder = field(default_factory=lambda: Holder(det_key("agency/0"), det_key("agency/1"), "agency"))
    n: int = 0

    def tx(self, type_: str, sender: str, payload: dict[str, Any], *keys: SigningKey) -> Transaction:
        self.n += 1
        return Transaction.create(chain_id=self.node.genesis.chain_id, type=type_, sender=sender,
                                  payload=payload, expires_at_ms=self.clock.now_ms + 600_000,
                                  nonce=self.n.to_bytes(16, "big")).sign(*keys)

    def gov(self, type_: str, payload: dict[str, Any]) -> Transaction:
        return self.tx(type_, "gov", payload, *self.node.consortium.trustee_keys[:2])

    def block(self, *txs: Transaction) -> int:
        """Commit ``txs`` as the next block, one second after the last; returns its height."""
        self.clock.now_ms += 1000
        for tx in txs:
            asyncio.run(self.node.submit(tx))
        block = self.node.commit()
        assert block.header.tx_count == len(txs), "a scene transaction was rejected"
        return block.header.height

    def create_did(self, holder: Holder) -> Transaction:
        return self.tx("did.create", holder.did, {
            "jwk": dict(holder.key.public_key.to_jwk()),
            "next_key_commitment": didmod.key_commitment(holder.next_key.public_key.to_jwk())}, holder.key)

    def credential(self, claims: dict[str, Any] | None = None, idx: int = 3) -> str:
        return issue(claims or {"given_name": "Alice", "birthdate": "1990-01-01"}, issuer_key=self.agency.key,
                     iss=self.agency.did, vct=VCT, holder=HolderBinding(kid=self.alice.did),
                     iat=self.clock.now_ms // 1000, status={"status_list": {"idx": idx, "uri": status_uri(LIST_ID)}},
                     kid=f"{self.agency.did}#{self.agency.key.key_id}",
                     predicates={"age_equal_or_over": [18]}).serialize()  # as the type publishes

    def presentation(self, credential: str, key: SigningKey | None = None) -> str:
        return present(credential, REQUEST.paths_to_disclose(), holder_key=key or self.alice.key,
                       nonce=REQUEST.nonce, aud=REQUEST.aud, iat=self.clock.now_ms // 1000)


def build_scene(kv: KV | None = None) -> Scene:
    clock = Clock()
    node = InProcessNode(kv, handlers={**DEVNET_HANDLERS, **IDENTITY_HANDLERS}, clock_ms=clock)
    s = Scene(node, clock)
    s.block(s.create_did(s.alice), s.create_did(s.agency))
    s.block(s.gov("gov.issuer_accredit", {"did": s.agency.did, "name": "Agency", "vcts": [VCT]}))
    s.block(s.tx("vct.publish", s.agency.did, {"vct": VCT, "name": "PID", "claims": ["given_name"],
                                               "predicates": {"age_equal_or_over": [18]}}, s.agency.key),
            s.tx("status.create_list", s.agency.did, {"list_id": LIST_ID, "bits": 2, "size": 64}, s.agency.key))
    s.block(s.tx("status.set", s.agency.did, {"list_id": LIST_ID, "updates": [[7, 1], [9, 2]]}, s.agency.key))
    return s


__all__ = ["LIST_ID", "REQUEST", "VCT", "Clock", "Scene", "build_scene"]
