"""A verifier that trusts only the ledger: issue an SD-JWT VC from an accredited issuer's
did:imi, present it with key binding to the holder's did:imi, verify issuer key,
accreditation, holder key and status through the light client; then revoke, suspend,
rotate and see the verdict follow the ledger."""

from __future__ import annotations

import pytest

from identity import did as didmod
from identity.credtypes import CredentialTypeCache
from identity.errors import CredentialTypeError, IssuerError
from identity.ledger_trust import (
    LedgerCredentialTypes,
    LedgerHolderKeys,
    LedgerIssuerKeys,
    LedgerStatusLists,
    status_uri,
)
from identity.light_client import LightClient
from identity.presentation import present
from identity.request import PresentationRequest
from identity.sdjwt import HolderBinding, issue
from identity.verifier import VerificationResult, verify_presentation
from ledger.keys import SigningKey
from tests.test_identity_helpers import Holder, det_key
from tests.test_identity_light_client import Chain, ChainFetcher, populated

REQUEST = PresentationRequest(nonce="n-1", aud="https://rp.example", vct=frozenset({"imi:pid"}),
                              claims=("given_name",), predicates=("age_equal_or_over.18",))


def setup() -> tuple[Chain, Holder, Holder, str]:
    ch, alice, agency = populated()  # agency accredited for imi:pid, owns list L1 (7 revoked, 9 suspended)
    iat = ch.time(ch.height) // 1000
    cred = issue({"given_name": "Alice", "birthdate": "1990-01-01"}, issuer_key=agency.key, iss=agency.did,
                 vct="imi:pid", holder=HolderBinding(kid=alice.did), iat=iat,
                 status={"status_list": {"idx": 3, "uri": status_uri("L1")}},
                 kid=f"{agency.did}#{agency.key.key_id}", predicates={"age_equal_or_over": [18]})
    return ch, alice, agency, cred.serialize()


