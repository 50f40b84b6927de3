"""The zero-visit flow end to end through the `imi` CLI, on a DevNode and an issuer service:
a citizen registers a DID, gets a DID-bound credential over HTTP, answers "over 18?" with
that one predicate, and a verifier checks it locally with the light client (`imi verify`)
and through `POST /v1/verify`; then suspend / reinstate / revoke, and key rotation.

Exit codes: 0 ok, 1 invalid (with the reason), 2 usage; never a traceback.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import cli._ledger_client
from cli.main import app
from identity.presentation import HeldCredential, present
from identity.wallet import Wallet
from tests.test_issuance_world import (
    ADMIN_TOKEN,
    CITIZEN_CLAIMS,
    ISSUER_URL,
    NODE_URL,
    VCT,
    World,
    build_world,
)

runner = CliRunner()
REQUEST = {"nonce": "n-8c1f0e", "aud": "https://shop.example", "vct": [VCT],
           "predicates": ["age_equal_or_over.18"]}


@pytest.fixture(scope="module")
def world() -> World:
    return build_world()


@pytest.fixture()
def env(world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setattr(cli._ledger_client, "http_client", world.route)
    monkeypatch.setenv("IMI_NODE", NODE_URL)
    monkeypatch.setenv("IMI_GENESIS", str(world.write_genesis(tmp_path / "genesis.json")))
    monkeypatch.setenv("IMI_WALLET", str(tmp_path / "wallet.json"))
    monkeypatch.setenv("IMI_WALLET_PASSWORD", "correct horse")
    monkeypatch.setenv("IMI_KIT_PASSWORD", "battery staple")
    monkeypatch.setenv("IMI_ISSUER", ISSUER_URL)
    monkeypatch.setenv("IMI_ISSUER_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("IMI_WALLET_ALLOW_HTTP", "1")  # the test issuer is http://issuer.test
    (tmp_path / "request.json").write_text(json.dumps(REQUEST))
    return tmp_path


def imi(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def citizen(world: World, tmp: Path, kit: str = "kit.jwk") -> tuple[str, str]:
    """A wallet with a registered DID and a DID-bound credential; returns (did, credential id)."""
    assert imi("wallet", "init", "--insecure-fast-kdf")[0] == 0
    code, out, err = imi("wallet", "did-create", "--recovery-kit", str(tmp / kit), "--insecure-fast-kdf")
    assert code == 0, err
    did = out.strip()
    world.agent.register.put(did, CITIZEN_CLAIMS)  # the agency already knows this citizen
    code, out, err = imi("issue", "offer", "--subject", did, "--vct", VCT, "--json")
    assert code == 0, err
    made = json.loads(out)
    assert set(made) >= {"offer_uri", "tx_code"} and made["offer_uri"].startswith("openid-credential-offer://")
    code, out, err = imi("wallet", "receive", made["offer_uri"], "--tx-code", made["tx_code"], "--did", did,
                         "--json")
    assert code == 0, err
    received = json.loads(out)
    assert received["issuer"] == world.agency_did and received["credential_issuer"] == ISSUER_URL
    (cred_id,) = received["ids"]
    return did, cred_id


def present_to_file(tmp: Path, name: str = "presentation.txt") -> Path:
    code, out, err = imi("wallet", "answer", "--request", str(tmp / "request.json"))
    assert code == 0, err
    (tmp / name).write_text(out)
    return tmp / name


def verify_local(world: World, tmp: Path, presentation: Path) -> tuple[int, dict[str, Any]]:
    world.node.commit()  # a fresh header: the light client refuses stale state
    code, out, _ = imi("verify", "--presentation", str(presentation), "--request", str(tmp / "request.json"),
                       "--json")
    return code, json.loads(out)


def verify_node(world: World, presentation: Path) -> dict[str, Any]:
    response = world.node_http.post("/v1/verify", json={"presentation": presentation.read_text().strip(),
                                                        "request": REQUEST})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_issue_present_verify_and_status_lifecycle(world: World, env: Path) -> None:
    did, cred_id = citizen(world, env)
    summary = json.loads(imi("wallet", "list", "--json")[1])
    assert summary[0]["id"] == cred_id and summary[0]["holder_key"] == did
    presentation = present_to_file(env)

    # only the predicate travels: "18": true, nothing about the name or the birth date
    text = presentation.read_text()
    assert "Lovelace" not in text and "1990" not in text
    code, verdict = verify_local(world, env, presentation)
    assert code == 0 and verdict["valid"] is True, verdict
    assert verdict["disclosed"]["age_equal_or_over"] == {"18": True}
    assert verdict["disclosed"]["cnf"] == {"kid": did}
    assert not {"given_name", "family_name", "birthdate", "address"} & set(verdict["disclosed"])
    by_node = verify_node(world, presentation)
    assert by_node["valid"] is True and by_node["disclosed"]["age_equal_or_over"] == {"18": True}
    code, out, err = imi("sdjwt", "verify", "--node", NODE_URL, "--presentation", str(presentation),
                         "--nonce", REQUEST["nonce"], "--aud", REQUEST["aud"], "--predicate", "age_equal_or_over.18")
    assert code == 0 and "age_equal_or_over" in out, err

    idx = HeldCredential.parse(Wallet.open(env / "wallet.json", "correct horse")._held(cred_id)[1]["compact"]) \
        .payload["status"]["status_list"]["idx"]
    assert imi("issue", "suspend", "--idx", str(idx))[0] == 0
    code, verdict = verify_local(world, env, presentation)
    assert code == 1 and verdict == {**verdict, "valid": False, "reason": "suspended"}
    assert verify_node(world, presentation)["reason"] == "suspended"
    code, _, err = imi("verify", "--presentation", str(presentation), "--request", str(env / "request.json"))
    assert code == 1 and "[suspended]" in err

    assert imi("issue", "reinstate", "--idx", str(idx))[0] == 0
    code, verdict = verify_local(world, env, presentation)
    assert code == 0 and verdict["valid"] is True, verdict
    assert verify_node(world, presentation)["valid"] is True

    code, out, _ = imi("issue", "revoke", "--idx", str(idx), "--json")
    assert code == 0 and json.loads(out)["action"] == "revoke"
    code, verdict = verify_local(world, env, presentation)
    assert code == 1 and verdict["reason"] == "revoked"
    assert verify_node(world, presentation)["reason"] == "revoked"
    code, _, err = imi("issue", "reinstate", "--idx", str(idx))
    assert code == 1 and "[status-final]" in err  # revocation is final


def test_rotation_keeps_a_did_bound_credential_and_rejects_the_old_key(world: World, env: Path) -> None:
    did, cred_id = citizen(world, env)
    before = Wallet.open(env / "wallet.json", "correct horse")
    old_key = before.signing_key(did)
    credential = before._held(cred_id)[1]["compact"]

    code, _, err = imi("wallet", "did-rotate", did, "--recovery-kit", str(env / "kit.jwk"),
                       "--new-recovery-kit", str(env / "kit2.jwk"), "--insecure-fast-kdf")
    assert code == 0, err
    after = Wallet.open(env / "wallet.json", "correct horse")
    assert after.signing_key(did).key_id != old_key.key_id

    # the credential issued before the rotation verifies with a KB-JWT by the new key
    code, verdict = verify_local(world, env, present_to_file(env))
    assert code == 0 and verdict["valid"] is True, verdict
    # a KB-JWT by the rotated-away key is refused, locally and by the node
    stale = env / "old-key.txt"
    stale.write_text(present(credential, ["age_equal_or_over.18"], holder_key=old_key, nonce=REQUEST["nonce"],
                             aud=REQUEST["aud"], iat=int(time.time())))
    code, verdict = verify_local(world, env, stale)
    assert code == 1 and verdict["reason"] == "kb-bad-signature"
    assert verify_node(world, stale)["reason"] == "kb-bad-signature"

    # the issuer refuses a proof by the old key: it is not the DID's current key
    code, out, err = imi("issue", "offer", "--subject", did, "--vct", VCT, "--json")
    assert code == 0, err
    made = json.loads(out)
    other = str(env / "other-wallet.json")
    assert imi("wallet", "init", "--insecure-fast-kdf", "--wallet", other)[0] == 0
    code, _, err = imi("wallet", "receive", made["offer_uri"], "--tx-code", made["tx_code"], "--wallet", other)
    assert code == 1 and "credential_request_denied" in err  # another wallet's key is not the enrolled DID
    # the citizen's wallet remembers the DID this agency enrolled: it proves with its current key
    made = json.loads(imi("issue", "offer", "--subject", did, "--vct", VCT, "--json")[1])
    code, out, err = imi("wallet", "receive", made["offer_uri"], "--tx-code", made["tx_code"], "--json")
    assert code == 0, err
    made = json.loads(imi("issue", "offer", "--subject", did, "--vct", VCT, "--json")[1])
    from identity.issuance import make_proof
    from identity.oid4vci import check_offer, parse_offer_uri

    pre = check_offer(parse_offer_uri(made["offer_uri"])[0]).code
    token = world.issuer_http.post("/token", data={"grant_type": "urn:ietf:params:oauth:grant-type:pre-authorized_code",
                                                   "pre-authorized_code": pre, "tx_code": made["tx_code"]})
    nonce = world.issuer_http.post("/nonce").json()["c_nonce"]
    proof = make_proof(old_key, aud=ISSUER_URL, nonce=nonce, iat=int(time.time()), did=did)
    answer = world.issuer_http.post("/credential", json={"credential_configuration_id": VCT, "proofs": {"jwt": [proof]}},
                                    headers={"authorization": f"Bearer {token.json()['access_token']}"})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_proof"
    assert "holder-key-not-current" in answer.json()["error_description"]


def test_a_new_phone_rotates_with_the_recovery_kit(world: World, env: Path) -> None:
    did, cred_id = citizen(world, env)
    saved = env / "credential.txt"
    saved.write_text(Wallet.open(env / "wallet.json", "correct horse")._held(cred_id)[1]["compact"])
    (env / "wallet.json").unlink()  # the phone is gone; the recovery kit and a credential copy are not
    assert imi("wallet", "init", "--insecure-fast-kdf")[0] == 0
    code, _, err = imi("wallet", "did-rotate", did, "--recovery-kit", str(env / "kit.jwk"),
                       "--new-recovery-kit", str(env / "kit2.jwk"), "--insecure-fast-kdf", "--json")
    assert code == 0, err
    assert imi("wallet", "add", "--credential", str(saved))[0] == 0
    code, verdict = verify_local(world, env, present_to_file(env))
    assert code == 0 and verdict["valid"] is True, verdict
    # a kit is never overwritten
    code, _, err = imi("wallet", "did-rotate", did, "--recovery-kit", str(env / "kit2.jwk"),
                       "--new-recovery-kit", str(env / "kit2.jwk"))
    assert code == 1 and "file-exists" in err


def test_the_recovery_kit_is_encrypted_under_its_own_password(world: World, env: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The kit holds the key that can rotate (or deactivate) the DID: never in clear."""
    did, _ = citizen(world, env)
    raw = (env / "kit.jwk").read_text()
    assert '"d"' not in raw and '"kty"' not in raw  # no JWK member in clear
    envelope = json.loads(raw)
    assert envelope.get("format") == "imi-wallet" and set(envelope) == {"format", "version", "kdf", "box"}
    from identity import did as didmod
    from identity.wallet import read_recovery_kit

    next_key = read_recovery_kit(env / "kit.jwk", "battery staple")
    code, out, _ = imi("did", "resolve", did, "--json")  # the DID committed to exactly this key
    assert code == 0, out
    commitment = json.loads(out)["didDocumentMetadata"]["nextKeyCommitment"]
    assert commitment == didmod.key_commitment(next_key.public_key.to_jwk()).hex()
    monkeypatch.setenv("IMI_KIT_PASSWORD", "wrong")
    code, _, err = imi("wallet", "did-rotate", did, "--recovery-kit", str(env / "kit.jwk"),
                       "--new-recovery-kit", str(env / "kit2.jwk"), "--insecure-fast-kdf")
    assert code == 1 and "[wrong-password]" in err and not (env / "kit2.jwk").exists()


