"""`imi did`, `imi gov`, `imi issuer` end to end against an in-memory certified chain
served through httpx.MockTransport (the node's REST shapes), no running node.

Exit codes: 0 ok, 1 rejected / not verified (with a reason), 2 usage; never a traceback.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

import cli._ledger_client
from cli.main import app
from ledger.errors import BlockError, LedgerError
from ledger.keys import SigningKey
from ledger.tx import Transaction
from tests.test_identity_light_client import Chain, ChainFetcher

runner = CliRunner()


class MockNode:
    """Routes the node's REST endpoints onto a :class:`Chain`; POST commits one block."""

    def __init__(self) -> None:
        self.chain = Chain(clock=self._clock)
        self.fetcher = ChainFetcher(self.chain)
        self.lie = False

    def _clock(self, height: int) -> int:
        return int(time.time() * 1000)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        height = request.url.params.get("height")
        h = int(height) if height is not None else None
        if request.method == "GET" and path == "/v1/blocks/latest":
            return httpx.Response(200, json=self.fetcher.latest_block())
        if request.method == "GET" and path.startswith("/v1/state/"):
            key = urllib.parse.unquote(request.url.raw_path.decode().split("?")[0][len("/v1/state/"):])
            body = self.fetcher.state(key.encode(), h)
            if self.lie and body["value"] is not None:
                body["value"] = body["value"][:-4] + "AAAA"
            return httpx.Response(200, json=body)
        if request.method == "POST" and path == "/v1/transactions":
            try:
                tx = Transaction.from_b64(json.loads(request.content)["tx"])
                header = self.chain.block(tx)
            except BlockError as exc:
                cause = exc.__cause__
                reason = cause.reason if isinstance(cause, LedgerError) else exc.reason
                return httpx.Response(422, json={"reason": reason, "detail": str(exc), "status": 422})
            except LedgerError as exc:
                return httpx.Response(400, json={"reason": exc.reason, "detail": str(exc), "status": 400})
            return httpx.Response(200, json={"id": tx.tx_id.hex(), "status": "committed",
                                             "height": header.height})
        return httpx.Response(404, json={"reason": "not-found"})


