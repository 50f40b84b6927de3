"""Authenticated state map: bytes key -> bytes value, versioned by height, with proofs.

The map is a compressed binary radix (Patricia) Merkle tree over 256-bit paths
``path = tagged_hash(STATE_KEY, key)``. Paths are read most significant bit
first; bit ``d`` of a path is its ``d``-th bit (0..255).

Node kinds and their hashes (``encode`` is the canonical encoding):

* leaf:    ``tagged_hash(STATE_LEAF, encode([path, sha256(value)]))``
* branch:  ``tagged_hash(STATE_NODE, encode([depth, left, right]))`` where every
  leaf below shares the first ``depth`` bits, ``left`` holds those whose bit
  ``depth`` is 0 and ``right`` those whose bit is 1; both children are non-empty.
* empty tree: :data:`EMPTY_STATE_ROOT` ``= tagged_hash(STATE_NODE, encode([]))``.

A leaf commits to the *digest* of its value so that a proof of absence, which
shows a neighbouring leaf, reveals neither that leaf's value nor its size.

Nodes are immutable and stored content-addressed (``node_prefix || hash``), so a
new version shares every untouched subtree with the old one and any committed
version stays readable and provable. ``root_prefix || version (8 bytes)`` maps a
version (the block height) to its root.

Proofs list, from the root down, the ``(depth, sibling)`` of each branch on the
key's path and then the leaf where that walk ends. If that leaf is the key's,
the proof shows membership; if it is another key's, absence: in a well-formed
tree the walk for a present key always ends at that key's leaf.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ledger.constants import (
    HASH_BYTES,
    STATE_CACHE_BYTES,
    STATE_KEY_BYTES_MAX,
    STATE_PROOF_NODES_MAX,
    STATE_VALUE_BYTES_MAX,
)
from ledger.encoding import Value, decode, encode
from ledger.errors import EncodingError, LedgerError, ProofError, StorageError
from ledger.hashing import HashTag, sha256, tagged_hash
from ledger.lru import BoundedLRU

if TYPE_CHECKING:
    from ledger.kv import KV, WriteBatch

PATH_BITS = 8 * HASH_BYTES
EMPTY_STATE_ROOT = tagged_hash(HashTag.STATE_NODE, encode([]))
_HASH_HEAD = b"\x58\x20"  # CBOR head of a 32-byte byte string
_KEY_TAG = bytes((int(HashTag.STATE_KEY),))  # tagged_hash(STATE_KEY, key) == sha256(_KEY_TAG + key)


# --- hashing (fast paths equal to the canonical encoding; tests check this) ------


def key_path(key: bytes) -> bytes:
    """The 256-bit path of ``key`` in the tree."""
    return hashlib.sha256(_KEY_TAG + key).digest()


def leaf_preimage(path: bytes, value_digest: bytes) -> bytes:
    """``encode([path, value_digest])`` for two 32-byte strings."""
    return b"\x82" + _HASH_HEAD + path + _HASH_HEAD + value_digest


def branch_preimage(depth: int, left: bytes, right: bytes) -> bytes:
    """``encode([depth, left, right])`` for 0 <= depth < 256 and 32-byte children."""
    head = bytes((depth,)) if depth < 24 else bytes((0x18, depth))
    return b"\x83" + head + _HASH_HEAD + left + _HASH_HEAD + right


# tag || encode([depth, ...]) up to the first child, for every depth: the hot loop of
# proof verification then costs one concatenation and one SHA-256 per level.
_BRANCH_HEADS = tuple(
    bytes((int(HashTag.STATE_NODE),)) + branch_preimage(depth, b"", b"")[: -len(_HASH_HEAD)]
    for depth in range(8 * HASH_BYTES)
)


_LEAF_HEAD = bytes((int(HashTag.STATE_LEAF),)) + leaf_preimage(b"", b"")[: -len(_HASH_HEAD)]


def leaf_hash(path: bytes, value_digest: bytes) -> bytes:
    """``tagged_hash(STATE_LEAF, leaf_preimage(path, value_digest))``."""
    return hashlib.sha256(_LEAF_HEAD + path + _HASH_HEAD + value_digest).digest()


def branch_hash(depth: int, left: bytes, right: bytes) -> bytes:
    """``tagged_hash(STATE_NODE, branch_preimage(depth, left, right))``."""
    return hashlib.sha256(_BRANCH_HEADS[depth] + left + _HASH_HEAD + right).digest()


# _BIT[d]: the path integer with only bit ``d`` set.
_BIT = tuple(1 << (PATH_BITS - 1 - depth) for depth in range(PATH_BITS))


def _bit(path_int: int, depth: int) -> int:
    return (path_int >> (PATH_BITS - 1 - depth)) & 1


def _common_prefix_bits(a: int, b: int) -> int:
    return PATH_BITS - (a ^ b).bit_length()


def _prefix_of(path_int: int, depth: int) -> int:
    """``path_int`` with every bit from ``depth`` on cleared."""
    shift = PATH_BITS - depth
    return (path_int >> shift) << shift


def check_key(key: object) -> bytes:
    """Return ``key`` if it is an admissible state key (1..STATE_KEY_BYTES_MAX bytes)."""
    if not isinstance(key, bytes) or not 0 < len(key) <= STATE_KEY_BYTES_MAX:
        raise LedgerError(f"state key must be 1..{STATE_KEY_BYTES_MAX} bytes", reason="bad-state-key")
    return key


def check_value(value: object) -> bytes:
    """Return ``value`` if it is an admissible state value (at most STATE_VALUE_BYTES_MAX bytes)."""
    if not isinstance(value, bytes) or len(value) > STATE_VALUE_BYTES_MAX:
        raise LedgerError(f"state value must be at most {STATE_VALUE_BYTES_MAX} bytes",
                          reason="bad-state-value")
    return value


# --- proofs ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProofStep:
    """A branch on the key's path: its split ``depth`` and the hash of the child not taken."""

    depth: int
    sibling: bytes


