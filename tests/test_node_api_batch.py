"""POST /v1/transactions/batch: each transaction admitted on its own, with per-tx reasons."""

from __future__ import annotations

from ledger.tx import Transaction
from node.api.constants import API_BATCH_TXS_MAX
from tests.test_node_api_badinput import Harness


def test_a_batch_admits_the_good_and_names_the_reason_for_each_bad_one() -> None:
    h = Harness(auto_commit=False)
    pending_before = set(h.node.mempool)
    good = [h.tx(), h.tx()]
    wrong_chain = h.tx(chain_id="another-chain")
    raw = bytearray(h.tx().to_bytes())
    raw[-1] ^= 1  # flips a signature bit
    tampered = Transaction.from_bytes(bytes(raw))
    texts = [good[0].to_b64(), wrong_chain.to_b64(), "not base64!", tampered.to_b64(), good[1].to_b64()]
    response = h.client.post("/v1/transactions/batch", json={"txs": texts})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["pending", "rejected", "rejected", "rejected", "pending"]
    assert results[0]["id"] == good[0].tx_id.hex() and results[4]["id"] == good[1].tx_id.hex()
    assert results[1]["problem"]["reason"] == "wrong-chain" and results[1]["id"] == wrong_chain.tx_id.hex()
    assert results[2]["problem"]["reason"] == "bad-encoding" and results[2]["id"] is None
    assert results[3]["problem"]["reason"] == "bad-signature"
    assert results[3]["problem"]["status"] == 422
    assert set(h.node.mempool) - pending_before == {good[0].tx_id, good[1].tx_id}


def test_a_batch_refuses_a_committed_transaction_as_replayed() -> None:
    h = Harness()
    tx = h.tx()
    assert h.post_tx(tx).status_code == 200
    results = h.client.post("/v1/transactions/batch", json={"txs": [tx.to_b64()]}).json()["results"]
    assert results == [{"id": tx.tx_id.hex(), "status": "rejected", "problem": results[0]["problem"]}]
    assert results[0]["problem"]["reason"] == "replayed-transaction"


def test_a_batch_over_the_limit_or_with_extra_fields_is_refused_whole() -> None:
    h = Harness(auto_commit=False)
    before = h.snapshot()
    too_many = h.client.post("/v1/transactions/batch", json={"txs": ["x"] * (API_BATCH_TXS_MAX + 1)})
    extra = h.client.post("/v1/transactions/batch", json={"txs": [h.tx().to_b64()], "wait": "commit"})
    assert too_many.status_code == 422 and extra.status_code == 422
    assert extra.json()["reason"] == "unknown-field"
    assert h.snapshot() == before


def test_a_batch_with_wait_commit_answers_each_admitted_tx_committed_with_its_place() -> None:
    h = Harness()
    good = [h.tx(), h.tx(), h.tx()]
    wrong_chain = h.tx(chain_id="another-chain")
    texts = [good[0].to_b64(), wrong_chain.to_b64(), good[1].to_b64(), good[2].to_b64()]
    response = h.client.post("/v1/transactions/batch?wait=commit&timeout_ms=5000", json={"txs": texts})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["committed", "rejected", "committed", "committed"]
    assert results[1]["problem"]["reason"] == "wrong-chain" and "height" not in results[1]
    for tx, result in zip(good, (results[0], results[2], results[3]), strict=True):
        looked_up = h.client.get(f"/v1/transactions/{tx.tx_id.hex()}").json()
        assert looked_up["status"] == "committed"
        assert (result["id"], result["height"], result["index"]) == (
            tx.tx_id.hex(), looked_up["height"], looked_up["index"])


def test_a_batch_whose_wait_ends_first_answers_pending_and_keeps_the_txs() -> None:
    h = Harness(auto_commit=False)
    txs = [h.tx(), h.tx()]
    response = h.client.post("/v1/transactions/batch?wait=commit&timeout_ms=30",
                             json={"txs": [tx.to_b64() for tx in txs]})
    assert response.status_code == 200
    assert response.json()["results"] == [{"id": tx.tx_id.hex(), "status": "pending"} for tx in txs]
    assert {tx.tx_id for tx in txs} <= set(h.node.mempool)


def test_a_batch_with_a_bad_wait_or_timeout_is_refused_whole() -> None:
    h = Harness(auto_commit=False)
    before = h.snapshot()
    body = {"txs": [h.tx().to_b64()]}
    for query in ("wait=maybe", "wait=commit&timeout_ms=0", "wait=commit&timeout_ms=x"):
        response = h.client.post(f"/v1/transactions/batch?{query}", json=body)
        assert response.status_code == 400, query
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["reason"] == "bad-request"
    assert h.snapshot() == before