def verify(ch: Chain, presentation: str) -> VerificationResult:
    now_ms = ch.time(ch.height) + 500
    client = LightClient(ch.c.genesis, ChainFetcher(ch), freshness_ms=10_000)
    return verify_presentation(
        presentation, REQUEST, issuer_keys=LedgerIssuerKeys(client, clock_ms=lambda: now_ms),
        holder_keys=LedgerHolderKeys(client, clock_ms=lambda: now_ms), status=LedgerStatusLists(client),
        now=now_ms // 1000)


def presented(ch: Chain, cred: str, key) -> str:
    return present(cred, REQUEST.paths_to_disclose(), holder_key=key, nonce="n-1", aud="https://rp.example",
                   iat=ch.time(ch.height) // 1000)


def test_valid_credential_verifies_against_the_ledger_only() -> None:
    ch, alice, _, cred = setup()
    result = verify(ch, presented(ch, cred, alice.key))
    assert result.valid, result
    assert result.claims["given_name"] == "Alice" and result.claims["age_equal_or_over"] == {"18": True}
    assert "birthdate" not in result.claims


def test_revoked_credential_is_rejected() -> None:
    ch, alice, agency, cred = setup()
    ch.block(ch.tx("status.set", agency.did, {"list_id": "L1", "updates": [[3, 1]]}, agency.key))
    assert verify(ch, presented(ch, cred, alice.key)).reason == "revoked"


def test_suspended_issuer_is_not_trusted() -> None:
    ch, alice, agency, cred = setup()
    ch.block(ch.gov("gov.issuer_suspend", {"did": agency.did}))
    assert verify(ch, presented(ch, cred, alice.key)).reason == "issuer-not-accredited"


def test_credential_bound_to_the_did_survives_holder_key_rotation() -> None:
    ch, alice, _, cred = setup()
    ch.block(ch.tx("did.rotate", alice.did, {
        "jwk": dict(alice.next_key.public_key.to_jwk()),
        "next_key_commitment": didmod.key_commitment(det_key("alice/2").public_key.to_jwk())}, alice.next_key))
    assert verify(ch, presented(ch, cred, alice.next_key)).valid
    assert verify(ch, presented(ch, cred, alice.key)).reason == "kb-bad-signature"  # the old key is out


def test_credential_from_an_issuer_unknown_to_the_ledger_is_rejected() -> None:
    ch, alice, _, _ = setup()
    stranger = det_key("stranger")
    stranger_did = didmod.derive_did(stranger.public_key.to_jwk(), bytes(32))
    forged = issue({"given_name": "Alice", "birthdate": "1990-01-01"}, issuer_key=stranger, iss=stranger_did, vct="imi:pid",
                   holder=HolderBinding(kid=alice.did), iat=ch.time(ch.height) // 1000,
                   predicates={"age_equal_or_over": [18]}).serialize()
    assert verify(ch, presented(ch, forged, alice.key)).reason == "unknown-issuer"


def test_prepared_keys_are_shared_but_the_ledger_is_read_every_time() -> None:
    from identity import jose

    ch, alice, agency, cred = setup()
    prepared = jose.PreparedKeys(entries_max=4)
    now_ms = ch.time(ch.height) + 500

    def resolvers() -> tuple[LedgerIssuerKeys, LedgerHolderKeys]:
        client = LightClient(ch.c.genesis, ChainFetcher(ch), freshness_ms=10_000)
        return (LedgerIssuerKeys(client, clock_ms=lambda: now_ms, keys=prepared),
                LedgerHolderKeys(client, clock_ms=lambda: now_ms, keys=prepared))

    header = {"kid": f"{agency.did}#{agency.key.key_id}"}
    first, second = resolvers()[0].resolve(agency.did, header), resolvers()[0].resolve(agency.did, header)
    assert first.key is second.key and first.key.public_key == agency.key.public_key
    assert resolvers()[1].resolve({"kid": alice.did}) is resolvers()[1].resolve({"kid": alice.did})
    assert len(prepared) == 2
    ch.block(ch.gov("gov.issuer_suspend", {"did": agency.did}))
    now_ms = ch.time(ch.height) + 500
    issuer_keys, holder_keys = resolvers()
    result = verify_presentation(presented(ch, cred, alice.key), REQUEST, issuer_keys=issuer_keys,
                                 holder_keys=holder_keys, status=LedgerStatusLists(issuer_keys._client),
                                 now=now_ms // 1000)
    assert result.reason == "issuer-not-accredited"


def test_an_issuer_key_is_resolved_again_only_when_a_read_it_came_from_is_new(monkeypatch: pytest.MonkeyPatch) -> None:
    """With kept reads (reuse_ms), the resolution is kept with the two reads it came from:
    the same reads give the same IssuerKey without building the DID document again; a new
    read of the accreditation (a suspension) or of the DID document is seen at once."""
    from identity import did as didmodule

    ch, _, agency, _ = setup()
    builds: list[str] = []
    real = didmodule.resolution

    def counting(record: dict) -> dict:
        builds.append(record["did"])
        return real(record)

    monkeypatch.setattr(didmodule, "resolution", counting)
    client = LightClient(ch.c.genesis, ChainFetcher(ch), freshness_ms=10_000, reuse_ms=1_000)
    now_ms = [ch.time(ch.height) + 500]
    keys = LedgerIssuerKeys(client, clock_ms=lambda: now_ms[0])
    header = {"kid": f"{agency.did}#{agency.key.key_id}"}
    first = keys.resolve(agency.did, header)
    assert keys.resolve(agency.did, header) is first and builds == [agency.did]
    with pytest.raises(IssuerError) as err:  # another kid: resolved on its own, not from the kept one
        keys.resolve(agency.did, {"kid": f"{agency.did}#other"})
    assert err.value.reason == "unknown-issuer"
    ch.block(ch.gov("gov.issuer_suspend", {"did": agency.did}))
    assert keys.resolve(agency.did, header) is first  # within reuse_ms: the reads are the same
    now_ms[0] += 1_001  # past reuse_ms: both records read afresh, the suspension is seen
    with pytest.raises(IssuerError) as err:
        keys.resolve(agency.did, header)
    assert err.value.reason == "issuer-not-accredited"
    ch.block(ch.gov("gov.issuer_reinstate", {"did": agency.did}))
    now_ms[0] += 1_001
    again = keys.resolve(agency.did, header)
    assert again is not first and again.key.public_key == agency.key.public_key
    plain = LedgerIssuerKeys(LightClient(ch.c.genesis, ChainFetcher(ch), freshness_ms=10_000),
                             clock_ms=lambda: now_ms[0])
    assert plain.resolve(agency.did, header) is not plain.resolve(agency.did, header)  # no kept reads: none kept
    assert len(plain._resolved) == 0


# --- the credential against its published type (vct/imi:pid: given_name, age_equal_or_over [18]) ----
def signed_by_agency(ch: Chain, alice: Holder, agency: Holder, claims: dict[str, object], *,
                     vct: str = "imi:pid", predicates: dict[str, list[int]] | None = None,
                     disclosable: set[str] | None = None) -> str:
    """What the agency's key signs when someone holding it ignores the published type."""
    return issue(claims, issuer_key=agency.key, iss=agency.did, vct=vct, holder=HolderBinding(kid=alice.did),
                 iat=ch.time(ch.height) // 1000, kid=f"{agency.did}#{agency.key.key_id}",
                 predicates=predicates, disclosable=disclosable).serialize()


def verify_paths(ch: Chain, cred: str, key: SigningKey, paths: list[str]) -> VerificationResult:
    request = PresentationRequest(nonce="n-1", aud="https://rp.example", vct=frozenset({"imi:pid"}))
    presentation = present(cred, paths, holder_key=key, nonce="n-1", aud="https://rp.example",
                           iat=ch.time(ch.height) // 1000)
    now_ms = ch.time(ch.height) + 500
    client = LightClient(ch.c.genesis, ChainFetcher(ch), freshness_ms=10_000)
    return verify_presentation(presentation, request, issuer_keys=LedgerIssuerKeys(client, clock_ms=lambda: now_ms),
                               holder_keys=LedgerHolderKeys(client, clock_ms=lambda: now_ms),
                               status=LedgerStatusLists(client), now=now_ms // 1000)


def test_a_forged_claim_outside_the_type_is_invalid() -> None:
    ch, alice, agency = populated()
    forged = signed_by_agency(ch, alice, agency, {"given_name": "Alice", "criminal_record": "none"})
    assert verify_paths(ch, forged, alice.key, ["given_name"]).valid  # undisclosed: the verifier never sees it
    result = verify_paths(ch, forged, alice.key, ["given_name", "criminal_record"])
    assert (result.valid, result.reason) == (False, "not-in-type-definition"), result


def test_a_predicate_member_the_type_does_not_publish_is_invalid() -> None:
    ch, alice, agency = populated()
    forged = signed_by_agency(ch, alice, agency, {"birthdate": "1990-01-01"},
                              predicates={"age_equal_or_over": [18, 21]})
    assert verify_paths(ch, forged, alice.key, ["age_equal_or_over.18"]).valid
    assert verify_paths(ch, forged, alice.key, ["age_equal_or_over.21"]).reason == "not-in-type-definition"


def test_a_claim_the_type_keeps_in_the_clear_must_not_come_as_a_disclosure() -> None:
    ch, alice, agency = populated()
    ch.block(ch.tx("vct.publish", agency.did, {"vct": "imi:pid", "name": "PID", "claims": ["family_name", "given_name"],
                                               "selectively_disclosable": ["given_name"]}, agency.key))
    as_typed = signed_by_agency(ch, alice, agency, {"given_name": "Alice", "family_name": "Liddell"},
                                disclosable={"given_name"})
    assert verify_paths(ch, as_typed, alice.key, ["given_name"]).valid
    forged = signed_by_agency(ch, alice, agency, {"given_name": "Alice", "family_name": "Liddell"})
    assert verify_paths(ch, forged, alice.key, ["family_name"]).reason == "not-disclosable-in-type"
    nested = signed_by_agency(ch, alice, agency, {"family_name": {"first": "Lid", "second": "dell"}},
                              disclosable=set())
    assert verify_paths(ch, nested, alice.key, []).valid  # whole, in the clear
    inside = signed_by_agency(ch, alice, agency, {"family_name": {"first": "Lid", "second": "dell"}},
                              disclosable={"family_name"})
    assert verify_paths(ch, inside, alice.key, ["family_name"]).reason == "not-disclosable-in-type"


def test_a_vct_that_is_not_published_or_published_by_another_issuer_is_invalid() -> None:
    ch, alice, agency = populated()
    ch.block(ch.gov("gov.issuer_accredit", {"did": agency.did, "name": "Agency", "vcts": ["imi:pid", "imi:tax"]}))
    unpublished = signed_by_agency(ch, alice, agency, {"given_name": "Alice"}, vct="imi:tax")
    assert verify_paths(ch, unpublished, alice.key, ["given_name"]).reason == "vct-not-published"
    # alice is no issuer of imi:pid: the definition on the ledger is the agency's
    client = LightClient(ch.c.genesis, ChainFetcher(ch), freshness_ms=10_000)
    now_ms = ch.time(ch.height) + 500
    definition = LedgerCredentialTypes(client, clock_ms=lambda: now_ms).definition("imi:pid")
    assert definition.issuer == agency.did and definition.members == {"age_equal_or_over": frozenset({"18"})}
    with pytest.raises(CredentialTypeError) as other:
        definition.check_credential(alice.did, {}, {})
    assert other.value.reason == "vct-other-issuer"


def test_type_definitions_are_reused_within_the_ttl_then_read_again() -> None:
    ch, _, agency = populated()
    now_ms = [ch.time(ch.height) + 500]
    client = LightClient(ch.c.genesis, ChainFetcher(ch), freshness_ms=10_000_000)
    types = LedgerCredentialTypes(client, clock_ms=lambda: now_ms[0], cache=CredentialTypeCache(ttl_s=30))
    assert types.definition("imi:pid").members["age_equal_or_over"] == {"18"}
    ch.block(ch.tx("vct.publish", agency.did, {"vct": "imi:pid", "name": "PID", "claims": ["given_name"],
                                               "predicates": {"age_equal_or_over": [18, 21]}}, agency.key))
    now_ms[0] += 29_000
    assert types.definition("imi:pid").members["age_equal_or_over"] == {"18"}  # cached
    now_ms[0] += 1_000
    assert types.definition("imi:pid").members["age_equal_or_over"] == {"18", "21"}  # version 2 read
