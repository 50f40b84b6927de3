"""A verifier that trusts only the ledger: issue an SD-JWT VC from an accredited issuer's
did:imi, present it with key binding to the holder's did:imi, verify issuer key,
accreditation, holder key and status through the light client; then revoke, suspend,
rotate and see the verdict follow the ledger."""

from __future__ import annotations

from identity import did as didmod
from identity.ledger_trust import LedgerHolderKeys, LedgerIssuerKeys, LedgerStatusLists, status_uri
from identity.light_client import LightClient
from identity.presentation import present
from identity.request import PresentationRequest
from identity.sdjwt import HolderBinding, issue
from identity.verifier import VerificationResult, verify_presentation
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
                 kid=f"{agency.did}#{agency.key.key_id}")
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
                   holder=HolderBinding(kid=alice.did), iat=ch.time(ch.height) // 1000).serialize()
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
