"""The chaos runner's contract, and the quick form of every chaos scenario (real processes).

``python -m tests.chaos`` (``make chaos``) runs the full forms; here each
scenario runs its quick form as its own test, so a violation names the
scenario that broke.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ledger.keys import SigningKey
from node.sync import Syncer
from tests import chaos
from tests.chaos._byzantine import height_lies
from tests.chaos._peers import impostor_failure
from tests.test_node_sync import _chain

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


def test_every_lie_of_the_impostor_is_built_and_refused_as_unproven() -> None:
    """Regression: once headers carried ``last_commit``, the impostor's re-numbered header no
    longer parsed, so it crashed on its first lie and lying-height attacked nobody. Against
    a real head whose header has a ``last_commit``, every lie is built, and an honest
    validator's syncer counts each as unproven and does not chase it."""
    keys = [SigningKey.generate() for _ in range(4)]
    ahead, behind = _chain(keys, 3)
    frame = Syncer(ahead, lambda peer, value: None).announcement()
    assert isinstance(frame, dict) and isinstance(frame["head"], list)
    header = frame["head"][0]
    assert isinstance(header, dict) and header["last_commit"] is not None
    lies = height_lies(ahead.genesis.chain_id, keys[3], 3, frame["head"])
    assert len(lies) == 4 and len({repr(lie) for lie in lies}) == 4
    honest = Syncer(behind, lambda peer, value: None)
    for lie in lies:
        assert isinstance(lie, dict)
        honest.on_status(keys[3].key_id, lie["height"], lie.get("head"))
        assert honest.lag() == 0, lie
    assert honest.unproven_claims == len(lies)
    assert height_lies(ahead.genesis.chain_id, keys[3], 3, ["not", "a head"]) == lies[:1]
    assert height_lies(ahead.genesis.chain_id, keys[3], 0, None) == [{"t": "status", "height": 10**6}]


def test_an_impostor_that_died_is_a_violation_naming_its_last_words(tmp_path: Path) -> None:
    log_file = tmp_path / "byzantine.log"
    with open(log_file, "wb") as log:
        process = subprocess.Popen([sys.executable, "-c", "print('BlockError: no'); raise SystemExit(3)"],
                                   stdout=log, stderr=subprocess.STDOUT)
    process.wait(30)
    failure = impostor_failure(process, log_file)
    assert failure is not None and "status 3" in failure and "BlockError: no" in failure
    with open(log_file, "wb") as log:
        alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdout=log)
    try:
        assert impostor_failure(alive, log_file) is None
    finally:
        alive.kill()
        alive.wait()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_chaos_scenario_quick(scenario: chaos.Scenario, tmp_path: Path) -> None:
    violations, seconds = chaos.run_one(scenario, tmp_path, quick=True)
    print(f"{scenario.name}: {seconds:.1f} s")
    assert violations == []
