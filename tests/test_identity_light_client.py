"""Light client against a real (in-memory) certified chain and fetchers that lie.

Every lie must end in LightClientError with a reason, never in a result: forged
value, proof against another root, too few signatures, unknown signers, stale or
future header, wrong validator set, wrong chain, wrong key or height.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from identity import did as didmod
from identity import status_list as sl
from identity.errors import LightClientError, NotFoundError
from identity.light_client import LightClient
from identity.rules import IDENTITY_HANDLERS
from ledger import statekeys
from ledger.block import BlockHeader, CommitCertificate, certify
from ledger.encoding import encode
from ledger.execution import (
    DEVNET_HANDLERS,
    BlockContext,
    Executor,
    genesis_state,
    read_validator_set,
)
from ledger.keys import SigningKey
from ledger.kv import MemoryKV, WriteBatch
from ledger.state import StateTree
from ledger.tx import Transaction
from ledger.validators import ValidatorSet
from tests.factories import CHAIN_ID, consortium
from tests.test_identity_helpers import Holder, det_key


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Chain:
    """A certified chain: real executor, real state tree, real commit certificates."""

    def __init__(self, clock: Callable[[int], int] | None = None) -> None:
        self.clock = clock
        self.c = consortium()
        self.c2 = consortium(seed=1)
        self.keys: dict[str, SigningKey] = {**self.c.keys, **self.c2.keys}
        self.kv = MemoryKV()
        self.tree = StateTree(self.kv, node_prefix=b"n/", root_prefix=b"r/")
        self._write(genesis_state(self.c.genesis), 0)
        self.executor = Executor(CHAIN_ID, {**DEVNET_HANDLERS, **IDENTITY_HANDLERS})
        self.blocks: dict[int, tuple[BlockHeader, CommitCertificate]] = {}
        self.height = 0
        self.prev = self.c.genesis.hash
        self._n = 0

    def _write(self, updates: Mapping[bytes, bytes | None], version: int) -> bytes:
        batch = WriteBatch()
        root = self.tree.apply(updates, version, batch)
        self.kv.write(batch)
        return root

    def time(self, height: int) -> int:
        if self.clock is not None:
            return self.clock(height)
        return self.c.genesis.time_ms + height * 1000

    def tx(self, type_: str, sender: str, payload: dict, *keys: SigningKey) -> Transaction:
        self._n += 1
        return Transaction.create(chain_id=CHAIN_ID, type=type_, sender=sender, payload=payload,
                                  expires_at_ms=self.time(self.height + 1) + 600_000,
                                  nonce=self._n.to_bytes(16, "big")).sign(*keys)

    def block(self, *txs: Transaction) -> BlockHeader:
        h = self.height + 1
        base = self.tree.reader(self.height)
        current = read_validator_set(base)
        ctx = BlockContext(CHAIN_ID, h, self.time(h), current.proposer(h, 0).key_id)
        result = self.executor.execute_block(base, list(txs), ctx, lambda _: False, strict=True)
        root = self._write(result.updates, h)
        from ledger.block import merkle_root
        from ledger.merkle import EMPTY_ROOT
        header = BlockHeader(CHAIN_ID, h, 0, self.prev, self.time(h), merkle_root([t.tx_id for t in txs]),
                             len(txs), EMPTY_ROOT, 0, root, current.hash, result.next_validators.hash,
                             ctx.proposer)
        self.blocks[h] = (header, self.certify(header, current))
        self.height, self.prev = h, header.hash
        return header

    def certify(self, header: BlockHeader, vset: ValidatorSet, signers: int | None = None,
                keys: Mapping[str, SigningKey] | None = None) -> CommitCertificate:
        keys = keys or self.keys
        chosen = vset.validators[: signers if signers is not None else len(vset)]
        return certify(header, (keys[v.key_id] for v in chosen))

    def gov(self, type_: str, payload: dict) -> Transaction:
        return self.tx(type_, "gov", payload, *self.c.trustee_keys[:2])

    def switch_to_c2(self) -> None:
        """Replace every validator by consortium 2 (effective two blocks later)."""
        adds = [self.gov("gov.validator_add", {"validator": v.to_value()}) for v in self.c2.validators.validators]
        removes = [self.gov("gov.validator_remove", {"key_id": v.key_id}) for v in self.c.validators.validators]
        self.block(*adds, *removes)


class ChainFetcher:
    """An honest node over a :class:`Chain`. Subclasses lie."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.calls = 0

    def latest_block(self) -> dict[str, Any]:
        header, cert = self.chain.blocks[self.chain.height]
        return {"hash": header.hash.hex(), "header": header.to_json(), "certificate": cert.to_json()}

    def state(self, key: bytes, height: int | None) -> dict[str, Any]:
        self.calls += 1
        h = self.chain.height if height is None else height
        header, cert = self.chain.blocks[h]
        value = self.chain.tree.get(key, h)
        return {"key": key.decode(), "value": None if value is None else b64(value),
                "proof": self.chain.tree.prove(key, h).to_json(),
                "header": header.to_json(), "certificate": cert.to_json()}

    def validators(self, height: int | None) -> dict[str, Any]:
        return self.state(statekeys.VALSET_CURRENT, height)


