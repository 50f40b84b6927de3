"""The benchmark tools' own logic: the fixed-rate setting of the devnet bench, the
A/B comparison's interval, and one round of the presentation bench against the verifier
service in process (the benchmarks themselves run with ``make bench``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.ab import bootstrap_interval
from bench.devnet import _fixed_rate, _validator_code


def test_the_fixed_rate_is_read_strictly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMI_BENCH_DEVNET_RATE", raising=False)
    assert _fixed_rate() is None
    monkeypatch.setenv("IMI_BENCH_DEVNET_RATE", "700")
    assert _fixed_rate() == 700.0
    for bad in ("abc", "0", "-5", "nan", "1e9"):
        monkeypatch.setenv("IMI_BENCH_DEVNET_RATE", bad)
        with pytest.raises(SystemExit):
            _fixed_rate()


def test_the_interval_brackets_the_mean_and_is_reproducible() -> None:
    assert bootstrap_interval([3.0, 3.0, 3.0]) == (3.0, 3.0)
    differences = [-12.0, 8.5, -3.0, 15.0, -20.0, 6.0, 1.5, -4.0]
    low, high = bootstrap_interval(differences)
    assert low < sum(differences) / len(differences) < high
    assert low < 0 < high  # no difference shown by these
    assert bootstrap_interval(differences) == (low, high)
    clearly_lower = [-25.0, -18.0, -30.0, -22.0, -15.0, -27.0]
    assert bootstrap_interval(clearly_lower)[1] < 0


def test_the_validator_code_must_be_a_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("IMI_BENCH_VALIDATOR_CODE", raising=False)
    assert _validator_code() is None
    monkeypatch.setenv("IMI_BENCH_VALIDATOR_CODE", str(tmp_path))
    with pytest.raises(SystemExit):
        _validator_code()
    (tmp_path / "cli").mkdir()
    (tmp_path / "cli" / "main.py").write_text("")
    assert _validator_code() == tmp_path


def test_a_present_round_goes_through_the_verifier_service_and_must_end_valid(tmp_path: Path) -> None:
    """``bench present``'s round and in-process check against the verifier service of the
    service tests (in process, over a real certified ledger): a valid credential gives a
    verdict; a revoked one makes the round fail instead of being counted."""
    from bench import present
    from identity.wallet import KdfParams, Wallet
    from tests.test_verifier_service import PUBLIC, QUESTION, TOKEN, _credential, make_world

    world = make_world(tmp_path, PUBLIC, wall_clock=True)
    service = present._Service(world.desk.did, world.desk.key, tmp_path, PUBLIC,
                               {"authorization": f"Bearer {TOKEN}"}, QUESTION)
    known = present._KnownService(world.light, world.desk.did, f"{world.desk.did}#{world.desk.key.key_id}")
    assert present._round(world.verifier, service, known, world.wallet) > 0  # the wallet's CPU seconds
    check = present._checker(world.light, service)
    assert check([world.wallet, world.wallet]) > 0  # the first renews the kept reads, untimed
    revoked = Wallet.create(tmp_path / "revoked.json", "pw", kdf=KdfParams.fastest())
    revoked.add_credential(_credential(world.scene, revoked, idx=7), now=world.now())
    with pytest.raises(RuntimeError, match="revoked"):
        present._round(world.verifier, service, known, revoked)
    with pytest.raises(RuntimeError, match="revoked"):
        check([world.wallet, revoked])


@pytest.mark.slow
@pytest.mark.xdist_group("devnet")
def test_bench_catchup_quick_prints_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    """The smoke form of ``python -m bench catchup``: a real devnet, one validator away
    while the others commit LOAD_TXS_QUICK transactions, then caught up."""
    from bench import catchup

    figures = catchup.run(quick=True)
    printed = dict(line.split(" ") for line in capsys.readouterr().out.splitlines())
    assert printed == {name: str(value) for name, value in figures.items()}
    assert figures["catchup.txs"] >= catchup.LOAD_TXS_QUICK
    assert figures["catchup.to_height"] > figures["catchup.from_height"] >= 1
    assert figures["catchup.tx_per_s"] > 0 and figures["catchup.commit_tx_per_s"] > 0
    ratio = figures["catchup.tx_per_s"] / figures["catchup.commit_tx_per_s"]
    assert abs(figures["catchup.ratio_vs_commit"] - ratio) < 0.01
