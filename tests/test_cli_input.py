"""CLI input that used to do harm or fail by luck: `imi node init` names and addresses (a name
is a file name, never a path), an init that fails leaves nothing behind, `imi devnet down` on
nothing is an error, and every credential id the wallet prints can be passed back."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli._consortium
import identity.wallet
from cli.main import app

runner = CliRunner()
NOW = 1_767_225_600


def imi(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _init(node_dir: Path, *extra: str, name: str = "police") -> tuple[int, str, str]:
    return imi("node", "init", "--dir", str(node_dir), "--name", name, "--listen", "a.example.org:7000",
               "--api", "127.0.0.1:8080", *extra)


# --- imi node init --------------------------------------------------------------------------------------
def test_node_init_writes_a_complete_owner_only_directory(tmp_path: Path) -> None:
    code, out, err = _init(tmp_path / "deep" / "node", "--json")
    assert code == 0, err
    entry = json.loads(out)
    assert (entry["name"], entry["address"], entry["power"]) == ("police", "a.example.org:7000", 1)
    node = tmp_path / "deep" / "node"
    assert _tree(node) == ["certs", "certs/police.pem", "consensus_key.jwk", "node.json", "tls_cert.pem",
                           "tls_key.pem"]
    for private in ("consensus_key.jwk", "tls_key.pem"):
        assert stat.S_IMODE((node / private).stat().st_mode) == 0o600
    assert [p.name for p in (tmp_path / "deep").iterdir()] == ["node"]  # no staging directory left


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".hidden", "", "x" * 65, "név", "a b"])
def test_node_init_refuses_a_name_that_is_not_a_safe_word(tmp_path: Path, name: str) -> None:
    code, out, err = _init(tmp_path / "node", name=name)
    assert (code, out) == (1, "") and err.count("\n") == 1 and "validator name" in err
    assert _tree(tmp_path) == []  # nothing written, inside or outside the node directory


@pytest.mark.parametrize(("option", "value"), [
    ("--listen", "7000"), ("--listen", "host:"), ("--listen", "host:0"), ("--listen", "host:65536"),
    ("--listen", "ho/st:7000"), ("--api", "localhost"), ("--api", ":8080"), ("--api", "127.0.0.1:http"),
])
def test_node_init_refuses_an_address_that_is_not_host_port(tmp_path: Path, option: str, value: str) -> None:
    args = {"--listen": "a.example.org:7000", "--api": "127.0.0.1:8080", option: value}
    code, out, err = imi("node", "init", "--dir", str(tmp_path / "node"), "--name", "police",
                         *(x for pair in args.items() for x in pair))
    assert (code, out) == (1, "") and err.count("\n") == 1 and option in err
    assert _tree(tmp_path) == []


def test_node_init_accepts_an_ipv6_listen_address(tmp_path: Path) -> None:
    code, _, err = imi("node", "init", "--dir", str(tmp_path / "node"), "--name", "v6", "--listen", "[::1]:7000")
    assert code == 0, err


def test_a_failed_node_init_leaves_no_half_made_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = cli._consortium.write_atomic
    written: list[str] = []

    def fail_on_config(path: Path, data: bytes | str, **kwargs: object) -> None:
        if path.name == "node.json":  # the keys are already written: a crash late in the init
            raise OSError(28, "No space left on device")
        written.append(path.name)
        real(path, data, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cli._consortium, "write_atomic", fail_on_config)
    code, out, err = _init(tmp_path / "new" / "node")
    assert (code, out) == (1, "") and "No space left" in err and err.count("\n") == 1
    assert "consensus_key.jwk" in written
    assert _tree(tmp_path) == []  # neither the node directory nor the parent it created


def test_node_init_refuses_a_directory_that_holds_something(tmp_path: Path) -> None:
    (tmp_path / "node").mkdir()
    (tmp_path / "node" / "notes.txt").write_text("mine")
    code, _, err = _init(tmp_path / "node")
    assert code == 1 and "not an empty directory" in err
    assert _tree(tmp_path) == ["node", "node/notes.txt"]
    (tmp_path / "empty").mkdir()  # an empty directory (a mount point) is fine
    assert _init(tmp_path / "empty")[0] == 0


# --- imi devnet down ------------------------------------------------------------------------------------
def test_devnet_down_on_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    code, out, err = imi("devnet", "down", "--dir", str(tmp_path / "nothing"))
    assert (code, out) == (1, "") and err.count("\n") == 1 and "no devnet" in err
    code, out, _ = imi("devnet", "down", "--dir", str(tmp_path / "nothing"), "--json")
    assert code == 1 and json.loads(out)["reason"] == "not-found"


# --- ids on the command line ----------------------------------------------------------------------------
def test_credential_ids_never_start_with_a_dash() -> None:
    # base64url ids started with '-' once in 64; these 2,000 fixed inputs hold ~31 such cases
    ids = [identity.wallet._credential_id(f"header.payload{i}.signature~") for i in range(2000)]
    assert [i for i in ids if i.startswith("-")] == []
    assert len(set(ids)) == len(ids)


def _wallet_with_a_credential(tmp_path: Path, env: dict[str, str]) -> str:
    code, out, err = imi("wallet", "init", "--insecure-fast-kdf", "--json", env=env)
    assert code == 0, err
    holder = json.loads(out)
    imi("key", "new", "--alg", "EdDSA", "--out", str(tmp_path / "issuer.jwk"))
    (tmp_path / "holder.jwk").write_text(json.dumps(json.loads(
        imi("wallet", "key-public", "--json", env=env)[1])["public_jwk"]))
    (tmp_path / "claims.json").write_text(json.dumps({"given_name": "Ada"}))
    code, out, err = imi("sdjwt", "issue", "--issuer-key", str(tmp_path / "issuer.jwk"), "--holder-jwk",
                         str(tmp_path / "holder.jwk"), "--claims", str(tmp_path / "claims.json"),
                         "--vct", "urn:imi:pid:1", "--now", str(NOW), "--json")
    assert code == 0, err
    (tmp_path / "cred.txt").write_text(json.loads(out)["credential"])
    assert holder["kid"]
    return str(tmp_path / "cred.txt")


def test_an_id_starting_with_a_dash_passes_after_double_dash(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"IMI_WALLET": str(tmp_path / "w.imi"), "IMI_WALLET_PASSWORD": "pw"}
    credential = _wallet_with_a_credential(tmp_path, env)
    monkeypatch.setattr(identity.wallet, "_credential_id", lambda _compact: "-Xq3credential")  # as base64url gave
    code, out, err = imi("wallet", "add", "--credential", credential, "--now", str(NOW), env=env)
    assert (code, out.strip()) == (0, "-Xq3credential"), err
    code, out, err = imi("wallet", "show", "--json", "--", "-Xq3credential", env=env)
    assert code == 0, err
    assert json.loads(out)["claims"]["given_name"] == "Ada"
    code, out, err = imi("wallet", "answer", "--request", os.devnull, "--credential", "-Xq3credential", env=env)
    assert "No such option" not in err  # an option's value may start with '-' (the request is what fails)


def _key_whose_id_starts_with_a_dash() -> object:
    """An Ed25519 key whose RFC 7638 thumbprint (its id) starts with '-' (one in 64 does)."""
    from ledger.keys import SigningKey

    for _ in range(10_000):  # (63/64)**10_000 < 1e-68: never exhausted
        key = SigningKey.generate("EdDSA")
        if key.key_id.startswith("-"):
            return key
    raise AssertionError("no key id starting with '-' in 10,000 keys")


def test_a_key_id_starting_with_a_dash_passes_after_double_dash(tmp_path: Path) -> None:
    from identity.wallet import KdfParams, Wallet

    key = _key_whose_id_starts_with_a_dash()
    wallet = Wallet.create(tmp_path / "w.imi", "pw", kdf=KdfParams.fastest())
    kid = wallet.import_key(key)  # type: ignore[arg-type]
    wallet.save()
    env = {"IMI_WALLET": str(tmp_path / "w.imi"), "IMI_WALLET_PASSWORD": "pw"}
    code, out, err = imi("wallet", "key-public", "--json", "--", kid, env=env)
    assert code == 0, err
    assert json.loads(out)["kid"] == kid
    # a validator's key id, as `imi gov validator-remove` takes it: parsed as the argument (the
    # command then fails for want of a node: exit 1, not a usage error)
    (tmp_path / "trustee.jwk").write_text(json.dumps(key.to_private_jwk()))  # type: ignore[attr-defined]
    code, _, err = imi("gov", "validator-remove", "--trustee-key", str(tmp_path / "trustee.jwk"),
                       "--node", "http://127.0.0.1:9", "--", kid)
    assert code == 1 and "No such option" not in err


def test_a_failed_move_into_an_empty_directory_leaves_it_empty(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mount").mkdir()  # as a mount point would be: kept, filled entry by entry
    real_rename = Path.rename

    def rename(self: Path, target: Path) -> Path:
        if Path(target).name == "tls_cert.pem":  # a few entries moved already
            raise OSError(5, "Input/output error")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    code, _, err = _init(tmp_path / "mount")
    assert code == 1 and "Input/output error" in err
    assert _tree(tmp_path) == ["mount"]
