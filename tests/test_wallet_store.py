"""The encrypted wallet: storage at rest, minimal answers, disclosure history, CLI."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from identity.errors import WalletError
from identity.request import PresentationRequest
from identity.sdjwt import HolderBinding, issue
from identity.verifier import CnfHolderKeys, FixedIssuerKey, NoStatus, verify_presentation
from identity.wallet import KdfParams, Wallet
from ledger.keys import SigningKey

NOW = 1_767_225_600
FAST = KdfParams.fastest()
ISSUER = SigningKey.generate("EdDSA")
CLAIMS = {"given_name": "Ada", "birthdate": "1990-12-10", "address": {"locality": "London", "street": "x"}}


def credential_for(wallet: Wallet, key_id: str, vct: str = "urn:imi:pid:1", exp: int = NOW + 3600) -> str:
    return issue(CLAIMS, issuer_key=ISSUER, iss="did:imi:ca", vct=vct,
                 holder=HolderBinding.from_key(wallet.public_key(key_id)), iat=NOW - 10, exp=exp,
                 predicates={"age_equal_or_over": [16, 18, 65]}).serialize()


@pytest.fixture()
def wallet(tmp_path: Path) -> Wallet:
    return Wallet.create(tmp_path / "w.json", "correct horse", kdf=FAST)


def test_round_trip_keeps_keys_and_credentials(wallet: Wallet) -> None:
    key_id = wallet.new_key("ES256")
    cred_id = wallet.add_credential(credential_for(wallet, key_id), now=NOW)
    wallet.save()
    again = Wallet.open(wallet.path, "correct horse")
    assert again.key_ids() == [key_id]
    assert again.show(cred_id)["address"] == CLAIMS["address"]
    assert [s.id for s in again.credentials()] == [cred_id]
    assert set(again.credentials()[0].claims) == {"given_name", "birthdate", "address", "age_equal_or_over"}


def test_file_is_owner_only_and_reveals_nothing(wallet: Wallet) -> None:
    key_id = wallet.new_key("EdDSA")
    credential = credential_for(wallet, key_id)
    wallet.add_credential(credential, now=NOW)
    wallet.save()
    raw = wallet.path.read_bytes()
    assert stat.S_IMODE(wallet.path.stat().st_mode) == 0o600
    secret_d = wallet.signing_key(key_id).to_private_jwk()["d"]
    # The credential's parts (issuer-signed JWT, each disclosure) are base64url like the
    # ciphertext, so look for whole parts: a 3-character prefix such as "eyJ" also turns
    # up in random ciphertext (about one file in a hundred).
    parts = [part for part in credential.split("~") if part]
    assert len(parts) >= 5
    for needle in (secret_d, key_id, "given_name", *parts):
        assert needle.encode() not in raw
    envelope = json.loads(raw)
    assert envelope["kdf"]["alg"] == "argon2id" and envelope["kdf"]["opslimit"] == FAST.opslimit


def test_wrong_password_and_damage_are_refused(wallet: Wallet) -> None:
    with pytest.raises(WalletError) as info:
        Wallet.open(wallet.path, "wrong")
    assert info.value.reason == "wrong-password"
    envelope = json.loads(wallet.path.read_text())
    box = envelope["box"]
    envelope["box"] = box[:-5] + ("A" if box[-5] != "A" else "B") + box[-4:]
    wallet.path.write_text(json.dumps(envelope))
    with pytest.raises(WalletError) as info:
        Wallet.open(wallet.path, "correct horse")
    assert info.value.reason == "wrong-password"


@pytest.mark.parametrize("content", ["", "[]", "{}", '{"format":"imi-wallet","version":1}', "\x00\xff",
                                     ('{"format":"imi-wallet","version":1,"kdf":{"alg":"argon2id","salt":"AA",'
                                      '"opslimit":1,"memlimit":8192},"box":"AA"}'),
                                     ('{"format":"imi-wallet","version":1,"kdf":{"alg":"argon2id","salt":'
                                      '"AAAAAAAAAAAAAAAAAAAAAA","opslimit":99,"memlimit":99999999999},"box":"AA"}')])
def test_malformed_wallet_files_are_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="latin-1")
    with pytest.raises(WalletError) as info:
        Wallet.open(path, "x")
    assert info.value.reason == "bad-wallet"


def test_create_never_replaces_a_file(wallet: Wallet) -> None:
    with pytest.raises(WalletError) as info:
        Wallet.create(wallet.path, "other", kdf=FAST)
    assert info.value.reason == "wallet-exists"


def test_credential_for_a_foreign_key_is_refused(wallet: Wallet) -> None:
    wallet.new_key("ES256")
    foreign = issue(CLAIMS, issuer_key=ISSUER, iss="i", vct="v",
                    holder=HolderBinding.from_key(SigningKey.generate("ES256").public_key), iat=NOW).serialize()
    with pytest.raises(WalletError) as info:
        wallet.add_credential(foreign, now=NOW)
    assert info.value.reason == "no-such-key"


def test_answer_discloses_the_minimum_and_records_it(wallet: Wallet) -> None:
    key_id = wallet.new_key("ES256")
    cred_id = wallet.add_credential(credential_for(wallet, key_id), now=NOW)
    request = PresentationRequest(nonce="n1", aud="https://bar.example", vct=frozenset({"urn:imi:pid:1"}),
                                  predicates=("age_equal_or_over.18",))
    presentation = wallet.answer(request, now=NOW)
    result = verify_presentation(presentation, request, issuer_keys=FixedIssuerKey(ISSUER.public_key),
                                 holder_keys=CnfHolderKeys(), status=NoStatus(), now=NOW)
    assert result.valid, result.detail
    assert set(result.claims) == {"iss", "vct", "iat", "exp", "cnf", "age_equal_or_over"}
    assert result.claims["age_equal_or_over"] == {"18": True}
    wallet.save()
    (record,) = Wallet.open(wallet.path, "correct horse").history()
    assert (record.aud, record.nonce, record.credential, record.disclosed) == (
        "https://bar.example", "n1", cred_id, ("age_equal_or_over.18",))


def test_answer_skips_expired_and_wrong_type_and_fails_when_nothing_fits(wallet: Wallet) -> None:
    key_id = wallet.new_key("EdDSA")
    expired = wallet.add_credential(credential_for(wallet, key_id, exp=NOW - 1), now=NOW)
    other = wallet.add_credential(credential_for(wallet, key_id, vct="urn:imi:other:1"), now=NOW)
    good = wallet.add_credential(credential_for(wallet, key_id), now=NOW)
    request = PresentationRequest(nonce="n", aud="a", vct=frozenset({"urn:imi:pid:1"}), claims=("given_name",))
    assert wallet.candidates(request, now=NOW) == [good]
    assert expired not in wallet.candidates(request, now=NOW) and other != good
    with pytest.raises(WalletError) as info:
        wallet.answer(PresentationRequest(nonce="n", aud="a", claims=("passport",)), now=NOW)
    assert info.value.reason == "no-matching-credential"
    assert wallet.history() == []


def test_wallet_cli_flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.setenv("IMI_WALLET", str(tmp_path / "w.json"))
    monkeypatch.setenv("IMI_WALLET_PASSWORD", "pw")

    def imi(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args))
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        return result.exit_code, result.stdout

    assert imi("wallet", "init", "--insecure-fast-kdf")[0] == 0
    code, jwk = imi("wallet", "key-public")
    assert code == 0
    holder = tmp_path / "h.jwk"
    holder.write_text(jwk)
    (tmp_path / "i.jwk").write_text(json.dumps(ISSUER.to_private_jwk()))
    (tmp_path / "i.pub.jwk").write_text(json.dumps(ISSUER.public_key.to_jwk()))
    (tmp_path / "c.json").write_text(json.dumps(CLAIMS))
    code, cred = imi("sdjwt", "issue", "--issuer-key", str(tmp_path / "i.jwk"), "--holder-jwk", str(holder),
                     "--claims", str(tmp_path / "c.json"), "--now", str(NOW))
    (tmp_path / "cred.txt").write_text(cred)
    code, cred_id = imi("wallet", "add", "--credential", str(tmp_path / "cred.txt"))
    assert code == 0
    code, listing = imi("wallet", "list", "--json")
    assert json.loads(listing)[0]["id"] == cred_id.strip()
    (tmp_path / "req.json").write_text(json.dumps({"nonce": "n", "aud": "a", "claims": ["address.locality"]}))
    code, presentation = imi("wallet", "answer", "--request", str(tmp_path / "req.json"), "--now", str(NOW))
    assert code == 0
    (tmp_path / "p.txt").write_text(presentation)
    code, out = imi("sdjwt", "verify", "--presentation", str(tmp_path / "p.txt"), "--issuer-jwk",
                    str(tmp_path / "i.pub.jwk"), "--nonce", "n", "--aud", "a", "--json", "--now", str(NOW))
    assert code == 0 and json.loads(out)["address"] == {"locality": "London"}
    code, hist = imi("wallet", "history", "--json")
    assert json.loads(hist)[0]["disclosed"] == ["address.locality"]
    monkeypatch.setenv("IMI_WALLET_PASSWORD", "wrong")
    assert imi("wallet", "list")[0] == 1
    (tmp_path / "junk").write_bytes(b"\xff\x00")
    monkeypatch.setenv("IMI_WALLET", str(tmp_path / "junk"))
    assert imi("wallet", "list")[0] == 1
