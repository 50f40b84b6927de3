"""Identity over the real REST API (node.api.app.create_app on an in-process DevNode whose
executor carries IDENTITY_HANDLERS): the CLI submits, the light client verifies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import cli._ledger_client
from cli.main import app
from identity.light_client import HttpFetcher, LightClient
from identity.rules import IDENTITY_HANDLERS
from ledger.execution import DEVNET_HANDLERS
from ledger.keys import SigningKey
from node.api.app import create_app
from tests.test_node_api_support import InProcessNode

runner = CliRunner()


@pytest.fixture()
def node(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> InProcessNode:
    n = InProcessNode(handlers={**DEVNET_HANDLERS, **IDENTITY_HANDLERS})
    n.commit()  # block 1, so /v1/blocks/latest answers
    monkeypatch.setattr(cli._ledger_client, "http_client", lambda: TestClient(create_app(n), raise_server_exceptions=False))
    (tmp_path / "genesis.json").write_text(n.genesis.dumps())
    for i, key in enumerate(n.consortium.trustee_keys):
        (tmp_path / f"trustee{i}.jwk").write_text(json.dumps(key.to_private_jwk()))
    monkeypatch.setenv("IMI_NODE", "http://testserver")
    monkeypatch.setenv("IMI_GENESIS", str(tmp_path / "genesis.json"))
    return n


def imi(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_create_rotate_resolve_through_the_real_api(node: InProcessNode, tmp_path: Path) -> None:
    (tmp_path / "k.jwk").write_text(json.dumps(SigningKey.generate().to_private_jwk()))
    code, out, err = imi("did", "create", "--key", str(tmp_path / "k.jwk"))
    assert code == 0, err
    did = out.strip().splitlines()[-1]
    code, out, err = imi("did", "resolve", did)
    assert code == 0 and json.loads(out)["id"] == did, err
    code, _, err = imi("did", "rotate", did, "--next-key", str(tmp_path / "k.jwk.next"),
                       "--new-next-key", str(tmp_path / "k.jwk.next2"))
    assert code == 0, err
    code, out, _ = imi("did", "resolve", did, "--version", "1", "--json")
    assert code == 0 and json.loads(out)["didDocumentMetadata"]["versionId"] == "1"
    code, _, err = imi("did", "deactivate", did, "--next-key", str(tmp_path / "k.jwk.next"))
    assert code == 1 and "next-key-mismatch" in err  # the current key since the rotation
    code, _, err = imi("did", "deactivate", did, "--next-key", str(tmp_path / "k.jwk.next2"))
    assert code == 0, err


def test_light_client_reads_validator_set_and_absence_from_the_api(node: InProcessNode) -> None:
    client = LightClient(node.genesis, HttpFetcher("http://testserver", client=TestClient(create_app(node))),
                         freshness_ms=60_000)
    head = node.store.head()
    assert client.validator_set(head.time_ms) == node.genesis.validators
    assert client.get_verified(b"issuer/did:imi:1111", head.time_ms).value is None
