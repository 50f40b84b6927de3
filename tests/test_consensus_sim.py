"""The seeded simulator: many fault mixes without violations, determinism, and a checker that sees.

The default suite runs ``SUITE_SEEDS`` seeds (validators alternate 4 and 7), in
chunks so pytest-xdist spreads them. ``make sim`` runs 10 000.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.block import PREVOTE, Vote
from tests.sim import __main__ as cli
from tests.sim.checker import Checker
from tests.sim.world import Result, World, run_seed

SUITE_SEEDS = 200
CHUNK = 10
ROOT = Path(__file__).resolve().parent.parent


def _validators(seed: int) -> int:
    return 4 if seed % 2 == 0 else 7


@pytest.mark.parametrize("chunk", range(SUITE_SEEDS // CHUNK), ids=lambda c: f"seeds{c * CHUNK}-{c * CHUNK + CHUNK - 1}")
def test_simulated_seeds_show_no_safety_or_liveness_violation(chunk: int) -> None:
    failures = []
    for seed in range(chunk * CHUNK, chunk * CHUNK + CHUNK):
        result = run_seed(seed, _validators(seed))
        assert result.commits > 0
        if result.violations:
            failures.append(f"{result.replay_command()}: {result.violations}")
    assert not failures, "\n".join(failures)


def test_the_seeds_cover_every_byzantine_mode_and_both_sizes() -> None:
    wanted = {"honest", "silent", "twins", "amnesia", "forger"}
    modes: set[str] = set()
    sizes: set[int] = set()
    for seed in range(SUITE_SEEDS):
        world = World(seed, _validators(seed))
        modes.update(world.modes)
        sizes.add(world.n)
        if wanted <= modes and sizes == {4, 7}:
            break
    assert wanted <= modes and sizes == {4, 7}


def test_the_same_seed_gives_the_same_trace() -> None:
    first = run_seed(11, 7)
    second = run_seed(11, 7)
    assert first == second
    assert first.digest == second.digest and first.messages > 0
    assert run_seed(12, 7).digest != first.digest


def test_the_trace_does_not_depend_on_python_hash_randomization() -> None:
    digests = set()
    for hash_seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run([sys.executable, "-m", "tests.sim", "--seed", "6", "--verbose"], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=300, check=True).stdout
        digests.add(next(line for line in out.splitlines() if line.startswith("seed 6")).split("digest=")[1])
    assert len(digests) == 1


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_selftest_with_f_plus_one_byzantine_is_caught_by_the_checker(seed: int) -> None:
    result = run_seed(seed, _validators(seed), selftest=True)
    assert any(v.startswith("agreement") for v in result.violations), result.violations


def test_selftest_cli_exits_zero_only_when_violations_are_detected(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--selftest", "--seeds", "2"]) == 0
    assert "selftest detected 2/2" in capsys.readouterr().out.splitlines()[-1]


def test_a_failing_seed_prints_its_replay_command_and_exits_nonzero(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def fake(seed: int, validators: int, *, selftest: bool = False) -> Result:
        return Result(seed, validators, ["agreement: made up"], 1, 1, 1, 1, 0, "00", ("honest",))

    monkeypatch.setattr(cli, "run_seed", fake)
    assert cli.main(["--seed", "42", "--validators", "7"]) == 1
    out = capsys.readouterr().out
    assert "replay: python -m tests.sim --seed 42 --validators 7" in out
    assert out.splitlines()[-1].startswith("sim: 1 seeds, 1 violations")


def test_the_liveness_check_fails_when_honest_nodes_never_recover() -> None:
    world = World(2, 4)
    calm = world._calm

    def calm_then_crash_everyone() -> None:
        calm()
        for node in world.nodes:
            node.core = None

    world._calm = calm_then_crash_everyone  # type: ignore[method-assign]
    result = world.run()
    assert any(v.startswith("liveness") for v in result.violations)


def test_the_checker_flags_an_honest_double_sign() -> None:
    checker = Checker(lambda key, signed: True)
    a = Vote("c", 3, 1, PREVOTE, bytes(32), "validator-x", b"s1")
    b = Vote("c", 3, 1, PREVOTE, None, "validator-x", b"s2")
    checker.on_signed("v1", a)
    checker.on_signed("v1", a)  # a re-send of the same vote is fine
    assert not checker.violations
    checker.on_signed("v1", b)
    assert checker.violations and checker.violations[0].startswith("honest double-sign")


def test_a_validator_set_change_takes_effect_in_the_simulation() -> None:
    seed = next(s for s in range(100) if World(s, 4).valset_change)
    world = World(seed, 4)
    result = world.run()
    assert not result.violations
    spare = next(n for n in world.nodes if n.name == "spare")
    ledger = max((n.ledger for n in world.nodes if n.honest), key=lambda ledger: ledger.height)
    signed = [h for h, (_, cert) in enumerate(ledger.blocks, 1)
              if any(v == spare.key_id for v, _ in cert.signatures)]
    assert signed, "the validator added by governance never signed a certificate"
    holder = next(n for n in world.nodes if n.honest and n.ledger is ledger)
    assert world.genesis.validators.get(spare.key_id) is None
    assert holder.app.validators_at(signed[0]).get(spare.key_id) is not None
