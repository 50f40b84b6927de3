"""Deterministic execution: savepoints, replay rejection, strict vs proposer mode, validator-set changes."""

from __future__ import annotations

import pytest

from ledger import statekeys
from ledger.errors import BlockError, TransactionError
from ledger.execution import (
    DEVNET_HANDLERS,
    BlockContext,
    Executor,
    Overlay,
    genesis_state,
    read_validator_set,
    schedule_validator_set,
)
from ledger.keys import SigningKey
from ledger.tx import Transaction
from ledger.validators import Validator, ValidatorSet
from tests.factories import CHAIN_ID, consortium, note_tx


class DictState:
    def __init__(self, items: dict[bytes, bytes | None]) -> None:
        self.items = {k: v for k, v in items.items() if v is not None}

    def get(self, key: bytes) -> bytes | None:
        return self.items.get(key)

    def apply(self, updates: dict[bytes, bytes | None]) -> None:
        for k, v in updates.items():
            if v is None:
                self.items.pop(k, None)
            else:
                self.items[k] = v


def ctx(height: int = 1, time_ms: int = 1_000) -> BlockContext:
    return BlockContext(CHAIN_ID, height, time_ms, "proposer")


def executor() -> Executor:
    return Executor(CHAIN_ID, DEVNET_HANDLERS)


def test_genesis_state_holds_the_validator_set_and_trustees() -> None:
    c = consortium()
    state = DictState(genesis_state(c.genesis))
    assert read_validator_set(state) == c.validators
    assert state.get(statekeys.TRUSTEES) is not None


def test_note_writes_the_senders_slot_and_execution_is_deterministic() -> None:
    c = consortium()
    txs = [note_tx(data=bytes([i])) for i in range(5)]
    results = [executor().execute_block(DictState(genesis_state(c.genesis)), txs, ctx(), lambda _: False, strict=True)
               for _ in range(2)]
    assert results[0].updates == results[1].updates
    assert results[0].updates[statekeys.note_key(txs[3].sender)] == bytes([3])


def test_proposer_mode_drops_failing_transactions_and_strict_mode_rejects_the_block() -> None:
    c = consortium()
    key = SigningKey.generate()
    bad = Transaction.create(chain_id=CHAIN_ID, type="test.note", sender="someone-else",
                             payload={"data": b"x"}, expires_at_ms=10**6).sign(key)
    unknown = Transaction.create(chain_id=CHAIN_ID, type="test.nope", sender=key.key_id,
                                 payload={}, expires_at_ms=10**6).sign(key)
    good = note_tx(key)
    state = DictState(genesis_state(c.genesis))
    out = executor().execute_block(state, [bad, good, unknown], ctx(), lambda _: False, strict=False)
    assert [t.tx_id for t in out.txs] == [good.tx_id]
    assert dict(out.rejected) == {bad.tx_id: "unauthorized", unknown.tx_id: "unknown-type"}
    with pytest.raises(BlockError) as exc:
        executor().execute_block(state, [good, bad], ctx(), lambda _: False, strict=True)
    assert exc.value.reason == "invalid-transaction-in-block"


def test_replayed_and_duplicate_and_expired_transactions_are_rejected() -> None:
    c = consortium()
    state = DictState(genesis_state(c.genesis))
    tx = note_tx()
    out = executor().execute_block(state, [tx, tx], ctx(), lambda _: False, strict=False)
    assert len(out.txs) == 1 and out.rejected[0][1] == "replayed-transaction"
    with pytest.raises(TransactionError) as replay:
        executor().check_tx(tx, state, ctx(), lambda tx_id: tx_id == tx.tx_id)
    assert replay.value.reason == "replayed-transaction"
    with pytest.raises(TransactionError) as expired:
        executor().check_tx(note_tx(expires_at_ms=500), state, ctx(time_ms=1_000), lambda _: False)
    assert expired.value.reason == "expired-transaction"


def test_a_failing_handler_leaves_no_partial_writes() -> None:
    def half_then_fail(tx, state, context):  # type: ignore[no-untyped-def]
        state.put(b"note/partial", b"1")
        raise TransactionError("no", reason="nope")

    c = consortium()
    state = DictState(genesis_state(c.genesis))
    ex = Executor(CHAIN_ID, {"test.note": half_then_fail})
    out = ex.execute_block(state, [note_tx()], ctx(), lambda _: False, strict=False)
    assert b"note/partial" not in out.updates and out.rejected[0][1] == "nope"


def test_malformed_payload_crashing_a_handler_is_a_rejection_not_a_crash() -> None:
    def fragile(tx, state, context):  # type: ignore[no-untyped-def]
        state.put(b"x", tx.payload["missing"])

    c = consortium()
    ex = Executor(CHAIN_ID, {"test.note": fragile})
    out = ex.execute_block(DictState(genesis_state(c.genesis)), [note_tx()], ctx(), lambda _: False, strict=False)
    assert out.rejected[0][1] == "bad-payload"


def test_validator_set_change_takes_effect_exactly_at_the_scheduled_height() -> None:
    c = consortium()
    state = DictState(genesis_state(c.genesis))
    new_member = Validator("v9", SigningKey.generate().public_key, 1, "127.0.0.1:9", bytes(32))
    new_set = ValidatorSet.of([*c.validators.validators, new_member])
    overlay = Overlay(state)
    effective = schedule_validator_set(overlay, new_set, ctx(height=5))
    assert effective == 7
    state.apply(overlay.updates())
    seen = {}
    for h in (5, 6, 7):
        out = executor().execute_block(state, [], ctx(height=h), lambda _: False, strict=True)
        state.apply(out.updates)
        seen[h] = out.next_validators
    assert seen[5] == c.validators  # certifies block 6
    assert seen[6] == new_set  # certifies block 7 = effective height
    assert seen[7] == new_set
