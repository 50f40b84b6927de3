"""Generate tests/vectors/sdjwt_negative.json: SD-JWT VC presentations and verdicts.

Run ``python -m tests.vectors.generate_sdjwt`` from the repository root. Keys
come from fixed seeds, but salts and ES256 signatures are random, so the bytes
differ between runs while every verdict stays the same; the test re-checks
each case against ``identity.verifier`` and the reference ``sd-jwt`` package.

Every negative case changes exactly one thing in an otherwise valid
presentation: when the mutation touches the issuer-signed part, the issuer
re-signs it, and the holder re-signs the KB-JWT, so the only defect left is the
one named. ``reference_accepts`` records what the IETF reference
implementation (sd-jwt 0.10.4) does with the same input — the cases where it
says yes are checks it skips.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from identity import jose
from identity.constants import ARRAY_DIGEST_KEY, SD_KEY
from identity.presentation import HeldCredential, key_binding_jwt, present
from identity.sdjwt import Disclosure, HolderBinding, digest, issue
from ledger.keys import SigningKey, b64url_encode

OUTPUT = Path(__file__).with_name("sdjwt_negative.json")

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
DAY = 86_400
ISS = "did:imi:issuer-civil-affairs"
VCT = "urn:imi:pid:1"
NONCE = "n-0S6_WzA2Mj"
AUD = "https://verifier.example"
STATUS_URI = "https://status.example/lists/1"
STALE_URI = "https://status.example/lists/stale"
# idx → status: 0 valid, 1 revoked (INVALID), 2 suspended
STATUS_LIST = [0, 1, 2, 0]

CLAIMS = {
    "given_name": "Ada",
    "family_name": "Lovelace",
    "birthdate": "1990-12-10",
    "address": {"locality": "London", "street_address": "12 St James's Square"},
    "nationalities": ["GB", "IT"],
}
REQUEST = {
    "nonce": NONCE,
    "aud": AUD,
    "vct": [VCT],
    "claims": ["given_name"],
    "predicates": ["age_equal_or_over.18"],
    "trusted_issuers": [],
    "max_age_s": 400 * DAY,
    "require_key_binding": True,
}
DISCLOSE = ["given_name", "age_equal_or_over.18", "address.locality"]


def fixed_key(label: str) -> SigningKey:
    """A deterministic ES256 key; the seed hash is far below the P-256 order."""
    return SigningKey("ES256", hashlib.sha256(b"imi sdjwt vectors " + label.encode()).digest())


ISSUER = fixed_key("issuer")
HOLDER = fixed_key("holder")
OTHER = fixed_key("other")


def b64json(value: Any) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":")).encode())


def credential(**overrides: Any) -> str:
    args: dict[str, Any] = {
        "issuer_key": ISSUER, "iss": ISS, "vct": VCT, "holder": HolderBinding.from_key(HOLDER.public_key),
        "iat": NOW - DAY, "exp": NOW + 365 * DAY,
        "status": {"status_list": {"idx": 0, "uri": STATUS_URI}},
        "predicates": {"age_equal_or_over": [16, 18, 65]},  # the thresholds the vectors were made with
    }
    claims = overrides.pop("claims", CLAIMS)
    args.update(overrides)
    return issue(claims, **args).serialize()


def with_kb(without_kb: str, *, key: SigningKey = HOLDER, nonce: str = NONCE, aud: str = AUD,
            iat: int = NOW, typ: str = "kb+jwt", sd_hash_over: str | None = None) -> str:
    if typ == "kb+jwt" and sd_hash_over is None:
        return without_kb + key_binding_jwt(without_kb, holder_key=key, nonce=nonce, aud=aud, iat=iat)
    payload = {"iat": iat, "aud": aud, "nonce": nonce,
               "sd_hash": b64url_encode(hashlib.sha256((sd_hash_over or without_kb).encode()).digest())}
    return without_kb + jose.sign({"typ": typ}, payload, key)


def presented(cred: str | None = None, paths: list[str] = DISCLOSE, **kb: Any) -> str:
    without_kb = present(cred or credential(), paths, holder_key=None, nonce=NONCE, aud=AUD, iat=NOW)
    return with_kb(without_kb, **kb)


def parts(cred: str) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Header, payload and disclosures of an issued credential."""
    held = HeldCredential.parse(cred)
    header = jose.parse(held.jws).header
    return header, held.payload, [d.encoded for d in held.disclosures]


def resign(header: dict[str, Any], payload: dict[str, Any], disclosures: list[str],
           key: SigningKey = ISSUER) -> str:
    """Issuer re-signs a modified payload; holder re-binds: only the payload change remains."""
    jwt = jose.sign({k: v for k, v in header.items() if k != "alg"}, payload, key)
    return with_kb("~".join([jwt, *disclosures]) + "~")


