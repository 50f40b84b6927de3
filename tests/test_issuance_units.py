"""Pure parts of issuance: proof parsing, the register, the issuer directory, `imi issue init`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from identity import jose
from identity.issuance import PROOF_TYP, IssuanceRequestError, make_proof, parse_proof
from identity.issuer_agent import IssuerConfig, Register
from ledger.keys import SigningKey

AUD = "did:imi:9xZ"
NOW = 1_800_000_000


def refused(token: object) -> str:
    with pytest.raises(IssuanceRequestError) as exc:
        parse_proof(token, aud=AUD, now=NOW)
    return exc.value.reason


def test_a_proof_by_key_and_by_did_parse() -> None:
    key = SigningKey.generate("ES256")
    by_key = parse_proof(make_proof(key, aud=AUD, nonce="n", iat=NOW), aud=AUD, now=NOW)
    assert by_key.jwk == key.public_key and by_key.did is None
    by_did = parse_proof(make_proof(key, aud=AUD, nonce="n", iat=NOW, did="did:imi:abc"), aud=AUD, now=NOW)
    assert by_did.did == "did:imi:abc" and by_did.key_id == key.key_id and by_did.jwk is None
    by_did.verify_with(jose.PreparedKey(key.public_key))
    with pytest.raises(IssuanceRequestError) as exc:
        by_did.verify_with(jose.PreparedKey(SigningKey.generate("ES256").public_key))
    assert exc.value.reason == "proof-bad-signature"


@pytest.mark.parametrize(("header", "expected"), [
    ({}, "bad-proof-key"),  # neither jwk nor kid
    ({"kid": "did:imi:abc#k", "jwk": "both"}, "bad-proof-key"),
    ({"kid": "did:imi:abc"}, "bad-proof-key"),  # a DID without the key fragment
    ({"kid": "did:web:example.com#k"}, "bad-proof-key"),
    ({"jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}}, "bad-proof-key"),
])
def test_proof_key_defects(header: dict[str, Any], expected: str) -> None:
    key = SigningKey.generate()
    token = jose.sign({"typ": PROOF_TYP, **header}, {"aud": AUD, "nonce": "n", "iat": NOW}, key)
    assert refused(token) == expected


def test_a_private_jwk_in_a_proof_is_refused() -> None:
    key = SigningKey.generate()
    token = jose.sign({"typ": PROOF_TYP, "jwk": key.to_private_jwk()}, {"aud": AUD, "nonce": "n", "iat": NOW}, key)
    assert refused(token) == "bad-proof-key"


@pytest.mark.parametrize("payload", [{"aud": AUD, "iat": NOW}, {"aud": AUD, "nonce": "n"},
                                     {"aud": AUD, "nonce": "n", "iat": True}, {"aud": AUD, "nonce": 3, "iat": NOW}])
def test_proof_payload_defects(payload: dict[str, Any]) -> None:
    key = SigningKey.generate()
    assert refused(jose.sign({"typ": PROOF_TYP, "jwk": dict(key.public_key.to_jwk())}, payload, key)) == "bad-proof"


def test_non_jws_proofs_are_bad_proofs() -> None:
    assert refused(42) == "bad-proof"
    assert refused("a.b") == "bad-proof"
    assert refused("x" * 10_000) == "bad-proof"


def test_register_json_shapes() -> None:
    reg = Register.from_json({"s1": {"claims": {"a": 1}, "by_vct": {"v2": {"b": 2}}}})
    entry = reg.get("s1")
    assert entry is not None and entry.claims_for("v1") == {"a": 1} and entry.claims_for("v2") == {"b": 2}
    assert "s1" in reg and len(reg) == 1 and reg.get("s2") is None
    reg.put("s2", {"c": 3})
    assert reg.get("s2") is not None
    for bad in ([], {"s": {}}, {"s": {"claims": 1}}, {"s": {"claims": {}, "extra": 1}},
                {"s": {"claims": {}, "holder_keys": ["k"]}}, {"s": {"claims": {}, "by_vct": {"v": 1}}}):
        with pytest.raises(ValueError):
            Register.from_json(bad)  # type: ignore[arg-type]


def test_issuer_directory_errors_are_readable(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        IssuerConfig.load(tmp_path)
    (tmp_path / "issuer.json").write_text(json.dumps({"did": "did:imi:abc"}))
    with pytest.raises(ValueError, match="must hold"):
        IssuerConfig.load(tmp_path)


def test_issue_init_writes_a_loadable_directory(tmp_path: Path) -> None:
    (tmp_path / "k.jwk").write_text(json.dumps(SigningKey.generate().to_private_jwk()))
    (tmp_path / "register.json").write_text(json.dumps({"s1": {"claims": {"a": 1}}}))
    runner = CliRunner()
    args = ["issue", "init", "--issuer-dir", str(tmp_path / "ag"), "--did", "did:imi:abc", "--key",
            str(tmp_path / "k.jwk"), "--list-id", "L1", "--register", str(tmp_path / "register.json")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    config = IssuerConfig.load(tmp_path / "ag")
    assert config.did == "did:imi:abc" and config.list_id == "L1" and config.key_path == (tmp_path / "k.jwk")
    bad = runner.invoke(app, [*args[:5], "did:web:x", *args[6:]])
    assert bad.exit_code == 2 and "not a did:imi" in bad.stderr
    missing = runner.invoke(app, [*args[:7], str(tmp_path / "nope.jwk"), *args[8:]])
    assert missing.exit_code == 2 and "not a file" in missing.stderr


def test_the_issuer_store_is_private_from_the_moment_it_exists(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The SQLite file exists, mode 0600, before SQLite opens it (no window between create and
    chmod), and its -wal/-shm side files are 0600 too — under a umask that would allow anything."""
    import os
    import sqlite3
    import stat

    from identity import issuer_store
    from identity.issuer_store import STORE_FILE_MODE, IssuerStore

    modes_at_open: list[int] = []
    real_connect = sqlite3.connect

    def connect(database: str, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        modes_at_open.append(stat.S_IMODE(os.stat(database).st_mode))  # FileNotFoundError if SQLite creates it
        return real_connect(database, *args, **kwargs)

    monkeypatch.setattr(issuer_store.sqlite3, "connect", connect)
    (tmp_path / "old.sqlite").write_bytes(b"")
    (tmp_path / "old.sqlite").chmod(0o644)
    previous = os.umask(0)
    try:
        store = IssuerStore(tmp_path / "issuer.sqlite")
        store.enrol("s1", "did", "did:imi:x", via="staff", at=1)
        store.add({"list_id": "L", "idx": 1, "vct": "v", "subject": "s1", "holder_kind": "did",
                   "holder": "did:imi:x", "iat": 1, "anchor": "00", "salt": "00"})
        IssuerStore(tmp_path / "old.sqlite").close()
    finally:
        os.umask(previous)
    assert modes_at_open == [STORE_FILE_MODE, STORE_FILE_MODE] == [0o600, 0o600]
    files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir() if p.name.startswith("issuer")}
    assert files == {"issuer.sqlite": 0o600, "issuer.sqlite-wal": 0o600, "issuer.sqlite-shm": 0o600}
    assert stat.S_IMODE((tmp_path / "old.sqlite").stat().st_mode) == 0o600
    store.close()
