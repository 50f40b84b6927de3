"""One-time credentials of a batch: the wallet answers each service with a credential of the
batch never presented before (another holder key, another issuer signature), counts the uses
on disk, and once the batch is used up reuses the least-used one (saying so) or refuses,
as the person chose."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app as cli
from identity.errors import WalletError
from identity.oid4vci_client import receive
from identity.request import PresentationRequest
from identity.wallet import REFUSE, Wallet
from ledger.keys import b64url_decode
from tests.test_issuance_world import ADMIN_TOKEN, VCT, World, build_world

BATCH = 3


@pytest.fixture(scope="module")
def world() -> World:
    return build_world({f"p{i}": {"claims": {"given_name": f"P{i}", "birthdate": "1990-02-03"}} for i in range(5)})


def _wallet_with_batch(world: World, tmp_path: Path, subject: str) -> Wallet:
    offer = world.issuer_http.post("/v1/admin/offers", json={"subject": subject, "vcts": [VCT], "batch": BATCH},
                                   headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).json()
    wallet = world.wallet(tmp_path / "w.json")
    receive(wallet, offer["offer_uri"], http=world.route(), ledger=world.light_client(), now=int(time.time()),
            tx_code=offer["tx_code"], batch=BATCH, allow_http=True)
    wallet.save()
    return wallet


def _ask(service: str) -> PresentationRequest:
    return PresentationRequest(nonce=f"nonce-{service}", aud=service, vct=frozenset({VCT}), claims=("given_name",))


def _issuer_jwt_and_cnf(presentation: str) -> tuple[str, str]:
    jwt = presentation.split("~", 1)[0]
    payload = json.loads(b64url_decode(jwt.split(".")[1]))
    return jwt, json.dumps(payload["cnf"], sort_keys=True)


def test_two_services_get_different_credentials_keys_and_signatures(world: World, tmp_path: Path) -> None:
    wallet = _wallet_with_batch(world, tmp_path, "p0")
    now = int(time.time())
    first = wallet.answer(_ask("https://a.example"), now=now)
    second = wallet.answer(_ask("https://b.example"), now=now)
    jwt_a, cnf_a = _issuer_jwt_and_cnf(first)
    jwt_b, cnf_b = _issuer_jwt_and_cnf(second)
    assert cnf_a != cnf_b  # another holder key
    assert jwt_a.rsplit(".", 1)[1] != jwt_b.rsplit(".", 1)[1]  # another issuer signature
    used = [h.credential for h in wallet.history()]
    assert len(set(used)) == 2
    wallet.save()
    reopened = Wallet.open(wallet.path, "pw")  # the uses are on disk
    assert sorted(s.uses for s in reopened.credentials()) == [0, 1, 1]
    assert {s.usage() for s in reopened.credentials()} == {f"1 of {BATCH} unused"}


def test_a_used_up_batch_is_reused_least_used_first_and_says_so(world: World, tmp_path: Path) -> None:
    wallet = _wallet_with_batch(world, tmp_path, "p1")
    now = int(time.time())
    for i in range(BATCH):
        assert wallet.choose(_ask(f"s{i}"), now=now).reused is False
        wallet.answer(_ask(f"s{i}"), now=now)
    assert len({h.credential for h in wallet.history()}) == BATCH  # each used once
    choice = wallet.choose(_ask("late"), now=now)
    assert choice.reused is True
    wallet.answer(_ask("late"), now=now)
    assert wallet.uses(choice.credential) == 2
    after = wallet.choose(_ask("later"), now=now)
    assert after.reused and wallet.uses(after.credential) == 1  # the least-used one next


def test_a_used_up_batch_is_refused_when_the_person_says_so(world: World, tmp_path: Path) -> None:
    wallet = _wallet_with_batch(world, tmp_path, "p2")
    wallet.set_when_used_up(REFUSE)
    now = int(time.time())
    for i in range(BATCH):
        wallet.answer(_ask(f"s{i}"), now=now)
    with pytest.raises(WalletError) as info:
        wallet.answer(_ask("one too many"), now=now)
    assert info.value.reason == "batch-used-up"
    assert len(wallet.history()) == BATCH  # nothing more disclosed
    with pytest.raises(WalletError) as bad:
        wallet.set_when_used_up("sometimes")
    assert bad.value.reason == "bad-setting"


def test_the_cli_shows_batch_usage_and_the_setting(world: World, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    wallet = _wallet_with_batch(world, tmp_path, "p3")
    wallet.answer(_ask("s"), now=int(time.time()))
    wallet.save()
    monkeypatch.setenv("IMI_WALLET", str(wallet.path))
    monkeypatch.setenv("IMI_WALLET_PASSWORD", "pw")
    runner = CliRunner()
    listed = runner.invoke(cli, ["wallet", "list"])
    assert listed.exit_code == 0 and listed.stdout.count(f"2 of {BATCH} unused") == BATCH, listed.output
    as_json = json.loads(runner.invoke(cli, ["wallet", "list", "--json"]).stdout)
    assert sorted(c["uses"] for c in as_json) == [0, 0, 1] and {c["batch_unused"] for c in as_json} == {2}
    used = next(c["id"] for c in as_json if c["uses"] == 1)
    shown = json.loads(runner.invoke(cli, ["wallet", "show", used, "--json"]).stdout)
    assert shown["uses"] == 1 and len(shown["batch"]) == BATCH and shown["claims"]["given_name"] == "P3"
    assert runner.invoke(cli, ["wallet", "when-used-up"]).stdout.strip() == "reuse"
    assert runner.invoke(cli, ["wallet", "when-used-up", "refuse"]).exit_code == 0
    assert Wallet.open(wallet.path, "pw").when_used_up == "refuse"
    bad = runner.invoke(cli, ["wallet", "when-used-up", "never"])
    assert bad.exit_code == 1 and "bad-setting" in bad.stderr


def test_asking_for_more_than_the_offer_keeps_no_idle_keys_and_records_display_names(world: World,
                                                                                     tmp_path: Path) -> None:
    offer = world.issuer_http.post("/v1/admin/offers", json={"subject": "p4", "vcts": [VCT], "batch": 2},
                                   headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).json()
    wallet = world.wallet(tmp_path / "more.json")
    ids = receive(wallet, offer["offer_uri"], http=world.route(), ledger=world.light_client(),
                  now=int(time.time()), tx_code=offer["tx_code"], batch=5, allow_http=True)
    assert len(ids) == 2 and len(wallet.key_ids()) == 2  # the three proofs left unanswered left no key
    assert wallet.display_names("en") == {VCT: "PID"} and wallet.display_names("zh-CN") == {VCT: "PID"}
