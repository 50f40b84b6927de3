"""Deterministic execution of transactions against the authenticated state.

Execution is pure: the same base state, transactions and block context give the
same updates on every validator (no clock, no randomness, no IO), which is what
lets a header carry the state root *after* its block (execute-then-vote).

Transaction types are plugged in as handlers (``type -> Handler``); the node
knows none of them by name except the devnet's ``test.note``, which exists only
on a chain whose genesis enables it (:func:`chain_handlers`). The identity rules
(DIDs, governance, issuers, status lists) are composed in by whoever starts a
node, so ``node`` does not import ``identity``.

Each transaction runs inside a savepoint: a handler that raises leaves no write
behind. A proposer drops failing transactions; a validator re-executing a
proposal rejects the whole block if any transaction fails.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from ledger import statekeys
from ledger.constants import (
    BLOCK_TXS_MAX,
    VALIDATOR_SET_CHANGE_DELAY_HEIGHTS,
    VALIDATOR_SETS_PARSED_MAX,
)
from ledger.encoding import Value, decode, encode
from ledger.errors import BlockError, EncodingError, LedgerError, TransactionError
from ledger.genesis import Genesis
from ledger.tx import Transaction, refuse_replay
from ledger.validators import ValidatorSet


class StateReader(Protocol):
    """Read access to committed state at one version."""

    def get(self, key: bytes) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class BlockContext:
    chain_id: str
    height: int
    time_ms: int
    proposer: str


class Overlay:
    """Read-your-writes view over a base state with per-transaction savepoints."""

    __slots__ = ("_base", "_tx_writes", "_writes")

    def __init__(self, base: StateReader) -> None:
        self._base = base
        self._writes: dict[bytes, bytes | None] = {}
        self._tx_writes: dict[bytes, bytes | None] | None = None

    def get(self, key: bytes) -> bytes | None:
        if self._tx_writes is not None and key in self._tx_writes:
            return self._tx_writes[key]
        if key in self._writes:
            return self._writes[key]
        return self._base.get(key)

    def put(self, key: bytes, value: bytes | None) -> None:
        """Set (or delete, with ``None``) ``key`` within the current savepoint."""
        target = self._tx_writes if self._tx_writes is not None else self._writes
        target[key] = value

    def get_value(self, key: bytes) -> Value:
        raw = self.get(key)
        return None if raw is None else decode(raw)

    def put_value(self, key: bytes, value: Value) -> None:
        self.put(key, encode(value))

    def begin(self) -> None:
        assert self._tx_writes is None, "savepoints do not nest"
        self._tx_writes = {}

    def commit(self) -> None:
        assert self._tx_writes is not None
        self._writes.update(self._tx_writes)
        self._tx_writes = None

    def rollback(self) -> None:
        self._tx_writes = None

    def updates(self) -> dict[bytes, bytes | None]:
        assert self._tx_writes is None, "open savepoint"
        return dict(self._writes)


Handler = Callable[[Transaction, Overlay, BlockContext], None]


@dataclass(frozen=True, slots=True)
class BlockExecution:
    """What executing a block produced."""

    txs: tuple[Transaction, ...]  # accepted, in order
    rejected: tuple[tuple[bytes, str], ...]  # (tx id, reason) — proposer mode only
    updates: dict[bytes, bytes | None]
    next_validators: ValidatorSet


def genesis_state(genesis: Genesis) -> dict[bytes, bytes | None]:
    """The state before block 1: trustees, policy and the initial validator set."""
    return {
        statekeys.TRUSTEES: encode({
            "keys": [dict(t.to_jwk()) for t in genesis.trustees],
            "threshold": genesis.trustee_threshold,
        }),
        statekeys.POLICY: encode(genesis.policy),
        statekeys.VALSET_CURRENT: encode(genesis.validators.to_value()),
        statekeys.VALSET_PENDING: encode([]),
    }


def read_validator_set(state: StateReader) -> ValidatorSet:
    raw = state.get(statekeys.VALSET_CURRENT)
    if raw is None:
        raise BlockError("state has no validator set", reason="no-validator-set")
    return _validator_set_of(raw)


@functools.lru_cache(maxsize=VALIDATOR_SETS_PARSED_MAX)
def _validator_set_of(raw: bytes) -> ValidatorSet:
    """The (immutable) validator set stored as ``raw``: the same bytes are read after
    every block, and parsing and hashing them each time cost a noticeable share of an
    empty block's CPU. A pure function's cache; a bad set raises and is not cached."""
    return ValidatorSet.from_value(decode(raw))


def schedule_validator_set(state: Overlay, new_set: ValidatorSet, ctx: BlockContext) -> int:
    """Schedule ``new_set`` to certify blocks from ``ctx.height + delay`` on; returns that height."""
    effective = ctx.height + VALIDATOR_SET_CHANGE_DELAY_HEIGHTS
    pending = state.get_value(statekeys.VALSET_PENDING) or []
    assert isinstance(pending, list)
    pending = [p for p in pending if isinstance(p, dict) and p.get("height") != effective]
    pending.append({"height": effective, "set": new_set.to_value()})
    state.put_value(statekeys.VALSET_PENDING, pending)
    return effective


def _apply_due_validator_set(state: Overlay, ctx: BlockContext) -> None:
    """At the end of block h, a change effective at h+1 becomes the current set."""
    pending = state.get_value(statekeys.VALSET_PENDING) or []
    assert isinstance(pending, list)
    due = [p for p in pending if isinstance(p, dict) and p.get("height") == ctx.height + 1]
    if not due:
        return
    state.put_value(statekeys.VALSET_CURRENT, due[-1]["set"])
    state.put_value(statekeys.VALSET_PENDING,
                    [p for p in pending if isinstance(p, dict) and p.get("height") != ctx.height + 1])


def handle_test_note(tx: Transaction, state: Overlay, ctx: BlockContext) -> None:
    """``test.note``: a devnet load transaction; the sender is its own key id."""
    data = tx.payload.get("data")
    if set(tx.payload) != {"data"} or not isinstance(data, bytes) or len(data) > 1024:
        raise TransactionError("test.note payload is {data: bytes <= 1024}", reason="bad-payload")
    if len(tx.signatures) != 1 or tx.sender != tx.signatures[0].key_id:
        raise TransactionError("test.note sender must be its signer's key id", reason="unauthorized")
    state.put(statekeys.note_key(tx.sender), data)


class Executor:
    """Runs transactions through their handlers. Holds no state between calls."""

    __slots__ = ("chain_id", "handlers")

    def __init__(self, chain_id: str, handlers: Mapping[str, Handler]) -> None:
        self.chain_id = chain_id
        self.handlers = dict(handlers)

    def check_tx(
        self,
        tx: Transaction,
        state: StateReader,
        ctx: BlockContext,
        is_committed: Callable[[bytes], bool],
    ) -> None:
        """Admission check (mempool): would ``tx`` execute on top of ``state`` now?"""
        overlay = Overlay(state)
        self._run_one(tx, overlay, ctx, is_committed, set())

    def execute_block(
        self,
        base: StateReader,
        txs: Iterable[Transaction],
        ctx: BlockContext,
        is_committed: Callable[[bytes], bool],
        *,
        strict: bool,
    ) -> BlockExecution:
        """Execute ``txs`` in order on ``base``.

        ``strict`` (re-executing a proposal): any failing transaction raises
        :class:`BlockError`. Otherwise (building a proposal) failing ones are dropped.
        """
        overlay = Overlay(base)
        accepted: list[Transaction] = []
        rejected: list[tuple[bytes, str]] = []
        seen: set[bytes] = set()
        for tx in txs:
            if len(accepted) >= BLOCK_TXS_MAX:
                if strict:
                    raise BlockError("too many transactions", reason="block-too-large")
                break
            try:
                self._run_one(tx, overlay, ctx, is_committed, seen)
            except LedgerError as exc:
                if strict:
                    raise BlockError(f"transaction {tx.tx_id.hex()} fails: {exc}",
                                     reason="invalid-transaction-in-block") from exc
                rejected.append((tx.tx_id, exc.reason))
                continue
            seen.add(tx.tx_id)
            accepted.append(tx)
        _apply_due_validator_set(overlay, ctx)
        return BlockExecution(tuple(accepted), tuple(rejected), overlay.updates(),
                              read_validator_set(overlay))

    def _run_one(
        self,
        tx: Transaction,
        overlay: Overlay,
        ctx: BlockContext,
        is_committed: Callable[[bytes], bool],
        seen: set[bytes],
    ) -> None:
        tx.check_stateless(self.chain_id)
        tx.check_expiry(ctx.time_ms)
        refuse_replay(tx.tx_id, is_committed, seen)
        handler = self.handlers.get(tx.type)
        if handler is None:
            raise TransactionError(f"unknown transaction type {tx.type!r}", reason="unknown-type")
        overlay.begin()
        try:
            handler(tx, overlay, ctx)
        except LedgerError:
            overlay.rollback()
            raise
        except (EncodingError, KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            # Malformed payloads must reject the transaction, never stop the node;
            # every validator hits the same exception, so this stays deterministic.
            overlay.rollback()
            raise TransactionError(f"payload rejected: {exc!r}", reason="bad-payload") from exc
        overlay.commit()


DEVNET_HANDLERS: dict[str, Handler] = {"test.note": handle_test_note}
# Types that exist only on a chain whose genesis sets ``devnet``: anyone holding a fresh
# key may send them, so a closed (production) ledger must not know them at all.
DEVNET_TX_TYPES: frozenset[str] = frozenset(DEVNET_HANDLERS)


def chain_handlers(genesis: Genesis, handlers: Mapping[str, Handler]) -> dict[str, Handler]:
    """``handlers`` as the chain of ``genesis`` allows them: without the devnet-only types
    (:data:`DEVNET_TX_TYPES`) unless the genesis enables them. A node builds its executor
    from this, so a transaction of such a type is ``unknown-type`` on a closed chain."""
    if genesis.devnet:
        return dict(handlers)
    return {name: handler for name, handler in handlers.items() if name not in DEVNET_TX_TYPES}

__all__ = [
    "DEVNET_HANDLERS",
    "DEVNET_TX_TYPES",
    "BlockContext",
    "BlockExecution",
    "Executor",
    "Handler",
    "Overlay",
    "StateReader",
    "chain_handlers",
    "genesis_state",
    "handle_test_note",
    "read_validator_set",
    "schedule_validator_set",
]
