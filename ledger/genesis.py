"""The genesis: the one document every participant trusts a priori.

It fixes the chain id, the initial validator set, the trustees (consortium
governance: k-of-n multi-signature) and the initial policy. Its hash is the
``prev_hash`` of block 1, so the whole chain hangs from it.

``devnet`` (default false) admits the devnet-only transaction types
(:data:`ledger.execution.DEVNET_HANDLERS`, e.g. ``test.note``, which anyone with a
fresh key may send): ``imi devnet up`` sets it, the genesis ceremony never does.
The canonical form carries ``devnet`` only when it is true, so a genesis written
before the field existed keeps its hash and loads as a closed (non-devnet) chain.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.encoding import Value
from ledger.errors import BlockError, KeyError_
from ledger.hashing import HashTag, hash_value
from ledger.keys import PublicKey, b64url_decode, b64url_encode
from ledger.validators import Validator, ValidatorSet

DEFAULT_POLICY: dict[str, Value] = {
    "self_register_dids": True,  # citizens may create their own did:imi (devnet default)
    "heartbeat_ms": 2000,
}


@dataclass(frozen=True, slots=True)
class Genesis:
    chain_id: str
    time_ms: int
    validators: ValidatorSet
    trustees: tuple[PublicKey, ...]
    trustee_threshold: int
    policy: dict[str, Value]
    devnet: bool = False
    hash: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= self.trustee_threshold <= len(self.trustees):
            raise BlockError("trustee threshold must be within 1..len(trustees)", reason="bad-genesis")
        if len({t.key_id for t in self.trustees}) != len(self.trustees):
            raise BlockError("duplicate trustee keys", reason="bad-genesis")
        if type(self.devnet) is not bool:
            raise BlockError("devnet must be true or false", reason="bad-genesis")
        object.__setattr__(self, "hash", hash_value(HashTag.GENESIS, self.to_value()))

    def to_value(self) -> dict[str, Value]:
        value: dict[str, Value] = {
            "chain_id": self.chain_id,
            "time_ms": self.time_ms,
            "validators": self.validators.to_value(),
            "trustees": [dict(t.to_jwk()) for t in self.trustees],
            "trustee_threshold": self.trustee_threshold,
            "policy": self.policy,
        }
        if self.devnet:  # absent when false: genesis files older than the field keep their hash
            value["devnet"] = True
        return value

    # --- JSON file form -------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "time_ms": self.time_ms,
            "validators": [
                {
                    "name": v.name,
                    "jwk": v.public_key.to_jwk(),
                    "power": v.power,
                    "address": v.address,
                    "tls_spki_sha256": b64url_encode(v.tls_spki_sha256),
                }
                for v in self.validators.validators
            ],
            "trustees": [t.to_jwk() for t in self.trustees],
            "trustee_threshold": self.trustee_threshold,
            "policy": self.policy,
            "devnet": self.devnet,
            "hash": self.hash.hex(),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Genesis:
        try:
            validators = ValidatorSet.of(
                Validator(
                    name=v["name"],
                    public_key=PublicKey.from_jwk(v["jwk"]),
                    power=int(v["power"]),
                    address=v["address"],
                    tls_spki_sha256=b64url_decode(v["tls_spki_sha256"]),
                )
                for v in obj["validators"]
            )
            genesis = cls(
                chain_id=str(obj["chain_id"]),
                time_ms=int(obj["time_ms"]),
                validators=validators,
                trustees=tuple(PublicKey.from_jwk(t) for t in obj["trustees"]),
                trustee_threshold=int(obj["trustee_threshold"]),
                policy=dict(obj.get("policy", DEFAULT_POLICY)),
                devnet=obj.get("devnet", False),
            )
        except (KeyError, TypeError, ValueError, KeyError_) as exc:
            raise BlockError(f"genesis: {exc}", reason="bad-genesis") from exc
        if "hash" in obj and obj["hash"] != genesis.hash.hex():
            raise BlockError("genesis hash does not match its content", reason="bad-genesis")
        return genesis

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True)

    @classmethod
    def loads(cls, text: str) -> Genesis:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BlockError(f"genesis is not JSON: {exc}", reason="bad-genesis") from exc
        return cls.from_json(obj)


__all__ = ["DEFAULT_POLICY", "Genesis"]
