"""Benchmark: Merkle log and state tree on LevelDB, at two sizes.

Prints ``ledger.<figure>@<size> value`` lines:

* ``merkle_append_per_s``: leaf hashes appended per second (1,000 per committed batch);
* ``merkle_proof_verify_per_s``: inclusion proofs verified per second (one core);
* ``state_update_per_s``: state updates per second, 500 per committed version,
  half overwrites and half new keys, on a tree already holding ``size`` keys;
* ``state_update_growth``: CPU per update at this size over CPU per update at the
  smallest size (the target is at most 1.5 from 10k to 1M);
* ``state_single_update_per_s`` / ``state_single_update_growth``: the same with one
  update per committed version (alternately an overwrite and a new key), so no two
  updates share a path: the cost of one key's O(log n) path on its own, version
  root and LevelDB write included;
* ``state_nodes_written_per_update``: nodes (leaves and branches) each update writes:
  a Merkle tree rewrites the path to the root, so this grows as log(size / 500);
* ``state_reads_per_update``: node reads from LevelDB per update (those the branch
  cache did not answer, and the leaf each update reaches);
* ``state_proof_verify_per_s``: state membership proofs verified per second;
* ``state_proof_bytes``: mean canonical size of a membership proof;
* ``rss_mb``: private resident memory (RssAnon) of this process after the size's
  updates, with the state store still open;
* ``rss_file_mb``: file-backed resident pages (LevelDB's memory-mapped tables);
* ``rss_steady_mb``: private resident memory of a *fresh* process that opens the
  store just built and overwrites ``STEADY_UPDATES`` random keys of it (500 per
  version, so the store keeps its size) — a validator's memory with a store of
  that size, without this process's fill of 10,000-key batches, whose transient
  objects the allocator keeps;
* ``memory_budget_mb`` (once): the fixed caches, ``STATE_CACHE_BYTES`` +
  ``LEVELDB_CACHE_BYTES``; RSS should level off at about this above the base.

Sizes: 10k, 100k and 1M entries; ``--quick``: 10k and 100k; other sizes with
``IMI_BENCH_LEDGER_SIZES`` (comma-separated, growth is against the first, e.g.
``IMI_BENCH_LEDGER_SIZES=10000,2000000``; 2M takes ~10 minutes). Each size runs on a fresh
LevelDB in a temporary directory. Rates are per CPU-second of the calling
thread (``time.thread_time``), so they hold on a shared machine; LevelDB's
background compaction threads are not counted. Run: ``python -m bench ledger [--quick]``.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ledger import merkle
from ledger.constants import LEVELDB_CACHE_BYTES, STATE_CACHE_BYTES
from ledger.kv import LevelKV, WriteBatch
from ledger.state import StateProof, StateTree, verify_state_proof

_FILL_BATCH = 10_000
STEADY_UPDATES = 100_000  # enough for the branch cache to fill at 1M keys
_UPDATES_PER_VERSION = 500
_PROOFS = 200


def _label(size: int) -> str:
    if size >= 1_000_000 and size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


def rss_mb() -> tuple[float, float]:
    """(private, file-backed) resident memory of this process in MiB (Linux /proc).

    File-backed pages are mostly LevelDB's memory-mapped table files: page cache
    the kernel can drop, not memory the process holds.
    """
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("RssAnon", "RssFile"):
            fields[name] = int(rest.split()[0]) / 1024
    return fields.get("RssAnon", float("nan")), fields.get("RssFile", float("nan"))


def _rate(fn: Callable[[], int], seconds: float) -> float:
    """Operations per second of ``fn`` (which returns how many it did), over >= ``seconds``."""
    done, start = 0, time.thread_time()
    while True:
        done += fn()
        elapsed = time.thread_time() - start
        if elapsed >= seconds:
            return done / elapsed


def _merkle(size: int, directory: Path, seconds: float) -> dict[str, float]:
    kv = LevelKV(directory / "merkle", sync=False)
    log = merkle.MerkleLog(kv, b"m")
    start = time.thread_time()
    for base in range(0, size, 1000):
        batch = WriteBatch()
        log.append([merkle.leaf_hash(i.to_bytes(8, "big")) for i in range(base, min(size, base + 1000))], batch)
        kv.write(batch)
    append_per_s = size / (time.thread_time() - start)
    rng = random.Random(1)
    root = log.root()
    cases = []
    for _ in range(_PROOFS):
        index = rng.randrange(size)
        cases.append((index, merkle.leaf_hash(index.to_bytes(8, "big")), log.inclusion_proof(index)))
    kv.close()  # verifying needs no store; closing also settles LevelDB's background compaction

    def verify_all() -> int:
        for index, leaf, proof in cases:
            merkle.verify_inclusion(index, size, leaf, proof, root)
        return len(cases)

    verify_per_s = _rate(verify_all, seconds)
    return {"merkle_append_per_s": append_per_s, "merkle_proof_verify_per_s": verify_per_s}


class _CountingKV(LevelKV):
    """LevelKV that counts its reads (one attribute increment each)."""

    __slots__ = ("reads",)

    def __init__(self, path: Path) -> None:
        super().__init__(path, sync=False)
        self.reads = 0

    def get(self, key: bytes) -> bytes | None:
        self.reads += 1
        return super().get(key)


def _state(size: int, directory: Path, seconds: float) -> dict[str, float]:
    kv = _CountingKV(directory / "state")
    tree = StateTree(kv, node_prefix=b"s", root_prefix=b"r")
    version = 0
    for base in range(0, size, _FILL_BATCH):
        batch = WriteBatch()
        tree.apply({f"key/{i}".encode(): i.to_bytes(8, "big") for i in range(base, min(size, base + _FILL_BATCH))},
                   version, batch)
        kv.write(batch)
        version += 1
    rng = random.Random(2)
    next_key = size
    updated = written = 0
    reads_before = kv.reads
    start = time.thread_time()
    while updated < 4 * _UPDATES_PER_VERSION or time.thread_time() - start < seconds:
        updates: dict[bytes, bytes | None] = {}
        for _ in range(_UPDATES_PER_VERSION // 2):
            updates[f"key/{rng.randrange(size)}".encode()] = rng.randbytes(8)
            updates[f"key/{next_key}".encode()] = rng.randbytes(8)
            next_key += 1
        batch = WriteBatch()
        tree.apply(updates, version, batch)
        kv.write(batch)
        version += 1
        updated += len(updates)
        written += len(batch) - 1  # all but the version's root pointer
    update_per_s = updated / (time.thread_time() - start)
    reads_per_update = (kv.reads - reads_before) / updated
    single, start = 0, time.thread_time()
    while single < 200 or time.thread_time() - start < seconds:
        if single % 2:
            key, next_key = f"key/{next_key}".encode(), next_key + 1
        else:
            key = f"key/{rng.randrange(size)}".encode()
        batch = WriteBatch()
        tree.apply({key: rng.randbytes(8)}, version, batch, base_version=version - 1)
        kv.write(batch)
        version += 1
        single += 1
    single_update_per_s = single / (time.thread_time() - start)
    rss, rss_file = rss_mb()
    root = tree.root_at(version - 1)
    cases = []
    for _ in range(_PROOFS):
        key = f"key/{rng.randrange(size)}".encode()
        value = tree.get(key)
        cases.append((key, value, tree.prove(key).to_bytes()))
    proof_bytes = sum(len(raw) for _, _, raw in cases) / len(cases)
    kv.close()
    steady_mb = _steady_rss(directory / "state", size, STEADY_UPDATES // 5 if seconds < 3 else STEADY_UPDATES)
    proofs = [(key, value, StateProof.from_bytes(raw)) for key, value, raw in cases]

    def verify_all() -> int:
        for key, value, proof in proofs:
            verify_state_proof(root, key, value, proof)
        return len(proofs)

    verify_per_s = _rate(verify_all, seconds)
    return {"state_update_per_s": update_per_s, "state_single_update_per_s": single_update_per_s,
            "state_nodes_written_per_update": written / updated,
            "state_reads_per_update": reads_per_update, "state_proof_verify_per_s": verify_per_s,
            "state_proof_bytes": proof_bytes, "rss_mb": rss, "rss_file_mb": rss_file,
            "rss_steady_mb": steady_mb}


def _steady_rss(path: Path, size: int, updates: int) -> float:
    """``rss_steady_mb``: run :func:`_steady` in a new interpreter on the closed store."""
    done = subprocess.run([sys.executable, "-m", "bench.ledger", "--steady", str(path), str(size), str(updates)],
                          capture_output=True, text=True, check=True,
                          cwd=str(Path(__file__).resolve().parent.parent))
    return float(done.stdout.split()[-1])


def _steady(path: Path, size: int, updates: int) -> None:
    """Open the state store at ``path`` (keys ``key/0`` … ``key/{size-1}``), overwrite
    ``updates`` of them at random, print the private RSS in MiB."""
    kv = LevelKV(path, sync=False)
    tree = StateTree(kv, node_prefix=b"s", root_prefix=b"r")
    latest = tree.latest_version()
    version = 0 if latest is None else latest + 1
    rng = random.Random(3)
    for base in range(0, updates, _UPDATES_PER_VERSION):
        batch_updates: dict[bytes, bytes | None] = {}
        while len(batch_updates) < _UPDATES_PER_VERSION:
            batch_updates[f"key/{rng.randrange(size)}".encode()] = rng.randbytes(8)
        batch = WriteBatch()
        tree.apply(batch_updates, version, batch)
        kv.write(batch)
        version += 1
    print(round(rss_mb()[0], 1), flush=True)
    kv.close()


def run(quick: bool) -> dict[str, float]:
    sizes: tuple[int, ...] = (10_000, 100_000) if quick else (10_000, 100_000, 1_000_000)
    if os.environ.get("IMI_BENCH_LEDGER_SIZES"):
        try:
            sizes = tuple(int(part) for part in os.environ["IMI_BENCH_LEDGER_SIZES"].split(","))
        except ValueError:
            sizes = ()
        if not sizes or min(sizes) < 1:
            sys.exit("IMI_BENCH_LEDGER_SIZES must be comma-separated positive integers, e.g. 10000,2000000")
    seconds = 1.0 if quick else 3.0
    figures = {"ledger.memory_budget_mb": round((STATE_CACHE_BYTES + LEVELDB_CACHE_BYTES) / 2**20, 1)}
    print(f"ledger.memory_budget_mb {figures['ledger.memory_budget_mb']}", flush=True)
    first: dict[str, float] = {}
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="imi-bench-ledger-") as tmp:
            results = {**_merkle(size, Path(tmp), seconds), **_state(size, Path(tmp), seconds)}
        for rate in ("state_update", "state_single_update"):
            first.setdefault(rate, results[f"{rate}_per_s"])
            results[f"{rate}_growth"] = first[rate] / results[f"{rate}_per_s"]
        for name, value in results.items():
            key = f"ledger.{name}@{_label(size)}"
            figures[key] = round(value, 2 if name.endswith("_growth") else 1)
            print(f"{key} {figures[key]}", flush=True)
    return figures


if __name__ == "__main__":
    if sys.argv[1:2] == ["--steady"]:
        _steady(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        run(quick="--quick" in sys.argv[1:])