def raw_jwt(header: dict[str, Any], payload: dict[str, Any], signature: bytes) -> str:
    return b64json(header) + "." + b64json(payload) + "." + b64url_encode(signature)


def mutate_payload(change: Callable[[dict[str, Any], list[str]], None],
                   cred: str | None = None, keep: list[str] | None = None) -> str:
    """Apply ``change(payload, disclosures)`` to a fresh credential, re-sign, present all."""
    header, payload, disclosures = parts(cred or credential())
    change(payload, disclosures)
    return resign(header, payload, disclosures if keep is None else keep)


def disclosure_of(cred: str, name: str) -> Disclosure:
    held = HeldCredential.parse(cred)
    return next(d for d in held.disclosures if d.name == name)


def top_only(cred: str, names: list[str]) -> list[str]:
    held = HeldCredential.parse(cred)
    return [d.encoded for d in held.select(names)]


# --- the cases -------------------------------------------------------------------------------
def build_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []

    def case(name: str, reason: str, presentation: str, **extra: Any) -> None:
        cases.append({"name": name, "reason": reason, "presentation": presentation, **extra})

    case("valid", "ok", presented())
    case("valid-everything-disclosed", "ok", presented(paths=list(CLAIMS) + ["age_equal_or_over"]))
    case("valid-no-kb-when-not-required", "ok", presented().rsplit("~", 1)[0] + "~",
         request={**REQUEST, "require_key_binding": False})

    # --- compact form and JWS
    good = presented()
    case("garbage", "malformed-compact", "not an sd-jwt at all")
    case("truncated-no-tilde", "malformed-compact", good.split("~")[0][:40])
    case("empty-disclosure-slot", "malformed-compact", good.replace("~", "~~", 1))
    case("non-ascii", "malformed-compact", good + "é")
    case("too-large", "too-large", good.split("~")[0] + "~" + "A" * 70_000 + "~")
    case("jwt-two-parts", "malformed-jws", ".".join(good.split(".")[:2]) + "~")
    case("jwt-garbage-base64", "malformed-jws", "!!!." + good.split(".", 1)[1])
    header, payload, discs = parts(credential())
    case("alg-none", "alg-not-allowed",
         with_kb("~".join([raw_jwt({**header, "alg": "none"}, payload, b""), *discs]) + "~"))
    hs_input = b64json({**header, "alg": "HS256"}) + "." + b64json(payload)
    hs_sig = hmac.new(b"secret", hs_input.encode(), hashlib.sha256).digest()
    case("alg-hs256", "alg-not-allowed", with_kb("~".join([hs_input + "." + b64url_encode(hs_sig), *discs]) + "~"))
    case("duplicate-json-member", "malformed-json", with_kb("~".join([
        base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode() + "."
        + b64url_encode(b'{"iss":"a","iss":"b"}') + "." + b64url_encode(bytes(64)), *discs]) + "~"))
    case("wrong-typ", "wrong-typ", resign({**header, "typ": "example+sd-jwt"}, payload, discs))
    case("missing-typ", "wrong-typ", resign({k: v for k, v in header.items() if k != "typ"}, payload, discs))
    case("missing-vct", "missing-vc-claim", mutate_payload(lambda p, d: p.pop("vct")))

    # --- issuer
    jwt, rest = good.split("~", 1)
    sig = bytearray(base64.urlsafe_b64decode(jwt.split(".")[2] + "=="))
    sig[5] ^= 1
    case("bad-signature", "bad-signature", with_kb(
        ".".join(jwt.split(".")[:2] + [b64url_encode(bytes(sig))]) + "~" + rest.rsplit("~", 1)[0] + "~"))
    case("signed-by-other-key-same-kid", "bad-signature", resign(header, payload, discs, key=OTHER))
    case("unknown-issuer-kid", "unknown-issuer",
         presented(credential(issuer_key=OTHER)))
    case("issuer-not-accredited-for-vct", "issuer-not-accredited",
         presented(credential(vct="urn:imi:driving-licence:1")),
         request={**REQUEST, "vct": []})

    # --- disclosures
    cred = credential()
    header, payload, discs = parts(cred)
    chosen = top_only(cred, DISCLOSE)
    given = disclosure_of(cred, "given_name")
    tampered = b64json([given.salt, "given_name", "Eve"])
    case("tampered-disclosure", "unreferenced-disclosure",
         with_kb("~".join([cred.split("~")[0], *[tampered if c == given.encoded else c for c in chosen]]) + "~"))
    stranger = Disclosure.create("role", "admin").encoded
    case("unreferenced-disclosure", "unreferenced-disclosure",
         with_kb("~".join([cred.split("~")[0], *chosen, stranger]) + "~"))
    locality = next(d for d in HeldCredential.parse(cred).disclosures if d.name == "locality")
    case("child-without-parent", "unreferenced-disclosure",
         with_kb("~".join([cred.split("~")[0], given.encoded, locality.encoded]) + "~"),
         request={**REQUEST, "predicates": []})
    case("duplicate-disclosure", "duplicate-disclosure",
         with_kb("~".join([cred.split("~")[0], *chosen, given.encoded]) + "~"))
    case("duplicate-digest-same-object", "duplicate-digest",
         mutate_payload(lambda p, d: p[SD_KEY].append(p[SD_KEY][0])))

    def dup_nested(p: dict[str, Any], d: list[str]) -> None:
        p["extra"] = {SD_KEY: [p[SD_KEY][0]]}
    case("duplicate-digest-across-objects", "duplicate-digest", mutate_payload(dup_nested))

    def add_disclosure(encoded: str, where: str = "sd") -> Callable[[dict[str, Any], list[str]], None]:
        def change(p: dict[str, Any], d: list[str]) -> None:
            if where == "sd":
                p[SD_KEY] = sorted(p[SD_KEY] + [digest(encoded)])
            else:
                p["list"] = [{ARRAY_DIGEST_KEY: digest(encoded)}]
            d.append(encoded)
        return change

    case("disclosure-named-_sd", "reserved-claim-name",
         mutate_payload(add_disclosure(b64json(["c2FsdHNhbHRzYWx0c2FsdA", "_sd", ["x"]]))))
    case("disclosure-named-ellipsis", "reserved-claim-name",
         mutate_payload(add_disclosure(b64json(["c2FsdHNhbHRzYWx0c2FsdA", "...", "x"]))))
    case("disclosure-name-not-string", "bad-claim-name",
         mutate_payload(add_disclosure(b64json(["c2FsdHNhbHRzYWx0c2FsdA", 7, "x"]))))
    case("non-json-disclosure", "malformed-disclosure",
         mutate_payload(add_disclosure(b64url_encode(b"[not json"))))
    case("disclosure-four-elements", "malformed-disclosure",
         mutate_payload(add_disclosure(b64json(["c2FsdHNhbHRzYWx0c2FsdA", "a", "b", "c"]))))
    case("disclosure-not-base64url", "malformed-disclosure",
         with_kb("~".join([cred.split("~")[0], *chosen, "***"]) + "~"))
    case("disclosure-overwrites-claim", "claim-overwrite",
         mutate_payload(add_disclosure(b64json(["c2FsdHNhbHRzYWx0c2FsdA", "iss", "did:imi:evil"]))))
    case("disclosure-of-never-disclosable-claim", "non-disclosable-claim",
         mutate_payload(add_disclosure(b64json(["c2FsdHNhbHRzYWx0c2FsdA", "nbf", 0]))))
    case("array-disclosure-in-_sd", "misplaced-disclosure",
         mutate_payload(add_disclosure(b64json(["c2FsdHNhbHRzYWx0c2FsdA", "x"]))))
    case("object-disclosure-in-array", "misplaced-disclosure",
         mutate_payload(add_disclosure(b64json(["c2FsdHNhbHRzYWx0c2FsdA", "k", "x"]), where="array")))
    case("_sd-not-a-list", "malformed-digests", mutate_payload(lambda p, d: p.update({SD_KEY: "x"})))
    case("array-digest-with-extra-member", "malformed-digests",
         mutate_payload(lambda p, d: p.update({"list": [{ARRAY_DIGEST_KEY: "x", "y": 1}]})))
    case("wrong-_sd_alg", "unsupported-sd-alg", mutate_payload(lambda p, d: p.update({"_sd_alg": "sha-512"})))

    # --- validity period
    case("expired", "expired", presented(credential(iat=NOW - 30 * DAY, exp=NOW - DAY)))
    case("not-yet-valid", "not-yet-valid", presented(credential(nbf=NOW + DAY)))
    case("issued-in-future", "issued-in-future", presented(credential(iat=NOW + DAY, exp=NOW + 9 * DAY)))
    case("exp-not-integer", "bad-time-claim", mutate_payload(lambda p, d: p.update({"exp": "tomorrow"})))

    # --- key binding
    case("kb-missing", "kb-missing", presented().rsplit("~", 1)[0] + "~")
    case("kb-wrong-nonce", "kb-wrong-nonce", presented(nonce="other-nonce"))
    case("kb-wrong-aud", "kb-wrong-aud", presented(aud="https://evil.example"))
    case("kb-stale-iat", "kb-stale", presented(iat=NOW - 3600))
    case("kb-future-iat", "kb-future", presented(iat=NOW + 3600))
    case("kb-wrong-typ", "kb-wrong-typ", presented(typ="JWT"))
    case("kb-signed-by-other-key", "kb-bad-signature", presented(key=OTHER))
    without = presented().rsplit("~", 1)[0] + "~"
    case("kb-wrong-sd-hash", "kb-wrong-sd-hash", with_kb(without, sd_hash_over=without + "x"))
    reduced = with_kb(without)
    first_disclosure = without.split("~")[1]
    case("kb-after-dropping-a-disclosure", "kb-wrong-sd-hash", reduced.replace(first_disclosure + "~", "", 1))
    kb_header = b64json({"alg": "HS256", "typ": "kb+jwt"})
    case("kb-alg-hs256", "kb-alg-not-allowed", without + kb_header + "." + b64json({"iat": NOW}) + ".AAAA")
    case("kb-garbage", "kb-malformed-jws", without + "garbage")
    case("kb-iat-not-integer", "kb-bad-iat", without + jose.sign(
        {"typ": "kb+jwt"}, {"iat": str(NOW), "aud": AUD, "nonce": NONCE,
                            "sd_hash": b64url_encode(hashlib.sha256(without.encode()).digest())}, HOLDER))
    case("kb-too-large", "kb-too-large", without + "A" * 5000 + ".B.C")
    case("no-cnf", "no-holder-key", mutate_payload(lambda p, d: p.pop("cnf")))
    case("cnf-kid-unknown", "unknown-holder-key",
         mutate_payload(lambda p, d: p.update({"cnf": {"kid": "did:imi:someone#key-1"}})))

    # --- status
    case("revoked", "revoked", presented(credential(status={"status_list": {"idx": 1, "uri": STATUS_URI}})))
    case("suspended", "suspended", presented(credential(status={"status_list": {"idx": 2, "uri": STATUS_URI}})))
    case("status-list-stale", "status-stale",
         presented(credential(status={"status_list": {"idx": 0, "uri": STALE_URI}})))
    case("status-list-unknown", "status-unavailable",
         presented(credential(status={"status_list": {"idx": 0, "uri": "https://nowhere.example"}})))
    case("status-claim-malformed", "bad-status-claim", presented(credential(status={"status_list": {"idx": -1}})))

    # --- the request
    case("requested-claim-not-disclosed", "claim-not-disclosed", presented(paths=["age_equal_or_over.18"]))
    minor = credential(claims={**CLAIMS, "birthdate": "2010-06-01"})
    case("predicate-false", "predicate-not-satisfied", presented(minor))
    case("credential-too-old", "credential-too-old", presented(credential(iat=NOW - 500 * DAY)))
    case("vct-not-accepted", "vct-not-accepted", presented(), request={**REQUEST, "vct": ["urn:imi:other:1"]})
    case("issuer-not-trusted", "issuer-not-trusted", presented(),
         request={**REQUEST, "trusted_issuers": ["did:imi:someone-else"]})
    return cases


