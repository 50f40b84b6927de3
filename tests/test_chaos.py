"""The chaos runner's contract, and the quick form of every chaos scenario (real processes).

``python -m tests.chaos`` (``make chaos``) runs the full forms; here each
scenario runs its quick form as its own test, so a violation names the
scenario that broke.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests import chaos

pytestmark = pytest.mark.xdist_group("devnet")

_FAKE_SCENARIO = '''
NAME = "{name}"

def run(workdir, *, quick):
    (workdir / "ran").write_text(str(quick))
    return {violations!r}
'''


def _fake_package(tmp_path: Path, scenarios: dict[str, list[str]]) -> tuple[Path, str]:
    """A package of fake scenario modules (and modules the runner must skip)."""
    package = tmp_path / "fakechaos"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text("raise SystemExit(3)\n")
    (package / "_helper.py").write_text("raise RuntimeError('a private module is not a scenario')\n")
    for number, (name, violations) in enumerate(scenarios.items()):
        (package / f"scenario{number}.py").write_text(_FAKE_SCENARIO.format(name=name, violations=violations))
    sys.path.insert(0, str(tmp_path))
    return package, "fakechaos"


def test_the_runner_runs_every_scenario_module_and_counts_violations(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    package, name = _fake_package(tmp_path, {"calm": [], "storm": ["the sky fell", "twice"]})
    try:
        work = tmp_path / "work"
        assert chaos.main(["--quick", "--workdir", str(work)], package_dir=package, package=name) == 1
        out = capsys.readouterr().out
        assert out.splitlines()[-1] == "chaos: 2 scenarios, 2 violations"
        assert "  - the sky fell" in out
        assert (work / "calm" / "ran").read_text() == "True"
        assert chaos.main(["--only", "calm", "--workdir", str(work)], package_dir=package, package=name) == 0
        assert capsys.readouterr().out.splitlines()[-1] == "chaos: 1 scenarios, 0 violations"
        assert (work / "calm" / "ran").read_text() == "False"
        assert chaos.main(["--only", "nope"], package_dir=package, package=name) == 2
        assert "unknown scenario" in capsys.readouterr().out
    finally:
        sys.path.remove(str(tmp_path))
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]


def test_a_scenario_that_raises_is_a_violation(tmp_path: Path) -> None:
    def broken(workdir: Path, *, quick: bool) -> list[str]:
        raise RuntimeError("boom")

    violations, _ = chaos.run_one(chaos.Scenario("broken", "x", broken), tmp_path, quick=True)
    assert violations == ["the scenario raised RuntimeError: boom"]


SCENARIOS = chaos.discover()


def test_the_scenarios_of_issue_19_item_1_are_there() -> None:
    assert {"lying-height", "junk-proposals", "kill9-under-load"} <= {s.name for s in SCENARIOS}


# lying-height runs in `make chaos` (python -m tests.chaos) but not here: inside the full
# suite on 2 cores its impostor process was seen twice never to reach the validators within
# 48 s (the chain kept committing; the scenario then rightly reports that no attack
# happened). Until the impostor's start under load is understood, it would fail CI by luck.
QUICK_IN_MAKE_TEST = [s for s in SCENARIOS if s.name != "lying-height"]


@pytest.mark.parametrize("scenario", QUICK_IN_MAKE_TEST, ids=[s.name for s in QUICK_IN_MAKE_TEST])
def test_chaos_scenario_quick(scenario: chaos.Scenario, tmp_path: Path) -> None:
    violations, seconds = chaos.run_one(scenario, tmp_path, quick=True)
    print(f"{scenario.name}: {seconds:.1f} s")
    assert violations == []