@pytest.fixture()
def node(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MockNode:
    mock = MockNode()
    mock.chain.block()  # a first block so /v1/blocks/latest answers
    monkeypatch.setattr(cli._ledger_client, "http_client", lambda: httpx.Client(transport=httpx.MockTransport(mock.handle)))
    (tmp_path / "genesis.json").write_text(mock.chain.c.genesis.dumps())
    for i, key in enumerate(mock.chain.c.trustee_keys):
        (tmp_path / f"trustee{i}.jwk").write_text(json.dumps(key.to_private_jwk()))
    monkeypatch.setenv("IMI_NODE", "http://node.test")
    monkeypatch.setenv("IMI_GENESIS", str(tmp_path / "genesis.json"))
    return mock


def key_file(path: Path) -> Path:
    path.write_text(json.dumps(SigningKey.generate().to_private_jwk()))
    return path


def imi(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def create_did(tmp_path: Path, name: str) -> str:
    code, out, err = imi("did", "create", "--key", str(key_file(tmp_path / f"{name}.jwk")))
    assert code == 0, err
    return out.strip().splitlines()[-1]


def test_did_create_prints_the_did_last_and_resolve_verifies_it(node: MockNode, tmp_path: Path) -> None:
    did = create_did(tmp_path, "alice")
    assert did.startswith("did:imi:")
    assert (tmp_path / "alice.jwk.next").exists()  # the pre-rotation key was created
    code, out, _ = imi("did", "resolve", did)
    assert code == 0 and json.loads(out)["id"] == did
    code, out, _ = imi("did", "resolve", did, "--json")
    assert json.loads(out)["didDocumentMetadata"]["versionId"] == "1"


def test_resolve_rejects_a_lying_node_with_exit_1(node: MockNode, tmp_path: Path) -> None:
    did = create_did(tmp_path, "alice")
    node.lie = True
    code, out, err = imi("did", "resolve", did)
    assert code == 1 and "bad-state-proof" in err and out == ""


def test_resolve_unknown_did_exits_1_and_bad_did_exits_2(node: MockNode) -> None:
    code, _, err = imi("did", "resolve", "did:imi:1111111111")
    assert code == 1 and "did-not-found" in err
    assert imi("did", "resolve", "did:web:example.com")[0] == 2


def test_rotate_then_old_key_cannot_deactivate(node: MockNode, tmp_path: Path) -> None:
    did = create_did(tmp_path, "alice")
    code, _, err = imi("did", "rotate", did, "--next-key", str(tmp_path / "alice.jwk.next"),
                       "--new-next-key", str(tmp_path / "alice.jwk.next2"))
    assert code == 0, err
    code, _, err = imi("did", "deactivate", did, "--next-key", str(tmp_path / "alice.jwk.next"))
    assert code == 1 and "next-key-mismatch" in err  # now the current key: not enough
    code, _, err = imi("did", "deactivate", did, "--next-key", str(tmp_path / "alice.jwk.next2"))
    assert code == 0, err


def test_governance_accredit_and_issuer_recovery(node: MockNode, tmp_path: Path) -> None:
    alice = create_did(tmp_path, "alice")
    agency = create_did(tmp_path, "agency")
    trustees = ["--trustee-key", str(tmp_path / "trustee0.jwk"), "--trustee-key", str(tmp_path / "trustee1.jwk")]
    code, _, err = imi("gov", "accredit", agency, "--name", "Agency", "--vct", "imi:recovery", "--vct", "imi:pid",
                       "--trustee-key", str(tmp_path / "trustee0.jwk"))
    assert code == 1 and "trustee-threshold-not-met" in err
    code, _, err = imi("gov", "accredit", agency, "--name", "Agency", "--vct", "imi:recovery",
                       "--vct", "imi:pid", *trustees)
    assert code == 0, err
    code, out, _ = imi("issuer", "show", agency)
    assert code == 0 and json.loads(out)["status"] == "accredited"
    code, _, err = imi("did", "recover", alice, "--new-key", str(tmp_path / "new.jwk"),
                       "--new-next-key", str(tmp_path / "new.next.jwk"), "--issuer", agency,
                       "--issuer-key", str(tmp_path / "agency.jwk"))
    assert code == 0, err
    code, out, _ = imi("did", "resolve", alice)
    new_jwk = json.loads((tmp_path / "new.jwk").read_text())
    assert json.loads(out)["verificationMethod"][0]["publicKeyJwk"]["x"] == new_jwk["x"]


def test_issuer_status_list_and_vct_commands(node: MockNode, tmp_path: Path) -> None:
    agency = create_did(tmp_path, "agency")
    trustees = ["--trustee-key", str(tmp_path / "trustee0.jwk"), "--trustee-key", str(tmp_path / "trustee2.jwk")]
    assert imi("gov", "accredit", agency, "--name", "A", "--vct", "imi:pid", *trustees)[0] == 0
    me = ["--did", agency, "--key", str(tmp_path / "agency.jwk")]
    code, _, err = imi("issuer", "vct-publish", "--vct", "imi:pid", "--name", "PID", "--claim", "given_name",
                       "--claim", "birthdate", "--predicate", "age_equal_or_over=18,65", *me)
    assert code == 0, err
    assert json.loads(imi("issuer", "vct-show", "imi:pid")[1])["predicates"] == {"age_equal_or_over": [18, 65]}
    assert imi("issuer", "status-create", "--list-id", "L1", "--size", "64", *me)[0] == 0
    assert imi("issuer", "status-set", "--list-id", "L1", "--set", "5=suspended", "--set", "6=invalid", *me)[0] == 0
    assert imi("issuer", "status-get", "L1", "--index", "5")[1].strip() == "suspended"
    code, _, err = imi("issuer", "status-set", "--list-id", "L1", "--set", "6=valid", *me)
    assert code == 1 and "status-final" in err
    assert imi("issuer", "status-set", "--list-id", "L1", "--set", "6=gone", *me)[0] == 2
    (tmp_path / "cred.txt").write_text("eyJ.e30.sig~WyJ4IiwieSIsInoiXQ~")
    code, out, err = imi("issuer", "anchor", "--credential", str(tmp_path / "cred.txt"), "--json", *me)
    assert code == 0, err
    assert len(json.loads(out)["digest"]) == 64


def test_garbage_key_file_is_exit_1_without_traceback(node: MockNode, tmp_path: Path) -> None:
    (tmp_path / "bad.jwk").write_text("{not json")
    code, _, err = imi("did", "create", "--key", str(tmp_path / "bad.jwk"))
    assert code == 1 and "Traceback" not in err


def test_missing_genesis_is_a_usage_error(node: MockNode, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMI_GENESIS")
    assert imi("did", "resolve", "did:imi:1111111111")[0] == 2


def test_unreachable_node_is_exit_1(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")
    monkeypatch.setattr(cli._ledger_client, "http_client", lambda: httpx.Client(transport=httpx.MockTransport(down)))
    code, _, err = imi("did", "create", "--key", str(key_file(tmp_path / "k.jwk")), "--node", "http://x")
    assert code == 1 and "node-unavailable" in err


def test_validator_add_takes_the_spki_digest_as_node_init_prints_it_or_as_hex() -> None:
    from cli.gov import spki_digest
    from ledger.keys import b64url_encode

    digest = bytes(range(32))
    assert spki_digest(digest.hex()) == digest
    assert spki_digest(b64url_encode(digest)) == digest  # the genesis / `imi node init` form
    for bad in ("", "zz" * 32, digest.hex()[:-2], b64url_encode(digest[:31]), b64url_encode(digest) + "="):
        assert spki_digest(bad) is None