def reference_accepts(presentation: str, request: dict[str, Any]) -> bool:
    """Does the IETF reference verifier (sd-jwt 0.10.4) accept this presentation?"""
    from jwcrypto.jwk import JWK
    from sd_jwt.verifier import SDJWTVerifier

    issuer_jwk = JWK(**ISSUER.public_key.to_jwk())
    try:
        verifier = SDJWTVerifier(presentation, lambda iss, header: issuer_jwk,
                                 expected_aud=request["aud"], expected_nonce=request["nonce"])
        verifier.get_verified_payload()
    except Exception:  # noqa: BLE001 - the reference raises many types; any means "rejected"
        return False
    return True


def build() -> dict[str, Any]:
    cases = build_cases()
    for item in cases:
        item["reference_accepts"] = reference_accepts(item["presentation"], item.get("request", REQUEST))
    return {
        "description": __doc__.strip().splitlines()[0],
        "now": NOW,
        "issuer": {"iss": ISS, "jwk": ISSUER.public_key.to_jwk(), "vct": [VCT]},
        "request": REQUEST,
        "status_lists": {
            STATUS_URI: {"statuses": STATUS_LIST, "fetched_at": NOW - 60},
            STALE_URI: {"statuses": STATUS_LIST, "fetched_at": NOW - 30 * DAY},
        },
        "cases": cases,
    }


def main() -> None:
    OUTPUT.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