@dataclass(frozen=True, slots=True)
class ProofLeaf:
    """The leaf where the key's walk ends: its path and the SHA-256 of its value."""

    path: bytes
    value_digest: bytes


@dataclass(frozen=True, slots=True)
class StateProof:
    """Membership or absence proof for one key; ``leaf`` is None only for the empty tree."""

    steps: tuple[ProofStep, ...]
    leaf: ProofLeaf | None

    def to_value(self) -> Value:
        """Canonical form: ``{"leaf": [path, digest] | null, "steps": [[depth, sibling], ...]}``."""
        leaf: Value = None if self.leaf is None else [self.leaf.path, self.leaf.value_digest]
        return {"leaf": leaf, "steps": [[step.depth, step.sibling] for step in self.steps]}

    def to_bytes(self) -> bytes:
        return encode(self.to_value())

    @classmethod
    def from_value(cls, value: object) -> StateProof:
        """Parse the canonical form; :class:`ProofError` on anything malformed."""
        if not isinstance(value, dict) or set(value) != {"leaf", "steps"}:
            raise ProofError("state proof must have exactly 'leaf' and 'steps'", reason="malformed-proof")
        raw_steps, raw_leaf = value["steps"], value["leaf"]
        if not isinstance(raw_steps, list) or len(raw_steps) > STATE_PROOF_NODES_MAX:
            raise ProofError("state proof steps must be a list within the limit", reason="malformed-proof")
        steps = []
        for item in raw_steps:
            if not (isinstance(item, list) and len(item) == 2 and type(item[0]) is int):
                raise ProofError("a proof step is [depth, sibling]", reason="malformed-proof")
            steps.append(ProofStep(_depth(item[0]), _hash32(item[1], "sibling")))
        leaf = None
        if raw_leaf is not None:
            if not (isinstance(raw_leaf, list) and len(raw_leaf) == 2):
                raise ProofError("proof leaf is [path, value digest]", reason="malformed-proof")
            leaf = ProofLeaf(_hash32(raw_leaf[0], "leaf path"), _hash32(raw_leaf[1], "value digest"))
        return cls(tuple(steps), leaf)

    @classmethod
    def from_bytes(cls, data: bytes) -> StateProof:
        try:
            value = decode(data)
        except EncodingError as exc:
            raise ProofError(f"state proof is not canonical: {exc}", reason="malformed-proof") from exc
        return cls.from_value(value)

    def to_json(self) -> dict[str, Any]:
        """JSON form for the API: hashes as lowercase hex."""
        leaf = None if self.leaf is None else {
            "path": self.leaf.path.hex(), "value_digest": self.leaf.value_digest.hex()}
        return {"leaf": leaf,
                "steps": [{"depth": step.depth, "sibling": step.sibling.hex()} for step in self.steps]}

    @classmethod
    def from_json(cls, obj: object) -> StateProof:
        """Strict inverse of :meth:`to_json`; :class:`ProofError` on unknown fields or bad hex."""
        if not isinstance(obj, dict) or set(obj) != {"leaf", "steps"}:
            raise ProofError("state proof must have exactly 'leaf' and 'steps'", reason="malformed-proof")
        raw_steps, raw_leaf = obj["steps"], obj["leaf"]
        if not isinstance(raw_steps, list) or len(raw_steps) > STATE_PROOF_NODES_MAX:
            raise ProofError("state proof steps must be a list within the limit", reason="malformed-proof")
        steps = []
        for item in raw_steps:
            if not isinstance(item, dict) or set(item) != {"depth", "sibling"} or type(item["depth"]) is not int:
                raise ProofError("a proof step is {depth, sibling}", reason="malformed-proof")
            steps.append(ProofStep(_depth(item["depth"]), _hex32(item["sibling"], "sibling")))
        leaf = None
        if raw_leaf is not None:
            if not isinstance(raw_leaf, dict) or set(raw_leaf) != {"path", "value_digest"}:
                raise ProofError("proof leaf is {path, value_digest}", reason="malformed-proof")
            leaf = ProofLeaf(_hex32(raw_leaf["path"], "leaf path"),
                             _hex32(raw_leaf["value_digest"], "value digest"))
        return cls(tuple(steps), leaf)


