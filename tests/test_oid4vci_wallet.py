"""The wallet's side of OpenID4VCI (identity.oid4vci_client) and the protocol's pure parts
(identity.oid4vci): the issuer is checked on the ledger before anything is signed, every
credential before anything is stored; a phishing relay, a swapped credential or plain http
get nothing out of the wallet."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from identity.errors import IssuanceError
from identity.issuance import IssuanceRequestError
from identity.oid4vci import (
    Grant,
    NonceMint,
    OAuthError,
    OfferBook,
    TokenBook,
    check_offer,
    offer_uri,
    offer_uri_by_reference,
    parse_offer_uri,
)
from identity.oid4vci_client import receive
from identity.wallet import Wallet
from ledger.buckets import TokenBuckets
from tests.test_issuance_world import ADMIN_TOKEN, ISSUER_URL, VCT, World, build_world

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
PHISH = "http://phish.test"


@pytest.fixture(scope="module")
def world() -> World:
    return build_world({f"s{i}": {"claims": {"given_name": f"S{i}", "birthdate": "2001-02-03"}} for i in range(8)})


def staff_offer(world: World, subject: str, batch: int = 1) -> tuple[str, str | None]:
    answer = world.issuer_http.post("/v1/admin/offers", json={"subject": subject, "vcts": [VCT], "batch": batch},
                                    headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["offer_uri"]), answer.json()["tx_code"]


class Recorder:
    """An httpx transport in front of the world: records paths, can rewrite answers."""

    def __init__(self, world: World, rewrite: Any = None) -> None:
        self.inner = world.route()
        self.paths: list[str] = []
        self.rewrite = rewrite

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(f"{request.url.host}{request.url.path}")
        host = request.url.host
        target = request.url.copy_with(host="issuer.test") if host == "phish.test" else request.url
        answer = self.inner.request(request.method, target, content=request.content,
                                    headers={k: v for k, v in request.headers.items() if k.lower() != "host"})
        body = answer.content
        if self.rewrite is not None:
            body = self.rewrite(host, request.url.path, body)
        return httpx.Response(answer.status_code, headers={"content-type": answer.headers["content-type"]},
                              content=body)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))


def fresh_wallet(tmp_path: Path, name: str = "w.json") -> Wallet:
    from identity.wallet import KdfParams

    return Wallet.create(tmp_path / name, "pw", kdf=KdfParams.fastest())


def test_a_wallet_receives_a_batch_and_records_it(world: World, tmp_path: Path) -> None:
    wallet = fresh_wallet(tmp_path)
    uri, pin = staff_offer(world, "s0", batch=3)
    ids = receive(wallet, uri, http=world.route(), ledger=world.light_client(), now=int(time.time()), tx_code=pin,
                  batch=3, allow_http=True)
    assert len(ids) == 3 and len(set(ids)) == 3
    holders = {s.holder_key for s in wallet.credentials()}
    assert len(holders) == 3  # one key per credential: use each once
    (record,) = wallet.issuances()
    assert record["iss"] == world.agency_did and record["credential_issuer"] == ISSUER_URL
    assert record["credentials"] == ids and record["holder"] in holders
    # a second offer to the same wallet is proven first by the key the agency enrolled
    uri, pin = staff_offer(world, "s0")
    (again,) = receive(wallet, uri, http=world.route(), ledger=world.light_client(), now=int(time.time()),
                       tx_code=pin, allow_http=True)
    assert next(s for s in wallet.credentials() if s.id == again).holder_key == record["holder"]


def test_a_phishing_relay_gets_no_proof(world: World, tmp_path: Path) -> None:
    """The relay copies the real issuer's metadata under its own URL and names the real DID:
    the DID document on the ledger does not name the relay, so the wallet stops before the
    token endpoint and signs nothing."""
    def as_phish(host: str, path: str, body: bytes) -> bytes:
        if host == "phish.test" and path.startswith("/.well-known/"):
            return body.replace(ISSUER_URL.encode(), PHISH.encode())
        return body

    uri, pin = staff_offer(world, "s1")
    offer, _ = parse_offer_uri(uri)
    assert offer is not None
    phished = offer_uri({**offer, "credential_issuer": PHISH})
    recorder = Recorder(world, as_phish)
    wallet = fresh_wallet(tmp_path)
    with pytest.raises(IssuanceRequestError) as exc:
        receive(wallet, phished, http=recorder.client(), ledger=world.light_client(), now=int(time.time()),
                tx_code=pin, allow_http=True)
    assert exc.value.reason == "issuer-untrusted"
    assert not any(p.endswith(("/token", "/nonce", "/credential")) for p in recorder.paths), recorder.paths
    assert wallet.credentials() == [] and wallet.issuances() == []


def test_metadata_for_another_issuer_is_refused(world: World, tmp_path: Path) -> None:
    def other(host: str, path: str, body: bytes) -> bytes:
        if path.startswith("/.well-known/openid-credential-issuer"):
            meta = json.loads(body)
            meta["credential_issuer"] = "http://elsewhere.test"
            return json.dumps(meta).encode()
        return body

    uri, pin = staff_offer(world, "s2")
    with pytest.raises(IssuanceRequestError) as exc:
        receive(fresh_wallet(tmp_path), uri, http=Recorder(world, other).client(), ledger=world.light_client(),
                now=int(time.time()), tx_code=pin, allow_http=True)
    assert exc.value.reason == "issuer-untrusted"


def test_a_swapped_credential_is_not_stored(world: World, tmp_path: Path) -> None:
    donor = fresh_wallet(tmp_path, "donor.json")
    uri, pin = staff_offer(world, "s3")
    receive(donor, uri, http=world.route(), ledger=world.light_client(), now=int(time.time()), tx_code=pin,
            allow_http=True)
    foreign = donor._held(donor.credentials()[0].id)[1]["compact"]  # bound to the donor's key

    def swap(host: str, path: str, body: bytes) -> bytes:
        if path == "/credential":
            return json.dumps({"credentials": [{"credential": foreign}]}).encode()
        return body

    victim = fresh_wallet(tmp_path)
    uri, pin = staff_offer(world, "s4")
    with pytest.raises(IssuanceRequestError) as exc:
        receive(victim, uri, http=Recorder(world, swap).client(), ledger=world.light_client(),
                now=int(time.time()), tx_code=pin, allow_http=True)
    assert exc.value.reason == "credential-invalid"
    assert victim.credentials() == [] and victim.issuances() == []


def test_plain_http_to_a_remote_issuer_and_a_missing_pin_are_refused(world: World, tmp_path: Path) -> None:
    uri, pin = staff_offer(world, "s5")
    recorder = Recorder(world)
    with pytest.raises(IssuanceRequestError) as exc:
        receive(fresh_wallet(tmp_path), uri, http=recorder.client(), ledger=world.light_client(),
                now=int(time.time()), tx_code=pin)
    assert exc.value.reason == "issuer-untrusted" and recorder.paths == []
    with pytest.raises(IssuanceRequestError) as exc:
        receive(fresh_wallet(tmp_path, "w2.json"), uri, http=recorder.client(), ledger=world.light_client(),
                now=int(time.time()), allow_http=True)
    assert exc.value.reason == "tx-code-required"
    assert not any(p.endswith("/token") for p in recorder.paths)


def test_a_wrong_pin_reaches_the_wallet_as_invalid_grant(world: World, tmp_path: Path) -> None:
    uri, pin = staff_offer(world, "s6")
    wrong = "999999" if pin != "999999" else "111111"
    with pytest.raises(IssuanceRequestError) as exc:
        receive(fresh_wallet(tmp_path), uri, http=world.route(), ledger=world.light_client(), now=int(time.time()),
                tx_code=wrong, allow_http=True)
    assert exc.value.reason == "invalid_grant"


# --- pure parts ---------------------------------------------------------------------------------
def test_offer_uris_round_trip_and_bad_ones_are_refused() -> None:
    offer = {"credential_issuer": "https://issuer.example", "credential_configuration_ids": [VCT],
             "grants": {"urn:ietf:params:oauth:grant-type:pre-authorized_code": {"pre-authorized_code": "c"}}}
    parsed, ref = parse_offer_uri(offer_uri(offer))
    assert parsed == offer and ref is None and check_offer(parsed).code == "c"
    assert parse_offer_uri(offer_uri_by_reference("https://issuer.example/offers/x")) == \
        (None, "https://issuer.example/offers/x")
    for bad in ("https://x", "openid-credential-offer://?", "openid-credential-offer://?credential_offer=%7B",
                "openid-credential-offer://?credential_offer=1&credential_offer_uri=2",
                "openid-credential-offer://?credential_offer=" + "a" * 9000):
        with pytest.raises(IssuanceRequestError) as exc:
            parse_offer_uri(bad)
        assert exc.value.reason == "bad-offer"
    for bad_offer in ({**offer, "grants": {}}, {**offer, "credential_configuration_ids": []},
                      {**offer, "credential_issuer": "ftp://x"}):
        with pytest.raises(IssuanceRequestError):
            check_offer(bad_offer)


def test_nonces_are_ours_fresh_and_single_use() -> None:
    mint = NonceMint(ttl_s=10, used_max=2)
    nonce = mint.issue(100)
    mint.consume(nonce, 105)
    for value, when in ((nonce, 106), (mint.issue(100), 110), (NonceMint().issue(100), 101),
                        (nonce[:-2] + ("AA" if not nonce.endswith("AA") else "BB"), 101), ("", 101)):
        with pytest.raises(OAuthError) as exc:
            mint.consume(value, when)
        assert exc.value.reason == "invalid_nonce"
    mint.consume(mint.issue(200), 200)  # the first spent nonce expired and was forgotten
    mint.consume(mint.issue(200), 200)
    with pytest.raises(IssuanceError) as full:  # only spent nonces count, and only until they expire
        mint.consume(mint.issue(200), 200)
    assert full.value.reason == "too-many-nonces"
    mint.consume(mint.issue(300), 300)  # the old ones expired


def test_a_spent_nonce_counts_as_used_only_while_it_is_live() -> None:
    """An answered remote-enrolment state is "already answered" until it expires, and then
    simply not live (``unknown-state``), even before the spent set is next purged."""
    mint = NonceMint(ttl_s=10)
    nonce = mint.issue(100)
    assert not mint.used(nonce, 101)
    mint.consume(nonce, 101)
    assert mint.used(nonce, 109)
    assert not mint.used(nonce, 110)  # expired at 110: no longer live, used or not


def test_offer_book_is_bounded_per_subject_and_codes_are_single_use() -> None:
    book = OfferBook("https://issuer.example", ttl_s=60)
    grant = Grant("s", (VCT,), 1, True)
    made = [book.create(grant, 100) for _ in range(6)]
    assert len(book) == 4  # the oldest two were dropped
    with pytest.raises(OAuthError):
        book.redeem(made[0].code, made[0].tx_code, 101)
    assert book.redeem(made[-1].code, made[-1].tx_code, 101) == grant
    with pytest.raises(OAuthError):
        book.redeem(made[-1].code, made[-1].tx_code, 101)
    with pytest.raises(OAuthError) as exc:
        book.redeem(made[-2].code, made[-2].tx_code, 161)
    assert exc.value.reason == "invalid_grant"


def test_rate_limiter_keeps_clients_apart() -> None:
    limit = TokenBuckets(1.0, 2, clients_max=2)
    assert [limit.allow("a", 0.0) for _ in range(3)] == [True, True, False]
    assert limit.allow("b", 0.0) and limit.allow("a", 1.0)


def test_password_prompts_go_to_stderr_not_into_redirected_output(tmp_path: Path) -> None:
    """`imi wallet … > file` must leave only the answer in the file (issue 17): the prompt
    goes to the terminal, or to stderr when there is none (a new session has no tty)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("IMI_WALLET_PASSWORD", "IMI_WALLET")}
    repo = Path(__file__).resolve().parent.parent

    def run(*args: str, stdin: str, name: str = "w") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli.main", "wallet", *args, "--wallet", str(tmp_path / name)],
                              input=stdin, capture_output=True, text=True, env=env, cwd=repo, timeout=120,
                              start_new_session=True, check=False)

    made = run("init", "--insecure-fast-kdf", "--json", stdin="pw\npw\n")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["ok"] is True  # nothing but the answer on stdout
    assert "wallet password" in made.stderr
    listed = run("list", "--json", stdin="pw\n")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
    differ = run("init", "--insecure-fast-kdf", stdin="a\nb\n", name="other")
    assert differ.returncode != 0 and differ.stdout == ""
    assert not (tmp_path / "other").exists()


