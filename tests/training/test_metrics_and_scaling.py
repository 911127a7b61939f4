"""Metrics, score scaling and calibration: exact answers on small hand-made inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.calibration import Calibrator
from training.metrics import auc, brier, ece, gini, ks, psi
from training.scaling import ScoreScaler


def test_discrimination_metrics_on_a_hand_made_ranking():
    y = np.array([0, 0, 1, 0, 1, 1])
    score = np.array([0.1, 0.2, 0.3, 0.4, 0.8, 0.9])

    assert auc(y, score) == pytest.approx(8 / 9)
    assert gini(y, score) == pytest.approx(7 / 9)
    assert ks(y, score) == pytest.approx(2 / 3)  # after 0.4: all 3 goods, 1 of 3 bads


def test_calibration_metrics_are_zero_when_rates_match_and_grow_when_they_do_not():
    y = np.array([0, 1] * 50)
    assert brier(y, np.full(100, 0.5)) == pytest.approx(0.25)
    assert ece(y, np.full(100, 0.5)) == pytest.approx(0.0)
    assert ece(y, np.full(100, 0.3)) == pytest.approx(0.2)


def test_psi_is_zero_for_the_same_population_and_large_for_a_shifted_one():
    rng = np.random.default_rng(0)
    base = rng.normal(size=5000)

    assert psi(base, base) == pytest.approx(0.0, abs=1e-9)
    assert psi(base, rng.normal(size=5000)) < 0.02
    assert psi(base, rng.normal(loc=1.0, size=5000)) > 0.25


def test_score_points_follow_base_odds_and_points_to_double_the_odds():
    scaler = ScoreScaler(base_points=600, base_odds=50, pdo=20)
    pd_at_base = 1 / 51  # odds of repaying 50:1
    pd_doubled = 1 / 101  # odds 100:1

    assert scaler.points(np.array([pd_at_base, pd_doubled])).tolist() == [600, 620]
    assert scaler.band(np.array([0.01, 0.05, 0.2, 0.9])).tolist() == ["A", "B", "D", "E"]


def test_scaler_refuses_bad_parameters_naming_them():
    with pytest.raises(ValueError, match="pdo must be a positive number of points; got -20"):
        ScoreScaler(pdo=-20)
    with pytest.raises(ValueError, match="bands must be increasing"):
        ScoreScaler(bands={"A": 0.5, "B": 0.1, "C": 1.0})


def test_calibrator_recovers_a_known_logistic_map_and_levels_to_the_long_run_rate():
    rng = np.random.default_rng(1)
    raw = rng.normal(size=20_000)
    y = rng.random(20_000) < 1 / (1 + np.exp(-(0.5 * raw - 2.0)))

    fitted = Calibrator().fit(raw, y)
    levelled = Calibrator().fit(raw, y, long_run_rate=0.2)

    assert fitted.a_ == pytest.approx(0.5, abs=0.05) and fitted.b_ == pytest.approx(-2.0, abs=0.05)
    assert levelled.predict(raw).mean() == pytest.approx(0.2, abs=1e-6)
    again = Calibrator.from_dict(levelled.to_dict())
    assert np.array_equal(again.predict(raw), levelled.predict(raw))
    with pytest.raises(RuntimeError, match="not fitted"):
        Calibrator().predict(raw)
    assert math.isfinite(levelled.level_shift_)
