"""Chaos scenarios: real validator processes under attack (issue 19).

``python -m tests.chaos [--quick] [--only NAME ...] [--workdir DIR]`` runs every
scenario module of this package — every module not named ``__init__`` or
``__main__`` and not starting with ``_`` — one after another, prints one line
per scenario and finally ``chaos: N scenarios, V violations``; the exit status
is 1 if V > 0 (2 for a usage error, such as an unknown scenario name).

A scenario module exports

* ``NAME: str`` — short and unique, e.g. ``"lying-height"``;
* ``run(workdir: pathlib.Path, *, quick: bool) -> list[str]`` — starts its own
  validator processes (``cli.devnet.Devnet``) under ``workdir``, states its
  bounds as named constants at its top, prints its measurements, always cleans
  up, and returns its violations (empty: it held).

A scenario that raises counts as one violation (its exception). ``--quick`` is
the short form run by ``make test`` (``tests/test_chaos.py``); without it each
scenario runs its full form (``make chaos``). Helpers private to one helper's
scenarios live in ``_<name>.py`` modules, which are not scenarios.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

PACKAGE_DIR = Path(__file__).resolve().parent

RunScenario = Callable[..., list[str]]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str  # the module's NAME
    module: str  # dotted module name
    run: RunScenario


def is_scenario_module(name: str) -> bool:
    return name not in ("__init__", "__main__") and not name.startswith("_")


def discover(package_dir: Path = PACKAGE_DIR, package: str = __name__) -> list[Scenario]:
    """Every scenario module of ``package`` (found in ``package_dir``), sorted by NAME.
    Raises ``ValueError`` for a module that breaks the contract or a repeated NAME."""
    found: dict[str, Scenario] = {}
    for info in pkgutil.iter_modules([str(package_dir)]):
        if not is_scenario_module(info.name):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        scenario = _scenario_of(module)
        if scenario.name in found:
            raise ValueError(f"two chaos scenarios are named {scenario.name!r}: "
                             f"{found[scenario.name].module} and {scenario.module}")
        found[scenario.name] = scenario
    return [found[name] for name in sorted(found)]


def _scenario_of(module: ModuleType) -> Scenario:
    name, run = getattr(module, "NAME", None), getattr(module, "run", None)
    if not isinstance(name, str) or not name or not callable(run):
        raise ValueError(f"{module.__name__} is not a chaos scenario (needs NAME: str and run(workdir, *, quick))")
    return Scenario(name, module.__name__, run)


def run_one(scenario: Scenario, workdir: Path, *, quick: bool) -> tuple[list[str], float]:
    """Run one scenario in a fresh directory under ``workdir``: (violations, seconds)."""
    directory = workdir / scenario.name
    directory.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        violations = list(scenario.run(directory, quick=quick))
    except Exception as exc:  # noqa: BLE001  # a crashed scenario is a violation; the others still run
        violations = [f"the scenario raised {type(exc).__name__}: {exc}"]
    return violations, time.monotonic() - started


def run_all(scenarios: Sequence[Scenario], workdir: Path, *, quick: bool,
            out: Callable[[str], None] = print) -> int:
    """Run ``scenarios`` in order, printing a line each and the summary; the violation count."""
    total = 0
    for scenario in scenarios:
        out(f"chaos: {scenario.name}: running ({'quick' if quick else 'full'})")
        violations, seconds = run_one(scenario, workdir, quick=quick)
        total += len(violations)
        verdict = "ok" if not violations else f"{len(violations)} violation(s)"
        out(f"{scenario.name}: {verdict} in {seconds:.1f} s")
        for violation in violations:
            out(f"  - {violation}")
    out(f"chaos: {len(scenarios)} scenarios, {total} violations")
    return total


def select(scenarios: Sequence[Scenario], only: Sequence[str]) -> list[Scenario]:
    """The scenarios named in ``only`` (all if empty); ``KeyError`` names an unknown one."""
    if not only:
        return list(scenarios)
    by_name = {s.name: s for s in scenarios}
    unknown = [name for name in only if name not in by_name]
    if unknown:
        raise KeyError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(sorted(by_name))}")
    return [by_name[name] for name in dict.fromkeys(only)]


def main(argv: Sequence[str] | None = None, *, package_dir: Path = PACKAGE_DIR, package: str = __name__) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos",
                                     description="Run the chaos scenarios against real validator processes.")
    parser.add_argument("--quick", action="store_true", help="the short form of every scenario")
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME", help="run only these scenarios")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the scenarios' devnets go (default: a new temporary directory)")
    args = parser.parse_args(argv)
    try:
        scenarios = select(discover(package_dir, package), args.only)
    except (KeyError, ValueError) as exc:
        print(f"chaos: {exc.args[0] if exc.args else exc}")
        return 2
    if args.workdir is not None:
        return 1 if run_all(scenarios, args.workdir, quick=args.quick) else 0
    with tempfile.TemporaryDirectory(prefix="imi-chaos-") as workdir:
        return 1 if run_all(scenarios, Path(workdir), quick=args.quick) else 0


__all__ = ["Scenario", "discover", "is_scenario_module", "main", "run_all", "run_one", "select"]
