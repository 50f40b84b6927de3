"""Robustness: malformed identity transactions are rejected with a reason, never crash
the executor, never write; b58 and DID derivation properties."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from identity import did as didmod
from identity.authz import AUTH_TABLE
from tests.test_identity_authz import scene
from tests.test_identity_helpers import det_key

FIELDS = ["jwk", "next_key_commitment", "services", "registrar", "keys", "issuer", "validator", "key_id",
          "did", "name", "vcts", "policy", "threshold", "vct", "claims", "selectively_disclosable",
          "predicates", "digests", "list_id", "bits", "size", "updates"]
JWK = dict(det_key("fuzz").public_key.to_jwk())

values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70).filter(lambda i: -2**64 <= i < 2**64)
    | st.binary(max_size=40) | st.text(max_size=20) | st.just(JWK) | st.just("did:imi:1111")
    | st.just(bytes(32)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS + ["id", "type",
                                                                 "endpoint", "purposes", "x"]), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(type_=st.sampled_from(sorted(AUTH_TABLE)), payload=st.dictionaries(st.sampled_from(FIELDS), values,
                                                                          max_size=5),
       who=st.sampled_from(["alice", "agency", "gov"]))
def test_malformed_transactions_are_rejected_without_writes(type_: str, payload: dict, who: str) -> None:
    s = scene()
    sender = {"alice": s.alice.did, "agency": s.agency.did, "gov": "gov"}[who]
    signers = s.w.c.trustee_keys[:2] if who == "gov" else [getattr(s, who).key]
    before = dict(s.w.state.data)
    reason = s.w.run(s.w.tx(type_, sender, payload, *signers))
    if reason is None:  # some random payloads are valid; the rest must leave no trace
        return
    assert isinstance(reason, str) and reason
    assert s.w.state.data == before


@given(st.binary(max_size=64))
def test_base58_round_trips(data: bytes) -> None:
    assert didmod.b58decode(didmod.b58encode(data)) == data


@settings(max_examples=20, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_did_changes_with_the_commitment(c1: bytes, c2: bytes) -> None:
    same = didmod.derive_did(JWK, c1) == didmod.derive_did(JWK, c2)
    assert same == (c1 == c2)
    assert didmod.is_did(didmod.derive_did(JWK, c1))