class Lying(ChainFetcher):
    def __init__(self, chain: Chain, lie: Callable[[dict[str, Any], Chain], dict[str, Any]]) -> None:
        super().__init__(chain)
        self.lie = lie

    def state(self, key: bytes, height: int | None) -> dict[str, Any]:
        return self.lie(copy.deepcopy(super().state(key, height)), self.chain)


def populated() -> tuple[Chain, Holder, Holder]:
    ch = Chain()
    alice = Holder(det_key("alice/0"), det_key("alice/1"), "alice")
    agency = Holder(det_key("agency/0"), det_key("agency/1"), "agency")
    for h in (alice, agency):
        ch.block(ch.tx("did.create", h.did, {
            "jwk": dict(h.key.public_key.to_jwk()),
            "next_key_commitment": didmod.key_commitment(h.next_key.public_key.to_jwk())}, h.key))
    ch.block(ch.gov("gov.issuer_accredit", {"did": agency.did, "name": "Agency", "vcts": ["imi:pid"]}))
    ch.block(ch.tx("vct.publish", agency.did, {"vct": "imi:pid", "name": "PID", "claims": ["given_name"],
                                               "predicates": {"age_equal_or_over": [18]}}, agency.key),
             ch.tx("status.create_list", agency.did, {"list_id": "L1", "bits": 2, "size": 64}, agency.key))
    ch.block(ch.tx("status.set", agency.did, {"list_id": "L1", "updates": [[7, 1], [9, 2]]}, agency.key))
    return ch, alice, agency


def now(ch: Chain) -> int:
    return ch.time(ch.height) + 500


# --- honest answers ------------------------------------------------------------------------
def test_verified_did_resolution_from_one_node() -> None:
    ch, alice, _ = populated()
    lc = LightClient(ch.c.genesis, ChainFetcher(ch), freshness_ms=10_000)
    res = lc.resolve_did(alice.did, now(ch))
    assert res["didDocument"]["id"] == alice.did
    assert res["didDocument"]["verificationMethod"][0]["publicKeyJwk"] == alice.key.public_key.to_jwk()
    assert res["didResolutionMetadata"]["height"] == ch.height


def test_resolve_at_a_version_after_rotation() -> None:
    ch, alice, _ = populated()
    ch.block(ch.tx("did.rotate", alice.did, {
        "jwk": dict(alice.next_key.public_key.to_jwk()),
        "next_key_commitment": didmod.key_commitment(det_key("alice/2").public_key.to_jwk())},
        alice.next_key))
    lc = LightClient(ch.c.genesis, ChainFetcher(ch), freshness_ms=10_000)
    v1 = lc.resolve_did(alice.did, now(ch), version=1)["didDocument"]
    v2 = lc.resolve_did(alice.did, now(ch))["didDocument"]
    assert v1["verificationMethod"][0]["publicKeyJwk"] == alice.key.public_key.to_jwk()
    assert v2["verificationMethod"][0]["publicKeyJwk"] == alice.next_key.public_key.to_jwk()
    old = lc.resolve_did(alice.did, now(ch), height=1)  # historical read at a height
    assert old["didDocumentMetadata"]["versionId"] == "1"


def test_issuer_credential_type_and_status_list_are_verified() -> None:
    ch, _, agency = populated()
    lc = LightClient(ch.c.genesis, ChainFetcher(ch), freshness_ms=10_000)
    assert lc.issuer(agency.did, now(ch))["status"] == "accredited"
    assert lc.credential_type("imi:pid", now(ch))["predicates"] == {"age_equal_or_over": [18]}
    record = lc.status_list("L1", now(ch))
    lst, bits = sl.from_json(record["status_list"])
    assert bits == 2 and sl.get_status(lst, 2, 7) == 1
    assert [lc.status("L1", i, now(ch)) for i in (7, 9, 8)] == [1, 2, 0]


