"""``python -m tests.sim --seeds N [--validators 4|7] [--seed S] [--selftest] [--jobs J]``

Runs seeds S .. S+N-1 (validators alternate 4 and 7 unless given), prints every
failing seed with the command that replays it, and ends with one summary line::

    sim: N seeds, V violations, H heights committed, M messages, T ticks, E equivocations reported
    (P of proposals), S round-0 turns moved by the proposer rule, D validators down in degraded
    phases, X s (Y seeds/s)

Exit status 1 on any violation. ``--selftest`` runs worlds with f+1 colluding
Byzantine validators and exits 0 only if the checker catches a safety violation
in every one of them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

from tests.sim.world import Result, run_seed


def _validators_for(seed: int, fixed: int | None) -> int:
    return fixed if fixed is not None else (4 if seed % 2 == 0 else 7)


def _run(args: tuple[int, int, bool]) -> Result:
    seed, validators, selftest = args
    return run_seed(seed, validators, selftest=selftest)


def _results(jobs: list[tuple[int, int, bool]], workers: int) -> Iterator[Result]:
    if workers <= 1:
        for job in jobs:
            yield _run(job)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_run, jobs, chunksize=8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds to run (default 1 with --seed, else 100)")
    parser.add_argument("--seed", type=int, default=None, help="first seed (default 0)")
    parser.add_argument("--validators", type=int, choices=(4, 7), default=None)
    parser.add_argument("--selftest", action="store_true", help="f+1 Byzantine: the checker must catch it")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--verbose", action="store_true", help="print one line per seed")
    parser.add_argument("--progress", type=int, default=0, metavar="K",
                        help="print a progress line to stderr every K seeds")
    args = parser.parse_args(argv)
    count = args.seeds if args.seeds is not None else (1 if args.seed is not None else 100)
    if count < 1:
        parser.error("--seeds must be >= 1")
    start = args.seed if args.seed is not None else 0
    jobs = [(s, _validators_for(s, args.validators), args.selftest) for s in range(start, start + count)]
    began = time.perf_counter()
    violations = heights = messages = ticks = failed = evidence = proposal_evidence = skips = crashes = 0
    for done, result in enumerate(_results(jobs, args.jobs), 1):
        if args.progress and done % args.progress == 0:
            print(f"progress: {done}/{count} seeds, {failed} failing, {time.perf_counter() - began:.0f} s",
                  file=sys.stderr, flush=True)
        heights += result.heights
        messages += result.messages
        ticks += result.ticks
        evidence += result.evidence
        proposal_evidence += result.proposal_evidence
        skips += result.skips
        crashes += result.degraded_crashes
        if args.verbose:
            print(f"seed {result.seed} v={result.validators} modes={','.join(result.modes)} "
                  f"heights={result.heights} ticks={result.ticks} msgs={result.messages} "
                  f"evidence={result.evidence} (proposals {result.proposal_evidence}) skips={result.skips} "
                  f"down={result.degraded_crashes} violations={len(result.violations)} digest={result.digest[:16]}")
        bad = not result.violations if args.selftest else bool(result.violations)
        if args.selftest:
            violations += len(result.violations)
            if bad:
                failed += 1
                print(f"SELFTEST FAILED seed={result.seed}: the checker saw no violation with f+1 Byzantine; "
                      f"replay: {result.replay_command()}")
            elif args.verbose:
                print(f"  detected: {result.violations[0]}")
            continue
        if bad:
            failed += 1
            violations += len(result.violations)
            print(f"FAIL seed={result.seed} validators={result.validators} modes={','.join(result.modes)}")
            for text in result.violations:
                print(f"  {text}")
            print(f"  replay: {result.replay_command()}")
    elapsed = time.perf_counter() - began
    print(f"sim: {count} seeds, {violations} violations, {heights} heights committed, {messages} messages, "
          f"{ticks} ticks, {evidence} equivocations reported ({proposal_evidence} of proposals), "
          f"{skips} round-0 turns moved by the proposer rule, {crashes} validators down in degraded phases, {elapsed:.1f} s ({count / elapsed:.2f} seeds/s)"
          + (f", selftest detected {count - failed}/{count}" if args.selftest else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
