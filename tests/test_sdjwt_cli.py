"""The `imi key` and `imi sdjwt` commands: exit codes, outputs, and bad files."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

NOW = 1_767_225_600
runner = CliRunner()


def imi(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture()
def flow(tmp_path: Path) -> Path:
    """Issuer EdDSA, holder ES256, a credential and a presentation in tmp_path."""
    assert imi("key", "new", "--alg", "EdDSA", "--out", str(tmp_path / "issuer.jwk"))[0] == 0
    assert imi("key", "new", "--alg", "ES256", "--out", str(tmp_path / "holder.jwk"))[0] == 0
    for name in ("issuer", "holder"):
        code, out, _ = imi("key", "public", str(tmp_path / f"{name}.jwk"))
        assert code == 0
        (tmp_path / f"{name}.pub.jwk").write_text(out)
    (tmp_path / "claims.json").write_text(json.dumps(
        {"given_name": "Ada", "birthdate": "1990-12-10", "address": {"locality": "London", "street": "x"}}))
    code, out, err = imi("sdjwt", "issue", "--issuer-key", str(tmp_path / "issuer.jwk"),
                         "--holder-jwk", str(tmp_path / "holder.pub.jwk"), "--claims", str(tmp_path / "claims.json"),
                         "--vct", "urn:imi:pid:1", "--iss", "did:imi:ca", "--exp", "3600", "--now", str(NOW),
                         "--predicate", "age_equal_or_over=18,21")
    assert code == 0, err
    (tmp_path / "cred.txt").write_text(out)
    code, out, err = imi("sdjwt", "present", "--credential", str(tmp_path / "cred.txt"),
                         "--disclose", "given_name,age_equal_or_over.18", "--disclose", "address.locality",
                         "--holder-key", str(tmp_path / "holder.jwk"), "--nonce", "n1", "--aud", "rp",
                         "--now", str(NOW))
    assert code == 0, err
    (tmp_path / "pres.txt").write_text(out)
    return tmp_path


def verify(d: Path, *extra: str, presentation: str = "pres.txt") -> tuple[int, str, str]:
    return imi("sdjwt", "verify", "--presentation", str(d / presentation), "--issuer-jwk",
               str(d / "issuer.pub.jwk"), "--nonce", "n1", "--aud", "rp", "--now", str(NOW), *extra)


def test_key_new_writes_owner_only_private_jwk(flow: Path) -> None:
    mode = stat.S_IMODE((flow / "holder.jwk").stat().st_mode)
    assert mode == 0o600
    jwk = json.loads((flow / "holder.jwk").read_text())
    assert jwk["kty"] == "EC" and "d" in jwk
    assert "d" not in json.loads((flow / "holder.pub.jwk").read_text())


def test_key_new_refuses_to_overwrite_and_bad_alg_is_usage(flow: Path) -> None:
    assert imi("key", "new", "--alg", "EdDSA", "--out", str(flow / "issuer.jwk"))[0] == 1
    assert imi("key", "new", "--alg", "HS256", "--out", str(flow / "x.jwk"))[0] == 2


def test_verify_prints_only_disclosed_claims_as_json(flow: Path) -> None:
    code, out, err = verify(flow, "--json", "--predicate", "age_equal_or_over.18", "--claim", "given_name")
    assert code == 0, err
    claims = json.loads(out)
    assert claims["given_name"] == "Ada"
    assert claims["age_equal_or_over"] == {"18": True}
    assert claims["address"] == {"locality": "London"}
    assert "birthdate" not in claims and claims["iss"] == "did:imi:ca"


def test_verify_text_output_lists_claims(flow: Path) -> None:
    code, out, _ = verify(flow)
    assert code == 0 and 'given_name: "Ada"' in out


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("--nonce", "other"), "kb-wrong-nonce"),
        (("--claim", "birthdate"), "claim-not-disclosed"),
        (("--vct", "urn:other"), "vct-not-accepted"),
    ],
)
def test_verify_rejects_with_reason_on_stderr(flow: Path, args: tuple[str, ...], reason: str) -> None:
    code, _, err = verify(flow, *args)
    assert code == 1 and f"[{reason}]" in err and err.count("\n") == 1


def test_verify_json_failure_is_machine_readable(flow: Path) -> None:
    code, out, _ = verify(flow, "--json", "--claim", "birthdate")
    assert code == 1 and json.loads(out)["reason"] == "claim-not-disclosed"


def test_expired_credential_is_rejected_later(flow: Path) -> None:
    code, _, err = imi("sdjwt", "verify", "--presentation", str(flow / "pres.txt"), "--issuer-jwk",
                       str(flow / "issuer.pub.jwk"), "--nonce", "n1", "--aud", "rp", "--now", str(NOW + 7200))
    assert code == 1 and "[expired]" in err


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00garbage", b"{}", b"~~~", b"a.b.c~", b"[1,2]",
                                     b"\x00" * 100, b'{"a": NaN}', b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}"])
@pytest.mark.parametrize("slot", ["presentation", "issuer", "credential", "holder-key", "claims"])
def test_any_file_content_gives_exit_1_never_a_traceback(flow: Path, content: bytes, slot: str) -> None:
    bad = flow / "bad"
    bad.write_bytes(content)
    d = str(flow)
    if slot == "presentation":
        code = verify(flow, presentation="bad")[0]
    elif slot == "issuer":
        code = imi("sdjwt", "verify", "--presentation", d + "/pres.txt", "--issuer-jwk", str(bad),
                   "--nonce", "n1", "--aud", "rp")[0]
    elif slot == "credential":
        code = imi("sdjwt", "present", "--credential", str(bad), "--disclose", "given_name",
                   "--holder-key", d + "/holder.jwk", "--nonce", "n", "--aud", "a")[0]
    elif slot == "holder-key":
        code = imi("sdjwt", "present", "--credential", d + "/cred.txt", "--disclose", "given_name",
                   "--holder-key", str(bad), "--nonce", "n", "--aud", "a")[0]
    else:
        code = imi("sdjwt", "issue", "--issuer-key", d + "/issuer.jwk", "--holder-jwk", d + "/holder.pub.jwk",
                   "--claims", str(bad))[0]
    # An empty claims object is a legitimate (if useless) credential.
    assert code == (0 if (slot, content) == ("claims", b"{}") else 1)


def test_missing_file_and_unheld_claim_exit_1(flow: Path) -> None:
    assert verify(flow, presentation="nope.txt")[0] == 1
    code, _, err = imi("sdjwt", "present", "--credential", str(flow / "cred.txt"), "--disclose", "passport",
                       "--holder-key", str(flow / "holder.jwk"), "--nonce", "n", "--aud", "a")
    assert code == 1 and "[claim-not-held]" in err


def test_missing_option_is_usage_error() -> None:
    assert imi("sdjwt", "verify", "--nonce", "n")[0] == 2


def test_issue_derives_exactly_the_predicate_thresholds_asked_for(flow: Path) -> None:
    code, _, err = imi("sdjwt", "present", "--credential", str(flow / "cred.txt"), "--disclose",
                       "age_equal_or_over.16", "--holder-key", str(flow / "holder.jwk"), "--nonce", "n1",
                       "--aud", "rp", "--now", str(NOW))
    assert (code, "claim-not-held") == (1, err.split("[")[1].split("]")[0]), err
    common = ("sdjwt", "issue", "--issuer-key", str(flow / "issuer.jwk"), "--holder-jwk",
              str(flow / "holder.pub.jwk"), "--claims", str(flow / "claims.json"), "--now", str(NOW))
    assert imi(*common, "--predicate", "age_equal_or_over=eighteen")[0] == 2
    code, _, err = imi(*common, "--predicate", "height_over=150")
    assert code == 1 and "[predicate-not-derivable]" in err
