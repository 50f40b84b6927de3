"""Append-only Merkle log with inclusion and consistency proofs (RFC 9162 §2.1).

Hashing is that of RFC 9162 (and RFC 6962): a leaf hashes as
``SHA-256(0x00 || data)``, an interior node as ``SHA-256(0x01 || left || right)``,
the empty tree as ``SHA-256("")``; a tree of ``n`` leaves splits at the largest
power of two smaller than ``n``.

Verification comes in pairs, as in transparency-dev/merkle: ``root_from_*``
recomputes a root from a proof (raising :class:`ProofError` only when the proof
has the wrong shape), ``verify_*`` compares and raises :class:`ProofError` on any
mismatch. Generation (:func:`inclusion_proof`, :func:`consistency_proof`) reads
the roots of complete subtrees from a :class:`NodeSource`; :class:`MerkleLog`
is such a source backed by a :class:`~ledger.kv.KV`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ledger.constants import HASH_BYTES, MERKLE_PROOF_HASHES_MAX
from ledger.errors import ProofError, StorageError
from ledger.hashing import HashTag, sha256

if TYPE_CHECKING:
    from ledger.kv import KV, WriteBatch

EMPTY_ROOT = sha256(b"")  # RFC 9162: the hash of an empty string
# 2**63 leaves is beyond any realistic log and keeps (level, index) within 8 bytes.
LOG_SIZE_MAX = 2**63


# tagged_hash(tag, x) == SHA-256(tag byte || x); the two tags are inlined here because
# these run for every log node and every transaction of a block's tx_root
# (tests/test_merkle_vectors.py checks them against tagged_hash and the RFC vectors).
_LEAF_TAG = bytes((int(HashTag.MERKLE_LEAF),))
_NODE_TAG = bytes((int(HashTag.MERKLE_NODE),))
_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash of ``data``: SHA-256(0x00 || data)."""
    return _sha256(_LEAF_TAG + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 || left || right)."""
    return _sha256(_NODE_TAG + left + right).digest()


def root_of_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """RFC 9162 MTH over leaf hashes held in memory (a block's tx ids), level by level:
    adjacent pairs are joined and an odd last node moves up unchanged. This is the
    recursive split at the largest power of two below n (the left subtree is always
    perfect, so every level's unpaired node is the last one), without recursion."""
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def _split(size: int) -> int:
    """Largest power of two strictly smaller than ``size`` (requires size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def _check_hashes(proof: Sequence[bytes], what: str) -> None:
    if len(proof) > MERKLE_PROOF_HASHES_MAX:
        raise ProofError(f"{what} has {len(proof)} hashes, limit {MERKLE_PROOF_HASHES_MAX}")
    for item in proof:
        if not isinstance(item, bytes) or len(item) != HASH_BYTES:
            raise ProofError(f"{what} holds a value that is not a {HASH_BYTES}-byte hash")


# --- verification ----------------------------------------------------------------


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """Root of a log of ``size`` leaves implied by ``proof`` for leaf hash ``leaf`` at ``index``.

    Requires ``0 <= index < size``; raises :class:`ProofError` if not, or if the
    proof has the wrong length for (index, size) (RFC 9162 §2.1.3.2).
    """
    if not 0 <= index < size or size > LOG_SIZE_MAX:
        raise ProofError(f"index {index} is outside a log of size {size}")
    _check_hashes([leaf, *proof], "inclusion proof")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raise :class:`ProofError` unless ``proof`` shows leaf hash ``leaf`` at ``index`` under ``root``.

    Requires ``0 <= index < size``.
    """
    if root_from_inclusion_proof(index, size, leaf, proof) != root:
        raise ProofError("inclusion proof does not lead to the root")


def roots_from_consistency_proof(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """The (old root, new root) pair implied by a consistency proof (RFC 9162 §2.1.4.2).

    Requires ``0 < old_size <= new_size``; for ``old_size == new_size`` the proof
    must be empty and both roots are ``old_root``. Raises :class:`ProofError` on a
    proof of the wrong shape.
    """
    if not 0 < old_size <= new_size or new_size > LOG_SIZE_MAX:
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
    _check_hashes([old_root, *proof], "consistency proof")
    if old_size == new_size:
        if proof:
            raise ProofError("consistency proof between equal sizes must be empty")
        return old_root, old_root
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        # The old tree is a complete subtree of the new one: its root is the first node.
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the path")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than the path")
    return fr, sr


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise :class:`ProofError` unless ``proof`` shows the log of ``new_size`` extends that of ``old_size``.

    Requires ``0 <= old_size <= new_size``. Every log extends the empty log, so
    for ``old_size == 0`` the proof must be empty and ``old_root`` must be
    :data:`EMPTY_ROOT`.
    """
    if old_size == 0 and 0 <= new_size <= LOG_SIZE_MAX:
        _check_hashes([old_root, new_root], "consistency proof roots")
        if proof or old_root != EMPTY_ROOT:
            raise ProofError("consistency from the empty log takes an empty proof and the empty root")
        if new_size == 0 and new_root != EMPTY_ROOT:
            raise ProofError("an empty log has the empty root")
        return
    _check_hashes([new_root], "consistency proof roots")
    old_computed, new_computed = roots_from_consistency_proof(old_size, new_size, old_root, proof)
    if old_computed != old_root or new_computed != new_root:
        raise ProofError("consistency proof does not lead to both roots")


# --- generation ------------------------------------------------------------------


class NodeSource(Protocol):
    """Roots of complete subtrees: ``node(level, index)`` covers leaves
    ``[index * 2**level, (index + 1) * 2**level)``."""

    def node(self, level: int, index: int) -> bytes: ...


def range_root(source: NodeSource, start: int, end: int) -> bytes:
    """MTH of leaves ``[start, end)``; requires ``start < end`` and ``start`` aligned to
    a power of two >= ``end - start`` (true of every subtree of an RFC 9162 tree,
    and of ``start == 0``). Reads popcount(end - start) nodes."""
    parts: list[bytes] = []
    offset = start
    remaining = end - start
    for level in range(remaining.bit_length() - 1, -1, -1):
        if remaining >> level & 1:
            parts.append(source.node(level, offset >> level))
            offset += 1 << level
    root = parts[-1]
    for part in reversed(parts[:-1]):
        root = node_hash(part, root)
    return root


def inclusion_proof(source: NodeSource, index: int, size: int) -> list[bytes]:
    """Audit path for leaf ``index`` in the log's first ``size`` leaves (RFC 9162 PATH).

    Requires ``0 <= index < size``. O(log size) node reads.
    """
    if not 0 <= index < size:
        raise ProofError(f"index {index} is outside a log of size {size}", reason="bad-request")
    top_down: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            top_down.append(range_root(source, lo + k, hi))
            hi = lo + k
        else:
            top_down.append(range_root(source, lo, lo + k))
            lo += k
    top_down.reverse()
    return top_down


def consistency_proof(source: NodeSource, old_size: int, new_size: int) -> list[bytes]:
    """Proof that the first ``old_size`` leaves are a prefix of the first ``new_size``
    (RFC 9162 PROOF/SUBPROOF). Requires ``0 <= old_size <= new_size``; empty when
    ``old_size`` is 0 or equals ``new_size``. O(log new_size) node reads."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}", reason="bad-request")
    if old_size in (0, new_size):
        return []
    top_down: list[bytes] = []
    lo, hi, complete_prefix = 0, new_size, True
    while True:
        if old_size - lo == hi - lo:
            if not complete_prefix:
                top_down.append(range_root(source, lo, hi))
            break
        k = _split(hi - lo)
        if old_size - lo <= k:
            top_down.append(range_root(source, lo + k, hi))
            hi = lo + k
        else:
            top_down.append(range_root(source, lo, lo + k))
            lo += k
            complete_prefix = False
    top_down.reverse()
    return top_down


# --- the stored log ----------------------------------------------------------------


def _node_key(prefix: bytes, level: int, index: int) -> bytes:
    return prefix + bytes((level,)) + index.to_bytes(8, "big")


@dataclass(frozen=True, slots=True)
class _StoredNodes:
    """Node source over committed nodes, plus those pending in ``batch`` if given."""

    kv: KV
    prefix: bytes
    batch: WriteBatch | None = None

    def node(self, level: int, index: int) -> bytes:
        key = _node_key(self.prefix, level, index)
        value = self.batch.lookup(key) if self.batch is not None else None
        if not isinstance(value, bytes):
            # Not pending in the batch (nodes are never deleted): read the committed one.
            value = self.kv.get(key)
        if value is None:
            raise StorageError(f"Merkle node ({level}, {index}) is missing")
        return value


class MerkleLog:
    """A Merkle log persisted in a KV store under ``prefix``.

    Only roots of complete subtrees are stored, keyed by ``prefix || level (1 byte)
    || index (8 bytes, big-endian)``, each written once and never changed; the
    committed size lives at ``prefix || 0xff``. Appending ``m`` leaves writes about
    ``2m`` nodes; a root or proof for any size up to the current one reads
    O(log size) nodes. No leaf is held in memory.
    """

    __slots__ = ("_kv", "_nodes", "_prefix")

    def __init__(self, kv: KV, prefix: bytes) -> None:
        self._kv = kv
        self._prefix = bytes(prefix)
        self._nodes = _StoredNodes(kv, self._prefix)

    def size(self) -> int:
        """Committed number of leaves."""
        raw = self._kv.get(self._prefix + b"\xff")
        return 0 if raw is None else int.from_bytes(raw, "big")

    def node(self, level: int, index: int) -> bytes:
        """Stored root of a complete subtree; :class:`StorageError` if it is missing."""
        return self._nodes.node(level, index)

    def append(self, leaf_hashes: Sequence[bytes], batch: WriteBatch) -> tuple[int, bytes]:
        """Add leaf hashes (32 bytes each) into ``batch``; returns (new size, new root).

        Requires that no other append to this log is pending in ``batch``; the
        log changes only when the caller commits ``batch``.
        """
        pending = _StoredNodes(self._kv, self._prefix, batch)
        size = self.size()
        if size + len(leaf_hashes) > LOG_SIZE_MAX:
            raise StorageError("Merkle log is full", reason="bad-request")
        for leaf in leaf_hashes:
            if not isinstance(leaf, bytes) or len(leaf) != HASH_BYTES:
                raise StorageError("a Merkle leaf hash must be 32 bytes", reason="bad-request")
            batch.put(_node_key(self._prefix, 0, size), leaf)
            current, level, index = leaf, 0, size
            # Each time the new leaf completes a subtree, store that subtree's root.
            while index & 1:
                current = node_hash(pending.node(level, index - 1), current)
                level += 1
                index >>= 1
                batch.put(_node_key(self._prefix, level, index), current)
            size += 1
        batch.put(self._prefix + b"\xff", size.to_bytes(8, "big"))
        return size, (EMPTY_ROOT if size == 0 else range_root(pending, 0, size))

    def root(self, size: int | None = None) -> bytes:
        """Root of the first ``size`` leaves (default: all). Requires 0 <= size <= self.size()."""
        size = self._checked_size(size)
        return EMPTY_ROOT if size == 0 else range_root(self._nodes, 0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path of leaf ``index`` in the first ``size`` leaves.

        Requires ``0 <= index < size <= self.size()``.
        """
        return inclusion_proof(self._nodes, index, self._checked_size(size))

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Consistency proof between two sizes. Requires ``0 <= old_size <= new_size <= self.size()``."""
        return consistency_proof(self._nodes, old_size, self._checked_size(new_size))

    def _checked_size(self, size: int | None) -> int:
        current = self.size()
        if size is None:
            return current
        if not 0 <= size <= current:
            raise ProofError(f"log has {current} leaves, not {size}", reason="bad-request")
        return size


__all__ = [
    "EMPTY_ROOT",
    "LOG_SIZE_MAX",
    "MerkleLog",
    "NodeSource",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "range_root",
    "root_from_inclusion_proof",
    "roots_from_consistency_proof",
    "verify_consistency",
    "verify_inclusion",
]
