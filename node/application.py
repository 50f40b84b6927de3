"""The consensus Application over the LedgerStore and the Executor (execute-then-vote).

* :meth:`LedgerApplication.build_block` — the proposer takes a mempool batch,
  executes it on the last committed state (dropping failing transactions), and
  returns a block whose header carries the resulting state root, the tx root,
  the log root and size, and the hashes of the validator sets that certify this
  block and the next. Its time is the driver's wall clock, never earlier than
  the previous block's.
* :meth:`LedgerApplication.validate_block` — every validator re-executes the
  block strictly and accepts it only if every header field is reproduced
  exactly and its time is within ``BLOCK_TIME_DRIFT_MS_MAX`` of our clock.
* :meth:`LedgerApplication.apply_committed` — the driver's path for decided
  blocks (and the in-process dev node's): verify the commit certificate against
  the set named for that height, reuse (or redo) the execution, and store the
  block in one atomic batch (``LedgerStore.append_block``). Idempotent for
  heights already stored.
* :meth:`LedgerApplication.apply_certified` — catch-up's path: the same checks
  for many consecutive blocks, stored with ONE atomic write (:mod:`node.staging`).

Executions are cached by block hash between validation and commit (bounded by
``EXECUTIONS_CACHED_MAX``) so a block is normally executed once per validator.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from ledger.block import Block, BlockHeader, CommitCertificate, merkle_root
from ledger.constants import BLOCK_TIME_DRIFT_MS_MAX, PROPOSER_WINDOW_HEIGHTS
from ledger.encoding import Canonical, Value
from ledger.errors import BlockError, LedgerError
from ledger.execution import BlockContext, Executor, read_validator_set
from ledger.genesis import Genesis
from ledger.lru import BoundedLRU
from ledger.storage import BlockPreview, LedgerStore
from ledger.tx import Transaction
from ledger.validators import ValidatorSet, proposer_window
from node.constants import PROPOSE_BATCH_TXS_MAX, SYNC_BATCH_STAGED_BYTES_MAX
from node.mempool import Mempool
from node.staging import StagedKV

log = logging.getLogger("imi.app")

EXECUTIONS_CACHED_MAX = 16
VALIDATOR_SETS_CACHED_MAX = 64
# Last committed blocks kept decoded: peers a height or two behind ask for them
# (Core._help) far more often than for anything older.
RECENT_BLOCKS_CACHED_MAX = 8
SIGNER_SETS_CACHED_MAX = 4 * PROPOSER_WINDOW_HEIGHTS  # headers' last_commit signer sets, by height

Updates = dict[bytes, bytes | None]
CommitListener = Callable[[Block], None]


class LedgerApplication:
    """Implements :class:`node.consensus.types.Application` for one validator."""

    def __init__(
        self,
        *,
        store: LedgerStore,
        executor: Executor,
        genesis: Genesis,
        mempool: Mempool | None,
        my_key_id: str,
        now_ms: Callable[[], int],
    ) -> None:
        self.store = store
        self.executor = executor
        self.genesis = genesis
        self.mempool = mempool
        self.my_key_id = my_key_id
        self.now_ms = now_ms
        self._executions: BoundedLRU[bytes, tuple[Updates, BlockPreview]] = BoundedLRU(EXECUTIONS_CACHED_MAX)
        self._built: Block | None = None  # the block object build_block returned last
        self._validator_sets: BoundedLRU[int, ValidatorSet] = BoundedLRU(VALIDATOR_SETS_CACHED_MAX)
        self._recent: BoundedLRU[int, tuple[Block, CommitCertificate]] = BoundedLRU(RECENT_BLOCKS_CACHED_MAX)
        self._signers: BoundedLRU[int, frozenset[str]] = BoundedLRU(SIGNER_SETS_CACHED_MAX)  # height -> signers
        self.listeners: list[CommitListener] = []
        self.rejected_blocks = 0

    # --- helpers -----------------------------------------------------------------------
    def height(self) -> int:
        return self.store.height()

    def _prev(self) -> tuple[bytes, int]:
        """(hash, time_ms) of the head block, or of the genesis before block 1."""
        head = self.store.head()
        if head is None:
            return self.genesis.hash, self.genesis.time_ms
        return head.hash, head.time_ms

    def _remember(self, block_hash: bytes, updates: Updates, preview: BlockPreview) -> None:
        self._executions.put(block_hash, (updates, preview))

    # --- Application protocol ----------------------------------------------------------
    def validators_at(self, height: int) -> ValidatorSet:
        """The set certifying block ``height``: the state's set after block ``height - 1``."""
        cached = self._validator_sets.get(height)
        if cached is not None:
            return cached
        if not 1 <= height <= self.store.height() + 1:
            raise BlockError(f"validator set of height {height} is not known yet", reason="unknown-height")
        previous = self._validator_sets.get(height - 1)
        header = self.store.header(height - 1) if previous is not None and height > 1 else None
        if previous is not None and header is not None and header.next_validator_set_hash == previous.hash:
            vset = previous  # unchanged (the usual case): skip re-reading and re-hashing it
        else:
            vset = read_validator_set(self.store.state_reader(height - 1))
        self._validator_sets.put(height, vset)
        return vset

    def inactive_at(self, height: int) -> frozenset[str]:
        """Members of ``validators_at(height)`` skipped as its round-0 proposer: those whose
        precommits none of the last committed headers' ``last_commit`` holds."""
        recent = []
        for h in proposer_window(height):
            signers = self._signers.get(h)
            if signers is None:
                header = self.store.header(h)
                if header is None:
                    raise BlockError(f"header {h} is not stored", reason="unknown-height")
                signers = frozenset() if header.last_commit is None else header.last_commit.signers
                self._signers.put(h, signers)
            recent.append(signers)
        return self.validators_at(height).inactive(recent)

    def _last_commit(self, height: int) -> CommitCertificate | None:
        """Our certificate of block ``height - 1``, which the header of ``height`` carries."""
        if height == 1:
            return None
        found = self.committed_block(height - 1)
        if found is None:
            raise BlockError(f"no certificate for block {height - 1}", reason="unknown-height")
        return found[1]

    def build_block(self, height: int, round_: int, last_commit: CommitCertificate | None = None) -> Block:
        if height != self.store.height() + 1:
            raise BlockError(f"asked to build {height} on head {self.store.height()}", reason="bad-height")
        prev_hash, prev_time = self._prev()
        time_ms = max(self.now_ms(), prev_time)
        txs: list[Transaction] = []
        if self.mempool is not None:
            self.mempool.evict_expired(time_ms)
            txs = self.mempool.batch(PROPOSE_BATCH_TXS_MAX)
        ctx = BlockContext(self.genesis.chain_id, height, time_ms, self.my_key_id)
        execution = self.executor.execute_block(self.store.state_reader(height - 1), txs, ctx,
                                                self.store.has_tx, strict=False)
        if execution.rejected and self.mempool is not None:
            self.mempool.remove(tx_id for tx_id, _ in execution.rejected)
        ids = [tx.tx_id for tx in execution.txs]
        preview = self.store.preview(ids, execution.updates)
        header = BlockHeader(
            chain_id=self.genesis.chain_id, height=height, round=round_, prev_hash=prev_hash,
            time_ms=time_ms, tx_root=merkle_root(ids), tx_count=len(ids),
            log_root=preview.log_root, log_size=preview.log_size, state_root=preview.state_root,
            validator_set_hash=self.validators_at(height).hash,
            next_validator_set_hash=execution.next_validators.hash, proposer=self.my_key_id,
            last_commit=last_commit if last_commit is not None else self._last_commit(height),
        )
        block = Block(header, execution.txs)
        self._remember(block.hash, execution.updates, preview)
        self._built = block
        return block

    def validate_block(self, block: Block) -> bool:
        try:
            self._check(block, check_clock=True)
        except LedgerError as exc:
            self.rejected_blocks += 1
            log.warning("rejecting block %d: %s [%s]", block.header.height, exc, exc.reason)
            return False
        return True

    def committed_block(self, height: int) -> tuple[Block, CommitCertificate] | None:
        recent = self._recent.get(height)
        if recent is not None:
            return recent
        block = self.store.block(height)
        certificate = self.store.certificate(height)
        if block is None or certificate is None:
            return None
        return block, certificate

    def committed_block_wire(self, height: int) -> tuple[Canonical, Value] | None:
        """Block ``height`` and its certificate as catch-up sends them (the block encoded,
        its transactions not parsed), or None if not stored."""
        recent = self._recent.get(height)
        if recent is not None:
            return recent[0].canonical(), recent[1].to_value()
        block = self.store.block_canonical(height)
        certificate = self.store.certificate(height)
        if block is None or certificate is None:
            return None
        return block, certificate.to_value()

    # --- committing ------------------------------------------------------------------------
    def apply_committed(self, block: Block, certificate: CommitCertificate) -> bool:
        """Verify and store a decided block; False if that height is already stored.

        Raises :class:`BlockError` / :class:`CertificateError` if the block or its
        certificate does not check (nothing is written then).

        This is where a stored block's certificate is verified, once, before the
        block is re-executed (a catching-up node must not pay an execution for a
        peer's forged certificate); the store only re-checks that the certificate
        names the header (see :meth:`LedgerStore.append_block`).
        """
        if self._stored_already(block.header):
            return False
        certificate.verify(block.header, self.validators_at(block.header.height))
        updates, preview = self._execution_of(block)
        # The preview made when the block was built or validated carries the tree
        # writes; the store reuses them if the head has not moved since.
        self.store.append_block(block, certificate, updates, preview)
        self._stored(block, certificate)
        return True

    def apply_certified(self, pairs: Sequence[tuple[Block, CommitCertificate]], *,
                        staged_bytes_max: int = SYNC_BATCH_STAGED_BYTES_MAX,
                        before_store: Callable[[], None] | None = None) -> tuple[int, LedgerError | None]:
        """Catch-up's path: verify and store consecutive decided blocks in ONE atomic write.

        Every block gets what :meth:`apply_committed` gives one: its certificate verified
        once, against the set the chain names for its height (the blocks staged before it
        included, so a set changed inside the batch is followed), strict re-execution and
        every root checked. They are appended to a store over a :class:`StagedKV` and then
        flushed with one write of the real KV: a crash before or during that write leaves
        the store at its previous head. Stops at the first block that does not check (the
        blocks before it are stored) and after the block that takes the staged writes
        past ``staged_bytes_max``. ``before_store`` is called once, after the first new
        block's certificate verified and before anything is written.

        Returns (blocks consumed: stored, or held already; the error that stopped it).
        """
        main, staged = self.store, StagedKV(self.store.kv)
        done: list[tuple[Block, CommitCertificate]] = []
        consumed, error = 0, None
        self.store = LedgerStore(staged)  # validators_at, _check and the rest read the staged chain
        try:
            for block, certificate in pairs:
                try:
                    if not self._stored_already(block.header):
                        certificate.verify(block.header, self.validators_at(block.header.height))
                        if before_store is not None:
                            before_store()
                            before_store = None
                        updates, preview = self._execution_of(block)
                        self.store.append_block(block, certificate, updates, preview)
                        done.append((block, certificate))
                except LedgerError as exc:
                    error = exc
                    break
                consumed += 1
                if staged.staged_bytes >= staged_bytes_max:
                    break
        finally:
            self.store = main
        if done:
            staged.flush()
            main.reread_head()
            for block, certificate in done:
                self._stored(block, certificate)
        return consumed, error

    def _stored_already(self, header: BlockHeader) -> bool:
        """True if block ``header.height`` is stored (this very block: else BlockError)."""
        if header.height > self.store.height():
            return False
        existing = self.store.header(header.height)
        if existing is None or existing.hash != header.hash:
            raise BlockError(f"a different block {header.height} is committed here", reason="conflicting-commit")
        return True

    def _execution_of(self, block: Block) -> tuple[Updates, BlockPreview]:
        """The block's updates and store preview: remembered from its validation, or re-executed."""
        remembered = self._executions.pop(block.hash)
        return remembered if remembered is not None else self._check(block, check_clock=False)

    def _stored(self, block: Block, certificate: CommitCertificate) -> None:
        """After ``block`` is written: caches, the mempool, and the listeners."""
        height = block.header.height
        self._recent.put(height, (block, certificate))
        for stale in [h for h in self._validator_sets if h <= height - VALIDATOR_SETS_CACHED_MAX // 2]:
            self._validator_sets.discard(stale)
        if self.mempool is not None:
            self.mempool.remove(tx.tx_id for tx in block.txs)
        for listener in self.listeners:
            listener(block)

    def _admitted(self, txs: tuple[Transaction, ...]) -> list[Transaction]:
        """``txs`` with each one replaced by the mempool's object when equal in every field
        (signatures included): that object already passed its stateless checks here, and
        a transaction remembers it, so its signatures are not verified twice."""
        if self.mempool is None:
            return list(txs)
        out = []
        for tx in txs:
            pending = self.mempool.get(tx.tx_id)
            out.append(pending if pending is not None and (pending is tx or pending == tx) else tx)
        return out

    def _check_last_commit(self, header: BlockHeader) -> None:
        """The header's certificate of the previous block must verify (its signer set feeds
        the proposer rule of the heights after it); only block 1 carries none."""
        last = header.last_commit
        if header.height == 1:
            if last is not None:
                raise BlockError("block 1 carries a last commit", reason="bad-last-commit")
            return
        previous = self.store.header(header.height - 1)
        if last is None or previous is None:
            raise BlockError("header lacks the previous block's certificate", reason="bad-last-commit")
        last.verify(previous, self.validators_at(header.height - 1))

    def _check(self, block: Block, *, check_clock: bool) -> tuple[Updates, BlockPreview]:
        """Re-execute ``block`` on the head state; return its updates and store preview,
        or raise :class:`BlockError`."""
        h = block.header
        if h.chain_id != self.genesis.chain_id:
            raise BlockError("block of another chain", reason="wrong-chain")
        if h.height != self.store.height() + 1:
            raise BlockError(f"block {h.height} does not follow head {self.store.height()}", reason="bad-height")
        prev_hash, prev_time = self._prev()
        if h.prev_hash != prev_hash:
            raise BlockError("prev_hash does not link to the head", reason="broken-link")
        validators = self.validators_at(h.height)
        if h.validator_set_hash != validators.hash:
            raise BlockError("header names another validator set", reason="wrong-validator-set")
        if h.proposer != validators.proposer(h.height, h.round, self.inactive_at(h.height)).key_id:
            raise BlockError("proposer out of turn", reason="wrong-proposer")
        self._check_last_commit(h)
        if h.time_ms < prev_time:
            raise BlockError("block time goes backwards", reason="bad-time")
        if check_clock and abs(h.time_ms - self.now_ms()) > BLOCK_TIME_DRIFT_MS_MAX:
            raise BlockError("block time too far from our clock", reason="clock-drift")
        block.check_body()
        remembered = self._executions.get(block.hash) if block is self._built else None
        if remembered is not None:
            # Our own proposal, the very object build_block made from this head: it was
            # executed there (dropping what failed), and executing the same transactions
            # on the same state again gives the same updates and roots. Re-running it
            # held our prevote (and so the height) back by a whole block execution.
            return remembered
        ctx = BlockContext(h.chain_id, h.height, h.time_ms, h.proposer)
        execution = self.executor.execute_block(self.store.state_reader(h.height - 1),
                                                self._admitted(block.txs), ctx,
                                                self.store.has_tx, strict=True)
        if execution.next_validators.hash != h.next_validator_set_hash:
            raise BlockError("next validator set differs", reason="wrong-validator-set")
        preview = self.store.preview([tx.tx_id for tx in block.txs], execution.updates)
        if (preview.log_root, preview.log_size) != (h.log_root, h.log_size):
            raise BlockError("log root or size differs", reason="log-root-mismatch")
        if preview.state_root != h.state_root:
            raise BlockError("state root differs after re-execution", reason="state-root-mismatch")
        self._remember(block.hash, execution.updates, preview)
        return execution.updates, preview


__all__ = ["LedgerApplication"]