def test_recovery_kit_password_prompt_goes_to_stderr(tmp_path: Path) -> None:
    """The recovery kit's password prompt follows the same rule as the wallet's: with stdout
    redirected, only the answer (here a one-line failure: no such kit) reaches it."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("IMI_KIT_PASSWORD", "IMI_WALLET")}
    repo = Path(__file__).resolve().parent.parent
    rotated = subprocess.run(
        [sys.executable, "-m", "cli.main", "wallet", "did-rotate", "did:imi:FHdyPpwo2T4moncfqJSuxGBHgSnorCZQEidpQ6sV2gPL",
         "--node", "http://127.0.0.1:9", "--recovery-kit", str(tmp_path / "missing.kit"),
         "--new-recovery-kit", str(tmp_path / "new.kit"), "--wallet", str(tmp_path / "w"), "--json"],
        input="kitpw\n", capture_output=True, text=True, env=env, cwd=repo, timeout=120,
        start_new_session=True, check=False)
    assert rotated.returncode == 1
    answer = json.loads(rotated.stdout)  # nothing but the answer on stdout
    assert answer["ok"] is False and "recovery kit password" not in rotated.stdout
    assert "recovery kit password" in rotated.stderr
    assert not (tmp_path / "new.kit").exists()


def test_an_access_token_spends_each_configuration_once_and_gives_back_on_failure() -> None:
    book = TokenBook(ttl_s=60)
    token = book.issue(Grant("s", ("a", "b"), 1, True), 0)
    taken = book.take(token, "a", 1)
    assert taken == (Grant("s", ("a", "b"), 1, True), 60)
    with pytest.raises(OAuthError) as again:
        book.take(token, "a", 2)  # a racing second request for the same type gets nothing
    assert (again.value.reason, again.value.status) == ("insufficient_scope", 403)
    book.mark_enrolled(token)
    book.give_back(token, "a", taken, 3)  # the issuer failed on its side: "a" may be asked again
    assert book.get(token, 3) == Grant("s", ("b", "a"), 1, False)
    book.take(token, "a", 4)
    last = book.take(token, "b", 4)
    with pytest.raises(OAuthError) as gone:
        book.get(token, 5)
    assert gone.value.reason == "invalid_token"
    book.give_back(token, "b", last, 5)  # also after its last type was spent
    assert book.get(token, 5).configuration_ids == ("b",)
    book.take(token, "b", 6)
    book.give_back(token, "b", last, 61)  # never beyond the token's life
    with pytest.raises(OAuthError):
        book.get(token, 61)
