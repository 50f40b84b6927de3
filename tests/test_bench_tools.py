"""The benchmark tools' own logic: the fixed-rate setting of the devnet bench and the
A/B comparison's interval (the benchmarks themselves run with ``make bench``)."""

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
