"""The in-process DevNode builds and stores blocks the way a validator does.

Its blocks come from ``LedgerApplication`` (propose, validate, apply), its
certificates from ``ledger.block.certify``, and the set that signs each block is
the one the chain's state names, not the genesis set it started with.
"""

from __future__ import annotations

import asyncio

import pytest

from ledger.errors import CertificateError
from ledger.execution import DEVNET_HANDLERS, BlockContext, Overlay, schedule_validator_set
from ledger.keys import SigningKey
from ledger.tx import Transaction
from tests.devnode import DevNode
from tests.factories import CHAIN_ID, consortium

NEXT = consortium(seed=7)  # the set the chain switches to
NOW_MS = consortium().genesis.time_ms + 1000  # the nodes' clock (blocks may share a time)
TTL_MS = 60_000


def _switch_to_next_set(tx: Transaction, state: Overlay, ctx: BlockContext) -> None:
    schedule_validator_set(state, NEXT.validators, ctx)


HANDLERS = {**DEVNET_HANDLERS, "test.switch": _switch_to_next_set}


def _tx(type_: str, payload: dict[str, bytes]) -> Transaction:
    key = SigningKey.generate()
    return Transaction.create(chain_id=CHAIN_ID, type=type_, sender=key.key_id, payload=payload,
                              expires_at_ms=NOW_MS + TTL_MS).sign(key)


def _node(*, with_next_keys: bool) -> DevNode:
    c = consortium()
    keys = [*c.keys.values(), *(NEXT.keys.values() if with_next_keys else ())]
    return DevNode(c.genesis, keys, handlers=HANDLERS, auto_commit=False, clock_ms=lambda: NOW_MS)


def _commit_switch(node: DevNode) -> int:
    """Commit the switch; returns the first height the new set certifies."""
    asyncio.run(node.submit(_tx("test.switch", {})))
    switched_at = node.commit().header.height
    while node.app.validators_at(node.store.height() + 1).hash != NEXT.validators.hash:
        node.commit()
    assert node.store.height() > switched_at
    return node.store.height() + 1


def test_each_block_is_proposed_in_turn_and_certified_by_the_set_of_its_height() -> None:
    node = _node(with_next_keys=True)
    first_new = _commit_switch(node)
    for _ in range(3):
        node.commit()
    for height in range(1, node.store.height() + 1):
        header, certificate = node.store.header(height), node.store.certificate(height)
        assert header is not None and certificate is not None
        validators = node.app.validators_at(height)
        assert header.validator_set_hash == validators.hash
        assert (validators.hash == NEXT.validators.hash) == (height >= first_new)
        assert header.proposer == validators.proposer(height, 0).key_id
        assert {signer for signer, _ in certificate.signatures} == {v.key_id for v in validators.validators}
        certificate.verify(header, validators)


def test_a_dev_node_without_the_new_sets_keys_stops_at_the_switch() -> None:
    node = _node(with_next_keys=False)
    first_new = _commit_switch(node)
    with pytest.raises(CertificateError):
        node.commit()
    assert node.store.height() == first_new - 1


def test_pending_transactions_are_proposed_through_the_mempool_and_leave_it_when_committed() -> None:
    node = _node(with_next_keys=False)
    txs = [_tx("test.note", {"data": f"n{i}".encode()}) for i in range(3)]
    for tx in txs:
        asyncio.run(node.submit(tx))
        asyncio.run(node.submit(tx))  # idempotent while pending
    assert node.submitted == 3 and all(node.is_pending(tx.tx_id) for tx in txs)
    block = node.commit()
    assert [tx.tx_id for tx in block.txs] == [tx.tx_id for tx in txs]
    assert len(node.mempool) == 0 and all(node.store.has_tx(tx.tx_id) for tx in txs)
