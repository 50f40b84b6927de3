"""The genesis ceremony of docs/deploy.md with the real commands: each agency runs
`imi node init`, trustees make keys offline, `imi genesis new --entry … --trustee-jwk …`
assembles the genesis from public keys only, and `imi ledger genesis` shows the hash
everyone compares out of band."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from cli.main import app as cli_app
from ledger.genesis import Genesis
from node import tls

AGENCIES = ("police", "civil", "tax", "health")


def _imi(*args: str) -> Result:
    result = CliRunner().invoke(cli_app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture(scope="module")
def ceremony(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ceremony")
    for i, name in enumerate(AGENCIES):
        done = _imi("node", "init", "--dir", str(root / name), "--name", name,
                    "--listen", f"{name}.imi.example:{7000 + i}", "--api", "0.0.0.0:8080", "--json")
        assert done.exit_code == 0, done.output
        (root / f"{name}.entry.json").write_text(done.stdout)
    for i in range(3):
        assert _imi("key", "new", "--alg", "EdDSA", "--out", str(root / f"trustee{i}.jwk")).exit_code == 0
        public = _imi("key", "public", str(root / f"trustee{i}.jwk"))
        assert public.exit_code == 0
        (root / f"trustee{i}.pub.jwk").write_text(public.stdout)
    return root


def _assemble(root: Path, out: str, *extra: str, trustees: tuple[str, ...] = ("0", "1", "2")) -> Result:
    args = ["genesis", "new", "--dir", str(root / out), "--chain-id", "imi-consortium", "--threshold", "2"]
    for name in AGENCIES:
        args += ["--entry", str(root / f"{name}.entry.json")]
    for i in trustees:
        args += ["--trustee-jwk", str(root / f"trustee{i}.pub.jwk")]
    return _imi(*args, *extra, "--json")


def test_the_genesis_is_assembled_from_public_entries_only(ceremony: Path) -> None:
    done = _assemble(ceremony, "genesis")
    assert done.exit_code == 0, done.output
    out = ceremony / "genesis"
    assert sorted(p.name for p in out.iterdir()) == ["genesis.json"]  # no private key written
    genesis = Genesis.loads((out / "genesis.json").read_text())
    assert json.loads(done.stdout)["genesis_hash"] == genesis.hash.hex()
    assert {v.name for v in genesis.validators.validators} == set(AGENCIES)
    for v in genesis.validators.validators:
        node_dir = ceremony / v.name
        # the pinned SPKI is the one of the TLS certificate that agency keeps
        assert v.tls_spki_sha256 == tls.spki_sha256_of_cert((node_dir / "tls_cert.pem").read_bytes())
        assert v.public_key.to_jwk() == json.loads((ceremony / f"{v.name}.entry.json").read_text())["jwk"]
    shown = _imi("ledger", "genesis", "--genesis", str(out / "genesis.json"), "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["hash"] == genesis.hash.hex()
    assert json.loads(shown.stdout)["trustee_threshold"] == 2


def test_the_ceremony_refuses_private_trustee_keys_and_half_inputs(ceremony: Path) -> None:
    (ceremony / "trustee9.pub.jwk").write_text((ceremony / "trustee0.jwk").read_text())  # a private JWK
    leaked = _assemble(ceremony, "leaked", trustees=("0", "1", "9"))
    assert leaked.exit_code == 1 and "private" in leaked.stdout
    half = _imi("genesis", "new", "--dir", str(ceremony / "half"), "--entry", str(ceremony / "tax.entry.json"))
    assert half.exit_code == 1 and "go together" in half.stderr
    too_many = _assemble(ceremony, "k", "--threshold", "4")
    assert too_many.exit_code == 1 and "bad-threshold" in too_many.stdout


def test_a_tampered_genesis_is_refused_by_imi_ledger_genesis(ceremony: Path, tmp_path: Path) -> None:
    assert _assemble(ceremony, "tamper").exit_code == 0
    obj = json.loads((ceremony / "tamper" / "genesis.json").read_text())
    obj["trustee_threshold"] = 1  # content changed, hash kept
    (tmp_path / "genesis.json").write_text(json.dumps(obj))
    shown = _imi("ledger", "genesis", "--genesis", str(tmp_path / "genesis.json"))
    assert shown.exit_code == 1 and "bad-genesis" in shown.stderr
