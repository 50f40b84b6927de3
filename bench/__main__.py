"""Run benchmarks: ``python -m bench NAME [--quick]`` or ``python -m bench all [--quick]``.

Each benchmark is a module ``bench/<name>.py`` with ``run(quick: bool) -> dict[str, float]``
that prints one ``name value`` line per figure. To add one, add a line to BENCHMARKS.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

# name -> module; imported only when run, so one broken benchmark cannot stop the others.
BENCHMARKS: dict[str, str] = {
    "ledger": "bench.ledger",
    "verify": "bench.verify",
    "devnet": "bench.devnet",
    "degraded": "bench.degraded",
    "catchup": "bench.catchup",
    "issue": "bench.issue",
    "present": "bench.present",
}


def _runner(name: str) -> Callable[[bool], dict[str, float]]:
    module = importlib.import_module(BENCHMARKS[name])
    run: Callable[[bool], dict[str, float]] = module.run
    return run


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    names = [arg for arg in argv if not arg.startswith("-")]
    if len(names) != 1 or (names[0] != "all" and names[0] not in BENCHMARKS):
        print(f"usage: python -m bench {{all|{'|'.join(sorted(BENCHMARKS))}}} [--quick]", file=sys.stderr)
        return 2
    selected = sorted(BENCHMARKS) if names[0] == "all" else names
    for name in selected:
        _runner(name)(quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