def test_proven_absence_is_not_found_not_an_error_of_the_node() -> None:
    ch, _, _ = populated()
    lc = LightClient(ch.c.genesis, ChainFetcher(ch), freshness_ms=10_000)
    ghost = Holder(det_key("ghost/0"), det_key("ghost/1"), "ghost")
    with pytest.raises(NotFoundError) as err:
        lc.resolve_did(ghost.did, now(ch))
    assert err.value.reason == "did-not-found"
    assert lc.get_verified(statekeys.vct_key("imi:none"), now(ch)).value is None


def test_follows_a_certified_validator_set_change() -> None:
    ch, alice, _ = populated()
    ch.switch_to_c2()
    for _ in range(6):
        ch.block()
    header, _ = ch.blocks[ch.height]
    assert header.validator_set_hash == ch.c2.validators.hash  # the whole set was replaced
    fetcher = ChainFetcher(ch)
    lc = LightClient(ch.c.genesis, fetcher, freshness_ms=10_000)
    assert lc.resolve_did(alice.did, now(ch))["didDocument"]["id"] == alice.did
    assert lc.validator_set(now(ch)) == ch.c2.validators
    assert lc.latest_header(now(ch)).height == ch.height


# --- lies ----------------------------------------------------------------------------------------
def _forge_value(resp: dict, ch: Chain) -> dict:
    resp["value"] = b64(encode({"did": "did:imi:forged"}))
    return resp


def _proof_from_other_root(resp: dict, ch: Chain) -> dict:
    other = ch.tree.prove(resp["key"].encode(), 1)  # a genuine proof, but for height 1's root
    resp["proof"] = other.to_json()
    resp["value"] = None if ch.tree.get(resp["key"].encode(), 1) is None else b64(ch.tree.get(resp["key"].encode(), 1))
    return resp


def _hide_value(resp: dict, ch: Chain) -> dict:
    resp["value"] = None  # claim absence of a key that is present
    return resp


def _too_few_signatures(resp: dict, ch: Chain) -> dict:
    header = BlockHeader.from_json(resp["header"])
    resp["certificate"] = ch.certify(header, ch.c.validators, signers=2).to_json()  # 2 of 4 <= 2/3
    return resp


def _unknown_signers(resp: dict, ch: Chain) -> dict:
    header = BlockHeader.from_json(resp["header"])
    resp["certificate"] = ch.certify(header, ch.c2.validators).to_json()  # strangers sign
    return resp


def _forged_signature(resp: dict, ch: Chain) -> dict:
    cert = resp["certificate"]
    cert["signatures"][0]["sig"] = b64(bytes(64))
    return resp


def _tampered_state_root(resp: dict, ch: Chain) -> dict:
    resp["header"]["state_root"] = "00" * 32
    resp["header"].pop("hash")
    return resp


def _wrong_validator_set(resp: dict, ch: Chain) -> dict:
    # A fake block claiming a validator set of the attacker's own, fully signed by it.
    header = BlockHeader.from_json(resp["header"])
    fake = BlockHeader(header.chain_id, header.height, header.round, header.prev_hash, header.time_ms,
                       header.tx_root, header.tx_count, header.log_root, header.log_size,
                       header.state_root, ch.c2.validators.hash, ch.c2.validators.hash, header.proposer)
    resp["header"] = fake.to_json()
    resp["certificate"] = ch.certify(fake, ch.c2.validators).to_json()
    return resp


def _wrong_key(resp: dict, ch: Chain) -> dict:
    resp["key"] = "did/did:imi:other"
    return resp


def _wrong_chain(resp: dict, ch: Chain) -> dict:
    header = BlockHeader.from_json(resp["header"])
    fake = BlockHeader("other-chain", *[getattr(header, f) for f in (
        "height", "round", "prev_hash", "time_ms", "tx_root", "tx_count", "log_root", "log_size",
        "state_root", "validator_set_hash", "next_validator_set_hash", "proposer")])
    resp["header"] = fake.to_json()
    resp["certificate"] = CommitCertificate("other-chain", fake.height, 0, fake.hash, ()).to_json()
    return resp


def _garbage_proof(resp: dict, ch: Chain) -> dict:
    resp["proof"] = {"leaf": None, "steps": "x"}
    return resp


