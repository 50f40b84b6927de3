"""Compare the devnet's latency of this tree against another revision, in alternating pairs.

    python -m bench.ab REV [--pairs N] [--rate TX_PER_S]

On a shared 2-core machine one devnet run's p50 moves by ±20 ms with the machine's
state, more than most changes move it, so one run of each says nothing. This runs
``python -m bench devnet`` (this tree's harness) at a fixed offered rate
(``IMI_BENCH_DEVNET_RATE``, see :mod:`bench.devnet`), alternately against validators
running this tree's code and a detached git worktree of ``REV`` (the order swapped
every pair), and prints each pair, then the mean of the paired differences with a
bootstrap 90 % interval (seeded, so the same runs give the same interval). An interval
that contains 0 means "no difference shown".

Both sides use this virtualenv's Python and libraries; a revision whose validators
need other dependencies, or read another genesis format, cannot be compared this way.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

FIGURE = "devnet.at_rate.latency_ms_p50"
PAIRS_DEFAULT = 8
RATE_DEFAULT = 700.0
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 7
RUN_TIMEOUT_S = 600

ROOT = Path(__file__).resolve().parent.parent


def _p50(tree: Path, rate: float) -> float:
    """One fixed-rate devnet run with validators running ``tree``'s code; its p50 in ms.
    Exits if the run fails."""
    env = dict(os.environ, IMI_BENCH_DEVNET_RATE=repr(rate), IMI_BENCH_VALIDATOR_CODE=str(tree))
    done = subprocess.run([sys.executable, "-m", "bench", "devnet"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=RUN_TIMEOUT_S, check=False)
    for line in done.stdout.splitlines():
        name, _, value = line.partition(" ")
        if name == FIGURE:
            return float(value)
    sys.exit(f"bench.ab: no {FIGURE} from the run in {tree} (exit {done.returncode}):\n{done.stderr[-2000:]}")


def bootstrap_interval(differences: list[float], *, resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """5th and 95th percentiles of the mean of ``differences`` resampled with replacement."""
    rng = random.Random(seed)
    means = sorted(statistics.fmean(rng.choices(differences, k=len(differences))) for _ in range(resamples))
    return means[int(0.05 * resamples)], means[int(0.95 * resamples) - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="the git revision to compare against (e.g. HEAD~1, main)")
    parser.add_argument("--pairs", type=int, default=PAIRS_DEFAULT, help=f"runs of each (default {PAIRS_DEFAULT})")
    parser.add_argument("--rate", type=float, default=RATE_DEFAULT,
                        help=f"offered tx/s, batches of 16 (default {RATE_DEFAULT:g})")
    args = parser.parse_args(argv)
    if args.pairs < 2 or args.rate <= 0:
        parser.error("--pairs must be at least 2 and --rate positive")
    with tempfile.TemporaryDirectory(prefix="imi-ab-") as tmp:
        base = Path(tmp) / "base"
        added = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.rev],
                               capture_output=True, text=True, check=False)
        if added.returncode != 0:
            print(f"bench.ab: cannot check out {args.rev!r}: {added.stderr.strip()}", file=sys.stderr)
            return 1
        try:
            differences = []
            for pair in range(args.pairs):
                order = [("this", ROOT), ("base", base)]
                if pair % 2:
                    order.reverse()
                p50 = {label: _p50(tree, args.rate) for label, tree in order}
                differences.append(p50["this"] - p50["base"])
                print(f"pair {pair + 1}: this {p50['this']:.1f} ms, {args.rev} {p50['base']:.1f} ms, "
                      f"difference {differences[-1]:+.1f} ms", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                           capture_output=True, check=False)
    low, high = bootstrap_interval(differences)
    lower = sum(1 for d in differences if d < 0)
    print(f"{FIGURE} at {args.rate:g} tx/s, this minus {args.rev}: mean {statistics.fmean(differences):+.1f} ms, "
          f"90 % interval [{low:+.1f}, {high:+.1f}] ms; this lower in {lower} of {len(differences)} pairs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
