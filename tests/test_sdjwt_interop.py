"""Interoperability with the IETF reference implementation (sd-jwt 0.10.4, test-only).

Both directions: the reference verifies what we issue and present, and we verify
what it issues and presents. The reference accepts only ES256 key binding, so
holder keys are ES256 here; issuer keys are both EdDSA and ES256.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from jwcrypto.jwk import JWK
from sd_jwt.common import SDObj
from sd_jwt.holder import SDJWTHolder
from sd_jwt.issuer import SDJWTIssuer
from sd_jwt.verifier import SDJWTVerifier

from identity.presentation import present
from identity.request import PresentationRequest
from identity.sdjwt import HolderBinding, issue
from identity.verifier import CnfHolderKeys, FixedIssuerKey, NoStatus, verify_presentation
from ledger.keys import SigningKey

NONCE, AUD = "nonce-123", "https://rp.example"
ISS, VCT = "did:imi:issuer", "urn:imi:pid:1"
CLAIMS: dict[str, Any] = {
    "given_name": "Grace",
    "birthdate": "1986-12-09",
    "address": {"locality": "Arlington", "country": "US"},
    "nationalities": ["US", "NL"],
}


def jwk_of(key: SigningKey) -> JWK:
    return JWK(**key.to_private_jwk())


def reference_verify(presentation: str, issuer: SigningKey) -> dict[str, Any]:
    public = JWK(**issuer.public_key.to_jwk())
    verifier = SDJWTVerifier(presentation, lambda iss, header: public, expected_aud=AUD, expected_nonce=NONCE)
    payload: dict[str, Any] = verifier.get_verified_payload()
    return payload


def ours_verify(presentation: str, issuer: SigningKey, now: int, **request: Any) -> Any:
    return verify_presentation(
        presentation,
        PresentationRequest(nonce=NONCE, aud=AUD, **request),
        issuer_keys=FixedIssuerKey(issuer.public_key),
        holder_keys=CnfHolderKeys(),
        status=NoStatus(),
        now=now,
    )


def our_credential(issuer: SigningKey, holder: SigningKey, now: int) -> str:
    return issue(
        CLAIMS, issuer_key=issuer, iss=ISS, vct=VCT,
        holder=HolderBinding.from_key(holder.public_key), iat=now - 60, exp=now + 3600,
        predicates={"age_equal_or_over": [16, 18, 65]},
    ).serialize()


@pytest.mark.parametrize("issuer_alg", ["EdDSA", "ES256"])
def test_reference_verifies_our_issuance_and_presentation(issuer_alg: str) -> None:
    now = int(time.time())
    issuer, holder = SigningKey.generate(issuer_alg), SigningKey.generate("ES256")
    paths = ["given_name", "age_equal_or_over.18", "address.locality", "nationalities.1"]
    presentation = present(our_credential(issuer, holder, now), paths, holder_key=holder,
                           nonce=NONCE, aud=AUD, iat=now)
    claims = reference_verify(presentation, issuer)
    assert claims["given_name"] == "Grace"
    assert claims["age_equal_or_over"] == {"18": True}
    assert claims["address"] == {"locality": "Arlington"}
    assert claims["nationalities"] == ["NL"]
    assert "birthdate" not in claims
    assert claims == ours_verify(presentation, issuer, now).claims


def test_we_verify_reference_holder_presentation_of_our_credential() -> None:
    now = int(time.time())
    issuer, holder = SigningKey.generate("EdDSA"), SigningKey.generate("ES256")
    ref_holder = SDJWTHolder(our_credential(issuer, holder, now))
    ref_holder.create_presentation(
        {"given_name": True, "address": {"country": True}, "age_equal_or_over": {"18": True}},
        nonce=NONCE, aud=AUD, holder_key=jwk_of(holder), sign_alg="ES256",
    )
    result = ours_verify(ref_holder.sd_jwt_presentation, issuer, now,
                         claims=("given_name", "address.country"), predicates=("age_equal_or_over.18",))
    assert result.valid, result.detail
    assert result.claims["address"] == {"country": "US"}
    assert "birthdate" not in result.claims


def reference_issuance(issuer: SigningKey, holder: SigningKey, now: int) -> str:
    user_claims = {
        "iss": ISS,
        "vct": VCT,
        "iat": now - 60,
        "exp": now + 3600,
        SDObj("given_name"): "Alan",
        SDObj("address"): {SDObj("locality"): "Wilmslow", SDObj("country"): "GB"},
        SDObj("nationalities"): [SDObj("GB"), "FR"],
        SDObj("age_equal_or_over"): {SDObj("18"): True, SDObj("65"): False},
    }
    issued = SDJWTIssuer(
        user_claims, jwk_of(issuer), holder_key=JWK(**holder.public_key.to_jwk()),
        sign_alg=issuer.alg, add_decoy_claims=True,
        extra_header_parameters={"typ": "dc+sd-jwt"},
    )
    return str(issued.sd_jwt_issuance)


@pytest.mark.parametrize("issuer_alg", ["EdDSA", "ES256"])
def test_we_verify_reference_issuance_and_presentation(issuer_alg: str) -> None:
    now = int(time.time())
    issuer, holder = SigningKey.generate(issuer_alg), SigningKey.generate("ES256")
    ref_holder = SDJWTHolder(reference_issuance(issuer, holder, now))
    ref_holder.create_presentation(
        {"address": {"locality": True}, "nationalities": [True], "age_equal_or_over": {"18": True}},
        nonce=NONCE, aud=AUD, holder_key=jwk_of(holder), sign_alg="ES256",
    )
    result = ours_verify(ref_holder.sd_jwt_presentation, issuer, now,
                         claims=("address.locality",), predicates=("age_equal_or_over.18",))
    assert result.valid, result.detail
    assert result.claims["address"] == {"locality": "Wilmslow"}
    assert result.claims["nationalities"] == ["GB", "FR"]
    assert result.claims["age_equal_or_over"] == {"18": True}
    assert "given_name" not in result.claims


def test_we_present_reference_issuance_and_both_verify() -> None:
    now = int(time.time())
    issuer, holder = SigningKey.generate("ES256"), SigningKey.generate("ES256")
    presentation = present(reference_issuance(issuer, holder, now), ["given_name", "age_equal_or_over.18"],
                           holder_key=holder, nonce=NONCE, aud=AUD, iat=now)
    ours = ours_verify(presentation, issuer, now, claims=("given_name",))
    assert ours.valid, ours.detail
    assert reference_verify(presentation, issuer) == ours.claims
    assert ours.claims["age_equal_or_over"] == {"18": True}


def test_reference_rejects_our_presentation_with_wrong_nonce() -> None:
    # Guards the interop tests above against a reference that accepts anything.
    now = int(time.time())
    issuer, holder = SigningKey.generate("ES256"), SigningKey.generate("ES256")
    presentation = present(our_credential(issuer, holder, now), ["given_name"], holder_key=holder,
                           nonce="other", aud=AUD, iat=now)
    with pytest.raises(ValueError, match="nonce"):
        reference_verify(presentation, issuer)