@pytest.mark.parametrize(("lie", "reason"), [
    (_forge_value, "bad-state-proof"),
    (_hide_value, "bad-state-proof"),
    (_proof_from_other_root, "bad-state-proof"),
    (_tampered_state_root, "certificate-mismatch"),
    (_too_few_signatures, "insufficient-quorum"),
    (_unknown_signers, "unknown-signer"),
    (_forged_signature, "bad-certificate-signature"),
    (_wrong_validator_set, "wrong-validator-set"),
    (_wrong_key, "wrong-key"),
    (_wrong_chain, "wrong-chain"),
    (_garbage_proof, "malformed-response"),
], ids=lambda x: getattr(x, "__name__", x))
def test_lying_node_is_detected(lie: Callable, reason: str) -> None:
    ch, alice, _ = populated()
    lc = LightClient(ch.c.genesis, Lying(ch, lie), freshness_ms=10_000)
    with pytest.raises(LightClientError) as err:
        lc.resolve_did(alice.did, now(ch))
    assert err.value.reason == reason
    assert not isinstance(err.value, NotFoundError)


def test_certificate_with_unknown_signer_among_the_right_set_is_rejected() -> None:
    ch, alice, _ = populated()

    def add_stranger(resp: dict, ch: Chain) -> dict:
        stranger = det_key("stranger")
        resp["certificate"]["signatures"].append({"validator": stranger.key_id, "sig": b64(bytes(64))})
        return resp

    lc = LightClient(ch.c.genesis, Lying(ch, add_stranger), freshness_ms=10_000)
    with pytest.raises(LightClientError) as err:
        lc.resolve_did(alice.did, now(ch))
    assert err.value.reason == "unknown-signer"


def test_exactly_two_thirds_is_not_enough() -> None:
    ch, alice, _ = populated()  # 4 validators of power 1: 3 needed, 2 is not > 2/3

    def three(resp: dict, ch: Chain) -> dict:
        header = BlockHeader.from_json(resp["header"])
        resp["certificate"] = ch.certify(header, ch.c.validators, signers=3).to_json()
        return resp

    assert LightClient(ch.c.genesis, Lying(ch, three), 10_000).resolve_did(alice.did, now(ch))


def test_stale_header_is_rejected() -> None:
    ch, alice, _ = populated()
    lc = LightClient(ch.c.genesis, ChainFetcher(ch), freshness_ms=10_000)
    with pytest.raises(LightClientError) as err:
        lc.resolve_did(alice.did, ch.time(ch.height) + 10_001)
    assert err.value.reason == "stale-header"
    with pytest.raises(LightClientError) as err:
        lc.resolve_did(alice.did, ch.time(ch.height) - 60_000)
    assert err.value.reason == "header-from-future"


def test_node_serving_an_old_height_as_current_is_stale() -> None:
    ch, alice, _ = populated()
    for _ in range(30):
        ch.block()

    def old(resp: dict, ch: Chain) -> dict:
        return ChainFetcher(ch).state(resp["key"].encode(), 5)

    lc = LightClient(ch.c.genesis, Lying(ch, old), freshness_ms=10_000)
    with pytest.raises(LightClientError) as err:
        lc.resolve_did(alice.did, now(ch))
    assert err.value.reason == "stale-header"


def test_wrong_height_for_a_historical_read() -> None:
    ch, alice, _ = populated()
    lc = LightClient(ch.c.genesis, Lying(ch, lambda r, c: ChainFetcher(c).state(r["key"].encode(), 4)), 10_000)
    with pytest.raises(LightClientError) as err:
        lc.resolve_did(alice.did, now(ch), height=3)
    assert err.value.reason == "wrong-height"


def test_forged_validator_set_change_is_rejected() -> None:
    """After a real change, a node lies about the new set's content in valset/current."""
    ch, alice, _ = populated()
    ch.switch_to_c2()
    for _ in range(3):
        ch.block()

    def forge_valset(resp: dict, ch: Chain) -> dict:
        if resp["key"] == statekeys.VALSET_CURRENT.decode() and resp["value"] is not None:
            resp["value"] = b64(encode(ch.c.validators.to_value()))
        return resp

    lc = LightClient(ch.c.genesis, Lying(ch, forge_valset), freshness_ms=10_000)
    with pytest.raises(LightClientError) as err:
        lc.resolve_did(alice.did, now(ch))
    assert err.value.reason in {"bad-state-proof", "wrong-validator-set"}


def test_unreachable_node_is_an_error_not_a_crash() -> None:
    ch, alice, _ = populated()

    class Down(ChainFetcher):
        def state(self, key: bytes, height: int | None) -> dict[str, Any]:
            raise ConnectionError("refused")

    with pytest.raises(LightClientError) as err:
        LightClient(ch.c.genesis, Down(ch), 10_000).resolve_did(alice.did, now(ch))
    assert err.value.reason == "node-unavailable"