def test_recovery_by_the_agency_keeps_the_credential(world: World, env: Path) -> None:
    from identity import did as didmod
    from ledger.keys import SigningKey

    did, cred_id = citizen(world, env)
    wallet = Wallet.open(env / "wallet.json", "correct horse")
    old_key = wallet.signing_key(did)
    credential = wallet._held(cred_id)[1]["compact"]
    new_key, new_next = SigningKey.generate(), SigningKey.generate()
    nc = world.node_client()
    nc.submit(nc.build("did.recover", did, {
        "jwk": dict(new_key.public_key.to_jwk()),
        "next_key_commitment": didmod.key_commitment(new_next.public_key.to_jwk()),
        "issuer": world.agency_did}, new_key, world.agency_key))
    wallet.set_did(did, wallet.import_key(new_key))
    wallet.save()
    code, verdict = verify_local(world, env, present_to_file(env))
    assert code == 0 and verdict["valid"] is True, verdict
    stale = env / "old-key.txt"
    stale.write_text(present(credential, ["age_equal_or_over.18"], holder_key=old_key, nonce=REQUEST["nonce"],
                             aud=REQUEST["aud"], iat=int(time.time())))
    assert verify_local(world, env, stale)[1]["reason"] == "kb-bad-signature"


def test_verify_usage_and_bad_input_exit_codes(world: World, env: Path) -> None:
    (env / "junk.txt").write_text("not-a-presentation")
    code, verdict = verify_local(world, env, env / "junk.txt")
    assert code == 1 and verdict["reason"] == "malformed-compact"
    (env / "bad-request.json").write_text('{"nonce": 3}')
    code, _, err = imi("verify", "--presentation", str(env / "junk.txt"), "--request", str(env / "bad-request.json"))
    assert code == 1 and "bad-request" in err
    assert imi("verify", "--presentation", str(env / "junk.txt"))[0] == 2
    code, _, err = imi("sdjwt", "verify", "--presentation", str(env / "junk.txt"), "--nonce", "n", "--aud", "a")
    assert code == 2
    code, _, err = imi("issue", "revoke", "--idx", "1", "--issuer", "http://nowhere.test")
    assert code == 1 and "issuer-unavailable" in err
