"""The validator set: who may certify blocks, and with what voting power.

A set is ordered by key id, hashed canonically (``VALIDATOR_SET`` tag) and
carried by hash in every block header. The quorum is the smallest power strictly
greater than two thirds of the total, so any two quorums share an honest member
when at most f of n = 3f+1 are faulty.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from ledger.constants import (
    CERTIFICATES_VERIFIED_MAX,
    HASH_BYTES,
    PROPOSER_WINDOW_HEIGHTS,
    VALIDATOR_NAME_CHARS_MAX,
    VALIDATORS_MAX,
)
from ledger.encoding import Value
from ledger.errors import BlockError, KeyError_
from ledger.hashing import HashTag, hash_value
from ledger.keys import ALG_EDDSA, PublicKey
from ledger.lru import BoundedLRU

_VALIDATOR_FIELDS = frozenset({"name", "jwk", "power", "address", "tls_spki_sha256"})


@dataclass(frozen=True, slots=True)
class Validator:
    """One validator: its consensus key (Ed25519), power, address and pinned TLS key digest."""

    name: str
    public_key: PublicKey
    power: int
    address: str  # "host:port" of its validator transport
    tls_spki_sha256: bytes  # SHA-256 of the DER SubjectPublicKeyInfo of its TLS key

    def __post_init__(self) -> None:
        if self.public_key.alg != ALG_EDDSA:
            raise BlockError("validator keys are Ed25519", reason="bad-validator")
        if not 0 < len(self.name) <= VALIDATOR_NAME_CHARS_MAX:
            raise BlockError("validator name empty or too long", reason="bad-validator")
        if not 0 < self.power < 2**32:
            raise BlockError("validator power out of range", reason="bad-validator")
        if len(self.tls_spki_sha256) != HASH_BYTES:
            raise BlockError("tls_spki_sha256 must be 32 bytes", reason="bad-validator")

    @property
    def key_id(self) -> str:
        return self.public_key.key_id

    def to_value(self) -> dict[str, Value]:
        return {
            "name": self.name,
            "jwk": dict(self.public_key.to_jwk()),
            "power": self.power,
            "address": self.address,
            "tls_spki_sha256": self.tls_spki_sha256,
        }

    @classmethod
    def from_value(cls, value: Value) -> Validator:
        if not isinstance(value, dict) or set(value) != _VALIDATOR_FIELDS:
            raise BlockError("validator: wrong fields", reason="bad-validator")
        jwk, name, power, address, spki = (
            value["jwk"], value["name"], value["power"], value["address"], value["tls_spki_sha256"],
        )
        if not (isinstance(jwk, dict) and isinstance(name, str) and type(power) is int
                and isinstance(address, str) and isinstance(spki, bytes)):
            raise BlockError("validator: wrong field types", reason="bad-validator")
        try:
            key = PublicKey.from_jwk(jwk)
        except KeyError_ as exc:
            raise BlockError(f"validator key: {exc}", reason="bad-validator") from exc
        return cls(name, key, power, address, spki)


@dataclass(frozen=True, slots=True)
class ValidatorSet:
    """An ordered, hashed validator set. Construct with :meth:`of`.

    ``certified`` holds the commit certificates that verified against this set, by
    (certificate, header hash), for :meth:`ledger.block.CommitCertificate.verify`:
    whether one does is a pure function of the three, and whoever holds a set checks
    the same certificates again (a light client checks the same certified head for
    every read of one verification; a validator its recent blocks).
    """

    validators: tuple[Validator, ...]
    total_power: int = field(init=False)
    quorum_power: int = field(init=False)
    hash: bytes = field(init=False, repr=False)
    _by_id: dict[str, Validator] = field(init=False, repr=False, compare=False)
    # (CommitCertificate, header hash): typed loosely, as ledger.block imports this module.
    certified: BoundedLRU[tuple[object, bytes], bool] = field(
        init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 < len(self.validators) <= VALIDATORS_MAX:
            raise BlockError(f"validator set must have 1..{VALIDATORS_MAX} members", reason="bad-validator-set")
        ids = [v.key_id for v in self.validators]
        if ids != sorted(ids) or len(set(ids)) != len(ids):
            raise BlockError("validator set must be sorted by key id, without duplicates", reason="bad-validator-set")
        total = sum(v.power for v in self.validators)
        object.__setattr__(self, "total_power", total)
        object.__setattr__(self, "quorum_power", total * 2 // 3 + 1)
        object.__setattr__(self, "hash", hash_value(HashTag.VALIDATOR_SET, self.to_value()))
        object.__setattr__(self, "_by_id", {v.key_id: v for v in self.validators})
        object.__setattr__(self, "certified", BoundedLRU(CERTIFICATES_VERIFIED_MAX))

    @classmethod
    def of(cls, validators: Iterable[Validator]) -> ValidatorSet:
        return cls(tuple(sorted(validators, key=lambda v: v.key_id)))

    def __len__(self) -> int:
        return len(self.validators)

    def get(self, key_id: str) -> Validator | None:
        return self._by_id.get(key_id)

    def power_of(self, key_ids: Iterable[str]) -> int:
        return sum(self._by_id[k].power for k in set(key_ids) if k in self._by_id)

    def has_quorum(self, key_ids: Iterable[str]) -> bool:
        """True iff the distinct members among ``key_ids`` hold more than 2/3 of the power."""
        return self.power_of(key_ids) >= self.quorum_power

    def proposer(self, height: int, round_: int, inactive: Collection[str] = frozenset()) -> Validator:
        """The proposer of (height, round).

        Round 0 rotates over the members not in ``inactive`` (see :meth:`inactive`);
        every later round — and round 0 when nobody is left — is the plain rotation
        ``(height + round) % n`` over all members, so within n rounds every member,
        hence an honest one, proposes once. ``inactive`` must be computed from
        committed data only (every honest validator then picks the same proposer).
        """
        if round_ == 0 and inactive:
            active = [v for v in self.validators if v.key_id not in inactive]
            if active:
                return active[height % len(active)]
        return self.validators[(height + round_) % len(self.validators)]

    def inactive(self, recent_signers: Sequence[Collection[str]]) -> frozenset[str]:
        """Members who signed none of ``recent_signers``: the signer sets of the commit
        certificates carried by the last ``PROPOSER_WINDOW_HEIGHTS`` headers (oldest first;
        an empty set for a header that carries none). Fewer sets than the window (the
        chain's first heights) make nobody inactive. Skipped as round-0 proposers only:
        they keep voting, and rejoin as soon as one certificate in the window holds them.
        """
        window = recent_signers[-PROPOSER_WINDOW_HEIGHTS:]
        if len(window) < PROPOSER_WINDOW_HEIGHTS:
            return frozenset()
        seen: set[str] = set()
        for signers in window:
            seen.update(signers)
        return frozenset(v.key_id for v in self.validators if v.key_id not in seen)

    def to_value(self) -> list[Value]:
        return [v.to_value() for v in self.validators]

    @classmethod
    def from_value(cls, value: Value) -> ValidatorSet:
        if not isinstance(value, list):
            raise BlockError("validator set must be a list", reason="bad-validator-set")
        return cls(tuple(Validator.from_value(v) for v in value))


def proposer_window(height: int) -> range:
    """The heights of the headers whose ``last_commit`` signer sets decide who is inactive
    at ``height`` (:meth:`ValidatorSet.inactive`): the last ``PROPOSER_WINDOW_HEIGHTS``
    committed headers before it, all known once block ``height - 1`` is."""
    return range(max(1, height - PROPOSER_WINDOW_HEIGHTS), height)


__all__ = ["Validator", "ValidatorSet", "proposer_window"]
