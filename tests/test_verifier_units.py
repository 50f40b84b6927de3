"""Verifier building blocks: strict base64url/JSON, key memo, resolvers, status lists."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from identity import jose
from identity.errors import FormatError, IssuerError, KeyBindingError, StatusError
from identity.verifier import (
    CnfHolderKeys,
    CredentialStatus,
    FixedIssuerKey,
    InMemoryStatusLists,
    NoStatus,
    StatusListSnapshot,
    StatusReference,
)
from ledger.errors import KeyError_
from ledger.keys import SigningKey, b64url_decode


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="AQgwBC09-_+/= \n.é", max_size=12))
def test_strict_base64url_agrees_with_the_ledger_decoder(text: str) -> None:
    try:
        expected: bytes | None = b64url_decode(text)
    except KeyError_:
        expected = None
    try:
        got: bytes | None = jose.b64url_decode_strict(text)
    except FormatError:
        got = None
    assert got == expected


@pytest.mark.parametrize("raw", [b'{"a":1,"a":2}', b'{"a":NaN}', b'{"a":Infinity}', b"[" * 40 + b"]" * 40,
                                 b"\xff", b"{", b'{"a":' + b"[" * 17 + b"]" * 17 + b"}"])
def test_strict_json_rejects(raw: bytes) -> None:
    with pytest.raises(FormatError) as info:
        jose.json_loads(raw)
    assert info.value.reason == "malformed-json"


def test_json_at_the_depth_limit_is_accepted() -> None:
    assert jose.json_loads(b"[" * 16 + b"]" * 16) is not None


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_key_memo_remembers_only_good_signatures(alg: str) -> None:
    key = SigningKey.generate(alg)
    prepared = jose.PreparedKey(key.public_key, memo_max=2)
    sig = key.sign(b"m")
    bad = bytes([sig[0] ^ 1]) + sig[1:]
    assert prepared.verify(b"m", sig) and prepared.verify(b"m", sig)
    assert not prepared.verify(b"m", bad) and not prepared.verify(b"m", bad)
    for i in range(3):
        assert prepared.verify(b"%d" % i, key.sign(b"%d" % i))
    assert len(prepared._memo) == 2  # bounded
    assert not prepared.verify(b"other", sig)


def test_jws_of_one_algorithm_never_verifies_under_a_key_of_the_other() -> None:
    ed, es = SigningKey.generate("EdDSA"), SigningKey.generate("ES256")
    token = jose.parse(jose.sign({"typ": "x"}, {"a": 1}, ed))
    assert token.verify(jose.PreparedKey(ed.public_key))
    assert not token.verify(jose.PreparedKey(es.public_key))


def test_fixed_issuer_key_checks_iss_and_kid() -> None:
    key = SigningKey.generate("EdDSA").public_key
    resolver = FixedIssuerKey(key, iss="did:imi:a")
    assert resolver.resolve("did:imi:a", {"kid": key.thumbprint()}).key.public_key == key
    assert resolver.resolve("did:imi:a", {}).vct is None
    for iss, header in (("did:imi:b", {}), ("did:imi:a", {"kid": "other"})):
        with pytest.raises(IssuerError) as info:
            resolver.resolve(iss, header)
        assert info.value.reason == "unknown-issuer"


@pytest.mark.parametrize(
    ("cnf", "reason"),
    [({}, "no-holder-key"), ({"jwk": {"kty": "RSA"}}, "unknown-holder-key"),
     ({"kid": "did:imi:x#1"}, "unknown-holder-key"), ({"jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AA"}},
                                                      "unknown-holder-key")],
)
def test_holder_resolver_failures(cnf: dict[str, object], reason: str) -> None:
    with pytest.raises(KeyBindingError) as info:
        CnfHolderKeys().resolve(cnf)
    assert info.value.reason == reason


def test_holder_resolver_refuses_private_jwk_and_caches_boundedly() -> None:
    keys = [SigningKey.generate("ES256") for _ in range(3)]
    with pytest.raises(KeyBindingError):
        CnfHolderKeys().resolve({"jwk": keys[0].to_private_jwk()})
    resolver = CnfHolderKeys(cache_max=2)
    first = resolver.resolve({"jwk": keys[0].public_key.to_jwk()})
    assert resolver.resolve({"jwk": keys[0].public_key.to_jwk()}) is first
    for key in keys:
        assert resolver.resolve({"jwk": key.public_key.to_jwk()}).public_key == key.public_key
    assert len(resolver._cache) == 2


def test_in_memory_status_lists() -> None:
    lists = InMemoryStatusLists({"u": StatusListSnapshot(bytes([0, 1, 2, 3]), 1000)}, max_age_s=60)
    assert lists.check(StatusReference(0, "u"), now=1000) is CredentialStatus.VALID
    assert lists.check(StatusReference(1, "u"), now=1060) is CredentialStatus.INVALID
    assert lists.check(StatusReference(2, "u"), now=1000) is CredentialStatus.SUSPENDED
    for ref, now, reason in ((StatusReference(0, "u"), 1061, "status-stale"),
                             (StatusReference(4, "u"), 1000, "status-unavailable"),
                             (StatusReference(3, "u"), 1000, "status-unavailable"),
                             (StatusReference(0, "v"), 1000, "status-unavailable")):
        with pytest.raises(StatusError) as info:
            lists.check(ref, now=now)
        assert info.value.reason == reason


def test_no_status_rejects_any_status_reference() -> None:
    with pytest.raises(StatusError) as info:
        NoStatus().check(StatusReference(0, "u"), now=0)
    assert info.value.reason == "status-unavailable"


def test_memo_and_key_cache_survive_concurrent_eviction() -> None:
    from concurrent.futures import ThreadPoolExecutor

    key = SigningKey.generate("EdDSA")
    prepared = jose.PreparedKey(key.public_key, memo_max=1)
    signed = [(b"%d" % i, key.sign(b"%d" % i)) for i in range(4)]
    holders = CnfHolderKeys(cache_max=1)
    jwks = [{"jwk": SigningKey.generate("EdDSA").public_key.to_jwk()} for _ in range(3)]

    def work(i: int) -> bool:
        message, sig = signed[i % 4]
        holders.resolve(jwks[i % 3])
        return prepared.verify(message, sig)

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(work, range(2000)))


def test_every_verifier_reason_is_documented() -> None:
    """Reasons raised on the verification path all appear in the docs' reason table."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    docs = (root / "docs" / "credentials.md").read_text("utf-8")
    table = {m for row in docs.splitlines() if row.startswith("| `") for m in re.findall(r"`([a-z0-9-]+)`", row.split("|")[1])}
    raised: set[str] = set()
    for module in ("verifier.py", "jose.py", "request.py", "sdjwt.py", "credtypes.py"):
        source = (root / "identity" / module).read_text("utf-8")
        raised |= set(re.findall(r'reason="([a-z0-9-]+)"', source))
    # internal or a prefix: base64url errors are re-raised as malformed-jws/-disclosure
    raised -= {"malformed-base64url", "kb-", "bad-payload", "bad-vct-definition"}  # the last two: vct.publish
    jose_reasons = {"malformed-jws", "malformed-json", "alg-not-allowed", "too-large"}
    expected = raised | {"kb-" + r for r in jose_reasons}
    assert expected <= table, sorted(expected - table)
