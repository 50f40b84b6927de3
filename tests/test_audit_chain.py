"""`imi ledger audit`: a node's chain verified from the genesis, and the first bad block named.

The node is an in-process DevNode behind the real REST API (``create_app``),
reached through ``fastapi.testclient.TestClient`` (an ``httpx.Client``). The
corruptions are written straight into the node's KV, as a broken disk or a
dishonest operator would, so the API serves them as if they were committed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import cli.ledger_cmd
from cli.audit import AuditError, HttpChainSource, audit_chain
from cli.loadgen import note_transaction
from cli.main import app as cli_app
from ledger.block import CommitCertificate
from ledger.encoding import decode, encode
from ledger.keys import SigningKey
from ledger.kv import WriteBatch
from ledger.storage import PREFIX_BODY, PREFIX_CERT, PREFIX_HEADER, PREFIX_TX
from node.api.app import create_app
from tests.factories import consortium
from tests.test_node_api_support import InProcessNode

BLOCKS = 5
BAD_HEIGHT = 3


def _fill(node: InProcessNode, blocks: int = BLOCKS) -> list[list[bytes]]:
    """Commit ``blocks`` blocks; block h carries h % 4 notes (so some are empty). Returns tx ids per block."""
    key = SigningKey.generate()
    ids: list[list[bytes]] = []
    for height in range(1, blocks + 1):
        txs = [note_transaction(key, node.genesis.chain_id, node.clock_ms() + i) for i in range(height % 4)]
        for tx in txs:
            asyncio.run(node.submit(tx))
        node.commit()
        ids.append([tx.tx_id for tx in txs])
    return ids


@pytest.fixture()
def node() -> InProcessNode:
    n = InProcessNode(auto_commit=False)
    _fill(n)
    return n


def _source(node: InProcessNode) -> HttpChainSource:
    return HttpChainSource("http://testserver", client=TestClient(create_app(node), raise_server_exceptions=False))


def _height_key(prefix: bytes, height: int) -> bytes:
    return prefix + height.to_bytes(8, "big")


def _rewrite(node: InProcessNode, key: bytes, change: Callable[[Any], Any]) -> None:
    """Replace the stored value at ``key`` by ``change(decoded value)``, re-encoded."""
    raw = node.store.kv.get(key)
    assert raw is not None
    batch = WriteBatch()
    batch.put(key, encode(change(decode(raw))))
    node.store.kv.write(batch)


def _audit_failure(node: InProcessNode, **kwargs: Any) -> AuditError:
    with pytest.raises(AuditError) as caught:
        audit_chain(node.genesis, _source(node), **kwargs)
    return caught.value


def test_audit_passes_on_a_real_chain_and_reports_the_head(node: InProcessNode) -> None:
    seen: list[tuple[int, int]] = []
    report = audit_chain(node.genesis, _source(node), progress=lambda done, total: seen.append((done, total)))
    head = node.store.head()
    assert head is not None
    assert (report.blocks, report.from_height, report.to_height) == (BLOCKS, 1, BLOCKS)
    assert report.txs == report.bodies_checked == head.log_size == sum(h % 4 for h in range(1, BLOCKS + 1))
    assert report.head_hash == head.hash.hex() and report.state_root == head.state_root.hex()
    assert report.consistency == "verified" and report.validator_set_changes == 0
    assert seen == [(h, BLOCKS) for h in range(1, BLOCKS + 1)]


def test_audit_range_checks_bodies_from_the_first_height_and_stops_at_the_last(node: InProcessNode) -> None:
    report = audit_chain(node.genesis, _source(node), from_height=3, to_height=4)
    assert (report.blocks, report.from_height, report.to_height) == (4, 3, 4)  # 1..4 verified, bodies from 3
    header = node.store.header(4)
    assert header is not None and report.head_hash == header.hash.hex()
    assert report.bodies_checked == 3 % 4 + 4 % 4 and report.txs == sum(h % 4 for h in range(1, 5))


def _swap_tx_body(node: InProcessNode, ids: list[bytes]) -> None:
    other = note_transaction(SigningKey.generate(), node.genesis.chain_id, node.clock_ms())
    _rewrite(node, PREFIX_TX + ids[0], lambda record: [*record[:3], other.to_bytes()])


def _drop_tx_from_body(node: InProcessNode, _ids: list[bytes]) -> None:
    _rewrite(node, _height_key(PREFIX_BODY, BAD_HEIGHT), lambda tx_ids: tx_ids[1:])


def _alter_state_root(node: InProcessNode, _ids: list[bytes]) -> None:
    _rewrite(node, _height_key(PREFIX_HEADER, BAD_HEIGHT), lambda h: {**h, "state_root": bytes(32)})


def _drop_signatures(node: InProcessNode, _ids: list[bytes]) -> None:
    _rewrite(node, _height_key(PREFIX_CERT, BAD_HEIGHT), lambda c: {**c, "sigs": c["sigs"][:2]})


def _flip_signature_bit(node: InProcessNode, _ids: list[bytes]) -> None:
    def flip(c: dict[str, Any]) -> dict[str, Any]:
        (validator, sig), *rest = c["sigs"]
        return {**c, "sigs": [[validator, bytes([sig[0] ^ 1]) + sig[1:]], *rest]}

    _rewrite(node, _height_key(PREFIX_CERT, BAD_HEIGHT), flip)


@pytest.mark.parametrize(("corrupt", "reason"), [
    (_swap_tx_body, "tx-root-mismatch"),
    (_drop_tx_from_body, "tx-root-mismatch"),
    (_alter_state_root, "certificate-mismatch"),
    (_drop_signatures, "insufficient-quorum"),
    (_flip_signature_bit, "bad-certificate-signature"),
])
def test_one_corrupted_stored_block_is_named_with_its_reason(
    corrupt: Callable[[InProcessNode, list[bytes]], None], reason: str,
) -> None:
    node = InProcessNode(auto_commit=False)
    ids = _fill(node)
    assert ids[BAD_HEIGHT - 1], "the corrupted block must carry transactions"
    audit_chain(node.genesis, _source(node))  # clean before
    corrupt(node, ids[BAD_HEIGHT - 1])
    failure = _audit_failure(node)
    assert (failure.height, failure.reason) == (BAD_HEIGHT, reason), str(failure)


def test_a_body_changed_below_from_is_still_caught_by_its_ids(node: InProcessNode) -> None:
    _drop_tx_from_body(node, [])
    failure = _audit_failure(node, from_height=BLOCKS)
    assert (failure.height, failure.reason) == (BAD_HEIGHT, "tx-root-mismatch")


def test_a_node_serving_a_chain_from_another_genesis_fails_at_block_1(node: InProcessNode) -> None:
    with pytest.raises(AuditError) as caught:
        audit_chain(consortium(seed=5).genesis, _source(node))
    assert (caught.value.height, caught.value.reason) == (1, "broken-link")


class _LyingTransaction(HttpChainSource):
    """Serves another transaction's body under the asked id."""

    def transaction(self, tx_id_hex: str) -> Mapping[str, Any]:
        answer = dict(super().transaction(tx_id_hex))
        other = note_transaction(SigningKey.generate(), "imi-test", 1)
        return {**answer, "tx": {"b64": other.to_b64()}}


