"""A deterministic Application for the simulator.

Blocks carry ``test.note`` transactions (and, in some seeds, one ``sim.valset``
governance transaction) executed by the real :class:`ledger.execution.Executor` on
an in-memory dict state. The state root is a stand-in (a hash of the sorted
items), as is the transaction log root; everything else in the header is what a
real node computes, and :meth:`SimApp.validate_block` re-derives the whole header.

The ledger part (committed blocks, states) is durable across simulated crashes;
the mempool is not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from ledger.block import Block, BlockHeader, CommitCertificate, merkle_root
from ledger.encoding import decode
from ledger.errors import BlockError, LedgerError, TransactionError
from ledger.execution import (
    BlockContext,
    BlockExecution,
    Executor,
    Overlay,
    genesis_state,
    handle_test_note,
    read_validator_set,
    schedule_validator_set,
)
from ledger.genesis import Genesis
from ledger.tx import Transaction
from ledger.validators import ValidatorSet, proposer_window

BLOCK_MS = 1_000  # simulated block time step: time_ms = genesis time + height * BLOCK_MS
SIM_BLOCK_TXS_MAX = 4  # the simulated proposer takes at most this many transactions
VALSET_TX_TYPE = "sim.valset"

State = dict[bytes, bytes]


def state_root(state: State) -> bytes:
    """Stand-in for the authenticated state root: SHA-256 over the sorted items."""
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(len(key).to_bytes(4, "big") + key + len(state[key]).to_bytes(4, "big") + state[key])
    return h.digest()


def make_executor(chain_id: str, trustee_id: str) -> Executor:
    def handle_valset(tx: Transaction, overlay: Overlay, ctx: BlockContext) -> None:
        if tx.signer_ids != (trustee_id,):
            raise TransactionError("sim.valset must be signed by the sim trustee", reason="unauthorized")
        new_set = ValidatorSet.from_value(tx.payload["set"])
        schedule_validator_set(overlay, new_set, ctx)

    return Executor(chain_id, {"test.note": handle_test_note, VALSET_TX_TYPE: handle_valset})


@dataclass
class SharedCaches:
    """Caches shared by all simulated nodes of one run (sound: execution is deterministic
    and a block hash commits to its parent, so one result serves every node)."""

    executions: dict[bytes, tuple[State, ValidatorSet]] = field(default_factory=dict)
    valsets: dict[bytes, ValidatorSet] = field(default_factory=dict)
    proposers: dict[tuple[bytes, int, int, frozenset[str]], str] = field(default_factory=dict)


@dataclass
class Ledger:
    """The durable part of a node: committed blocks with certificates and the states after them."""

    genesis: Genesis
    blocks: list[tuple[Block, CommitCertificate]] = field(default_factory=list)
    states: list[State] = field(default_factory=list)  # states[h] = state after block h
    tx_ids: set[bytes] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not self.states:
            base = genesis_state(self.genesis)
            self.states.append({k: v for k, v in base.items() if v is not None})

    @property
    def height(self) -> int:
        return len(self.blocks)


class SimApp:
    """One node's Application. ``evil`` makes it propose blocks with an invalid transaction."""

    def __init__(self, ledger: Ledger, executor: Executor, caches: SharedCaches,
                 bad_tx: Transaction | None = None) -> None:
        self.ledger = ledger
        self.executor = executor
        self.caches = caches
        self.mempool: list[Transaction] = []
        self.bad_tx = bad_tx  # set for a Byzantine proposer that smuggles an invalid tx
        self.chain_id = ledger.genesis.chain_id

    # --- Application protocol -------------------------------------------------------
    def validators_at(self, height: int) -> ValidatorSet:
        if not 1 <= height <= self.ledger.height + 1:
            raise BlockError(f"validator set of height {height} unknown", reason="unknown-height")
        raw = self.ledger.states[height - 1][b"valset/current"]
        found = self.caches.valsets.get(raw)
        if found is None:
            found = self.caches.valsets[raw] = ValidatorSet.from_value(decode(raw))
        return found

    def inactive_at(self, height: int) -> frozenset[str]:
        recent = []
        for h in proposer_window(height):
            last = self.ledger.blocks[h - 1][0].header.last_commit
            recent.append(frozenset() if last is None else last.signers)
        return self.validators_at(height).inactive(recent)

    def build_block(self, height: int, round_: int, last_commit: CommitCertificate | None = None) -> Block:
        assert height == self.ledger.height + 1
        ctx = self._context(height, round_)
        candidates = [t for t in self.mempool if t.tx_id not in self.ledger.tx_ids][:SIM_BLOCK_TXS_MAX]
        run = self.executor.execute_block(self.ledger.states[-1], candidates, ctx,
                                          self.ledger.tx_ids.__contains__, strict=False)
        txs = run.txs
        if self.bad_tx is not None:
            txs = txs + (self.bad_tx,)
        new_state = self._apply_updates(run)
        last = last_commit or (self.ledger.blocks[-1][1] if self.ledger.blocks else None)
        block = Block(self._header(height, round_, txs, new_state, run.next_validators, last), txs)
        if self.bad_tx is None:
            self.caches.executions[block.hash] = (new_state, run.next_validators)
        return block

    def validate_block(self, block: Block) -> bool:
        try:
            self._execute(block)
        except (LedgerError, AssertionError):
            return False
        return True

    def committed_block(self, height: int) -> tuple[Block, CommitCertificate] | None:
        if 1 <= height <= self.ledger.height:
            return self.ledger.blocks[height - 1]
        return None

    # --- driver side -----------------------------------------------------------------
    def apply(self, block: Block, cert: CommitCertificate) -> bool:
        """Apply a decided block durably; idempotent. Returns False if already held."""
        height = block.header.height
        if height <= self.ledger.height:
            if self.ledger.blocks[height - 1][0].hash != block.hash:
                raise AssertionError(f"node re-decided height {height} with another block")
            return False
        assert height == self.ledger.height + 1, "committed blocks must arrive in order"
        new_state, _ = self._execute(block)
        self.ledger.blocks.append((block, cert))
        self.ledger.states.append(new_state)
        self.ledger.tx_ids.update(t.tx_id for t in block.txs)
        return True

    # --- internals ---------------------------------------------------------------------
    def _proposer(self, height: int, round_: int) -> str:
        validators = self.validators_at(height)
        inactive = self.inactive_at(height) if round_ == 0 else frozenset()
        key = (validators.hash, height, round_, inactive)
        found = self.caches.proposers.get(key)
        if found is None:  # a key id is a JWK thumbprint: worth computing once per run
            found = self.caches.proposers[key] = validators.proposer(height, round_, inactive).key_id
        return found

    def _context(self, height: int, round_: int) -> BlockContext:
        proposer = self._proposer(height, round_)
        return BlockContext(self.chain_id, height, self.ledger.genesis.time_ms + height * BLOCK_MS, proposer)

    def _execute(self, block: Block) -> tuple[State, ValidatorSet]:
        """Re-derive ``block``'s header on our last committed state; raise if it differs."""
        header = block.header
        if header.height != self.ledger.height + 1:
            raise BlockError("block is not for the next height", reason="wrong-height")
        cached = self.caches.executions.get(block.hash)
        if cached is None:
            block.check_body()
            ctx = self._context(header.height, header.round)
            run = self.executor.execute_block(self.ledger.states[-1], block.txs, ctx,
                                              self.ledger.tx_ids.__contains__, strict=True)
            new_state = self._apply_updates(run)
            self._check_last_commit(block)
            expected = self._header(header.height, header.round, run.txs, new_state, run.next_validators,
                                    header.last_commit)
            if expected != header or expected.hash != header.hash:
                raise BlockError("header does not re-derive", reason="header-mismatch")
            cached = (new_state, run.next_validators)
            self.caches.executions[block.hash] = cached
        elif header.prev_hash != self._prev_hash():
            raise BlockError("block does not extend our chain", reason="wrong-parent")
        return cached

    def _check_last_commit(self, block: Block) -> None:
        """The proposer's certificate of the previous block (its own choice of signers,
        so not re-derived) must verify; only block 1 carries none."""
        last = block.header.last_commit
        if not self.ledger.blocks:
            if last is not None:
                raise BlockError("block 1 carries a last commit", reason="bad-last-commit")
            return
        if last is None:
            raise BlockError("header lacks the previous block's certificate", reason="bad-last-commit")
        previous = self.ledger.blocks[-1][0].header
        last.verify(previous, self.validators_at(previous.height))

    def _apply_updates(self, run: BlockExecution) -> State:
        state = dict(self.ledger.states[-1])
        for key, value in run.updates.items():
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
        return state

    def _prev_hash(self) -> bytes:
        return self.ledger.blocks[-1][0].hash if self.ledger.blocks else self.ledger.genesis.hash

    def _header(self, height: int, round_: int, txs: tuple[Transaction, ...], new_state: State,
                next_validators: ValidatorSet, last_commit: CommitCertificate | None) -> BlockHeader:
        prev_log_root = self.ledger.blocks[-1][0].header.log_root if self.ledger.blocks else bytes(32)
        log = hashlib.sha256(prev_log_root + b"".join(t.tx_id for t in txs)).digest()
        validators = self.validators_at(height)
        return BlockHeader(
            chain_id=self.chain_id, height=height, round=round_, prev_hash=self._prev_hash(),
            time_ms=self.ledger.genesis.time_ms + height * BLOCK_MS,
            tx_root=merkle_root([t.tx_id for t in txs]), tx_count=len(txs),
            log_root=log, log_size=sum(b.header.tx_count for b, _ in self.ledger.blocks) + len(txs),
            state_root=state_root(new_state), validator_set_hash=validators.hash,
            next_validator_set_hash=next_validators.hash,
            proposer=self._proposer(height, round_), last_commit=last_commit,
        )


IsCommitted = Callable[[bytes], bool]

__all__ = ["BLOCK_MS", "Ledger", "SharedCaches", "SimApp", "make_executor", "read_validator_set", "state_root"]
