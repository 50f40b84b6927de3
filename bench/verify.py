"""Benchmark: verifying one ES256-bound SD-JWT VC presentation, ours vs the reference.

``run(quick)`` prints, for two configurations, ``verify.ours_per_s``,
``verify.reference_per_s``, ``verify.ratio_vs_reference`` (cold) and
``verify.ours_warm_per_s``, ``verify.ratio_warm_vs_reference`` (warm) and
``verify.cold_ceiling_vs_reference`` (the bound on the cold ratio, below), each
suffixed with the configuration name:

* ``.es256_issuer`` — issuer JWT and KB-JWT both ES256. This is the default:
  the unsuffixed figures are this configuration.
* ``.eddsa_issuer`` — issuer JWT EdDSA (Ed25519), KB-JWT ES256 (the reference
  only accepts ES256 KB-JWTs; it accepts EdDSA issuer signatures).

Both sides verify the same presentation (five disclosures, KB-JWT). Ours runs
every check — strict parsing, issuer key and accreditation, all disclosure
rules, the credential against its published type (an in-memory definition, as a
ledger-backed verifier holds it between reads), times, KB-JWT, status from an
in-memory (cached) list, and the request —
with the issuer key parsed once, as a long-lived verifier would. The reference
(sd-jwt 0.10.4 over jwcrypto) gets its issuer key as an already-built JWK
object too. Run: ``python -m bench verify [--quick]``.

Rates are per second of this process's CPU time, so load from other processes
on a shared machine counts against neither side. Each round times every
configuration and side back to back (interleaved); ratios are taken within a
round and the figures are medians over rounds (15 rounds, or 3 with --quick).

Cold: every presentation parsed and both signatures (issuer JWT, KB-JWT)
computed, no ``VerifierCache`` and no signature memo. The only thing remembered
between calls is process-wide and not per credential: parsed JOSE headers by
exact text (one per issuer key, one KB-JWT header), as ``jose.parse`` does for
every caller. ES256 and Ed25519 verification cost ~85–120 µs each here, which
bounds the cold ratio whatever the Python around them does:
``verify.cold_ceiling_vs_reference`` is the reference's time per presentation
over the time of the two bare signature checks alone (``PreparedKey.verify``
on the same bytes, timed in the same rounds) — the ratio a verifier with zero
Python overhead would reach.

Warm: the same credential presented again to a long-lived verifier.
``VerifierCache`` remembers what the pure checks made of the exact SD-JWT text
(the presentation up to its last ``~``): the parsed issuer JWT, the disclosed
claims (every disclosure rule passed) and its ``sd_hash`` (kept from the text's
second sighting: the warm-up call and the first timed one). Everything that
depends on anything but that text still runs on every call: the issuer key is
resolved, the issuer signature checked — ``FixedIssuerKey(memo_max=)`` answers
from a bounded memo of (signing input, signature) pairs that verified under
that key, instead of recomputing — accreditation for the ``vct``, the time
claims against ``now``, the whole KB-JWT (parsed, ES256 signature computed,
``iat`` window, nonce, aud, ``sd_hash``), status and the request.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from identity import jose
from identity.constants import SEPARATOR
from identity.credtypes import CredentialType, KnownCredentialTypes
from identity.presentation import present
from identity.request import PresentationRequest
from identity.sdjwt import HolderBinding, issue
from identity.verifier import (
    CnfHolderKeys,
    FixedIssuerKey,
    InMemoryStatusLists,
    StatusListSnapshot,
    VerifierCache,
    verify_presentation,
)
from ledger.keys import SigningKey

NONCE, AUD, VCT, URI = "bench-nonce", "https://rp.example", "urn:imi:pid:1", "https://status.example/1"
# configuration name -> issuer key algorithm; the holder (KB-JWT) key is ES256 in both.
CONFIGURATIONS = {"es256_issuer": "ES256", "eddsa_issuer": "EdDSA"}
DEFAULT_CONFIGURATION = "es256_issuer"  # the unsuffixed figures: both signatures ES256
AGES = {"age_equal_or_over": [16, 18, 65]}
TYPES = KnownCredentialTypes([CredentialType.of(
    VCT, "did:imi:issuer", ["given_name", "family_name", "birthdate", "address"], predicates=AGES)])


def per_second(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of this process's CPU time (``process_time``), so other
    processes on a shared machine do not count against either side."""
    fn()  # warm caches and lazy imports outside the timed loop
    count, start = 0, time.process_time()
    while True:
        for _ in range(20):
            fn()
        count += 20
        elapsed = time.process_time() - start
        if elapsed >= seconds:
            return count / elapsed


