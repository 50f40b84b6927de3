"""``POST /v1/verify`` keeps verifying however many validator-set changes the chain went
through: the router keeps the validator sets it followed (never again from the genesis),
and following is incremental — a bounded number of changes per request, resumed by the
next, never a cap that turns into a permanent failure."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import cli._ledger_client
from cli.main import app as cli_app
from identity.errors import LightClientError
from identity.http.node_routes import identity_router, verify_router
from identity.ledger_constants import VALSET_CHANGES_FOLLOW_MAX
from identity.light_client import LightClient, ValidatorSetHistory
from ledger.keys import SigningKey
from ledger.validators import Validator
from node.api.app import create_app
from tests.test_identity_api_scene import REQUEST, Scene, build_scene
from tests.test_identity_light_client import Chain, ChainFetcher, now

CHANGES = VALSET_CHANGES_FOLLOW_MAX + 2  # more than one request follows at once


def _extra_validator(i: int) -> tuple[SigningKey, Validator]:
    key = SigningKey("EdDSA", hashlib.sha256(f"extra-validator-{i}".encode()).digest())
    return key, Validator(f"x{i}", key.public_key, 1, f"127.0.0.1:{9100 + i}",
                          hashlib.sha256(f"tls-x{i}".encode()).digest())


def distinct_changes(changes: int) -> list[tuple[str, dict[str, Any], SigningKey]]:
    """Governance payloads making ``changes`` validator-set changes, every set distinct:
    add x1, add x2, remove x1, add x3, remove x2, ... (at most two extra validators)."""
    ops = [("gov.validator_add", 1)]
    for k in range(1, changes):
        ops += [("gov.validator_add", k + 1), ("gov.validator_remove", k)]
    ops = ops[:changes]
    out: list[tuple[str, dict[str, Any], SigningKey]] = []
    for type_, i in ops:
        key, extra = _extra_validator(i)
        payload: dict[str, Any] = ({"validator": extra.to_value()} if type_ == "gov.validator_add"
                                   else {"key_id": extra.key_id})
        out.append((type_, payload, key))
    return out


def _change_validator_set(scene: Scene, changes: int) -> None:
    """``changes`` certified validator-set changes, one per block, every set distinct."""
    for type_, payload, key in distinct_changes(changes):
        scene.node.add_validator_key(key)
        scene.block(scene.gov(type_, payload))
    for _ in range(3):  # the last change takes effect two blocks later
        scene.block()


def _set_hashes(scene: Scene) -> list[bytes]:
    return [scene.node.store.header(h).validator_set_hash for h in range(1, scene.node.store.height() + 1)]


def _count_changes(hashes: list[bytes]) -> int:
    return sum(1 for a, b in itertools.pairwise(hashes) if a != b)


def _verify(http: TestClient, scene: Scene) -> object:
    body = {"presentation": scene.presentation(scene.credential()), "request": REQUEST.to_json()}
    return http.post("/v1/verify", json=body)


def test_verify_after_more_validator_set_changes_than_one_call_follows() -> None:
    scene = build_scene()
    http = TestClient(create_app(scene.node, extra_routers=[
        identity_router, functools.partial(verify_router, clock_ms=scene.clock)]))
    assert _verify(http, scene).json()["valid"] is True  # the router's verifier exists before the changes
    _change_validator_set(scene, CHANGES)
    hashes = _set_hashes(scene)
    assert _count_changes(hashes) == CHANGES and len(set(hashes)) == CHANGES + 1  # every set distinct
    answers = [_verify(http, scene) for _ in range(3)]
    # the first request follows VALSET_CHANGES_FOLLOW_MAX changes and asks to retry; the next resumes
    assert answers[0].status_code == 503 and answers[0].json()["reason"] == "valset-catching-up"
    assert [a.status_code for a in answers[1:]] == [200, 200]
    assert all(a.json()["valid"] is True for a in answers[1:]), answers[1].json()
    key, extra = _extra_validator(999)
    scene.node.add_validator_key(key)
    scene.block(scene.gov("gov.validator_add", {"validator": extra.to_value()}))
    for _ in range(3):
        scene.block()
    assert _verify(http, scene).json()["valid"] is True  # one more change: followed at once


def _chain_with_changes(changes: int) -> Chain:
    ch = Chain()
    for type_, payload, key in distinct_changes(changes):
        ch.keys[key.key_id] = key
        ch.block(ch.gov(type_, payload))
    for _ in range(3):
        ch.block()
    return ch


def test_a_light_client_resumes_following_where_it_stopped() -> None:
    ch = _chain_with_changes(CHANGES)
    history = ValidatorSetHistory(ch.c.genesis.validators)
    fetcher = ChainFetcher(ch)
    with pytest.raises(LightClientError) as stopped:
        LightClient(ch.c.genesis, fetcher, 10_000, history=history).latest_header(now(ch))
    assert stopped.value.reason == "valset-catching-up"
    assert len(history) == VALSET_CHANGES_FOLLOW_MAX + 1  # what it learned is kept
    calls = fetcher.calls
    header = LightClient(ch.c.genesis, fetcher, 10_000, history=history).latest_header(now(ch))
    assert header.height == ch.height and len(history) == CHANGES + 1
    assert fetcher.calls - calls < calls  # resumed: it did not start again from the genesis


def test_a_shared_history_is_followed_once_by_concurrent_clients() -> None:
    ch = _chain_with_changes(6)
    history = ValidatorSetHistory(ch.c.genesis.validators)
    errors: list[LightClientError] = []

    def read() -> None:
        try:
            LightClient(ch.c.genesis, ChainFetcher(ch), 10_000, history=history).latest_header(now(ch))
        except LightClientError as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(history) == 7  # genesis + 6 changes, each learned once


def test_a_command_line_client_catches_up_through_many_changes(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    """`imi did resolve` starts from the genesis in every process: it follows all the changes
    (in rounds of VALSET_CHANGES_FOLLOW_MAX) before answering, not only the first 64."""
    scene = build_scene()
    _change_validator_set(scene, CHANGES)
    monkeypatch.setattr(cli._ledger_client, "http_client", lambda: TestClient(create_app(scene.node, extra_routers=[
        identity_router])))
    (tmp_path / "genesis.json").write_text(scene.node.genesis.dumps())
    head = scene.node.store.height()  # a historical read: the scene's clock is not the wall clock
    result = CliRunner().invoke(cli_app, ["did", "resolve", scene.alice.did, "--node", "http://testserver",
                                          "--genesis", str(tmp_path / "genesis.json"), "--height", str(head),
                                          "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["didResolutionMetadata"]["height"] == head
