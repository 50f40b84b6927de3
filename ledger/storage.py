"""The ledger store: committed blocks, certificates, transactions, log and state.

:class:`LedgerStore` lays the ledger out in one KV under one-byte key
namespaces (``PREFIX_*`` below) and writes each block as one batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ledger.block import Block, BlockHeader, CommitCertificate
from ledger.encoding import Canonical, Value, decode, encode, nesting_depth
from ledger.errors import BlockError, ProofError, ReplayError, StorageError
from ledger.genesis import Genesis
from ledger.kv import KV, WriteBatch
from ledger.merkle import MerkleLog, leaf_hash
from ledger.state import StateProof, StateTree, StateView
from ledger.tx import Transaction, refuse_replay

# One-byte key namespaces. Heights are 8-byte big-endian so keys sort by height.
PREFIX_META = b"\x00"  # b"\x00head" -> [height, hash]; b"\x00genesis" -> genesis JSON
PREFIX_HEADER = b"h"  # height -> canonical header
PREFIX_BODY = b"b"  # height -> [tx id, ...]
PREFIX_CERT = b"c"  # height -> canonical commit certificate
PREFIX_BLOCK_HASH = b"k"  # block hash -> height
PREFIX_TX = b"t"  # tx id -> [height, index in block, index in log, tx]
PREFIX_LOG = b"m"  # Merkle log of tx ids (see ledger.merkle.MerkleLog)
PREFIX_STATE_NODE = b"s"  # state tree nodes by hash (see ledger.state.StateTree)
PREFIX_STATE_ROOT = b"r"  # state version (height) -> root
_HEAD_KEY = PREFIX_META + b"head"
_GENESIS_KEY = PREFIX_META + b"genesis"
_UNREAD = object()  # LedgerStore._head before the first read


@dataclass(frozen=True, slots=True)
class TxRecord:
    """A committed transaction and where it sits: block height, index in the block, index in the log."""

    tx: Transaction
    height: int
    index: int
    log_index: int


@dataclass(frozen=True, slots=True)
class BlockPreview:
    """What a header must carry if a block with these txs and state updates follows the head.

    It keeps the log and state writes it computed (``writes``, on top of head
    ``base_height``), so :meth:`LedgerStore.append_block` can reuse them instead of
    applying the same updates to the trees a second time.
    """

    log_size: int
    log_root: bytes
    state_root: bytes
    base_height: int = -1
    writes: WriteBatch = field(default_factory=WriteBatch, repr=False, compare=False)


def _height_key(prefix: bytes, height: int) -> bytes:
    return prefix + height.to_bytes(8, "big")


class LedgerStore:
    """Blocks, certificates, transactions, the transaction log and the state, in one KV.

    Every block is written by :meth:`append_block` as ONE atomic batch (header,
    body, txs by id, certificate, log nodes, state nodes and root, head pointer),
    so after a crash the store holds exactly the blocks up to some head and
    nothing of the next. Opening checks the head's integrity and raises
    :class:`StorageError` if it does not hold.
    """

    __slots__ = ("_head", "_head_header", "_head_view", "kv", "log", "state")

    def __init__(self, kv: KV) -> None:
        self.kv = kv
        # The head pointer, read once and then kept current by append_block (this store
        # is the only writer of its KV): admission and the API ask for it constantly.
        self._head: tuple[int, bytes] | None | object = _UNREAD
        self._head_view: tuple[int, StateView] | None = None
        self._head_header: BlockHeader | None = None  # decoded (and hashed) once per block
        self.log = MerkleLog(kv, PREFIX_LOG)
        self.state = StateTree(kv, node_prefix=PREFIX_STATE_NODE, root_prefix=PREFIX_STATE_ROOT)
        self.check_integrity()

    # -- setup

    def initialize(self, genesis: Genesis, state: Mapping[bytes, bytes | None]) -> bytes:
        """Store ``genesis`` and the state before block 1 (version 0); returns that state root.

        Requires an empty store (no genesis yet).
        """
        if self.kv.get(_GENESIS_KEY) is not None:
            raise StorageError("store already holds a genesis", reason="already-initialized")
        batch = WriteBatch()
        root = self.state.apply(state, 0, batch)
        batch.put(_GENESIS_KEY, genesis.dumps().encode("utf-8"))
        self.kv.write(batch)
        return root

    def genesis(self) -> Genesis | None:
        raw = self.kv.get(_GENESIS_KEY)
        return None if raw is None else Genesis.loads(raw.decode("utf-8"))

    # -- the head

    def head_pointer(self) -> tuple[int, bytes] | None:
        """(height, block hash) of the last stored block, or None before block 1."""
        if self._head is not _UNREAD:
            return self._head  # type: ignore[return-value]
        raw = self.kv.get(_HEAD_KEY)
        if raw is None:
            self._head = None
            return None
        value = decode(raw)
        if not (isinstance(value, list) and len(value) == 2 and type(value[0]) is int
                and isinstance(value[1], bytes)):
            raise StorageError("head pointer is malformed")
        self._head = (value[0], value[1])
        return self._head

    def reread_head(self) -> None:
        """Forget the head kept in memory: another store over the same KV appended blocks
        (a catching-up validator stages many blocks in one and writes them at once)."""
        self._head = _UNREAD
        self._head_view = None
        self._head_header = None

    def height(self) -> int:
        """Height of the last stored block (0 before block 1)."""
        pointer = self.head_pointer()
        return 0 if pointer is None else pointer[0]

    def head(self) -> BlockHeader | None:
        """Header of the last stored block, or None before block 1."""
        pointer = self.head_pointer()
        if pointer is None:
            return None
        self._head_header = self.header(pointer[0])  # header() answers from it while current
        return self._head_header

    def check_integrity(self) -> None:
        """Raise :class:`StorageError` unless the head block, its certificate, the log
        and the state it names are all present and consistent."""
        pointer = self.head_pointer()
        if pointer is None:
            if self.kv.get(_GENESIS_KEY) is not None and self.state.latest_version() != 0:
                raise StorageError("genesis state is missing", reason="storage-corrupt")
            return
        height, block_hash = pointer
        header = self.header(height)
        if header is None or header.hash != block_hash:
            raise StorageError(f"head block {height} is missing or does not match the head pointer")
        if self.kv.get(_height_key(PREFIX_BODY, height)) is None or self.certificate(height) is None:
            raise StorageError(f"head block {height} has no body or certificate")
        if self.state.latest_version() != height or self.state.root_at(height) != header.state_root:
            raise StorageError(f"state root of head block {height} is missing or differs")
        if self.log.size() != header.log_size or self.log.root() != header.log_root:
            raise StorageError(f"transaction log does not match head block {height}")

    # -- writing

    def preview(self, tx_ids: Sequence[bytes], state_updates: Mapping[bytes, bytes | None]) -> BlockPreview:
        """Log size/root and state root after a block with ``tx_ids`` and ``state_updates``
        on top of the head; writes nothing (for the proposer building a header)."""
        scratch = WriteBatch()
        height = self.height()
        size, root = self.log.append([leaf_hash(tx_id) for tx_id in tx_ids], scratch)
        state_root = self.state.apply(state_updates, height + 1, scratch, base_version=height)
        return BlockPreview(size, root, state_root, height, scratch)

    def append_block(
        self,
        block: Block,
        certificate: CommitCertificate,
        state_updates: Mapping[bytes, bytes | None],
        prepared: BlockPreview | None = None,
    ) -> None:
        """Store ``block`` (the head's successor) with its certificate and state changes, atomically.

        Checks before writing: height and link to the head (or genesis), body
        against ``tx_root``, the log and state roots the header names, that the
        certificate names this header, and that no transaction is stored
        already (:meth:`has_tx`). Raises :class:`BlockError` and writes nothing
        if a check fails.

        Whether the certificate's signatures hold a quorum is decided in one
        place for a validator, :meth:`node.application.LedgerApplication.apply_committed`
        (the path of decided, caught-up and dev-node blocks), with
        :meth:`CommitCertificate.verify` against the set named for that height: the
        store does not read validator sets. Here the first check of that same
        rule, :meth:`CommitCertificate.check_header`, runs again on purpose: the
        store writes the certificate beside the header it is handed, and a caller
        that mixed them up would leave a block whose certificate nobody can verify.

        ``prepared`` is the :meth:`preview` of these ``state_updates`` and tx ids on
        the current head: its log and state writes are reused when it was made on
        this head and names this header's roots (log leaves and state nodes are
        content-addressed, so equal roots mean equal writes); otherwise the trees
        are applied here.
        """
        header = block.header
        pointer = self.head_pointer()
        genesis_raw = self.kv.get(_GENESIS_KEY)
        if genesis_raw is None:
            raise StorageError("store has no genesis", reason="not-initialized")
        height, prev_hash = pointer if pointer is not None else (0, self._genesis_hash(genesis_raw))
        if header.height != height + 1 or header.prev_hash != prev_hash:
            raise BlockError(f"block {header.height} does not follow head {height}", reason="broken-link")
        block.check_body()
        certificate.check_header(header)
        log_start = self.log.size()
        if (prepared is not None and prepared.base_height == height
                and (prepared.log_size, prepared.log_root, prepared.state_root)
                == (header.log_size, header.log_root, header.state_root)):
            batch = WriteBatch(dict(prepared.writes.ops))  # a copy: a failed append leaves it intact
        else:
            batch = WriteBatch()
            log_size, log_root = self.log.append([leaf_hash(tx.tx_id) for tx in block.txs], batch)
            if (log_size, log_root) != (header.log_size, header.log_root):
                raise BlockError(f"block {header.height}: log root or size differs",
                                 reason="log-root-mismatch")
            state_root = self.state.apply(state_updates, header.height, batch, base_version=height)
            if state_root != header.state_root:
                raise BlockError(f"block {header.height}: state root differs", reason="state-root-mismatch")
        seen: set[bytes] = set()
        for index, tx in enumerate(block.txs):
            try:
                refuse_replay(tx.tx_id, self.has_tx, seen)
            except ReplayError as exc:
                raise BlockError(f"transaction {tx.tx_id.hex()} is already stored",
                                 reason="replayed-transaction") from exc
            seen.add(tx.tx_id)
            batch.put(PREFIX_TX + tx.tx_id, encode([header.height, index, log_start + index, tx.to_bytes()]))
        batch.put(_height_key(PREFIX_HEADER, header.height), encode(header.to_value()))
        batch.put(_height_key(PREFIX_BODY, header.height), encode([tx.tx_id for tx in block.txs]))
        batch.put(_height_key(PREFIX_CERT, header.height), encode(certificate.to_value()))
        batch.put(PREFIX_BLOCK_HASH + header.hash, header.height.to_bytes(8, "big"))
        batch.put(_HEAD_KEY, encode([header.height, header.hash]))
        self.kv.write(batch)
        self._head = (header.height, header.hash)
        self._head_header = header

    @staticmethod
    def _genesis_hash(raw: bytes) -> bytes:
        return Genesis.loads(raw.decode("utf-8")).hash

    # -- reading blocks and transactions

    def header(self, height: int) -> BlockHeader | None:
        cached = self._head_header
        if cached is not None and cached.height == height:
            return cached
        raw = self.kv.get(_height_key(PREFIX_HEADER, height)) if 0 < height < 2**64 else None
        return None if raw is None else BlockHeader.from_value(decode(raw))

    def certificate(self, height: int) -> CommitCertificate | None:
        raw = self.kv.get(_height_key(PREFIX_CERT, height)) if 0 < height < 2**64 else None
        return None if raw is None else CommitCertificate.from_value(decode(raw))

    def block(self, height: int) -> Block | None:
        header = self.header(height)
        if header is None:
            return None
        raw = self.kv.get(_height_key(PREFIX_BODY, height))
        tx_ids = decode(raw) if raw is not None else None
        if not isinstance(tx_ids, list):
            raise StorageError(f"body of block {height} is missing or malformed")
        txs = []
        for tx_id in tx_ids:
            record = self.tx(tx_id) if isinstance(tx_id, bytes) else None
            if record is None:
                raise StorageError(f"transaction of block {height} is missing")
            txs.append(record.tx)
        return Block(header, tuple(txs))

    def block_canonical(self, height: int) -> Canonical | None:
        """Block ``height`` encoded as :meth:`Block.canonical` gives it, without parsing its
        transactions (each is its stored bytes): what catch-up serves, many blocks at a time."""
        raw_header = self.kv.get(_height_key(PREFIX_HEADER, height)) if 0 < height < 2**64 else None
        raw_body = self.kv.get(_height_key(PREFIX_BODY, height)) if raw_header is not None else None
        if raw_header is None or raw_body is None:
            return None
        tx_ids = decode(raw_body)
        if not isinstance(tx_ids, list):
            raise StorageError(f"body of block {height} is malformed")
        txs: list[Value] = []
        for tx_id in tx_ids:
            found = self._tx_record(tx_id) if isinstance(tx_id, bytes) else None
            if found is None:
                raise StorageError(f"transaction of block {height} is missing")
            txs.append(found[1])
        value: Value = {"header": decode(raw_header), "txs": txs}
        return Canonical(encode(value), nesting_depth(value))

    def height_of(self, block_hash: bytes) -> int | None:
        """Height of the stored block with ``block_hash``, or None."""
        raw = self.kv.get(PREFIX_BLOCK_HASH + block_hash)
        return None if raw is None else int.from_bytes(raw, "big")

    def has_tx(self, tx_id: bytes) -> bool:
        """True iff a transaction with ``tx_id`` is committed: the replay check of admission,
        execution and :meth:`append_block` (nothing is parsed)."""
        return self.kv.get(PREFIX_TX + tx_id) is not None

    def tx(self, tx_id: bytes) -> TxRecord | None:
        found = self._tx_record(tx_id)
        if found is None:
            return None
        (height, index, log_index), tx_bytes = found
        return TxRecord(Transaction.from_bytes(tx_bytes), height, index, log_index)

    def tx_position(self, tx_id: bytes) -> tuple[int, int, int] | None:
        """(height, index in block, index in log) of a committed transaction, or None;
        :meth:`tx` without parsing the transaction itself."""
        found = self._tx_record(tx_id)
        return None if found is None else found[0]

    def _tx_record(self, tx_id: bytes) -> tuple[tuple[int, int, int], bytes] | None:
        raw = self.kv.get(PREFIX_TX + tx_id)
        if raw is None:
            return None
        value = decode(raw)
        if not (isinstance(value, list) and len(value) == 4 and all(type(v) is int for v in value[:3])
                and type(value[3]) is bytes):
            raise StorageError(f"transaction record {tx_id.hex()} is malformed")
        height, index, log_index, tx_bytes = value
        assert isinstance(height, int) and isinstance(index, int) and isinstance(log_index, int)
        assert isinstance(tx_bytes, bytes)
        return (height, index, log_index), tx_bytes

    # -- proofs

    def tx_inclusion_proof(self, tx_id: bytes, height: int | None = None) -> tuple[int, int, list[bytes]]:
        """(log index, log size, audit path) of ``tx_id`` in the log named by the header at
        ``height`` (default: head). Verify with :func:`ledger.merkle.verify_inclusion`
        against that header's ``log_root``. Raises :class:`ProofError` if the tx is not
        committed at or below that height."""
        header = self._header_or_head(height)
        record = self.tx(tx_id)
        if record is None or record.height > header.height:
            raise ProofError("transaction is not in the log at that height", reason="not-found")
        return record.log_index, header.log_size, self.log.inclusion_proof(record.log_index, header.log_size)

    def consistency_proof(self, old_height: int, new_height: int | None = None) -> tuple[int, int, list[bytes]]:
        """(old log size, new log size, proof) between the logs named by two headers."""
        new = self._header_or_head(new_height)
        old = self._header_or_head(old_height)
        if old.height > new.height:
            raise ProofError("old height is above new height", reason="bad-request")
        return old.log_size, new.log_size, self.log.consistency_proof(old.log_size, new.log_size)

    def state_get(self, key: bytes, height: int | None = None) -> bytes | None:
        """Value of state ``key`` after block ``height`` (default: head; 0: genesis state)."""
        return self.state.get(key, self.height() if height is None else height)

    def state_prove(self, key: bytes, height: int | None = None) -> tuple[bytes | None, StateProof]:
        """(value, proof) of ``key`` against the ``state_root`` of the header at ``height``."""
        version = self.height() if height is None else height
        view = self.state.reader(version)
        return view.get(key), view.prove(key)

    def state_reader(self, height: int | None = None) -> StateView:
        """Read-only state after block ``height`` (default: head). The head's view is kept
        (a version never changes): mempool admission asks for it for every transaction."""
        height = self.height() if height is None else height
        kept = self._head_view
        if kept is not None and kept[0] == height:
            return kept[1]
        view = self.state.reader(height)
        if height == self.height():
            self._head_view = (height, view)
        return view

    def _header_or_head(self, height: int | None) -> BlockHeader:
        header = self.head() if height is None else self.header(height)
        if header is None:
            raise ProofError(f"no block at height {height}", reason="not-found")
        return header


__all__ = [
    "PREFIX_BLOCK_HASH",
    "PREFIX_BODY",
    "PREFIX_CERT",
    "PREFIX_HEADER",
    "PREFIX_LOG",
    "PREFIX_META",
    "PREFIX_STATE_NODE",
    "PREFIX_STATE_ROOT",
    "PREFIX_TX",
    "BlockPreview",
    "LedgerStore",
    "TxRecord",
]
