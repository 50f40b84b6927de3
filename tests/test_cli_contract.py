"""The `imi` CLI contract: --help and --json on every command, exit codes 0/1/2, failures
as one line on stderr or ``{"ok": false, "reason": ...}`` with --json, never a traceback."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from cli._common import JsonLogFormatter
from cli.main import app
from cli.verify import report

NOW = 1_767_225_600
REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _walk(sub, (*path, name))


TREE = list(_walk(typer.main.get_command(app), ()))
LEAVES = [(path, cmd) for path, cmd in TREE if not getattr(cmd, "commands", None)]
GROUPS = [path for path, cmd in TREE if getattr(cmd, "commands", None)]


def imi(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def ok_json(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    code, out, err = imi(*args, "--json", env=env)
    assert code == 0, (args, out, err)
    answer: dict[str, Any] = json.loads(out)
    assert answer["ok"] is True
    return answer


def refused_json(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    code, out, err = imi(*args, "--json", env=env)
    assert code == 1, (args, out, err)
    answer: dict[str, Any] = json.loads(out)
    assert answer["ok"] is False and answer["reason"], answer
    return answer


# --- the whole tree -----------------------------------------------------------------------------------
def test_tree_walk_finds_every_group_and_many_commands() -> None:
    assert {p[0] for p in GROUPS if p} >= {"key", "sdjwt", "node", "devnet", "wallet", "issue", "issuer", "ledger"}
    assert len(LEAVES) > 40


@pytest.mark.parametrize("path", [p for p, _ in LEAVES], ids=" ".join)
def test_every_command_has_help_text_and_a_documented_json_option(path: tuple[str, ...]) -> None:
    command = dict(LEAVES)[path]
    assert (command.help or "").strip(), f"imi {' '.join(path)} has no help text"
    json_options = [p for p in command.params if "--json" in getattr(p, "opts", [])]
    assert len(json_options) == 1, f"imi {' '.join(path)} has no --json"
    assert (json_options[0].help or "").strip(), f"imi {' '.join(path)} --json has no help text"


@pytest.mark.parametrize("path", [p for p, _ in TREE], ids=lambda p: " ".join(p) or "imi")
def test_help_exits_0_for_every_group_and_command(path: tuple[str, ...]) -> None:
    code, out, err = imi(*path, "--help")
    assert code == 0, err
    assert "Usage" in out and "--help" in out


def test_usage_error_exits_2() -> None:
    code, out, _ = imi("key", "new", "--json")  # --alg and --out missing
    assert code == 2 and out == ""


# --- keys and SD-JWT ----------------------------------------------------------------------------------
def test_key_new_and_public_json_name_the_same_key(tmp_path: Path) -> None:
    made = ok_json("key", "new", "--alg", "ES256", "--out", str(tmp_path / "k.jwk"))
    assert made["path"] == str(tmp_path / "k.jwk") and made["alg"] == "ES256"
    assert "d" not in made["public_jwk"] and "d" in json.loads((tmp_path / "k.jwk").read_text())
    shown = ok_json("key", "public", str(tmp_path / "k.jwk"))
    assert (shown["kid"], shown["public_jwk"]) == (made["kid"], made["public_jwk"])
    code, plain, _ = imi("key", "public", str(tmp_path / "k.jwk"))  # the default stays the bare JWK
    assert code == 0 and json.loads(plain) == made["public_jwk"]


def test_key_new_json_refuses_to_overwrite(tmp_path: Path) -> None:
    ok_json("key", "new", "--alg", "EdDSA", "--out", str(tmp_path / "k.jwk"))
    assert refused_json("key", "new", "--alg", "EdDSA", "--out", str(tmp_path / "k.jwk"))["reason"] == "file-exists"


def test_a_shared_file_reader_fails_as_json_under_json(tmp_path: Path) -> None:
    answer = refused_json("key", "public", str(tmp_path / "missing.jwk"))
    assert answer["reason"] == "bad-file" and "missing.jwk" in answer["detail"]
    code, out, err = imi("key", "public", str(tmp_path / "missing.jwk"))
    assert code == 1 and out == "" and err.startswith("error [bad-file]: ")


def test_sdjwt_issue_and_present_json(tmp_path: Path) -> None:
    ok_json("key", "new", "--alg", "EdDSA", "--out", str(tmp_path / "issuer.jwk"))
    holder = ok_json("key", "new", "--alg", "ES256", "--out", str(tmp_path / "holder.jwk"))
    (tmp_path / "holder.pub.jwk").write_text(json.dumps(holder["public_jwk"]))
    (tmp_path / "claims.json").write_text(json.dumps({"given_name": "Ada", "address": {"locality": "London"}}))
    issued = ok_json("sdjwt", "issue", "--issuer-key", str(tmp_path / "issuer.jwk"), "--holder-jwk",
                     str(tmp_path / "holder.pub.jwk"), "--claims", str(tmp_path / "claims.json"),
                     "--iss", "did:imi:ca", "--exp", "60", "--now", str(NOW))
    assert issued["credential"].endswith("~")
    assert issued["disclosures"] == len(issued["credential"].split("~")) - 2 >= 2
    assert (issued["iss"], issued["iat"], issued["exp"]) == ("did:imi:ca", NOW, NOW + 60)
    assert issued["holder_kid"] == holder["kid"]
    (tmp_path / "cred.txt").write_text(issued["credential"])
    shown = ok_json("sdjwt", "present", "--credential", str(tmp_path / "cred.txt"), "--disclose",
                    "address.locality", "--holder-key", str(tmp_path / "holder.jwk"), "--nonce", "n1",
                    "--aud", "rp", "--now", str(NOW))
    assert shown["disclosed"] == ["address.locality"] and shown["nonce"] == "n1"
    (tmp_path / "pres.txt").write_text(shown["presentation"])
    issuer_pub = ok_json("key", "public", str(tmp_path / "issuer.jwk"))["public_jwk"]
    (tmp_path / "issuer.pub.jwk").write_text(json.dumps(issuer_pub))
    code, out, err = imi("sdjwt", "verify", "--presentation", str(tmp_path / "pres.txt"), "--issuer-jwk",
                         str(tmp_path / "issuer.pub.jwk"), "--nonce", "n1", "--aud", "rp", "--json",
                         "--now", str(NOW))
    assert code == 0, err
    disclosed = json.loads(out)
    assert disclosed["address"] == {"locality": "London"} and "given_name" not in disclosed


def test_sdjwt_issue_json_with_a_bad_key_is_a_json_refusal(tmp_path: Path) -> None:
    (tmp_path / "bad.jwk").write_text("{}")
    (tmp_path / "claims.json").write_text("{}")
    answer = refused_json("sdjwt", "issue", "--issuer-key", str(tmp_path / "bad.jwk"), "--holder-jwk",
                          str(tmp_path / "bad.jwk"), "--claims", str(tmp_path / "claims.json"))
    assert answer["reason"] == "bad-key"


# --- wallet -----------------------------------------------------------------------------------------------
def test_wallet_json_flow(tmp_path: Path) -> None:
    env = {"IMI_WALLET": str(tmp_path / "w.json"), "IMI_WALLET_PASSWORD": "pw"}
    made = ok_json("wallet", "init", "--insecure-fast-kdf", env=env)
    assert made["wallet"] == str(tmp_path / "w.json") and made["alg"] == "ES256"
    public = ok_json("wallet", "key-public", env=env)
    assert public["kid"] == made["kid"] and "d" not in public["public_jwk"]
    second = ok_json("wallet", "key-new", "--alg", "EdDSA", env=env)
    assert second["kid"] != made["kid"] and second["alg"] == "EdDSA"
    ok_json("key", "new", "--alg", "EdDSA", "--out", str(tmp_path / "issuer.jwk"))
    (tmp_path / "holder.pub.jwk").write_text(json.dumps(public["public_jwk"]))
    (tmp_path / "claims.json").write_text(json.dumps({"given_name": "Ada", "address": {"locality": "London"}}))
    issued = ok_json("sdjwt", "issue", "--issuer-key", str(tmp_path / "issuer.jwk"), "--holder-jwk",
                     str(tmp_path / "holder.pub.jwk"), "--claims", str(tmp_path / "claims.json"),
                     "--vct", "urn:imi:pid:1", "--now", str(NOW))
    (tmp_path / "cred.txt").write_text(issued["credential"])
    added = ok_json("wallet", "add", "--credential", str(tmp_path / "cred.txt"), "--now", str(NOW), env=env)
    assert added["vct"] == "urn:imi:pid:1" and added["holder_key"] == made["kid"]
    assert set(added["claims"]) >= {"given_name", "address"}
    shown = ok_json("wallet", "show", added["id"], env=env)
    assert shown["claims"]["given_name"] == "Ada"
    (tmp_path / "req.json").write_text(json.dumps({"nonce": "n", "aud": "a", "claims": ["address.locality"]}))
    for _ in range(2):  # the same request answered twice: one presentation each time
        answer = ok_json("wallet", "answer", "--request", str(tmp_path / "req.json"), "--now", str(NOW), env=env)
        assert answer["credential"] == added["id"] and answer["disclosed"] == ["address.locality"]
        assert answer["presentation"].count("~") >= 2 and (answer["aud"], answer["nonce"]) == ("a", "n")
    assert refused_json("wallet", "show", "no-such-id", env=env)["reason"]
    assert refused_json("wallet", "show", added["id"], env={**env, "IMI_WALLET_PASSWORD": "wrong"})["reason"]


# --- devnet, node, issuer service (no process started) -----------------------------------------------------------
def test_devnet_kill_of_an_unknown_validator_is_refused(tmp_path: Path) -> None:
    assert refused_json("devnet", "kill", "v9", "--dir", str(tmp_path))["reason"] == "not-found"
    code, out, err = imi("devnet", "kill", "v9", "--dir", str(tmp_path))
    assert code == 1 and out == "" and "no validator v9" in err
    assert refused_json("devnet", "restart", "v9", "--dir", str(tmp_path))["reason"] == "not-found"


def test_devnet_down_json_on_a_stopped_devnet(tmp_path: Path) -> None:
    (tmp_path / "genesis.json").write_text("{}")  # a devnet directory (down reads only its pid and demo files)
    assert ok_json("devnet", "down", "--dir", str(tmp_path)) == {"ok": True, "dir": str(tmp_path), "stopped": [],
                                                                    "services": []}
    code, out, _ = imi("devnet", "down", "--dir", str(tmp_path))
    assert (code, out) == (0, "devnet stopped\n")


def test_node_start_json_without_a_node_directory_is_a_json_refusal(tmp_path: Path) -> None:
    assert refused_json("node", "start", "--dir", str(tmp_path / "none"))["reason"] == "bad-config"


def test_issue_init_json(tmp_path: Path) -> None:
    ok_json("key", "new", "--alg", "EdDSA", "--out", str(tmp_path / "k.jwk"))
    (tmp_path / "register.json").write_text("{}")
    did = "did:imi:FHdyPpwo2T4moncfqJSuxGBHgSnorCZQEidpQ6sV2gPL"
    made = ok_json("issue", "init", "--issuer-dir", str(tmp_path / "issuer"), "--did", did, "--key",
                   str(tmp_path / "k.jwk"), "--list-id", "l1", "--register", str(tmp_path / "register.json"))
    assert made["config"] == str(tmp_path / "issuer" / "issuer.json")
    assert json.loads((tmp_path / "issuer" / "issuer.json").read_text())["did"] == did == made["did"]


def test_json_log_lines_are_one_object_each() -> None:
    record = logging.LogRecord("imi.service", logging.WARNING, __file__, 1, "v0: at height %d", (7,), None)
    line = JsonLogFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert (entry["level"], entry["logger"], entry["message"]) == ("WARNING", "imi.service", "v0: at height 7")
    assert entry["ts"].endswith("Z")


def test_entry_point_failure_with_json_has_no_traceback(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "cli.main", "key", "public", str(tmp_path / "none.jwk"), "--json"],
                          check=False, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert json.loads(done.stdout)["reason"] == "bad-file"


def test_verify_json_verdict_carries_ok(capsys: pytest.CaptureFixture[str]) -> None:
    from identity.verifier import VerificationResult

    with pytest.raises(typer.Exit) as exited:
        report(VerificationResult(False, None, "revoked", "status list says revoked"), as_json=True, now=NOW)
    assert exited.value.exit_code == 1
    verdict = json.loads(capsys.readouterr().out)
    assert (verdict["ok"], verdict["valid"], verdict["reason"]) == (False, False, "revoked")
    report(VerificationResult(True, {"a": 1}, "valid"), as_json=True, now=NOW)
    verdict = json.loads(capsys.readouterr().out)
    assert (verdict["ok"], verdict["disclosed"]) == (True, {"a": 1})


def test_an_unanticipated_error_is_one_line_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "genesis.json").write_text("{}")
    (tmp_path / "validators" / "v0").mkdir(parents=True)  # devnet status has no answer for a node.json
    (tmp_path / "validators" / "v0" / "node.json").write_text('{"name": "v0"}')  # without its api address
    for extra, stream in (([], "stderr"), (["--json"], "stdout")):
        done = subprocess.run([sys.executable, "-m", "cli.main", "devnet", "status", "--dir", str(tmp_path), *extra],
                              check=False, capture_output=True, text=True, cwd=REPO, timeout=60,
                              env={k: v for k, v in os.environ.items() if k != "IMI_TRACEBACK"})
        assert done.returncode == 1 and "Traceback" not in done.stderr + done.stdout
        assert "internal-error" in getattr(done, stream)