def test_a_node_serving_a_body_that_does_not_hash_to_its_id_is_caught(node: InProcessNode) -> None:
    source = _LyingTransaction("http://testserver", client=TestClient(create_app(node)))
    with pytest.raises(AuditError) as caught:
        audit_chain(node.genesis, source)
    assert (caught.value.height, caught.value.reason) == (1, "tx-mismatch")


class _LyingConsistency(HttpChainSource):
    def consistency(self, from_height: int, to_height: int) -> Mapping[str, Any]:
        answer = dict(super().consistency(from_height, to_height))
        answer["hashes"] = [bytes(32).hex(), *answer["hashes"][1:]]
        return answer


def test_a_wrong_consistency_proof_is_reported(node: InProcessNode) -> None:
    source = _LyingConsistency("http://testserver", client=TestClient(create_app(node)))
    with pytest.raises(AuditError) as caught:
        audit_chain(node.genesis, source, from_height=2)
    assert (caught.value.height, caught.value.reason) == (BLOCKS, "consistency-mismatch")


def test_an_unreachable_node_and_a_too_high_range_are_reported(node: InProcessNode) -> None:
    with pytest.raises(AuditError) as caught:
        audit_chain(node.genesis, HttpChainSource("http://127.0.0.1:9", timeout_s=2))
    assert caught.value.reason == "node-unreachable"
    failure = _audit_failure(node, to_height=BLOCKS + 1)
    assert failure.reason == "block-unavailable"


# --- the command --------------------------------------------------------------------------------


@pytest.fixture()
def cli_node(node: InProcessNode, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> InProcessNode:
    monkeypatch.setattr(cli.ledger_cmd, "http_client",
                        lambda: TestClient(create_app(node), raise_server_exceptions=False))
    (tmp_path / "genesis.json").write_text(node.genesis.dumps())
    return node


def _imi(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_cli_audit_prints_a_summary_and_exits_0(cli_node: InProcessNode, tmp_path: Path) -> None:
    code, out, err = _imi("ledger", "audit", "--node", "http://testserver", "--genesis", str(tmp_path / "genesis.json"))
    assert code == 0, err
    head = cli_node.store.head()
    assert head is not None and head.hash.hex() in out and head.state_root.hex() in out and "OK" in out
    code, out, err = _imi("ledger", "audit", "--node", "http://testserver",
                          "--genesis", str(tmp_path / "genesis.json"), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["ok"] is True and summary["blocks"] == BLOCKS and summary["head_hash"] == head.hash.hex()


def test_cli_audit_names_the_bad_block_and_exits_1(cli_node: InProcessNode, tmp_path: Path) -> None:
    _drop_signatures(cli_node, [])
    genesis = str(tmp_path / "genesis.json")
    code, out, _ = _imi("ledger", "audit", "--node", "http://testserver", "--genesis", genesis, "--json")
    assert code == 1
    assert json.loads(out) == {"ok": False, "height": BAD_HEIGHT, "reason": "insufficient-quorum",
                               "detail": json.loads(out)["detail"]}
    code, _, err = _imi("ledger", "audit", "--node", "http://testserver", "--genesis", genesis)
    assert code == 1 and f"height {BAD_HEIGHT}" in err and "insufficient-quorum" in err


def test_cli_audit_rejects_bad_input(cli_node: InProcessNode, tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    code, _, err = _imi("ledger", "audit", "--node", "http://testserver", "--genesis", str(tmp_path / "bad.json"))
    assert code == 1 and "bad-genesis" in err
    code, _, _ = _imi("ledger", "audit", "--node", "http://testserver", "--genesis", str(tmp_path / "genesis.json"),
                      "--from", "5", "--to", "2")
    assert code == 2


def test_cli_head_shows_the_latest_header(cli_node: InProcessNode) -> None:
    code, out, err = _imi("ledger", "head", "--node", "http://testserver", "--json")
    assert code == 0, err
    head = cli_node.store.head()
    summary = json.loads(out)
    assert head is not None and summary["height"] == BLOCKS and summary["hash"] == head.hash.hex()
    assert summary["signatures"] == len(CommitCertificate.from_value(
        decode(cli_node.store.kv.get(_height_key(PREFIX_CERT, BLOCKS)) or b"")).signatures)