@dataclass(frozen=True, slots=True)
class _Setup:
    """One configuration: the timed callables over the same presentation."""

    ours: Callable[[], object]
    ours_warm: Callable[[], object]
    reference: Callable[[], object]
    signatures: Callable[[], object]  # the issuer and KB-JWT signature checks alone


def _presentation(issuer: SigningKey, holder: SigningKey, now: int) -> str:
    """The benchmark's presentation: five disclosures (three asked), ES256 KB-JWT."""
    credential = issue(
        {"given_name": "Ada", "family_name": "Lovelace", "birthdate": "1990-12-10",
         "address": {"locality": "London", "country": "GB"}},
        issuer_key=issuer, iss="did:imi:issuer", vct=VCT, holder=HolderBinding.from_key(holder.public_key),
        iat=now - 60, exp=now + 3600, status={"status_list": {"idx": 3, "uri": URI}},
        predicates=AGES,
    ).serialize()
    return present(credential, ["given_name", "age_equal_or_over.18", "address.locality"],
                   holder_key=holder, nonce=NONCE, aud=AUD, iat=now)


def _verifier(issuer: SigningKey, now: int
              ) -> tuple[PresentationRequest, FixedIssuerKey, CnfHolderKeys, InMemoryStatusLists]:
    """What a long-lived verifier holds: the request, the issuer key parsed once, status."""
    request = PresentationRequest(nonce=NONCE, aud=AUD, vct=frozenset({VCT}), claims=("given_name",),
                                  predicates=("age_equal_or_over.18",), max_age_s=86_400)
    issuer_keys = FixedIssuerKey(issuer.public_key, iss="did:imi:issuer", vct=frozenset({VCT}), types=TYPES)
    return request, issuer_keys, CnfHolderKeys(), InMemoryStatusLists({URI: StatusListSnapshot(bytes(16), now)})


def _setup(issuer_alg: str, now: int) -> _Setup:
    """ES256 holder (the reference takes only ES256 KB-JWTs), issuer key ``issuer_alg``."""
    from jwcrypto.jwk import JWK
    from sd_jwt.verifier import SDJWTVerifier

    issuer, holder = SigningKey.generate(issuer_alg), SigningKey.generate("ES256")
    presentation = _presentation(issuer, holder, now)
    request, issuer_keys, holder_keys, status = _verifier(issuer, now)

    def ours() -> object:
        result = verify_presentation(presentation, request, issuer_keys=issuer_keys,
                                     holder_keys=holder_keys, status=status, now=now)
        assert result.valid, result.reason
        return result

    memo_keys = FixedIssuerKey(issuer.public_key, iss="did:imi:issuer", vct=frozenset({VCT}), memo_max=1024,
                               types=TYPES)
    cache = VerifierCache()

    def ours_warm() -> object:
        result = verify_presentation(presentation, request, issuer_keys=memo_keys,
                                     holder_keys=holder_keys, status=status, now=now, cache=cache)
        assert result.valid, result.reason
        return result

    reference_key = JWK(**issuer.public_key.to_jwk())

    def reference() -> object:
        verifier = SDJWTVerifier(presentation, lambda iss, header: reference_key,
                                 expected_aud=AUD, expected_nonce=NONCE)
        return verifier.get_verified_payload()

    jwt, kb_token = presentation.split(SEPARATOR)[0], presentation.rsplit(SEPARATOR, 1)[1]
    issuer_jws, kb_jws = jose.parse(jwt), jose.parse(kb_token)
    issuer_key, holder_key = jose.PreparedKey(issuer.public_key), jose.PreparedKey(holder.public_key)

    def signatures() -> object:
        ok = issuer_jws.verify(issuer_key) and kb_jws.verify(holder_key)
        assert ok
        return ok

    reference()  # the reference must accept this configuration, or the ratio means nothing
    return _Setup(ours, ours_warm, reference, signatures)