# --- reusing a verified read (reuse_ms) ----------------------------------------------------------
def test_a_current_read_is_reused_only_within_reuse_ms_and_freshness() -> None:
    ch, _, agency = populated()
    fetcher = ChainFetcher(ch)
    lc = LightClient(ch.c.genesis, fetcher, freshness_ms=10_000, reuse_ms=1_000)
    t = now(ch)
    assert lc.status("L1", 7, t) == 1
    assert fetcher.calls == 1
    ch.block(ch.tx("status.set", agency.did, {"list_id": "L1", "updates": [[8, 1]]}, agency.key))
    assert lc.status("L1", 8, t + 1_000) == 0  # within the window: the earlier read, no fetch
    assert fetcher.calls == 1
    assert lc.status("L1", 8, t + 1_001) == 1  # past it: read afresh, the change is seen
    assert fetcher.calls == 2
    assert lc.status("L1", 8, t) == 1 and fetcher.calls == 3  # a read made "later" is not reused earlier
    assert lc.status("L1", 8, t) == 1 and fetcher.calls == 3  # ... but again at that instant it is
    lc.resolve_did(agency.did, t, height=2)
    lc.resolve_did(agency.did, t, height=2)
    assert fetcher.calls == 5  # historical reads are never reused


def test_a_reused_read_still_meets_the_freshness_bound() -> None:
    ch, alice, _ = populated()
    fetcher = ChainFetcher(ch)
    lc = LightClient(ch.c.genesis, fetcher, freshness_ms=2_000, reuse_ms=2_000)
    header_time = ch.time(ch.height)
    lc.resolve_did(alice.did, header_time + 1_500)
    with pytest.raises(LightClientError) as err:  # within reuse_ms of the read, but the header is too old now
        lc.resolve_did(alice.did, header_time + 2_500)
    assert err.value.reason == "stale-header" and fetcher.calls == 2


def test_reuse_is_off_by_default_bounded_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    ch, alice, agency = populated()
    fetcher = ChainFetcher(ch)
    plain = LightClient(ch.c.genesis, fetcher, freshness_ms=10_000)
    plain.resolve_did(alice.did, now(ch))
    plain.resolve_did(alice.did, now(ch))
    assert fetcher.calls == 2
    monkeypatch.setattr("identity.light_client.READ_REUSE_KEYS_MAX", 1)
    lc = LightClient(ch.c.genesis, ChainFetcher(ch), freshness_ms=10_000, reuse_ms=1_000)
    lc.resolve_did(alice.did, now(ch))
    lc.resolve_did(agency.did, now(ch))  # pushes alice's read out
    assert list(lc._recent) == [statekeys.did_key(agency.did)]
    for bad in (-1, 10_001):
        with pytest.raises(ValueError, match="reuse_ms"):
            LightClient(ch.c.genesis, fetcher, freshness_ms=10_000, reuse_ms=bad)


def test_a_reused_read_is_decoded_once_and_callers_get_their_own_record(monkeypatch: pytest.MonkeyPatch) -> None:
    from identity.light_client import Verified

    ch, _, agency = populated()
    decodes: list[bytes] = []
    real = Verified.decoded

    def counting(self: Verified) -> Any:
        decodes.append(self.key)
        return real(self)

    monkeypatch.setattr(Verified, "decoded", counting)
    lc = LightClient(ch.c.genesis, ChainFetcher(ch), freshness_ms=10_000, reuse_ms=1_000)
    first = lc.issuer(agency.did, now(ch))
    first["status"] = "changed by a caller"
    lc.get_value(statekeys.issuer_key(agency.did), now(ch))["status"] = "and by another"  # type: ignore[index]
    assert lc.issuer(agency.did, now(ch))["status"] == "accredited"
    assert lc.resolve_did(agency.did, now(ch))["didDocument"]["id"] == agency.did
    assert lc.resolve_did(agency.did, now(ch))["didDocument"]["id"] == agency.did
    assert decodes == [statekeys.issuer_key(agency.did), statekeys.did_key(agency.did)]
    plain = LightClient(ch.c.genesis, ChainFetcher(ch), freshness_ms=10_000)
    plain.issuer(agency.did, now(ch))
    plain.issuer(agency.did, now(ch))
    assert len(decodes) == 4  # without reuse every read is decoded