def _depth(value: int) -> int:
    if not 0 <= value < PATH_BITS:
        raise ProofError(f"proof depth {value} is outside 0..{PATH_BITS - 1}", reason="malformed-proof")
    return value


def _hash32(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != HASH_BYTES:
        raise ProofError(f"{what} must be {HASH_BYTES} bytes", reason="malformed-proof")
    return value


def _hex32(text: object, what: str) -> bytes:
    if not isinstance(text, str) or len(text) != 2 * HASH_BYTES:
        raise ProofError(f"{what} must be {2 * HASH_BYTES} hex digits", reason="malformed-proof")
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise ProofError(f"{what} is not hex", reason="malformed-proof") from exc
    if raw.hex() != text:
        raise ProofError(f"{what} must be lowercase hex", reason="malformed-proof")
    return raw


def root_from_state_proof(key: bytes, value: bytes | None, proof: StateProof) -> bytes:
    """Root implied by ``proof`` for ``key`` holding ``value`` (None: absent).

    Raises :class:`ProofError` if the proof cannot be such a proof at all
    (wrong leaf for the claim, depths not increasing, leaf off the key's path).
    """
    try:
        path = key_path(check_key(key))
        digest = None if value is None else sha256(check_value(value))
    except LedgerError as exc:
        raise ProofError(f"claim is outside the state limits: {exc}") from exc
    if len(proof.steps) > STATE_PROOF_NODES_MAX:
        raise ProofError("state proof is too long")
    if proof.leaf is None:
        if proof.steps or digest is not None:
            raise ProofError("only an empty tree has a proof without a leaf")
        return EMPTY_STATE_ROOT
    leaf = proof.leaf
    if any(not isinstance(x, bytes) or len(x) != HASH_BYTES for x in (leaf.path, leaf.value_digest)):
        raise ProofError(f"proof leaf path and value digest must be {HASH_BYTES} bytes")
    if digest is not None and (leaf.path != path or leaf.value_digest != digest):
        raise ProofError("proof leaf is not the claimed key and value")
    if digest is None and leaf.path == path:
        raise ProofError("proof shows the key present, not absent")
    path_int = int.from_bytes(path, "big")
    # Bits where the key's path and the leaf's path differ: none may be a step's depth.
    differ = path_int ^ int.from_bytes(leaf.path, "big")
    previous = -1
    for step in proof.steps:
        depth = step.depth
        if not previous < depth < PATH_BITS:
            raise ProofError("proof depths must increase from the root down")
        if not isinstance(step.sibling, bytes) or len(step.sibling) != HASH_BYTES:
            raise ProofError(f"proof sibling must be {HASH_BYTES} bytes")
        if (differ >> (PATH_BITS - 1 - depth)) & 1:
            raise ProofError("proof leaf is not on the key's path")
        previous = depth
    current = leaf_hash(leaf.path, leaf.value_digest)
    sha = hashlib.sha256
    for step in reversed(proof.steps):
        depth = step.depth
        if (path_int >> (PATH_BITS - 1 - depth)) & 1:
            current = sha(_BRANCH_HEADS[depth] + step.sibling + _HASH_HEAD + current).digest()
        else:
            current = sha(_BRANCH_HEADS[depth] + current + _HASH_HEAD + step.sibling).digest()
    return current


def verify_state_proof(root: bytes, key: bytes, value: bytes | None, proof: StateProof) -> None:
    """Raise :class:`ProofError` unless ``proof`` shows ``key -> value`` (None: absent) under ``root``."""
    if root_from_state_proof(key, value, proof) != root:
        raise ProofError("state proof does not lead to the root")


# --- the stored tree ------------------------------------------------------------------

# Node records in the KV (storage only, never hashed or signed, so a fixed layout
# that parses by slicing, not the canonical encoding):
#   leaf:   "L" || path (32) || key length (2, big-endian) || key || value
#   branch: "B" || depth (1) || left (32) || right (32) || prefix (32)
# The tree works on these records directly (and caches branch records as they are),
# so a node costs no decoding into objects on the update path.
_LEAF_KIND = ord("L")
_BRANCH_KIND = ord("B")
_LEAF_RECORD_BYTES_MIN = 3 + HASH_BYTES
_BRANCH_RECORD_BYTES = 2 + 3 * HASH_BYTES
_BRANCH_RECORD_HEADS = tuple(bytes((_BRANCH_KIND, depth)) for depth in range(PATH_BITS))

# Memory of one cached branch record, an upper bound for CPython 3.11 on 64 bits:
# the 32-byte hash key (80 with allocator rounding), the 98-byte record (144) and
# its share of the ordered dict (at most 128 right after its tables grew).
# ``test_state_tree.py`` measures it.
_CACHE_ENTRY_BYTES = 80 + 144 + 128


class _BranchCache(BoundedLRU[bytes, bytes]):
    """Branch records by node hash for the top of the tree, within ``bytes_max`` bytes.

    Only branches at depth < ``depth_max`` are kept, where ``2**depth_max`` records
    fit the budget: a tree has at most ``2**d - 1`` branches above depth ``d``
    (one per prefix), so all of them fit however many keys the tree holds. They
    are the nodes every block walks through (the top ~9 levels are rewritten by
    every block of 500 updates), while a deeper branch is touched again only
    after many blocks and would evict them. When a block rewrites a branch, the
    one it replaces leaves the cache; what is left of older versions (a dropped
    batch, a read of an old version) goes first when the cache is full, as the
    least recently used. Records are immutable and content-addressed, so a
    cached record is never stale.

    Concurrent readers (API threads) share it with the writer as
    :class:`~ledger.lru.BoundedLRU` allows; ``peek`` is for the writer, which
    replaces every branch it reads and so need not mark it used.
    """

    __slots__ = ("depth_max",)

    def __init__(self, bytes_max: int) -> None:
        super().__init__(max(1, bytes_max // _CACHE_ENTRY_BYTES))
        self.depth_max = min(PATH_BITS, self.entries_max.bit_length() - 1)

    def put(self, node_hash: bytes, record: bytes) -> None:
        """Keep ``record`` if its branch is above ``depth_max``."""
        if record[1] < self.depth_max:
            BoundedLRU.put(self, node_hash, record)


class StateTree:
    """The versioned state map in a KV store; keeps a bounded cache of branch records.

    ``node_prefix`` and ``root_prefix`` are the key namespaces for nodes and for the
    version index; they must not be prefixes of each other's keys or of others'.
    """

    __slots__ = ("_cache", "_kv", "_node_prefix", "_root_prefix")

    def __init__(self, kv: KV, *, node_prefix: bytes, root_prefix: bytes,
                 cache_bytes: int = STATE_CACHE_BYTES) -> None:
        self._kv = kv
        self._node_prefix = bytes(node_prefix)
        self._root_prefix = bytes(root_prefix)
        self._cache = _BranchCache(cache_bytes)

    # -- versions

    def latest_version(self) -> int | None:
        """Highest committed version, or None before the first :meth:`apply` is committed."""
        for key, _ in self._kv.iterate(self._root_prefix, reverse=True):
            return int.from_bytes(key[len(self._root_prefix):], "big")
        return None

    def root_at(self, version: int) -> bytes:
        """Root after ``version``; :class:`StorageError` (reason ``unknown-version``) if none."""
        if not 0 <= version < 2**64:
            raise StorageError(f"no state version {version}", reason="unknown-version")
        root = self._kv.get(self._root_prefix + version.to_bytes(8, "big"))
        if root is None:
            raise StorageError(f"no state version {version}", reason="unknown-version")
        return root

    def _root_or_latest(self, version: int | None) -> bytes:
        if version is None:
            version = self.latest_version()
            if version is None:
                return EMPTY_STATE_ROOT
        return self.root_at(version)

    # -- reads

    def get(self, key: bytes, version: int | None = None) -> bytes | None:
        """Value of ``key`` at ``version`` (default: latest), or None if absent."""
        return self.get_at_root(key, self._root_or_latest(version))

    def get_at_root(self, key: bytes, root: bytes) -> bytes | None:
        """Value of ``key`` in the tree with root ``root`` (which must be stored)."""
        path = key_path(check_key(key))
        path_int = int.from_bytes(path, "big")
        node_hash = root
        if node_hash == EMPTY_STATE_ROOT:
            return None
        for _ in range(PATH_BITS + 1):
            record = self._record(node_hash)
            if record[0] == _LEAF_KIND:
                return _leaf_value(record) if record[1:33] == path else None
            node_hash = record[34:66] if _bit(path_int, record[1]) else record[2:34]
        raise StorageError("state tree deeper than its paths", reason="storage-corrupt")

    def prove(self, key: bytes, version: int | None = None) -> StateProof:
        """Membership or absence proof of ``key`` at ``version`` (default: latest)."""
        return self.prove_at_root(key, self._root_or_latest(version))

    def prove_at_root(self, key: bytes, root: bytes) -> StateProof:
        path_int = int.from_bytes(key_path(check_key(key)), "big")
        if root == EMPTY_STATE_ROOT:
            return StateProof((), None)
        steps: list[ProofStep] = []
        node_hash = root
        for _ in range(PATH_BITS + 1):
            record = self._record(node_hash)
            if record[0] == _LEAF_KIND:
                return StateProof(tuple(steps), ProofLeaf(record[1:33], sha256(_leaf_value(record))))
            depth = record[1]
            if _bit(path_int, depth):
                steps.append(ProofStep(depth, record[2:34]))
                node_hash = record[34:66]
            else:
                steps.append(ProofStep(depth, record[34:66]))
                node_hash = record[2:34]
        raise StorageError("state tree deeper than its paths", reason="storage-corrupt")

    def reader(self, version: int | None = None) -> StateView:
        """A read-only view of one version (``get(key)``), e.g. for the executor."""
        return StateView(self, self._root_or_latest(version))

    # -- writes

    def apply(
        self,
        updates: Mapping[bytes, bytes | None],
        version: int,
        batch: WriteBatch,
        *,
        base_version: int | None = None,
    ) -> bytes:
        """Write the tree after ``updates`` (None deletes) into ``batch`` as ``version``; return its root.

        The base is ``base_version`` (default: the latest committed version, or
        the empty tree). Requires ``version`` greater than the base version.
        New nodes and the version's root go into ``batch`` only, so the caller
        commits them with the rest of the block, or drops the batch to just
        learn the root (execute-then-vote).
        """
        if base_version is None:
            base_version = self.latest_version()
        base_root = EMPTY_STATE_ROOT if base_version is None else self.root_at(base_version)
        if not (0 <= version < 2**64) or (base_version is not None and version <= base_version):
            raise StorageError(f"state version {version} must follow {base_version}", reason="bad-version")
        root = self.apply_to_root(base_root, updates, batch)
        batch.put(self._root_prefix + version.to_bytes(8, "big"), root)
        return root

    def apply_to_root(self, base_root: bytes, updates: Mapping[bytes, bytes | None], batch: WriteBatch) -> bytes:
        """Write the nodes of ``base_root`` + ``updates`` into ``batch``; return the new root.

        Costs O(k log n) node reads and writes for k updates in a tree of n keys.
        """
        ordered = sorted(
            (int.from_bytes(key_path(check_key(key)), "big"), key, None if value is None else check_value(value))
            for key, value in updates.items()
        )
        base = None if base_root == EMPTY_STATE_ROOT else base_root
        new_root = _Writer(self, ordered, batch).update(base, 0, len(ordered)) if ordered else base
        return EMPTY_STATE_ROOT if new_root is None else new_root

    # -- nodes

    def _record(self, node_hash: bytes) -> bytes:
        """The stored record of node ``node_hash`` (a branch's from the cache if there)."""
        record = self._cache.get(node_hash)
        return self._read(node_hash) if record is None else record

    def _read(self, node_hash: bytes) -> bytes:
        """The stored record of node ``node_hash`` from the KV (caching a branch's)."""
        raw = self._kv.get(self._node_prefix + node_hash)
        if raw is None:
            raise StorageError(f"state node {node_hash.hex()} is missing")
        record = bytes(raw)
        if len(record) == _BRANCH_RECORD_BYTES and record[0] == _BRANCH_KIND:
            # Only branches are cached: they are small (leaves may hold 256 KiB values).
            self._cache.put(node_hash, record)
            return record
        if len(record) >= _LEAF_RECORD_BYTES_MIN and record[0] == _LEAF_KIND \
                and _LEAF_RECORD_BYTES_MIN + int.from_bytes(record[33:35], "big") <= len(record):
            return record
        raise StorageError(f"state node {node_hash.hex()} has an unknown shape")


def _leaf_value(record: bytes) -> bytes:
    return record[_LEAF_RECORD_BYTES_MIN + int.from_bytes(record[33:35], "big"):]


# What a new subtree holds, sorted by path: (path, (key, value)) for a leaf to write,
# (path, hash) for an existing leaf kept as it is.
_Item = tuple[int, "tuple[bytes, bytes] | bytes"]


class _Writer:
    """One :meth:`StateTree.apply_to_root`: updates sorted by path, and the batch for new nodes.

    Update ranges are index ranges ``[lo, hi)`` into the sorted paths, so no walk
    copies the update list; each new branch costs one concatenation for its
    record, one for its hash preimage, one SHA-256 and one put.
    """

    __slots__ = ("_cache", "_depth_cached", "_node_prefix", "_paths", "_peek", "_put", "_tree", "_updates")

    def __init__(self, tree: StateTree, updates: list[tuple[int, bytes, bytes | None]], batch: WriteBatch) -> None:
        self._tree = tree
        self._cache = tree._cache
        self._peek = tree._cache.peek
        self._depth_cached = tree._cache.depth_max  # deeper branches are never cached
        self._node_prefix = tree._node_prefix
        self._updates = updates
        self._paths = [path for path, _, _ in updates]
        self._put = batch.put

    def update(self, node_hash: bytes | None, lo: int, hi: int) -> bytes | None:
        """The subtree ``node_hash`` (None: empty) after the updates ``[lo, hi)``, a non-empty range."""
        if node_hash is None:
            return self._build(self._new_leaves(lo, hi))
        record = self._peek(node_hash) or self._tree._read(node_hash)
        if record[0] == _LEAF_KIND:
            return self._update_leaf(node_hash, record, lo, hi)
        paths = self._paths
        depth = record[1]
        prefix = int.from_bytes(record[66:98], "big")
        # The paths are sorted, so the first and the last tell whether all share the prefix.
        outside = max((paths[lo] ^ prefix).bit_length(), (paths[hi - 1] ^ prefix).bit_length())
        shared = PATH_BITS - outside
        if shared >= depth:
            # Every update lies inside this branch: recurse into the sides that have some.
            split = bisect.bisect_left(paths, prefix | _BIT[depth], lo, hi)
            left, right = record[2:34], record[34:66]
            new_left = self.update(left, lo, split) if lo < split else left
            new_right = self.update(right, split, hi) if split < hi else right
            if new_left == left and new_right == right:
                return node_hash
            if depth < self._depth_cached:
                self._cache.discard(node_hash)  # replaced in the new version (or deleted)
            if new_left is None or new_right is None:
                return new_right if new_left is None else new_left
            return self._write_branch(depth, new_left, new_right, record[66:98])
        # Some updates leave this branch's prefix at bit ``shared``: a new branch
        # splits there, with this subtree (updated) on its side and new leaves on the other.
        split_prefix = _prefix_of(prefix, shared)
        split = bisect.bisect_left(paths, split_prefix | _BIT[shared], lo, hi)
        side = _bit(prefix, shared)
        (in_lo, in_hi), (out_lo, out_hi) = ((lo, split), (split, hi)) if side == 0 else ((split, hi), (lo, split))
        kept = self.update(node_hash, in_lo, in_hi) if in_lo < in_hi else node_hash
        added = self._build(self._new_leaves(out_lo, out_hi))
        if kept is None or added is None:
            return added if kept is None else kept
        left, right = (kept, added) if side == 0 else (added, kept)
        return self._write_branch(shared, left, right, split_prefix.to_bytes(HASH_BYTES, "big"))

    def _update_leaf(self, node_hash: bytes, record: bytes, lo: int, hi: int) -> bytes | None:
        """The leaf ``node_hash`` with the updates ``[lo, hi)`` that reach it: one may replace or delete it."""
        leaf_path = int.from_bytes(record[1:33], "big")
        items = self._new_leaves(lo, hi)
        at = bisect.bisect_left(self._paths, leaf_path, lo, hi)
        if at == hi or self._paths[at] != leaf_path:
            bisect.insort(items, (leaf_path, node_hash), key=lambda item: item[0])
        return self._build(items)

    def _new_leaves(self, lo: int, hi: int) -> list[_Item]:
        return [(path, (key, value)) for path, key, value in self._updates[lo:hi] if value is not None]

    def _build(self, items: list[_Item]) -> bytes | None:
        """Subtree holding exactly ``items`` (sorted by path, distinct paths)."""
        if not items:
            return None
        if len(items) == 1:
            path, item = items[0]
            return item if isinstance(item, bytes) else self._write_leaf(path, *item)
        depth = _common_prefix_bits(items[0][0], items[-1][0])
        prefix = _prefix_of(items[0][0], depth)
        split = bisect.bisect_left(items, prefix | _BIT[depth], key=lambda item: item[0])
        left = self._build(items[:split])
        right = self._build(items[split:])
        assert left is not None and right is not None  # both sides are non-empty by choice of depth
        return self._write_branch(depth, left, right, prefix.to_bytes(HASH_BYTES, "big"))

    def _write_leaf(self, path_int: int, key: bytes, value: bytes) -> bytes:
        path = path_int.to_bytes(HASH_BYTES, "big")
        node_hash = leaf_hash(path, sha256(value))
        self._put(self._node_prefix + node_hash,
                  b"L" + path + len(key).to_bytes(2, "big") + key + value)
        return node_hash

    def _write_branch(self, depth: int, left: bytes, right: bytes, prefix: bytes) -> bytes:
        node_hash = hashlib.sha256(_BRANCH_HEADS[depth] + left + _HASH_HEAD + right).digest()
        record = _BRANCH_RECORD_HEADS[depth] + left + right + prefix
        self._put(self._node_prefix + node_hash, record)
        if depth < self._depth_cached:
            # The next block's updates start from these nodes, so cache them now. If the
            # batch is dropped they are merely unreachable from any committed root.
            self._cache.put(node_hash, record)
        return node_hash


@dataclass(frozen=True, slots=True)
class StateView:
    """Read access to one version of the state."""

    tree: StateTree
    root: bytes

    def get(self, key: bytes) -> bytes | None:
        return self.tree.get_at_root(key, self.root)

    def prove(self, key: bytes) -> StateProof:
        return self.tree.prove_at_root(key, self.root)


__all__ = [
    "EMPTY_STATE_ROOT",
    "PATH_BITS",
    "ProofLeaf",
    "ProofStep",
    "StateProof",
    "StateTree",
    "StateView",
    "branch_hash",
    "branch_preimage",
    "check_key",
    "check_value",
    "key_path",
    "leaf_hash",
    "leaf_preimage",
    "root_from_state_proof",
    "verify_state_proof",
]