def cold_verification(now: int) -> Callable[[], object]:
    """The cold verification of the default configuration (``verify.ours_per_s``), for
    benchmarks that compare against it in their own rounds (``bench present``)."""
    return _setup(CONFIGURATIONS[DEFAULT_CONFIGURATION], now).ours


class FreshCosts(NamedTuple):
    """The cold verification as a verifier meets one-time credentials (:func:`fresh_costs`)."""

    cold_fresh_ms: float  # per presentation never seen, each with its own credential and holder key
    holder_key_us: float  # of that: preparing the new holder key
    text_us: float  # of that: text never verified before


def fresh_costs(now: int, count: int) -> FreshCosts:
    """The cold verification of the default configuration over ``count`` distinct
    presentations — each its own credential and holder key, as one-time credentials of a
    batch reach a verifier — each verified once (building them is not timed), and what that
    adds to the cold figure, split. ``verify.ours_per_s`` re-presents one presentation, so
    its holder key stays prepared and its text in memory. Three passes of ``count`` each:
    fresh texts with fresh holder keys, other fresh texts whose holder keys were prepared
    beforehand, and one presentation re-presented with its key prepared (as the cold figure)."""
    issuer = SigningKey.generate(CONFIGURATIONS[DEFAULT_CONFIGURATION])
    holders = [SigningKey.generate("ES256") for _ in range(2 * count)]
    presentations = [_presentation(issuer, holder, now) for holder in holders]
    request, issuer_keys, fresh_keys, status = _verifier(issuer, now)
    prepared_keys = CnfHolderKeys()
    for holder in holders[count:]:
        prepared_keys.resolve({"jwk": holder.public_key.to_jwk()})

    def per_call_us(texts: list[str], holder_keys: CnfHolderKeys) -> float:
        gc.collect()
        start = time.process_time()
        for presentation in texts:
            result = verify_presentation(presentation, request, issuer_keys=issuer_keys,
                                         holder_keys=holder_keys, status=status, now=now)
            assert result.valid, result.reason
        return (time.process_time() - start) * 1e6 / len(texts)

    fresh = per_call_us(presentations[:count], fresh_keys)
    keys_prepared = per_call_us(presentations[count:], prepared_keys)
    repeated = per_call_us([presentations[count]] * count, prepared_keys)
    return FreshCosts(fresh / 1000, fresh - keys_prepared, keys_prepared - repeated)


def run(quick: bool) -> dict[str, float]:
    now = int(time.time())
    setups = {name: _setup(alg, now) for name, alg in CONFIGURATIONS.items()}
    rounds, seconds = (3, 0.1) if quick else (15, 0.25)
    # name -> figure -> one sample per round. Each round times every configuration and
    # side back to back, so load from other processes hits all of them alike; the
    # ratio is taken within a round, then the median over rounds is reported.
    samples: dict[str, dict[str, list[float]]] = {
        name: {"ours": [], "warm": [], "reference": [], "ratio": [], "ratio_warm": [], "ceiling": []}
        for name in setups
    }
    for _ in range(rounds):
        for name, setup in setups.items():
            got = samples[name]
            ours, reference = per_second(setup.ours, seconds), per_second(setup.reference, seconds)
            warm = per_second(setup.ours_warm, seconds)
            signatures = per_second(setup.signatures, seconds)
            got["ceiling"].append(signatures / reference)
            got["ours"].append(ours)
            got["reference"].append(reference)
            got["warm"].append(warm)
            got["ratio"].append(ours / reference)
            got["ratio_warm"].append(warm / reference)
    figures: dict[str, float] = {}
    for name, got in samples.items():
        suffix = "" if name == DEFAULT_CONFIGURATION else f".{name}"
        for key, figure, digits in (
            ("ours", "verify.ours_per_s", 1),
            ("reference", "verify.reference_per_s", 1),
            ("ratio", "verify.ratio_vs_reference", 2),
            ("warm", "verify.ours_warm_per_s", 1),
            ("ratio_warm", "verify.ratio_warm_vs_reference", 2),
            ("ceiling", "verify.cold_ceiling_vs_reference", 2),
        ):
            value = round(statistics.median(got[key]), digits)
            figures[figure + suffix] = value
            if not suffix:  # the default is also printed under its explicit name
                figures[f"{figure}.{name}"] = value
    for name, value in figures.items():
        print(f"{name} {value}")
    return figures


if __name__ == "__main__":
    run(quick="--quick" in sys.argv[1:])
