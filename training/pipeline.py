"""Training as one function: labelled rows in, a calibrated, evaluated model out.

No MLflow here (tracking.py records what this returns), so tests and ablations call it
directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.registry import SOURCES, FeatureSpec
from training.baseline import fit_baseline, predict_baseline
from training.calibration import Calibrator
from training.dataset import (
    LABEL,
    Split,
    SplitCheck,
    fingerprint,
    labelled,
    leakage_check,
    select_features,
    split_out_of_time,
    xy,
)
from training.evaluation import evaluate, fairness_gaps, fairness_table
from training.metrics import auc, psi
from training.model import LightGBMSettings, contributions, fit_lightgbm, raw_scores
from training.population import Population
from training.scaling import ScoreScaler


@dataclass
class TrainedModel:
    """Everything one training run produced and measured."""

    sources: tuple[str, ...]
    features: list[FeatureSpec]
    booster: lgb.Booster
    calibrator: Calibrator
    scaler: ScoreScaler
    population: Population
    split: Split
    metrics: dict[str, float]
    params: dict[str, object]
    test_predictions: pd.DataFrame
    fairness: pd.DataFrame
    mean_abs_contribution: np.ndarray
    data_fingerprint: str
    checks: list[SplitCheck] = field(default_factory=list)

    @property
    def checks_passed(self) -> bool:
        """True when the split and leakage checks all passed."""
        return all(c.passed for c in self.checks)


def train_model(
    matrix: pd.DataFrame,
    *,
    sources: tuple[str, ...] = SOURCES,
    settings: LightGBMSettings | None = None,
    scaler: ScoreScaler | None = None,
    oracle_pd: pd.Series | None = None,
    groups: pd.DataFrame | None = None,
    fit: Callable[..., lgb.Booster] = fit_lightgbm,
) -> TrainedModel:
    """Train, calibrate and evaluate on an out-of-time split of `matrix`.

    Args:
        matrix: the training matrix of `features build` (features, outcome_known,
            outcome_at, defaulted).
        sources: data sources whose features the model may read.
        oracle_pd: the true probability of default by application_id (simulated data
            only); adds the oracle's AUC and the model/oracle ratio on the test season.
        groups: audit attributes by farmer_id (e.g. county, gender), never model inputs.
        fit: grows the booster (`fit_lightgbm`, or `fit_lightgbm_dask` bound to a Dask runner).
    """
    settings = settings or LightGBMSettings()
    scaler = scaler or ScoreScaler()
    features = select_features(sources)
    rows = labelled(matrix)
    split = split_out_of_time(rows)
    # 1. fit on the training seasons, stop early on the validation season
    train_x, train_y = xy(split.train, features)
    valid_x, valid_y = xy(split.valid, features)
    test_x, test_y = xy(split.test, features)
    booster = fit(train_x, train_y, valid_x, valid_y, features=features, settings=settings)
    # 2. calibrate on the validation season, levelled to the long-run default rate
    seasons = pd.concat([split.train, split.valid])
    long_run = float(seasons.groupby("season")[LABEL].mean().mean())
    calibrator = Calibrator().fit(raw_scores(booster, valid_x), valid_y, long_run_rate=long_run)
    test_pd = calibrator.predict(raw_scores(booster, test_x))
    train_pd = calibrator.predict(raw_scores(booster, train_x))
    # 3. the baseline, same split
    baseline = fit_baseline(train_x, train_y, seed=settings.seed)
    baseline_pd = predict_baseline(baseline, test_x)
    # 4. metrics, stability, oracle
    metrics = evaluate(test_y, test_pd)
    baseline_metrics = evaluate(test_y, baseline_pd, prefix="baseline")
    metrics |= baseline_metrics
    metrics["valid_auc"] = auc(valid_y, calibrator.predict(raw_scores(booster, valid_x)))
    metrics["score_psi_train_test"] = psi(train_pd, test_pd)
    metrics["best_iteration"] = float(booster.best_iteration)
    metrics["long_run_default_rate"] = long_run
    if oracle_pd is not None:
        oracle = oracle_pd.reindex(split.test["application_id"]).to_numpy(dtype=float)
        if not np.isnan(oracle).any():
            metrics["oracle_auc"] = auc(test_y, oracle)
            metrics["auc_over_oracle"] = metrics["test_auc"] / metrics["oracle_auc"]
    # 5. explanations, fairness audit
    contrib = contributions(booster, test_x)[:, :-1]
    fairness = pd.DataFrame()
    if groups is not None:
        by_farmer = groups.set_index("farmer_id")
        audit = by_farmer.reindex(split.test["farmer_id"]).reset_index(drop=True)
        fairness = fairness_table(audit, test_y, test_pd)
        for column in audit.columns:
            metrics |= fairness_gaps(fairness, column)
    checks = [*split.checks, leakage_check(split.train, features)]
    predictions = pd.DataFrame(
        {
            "application_id": split.test["application_id"].to_numpy(),
            "farmer_id": split.test["farmer_id"].to_numpy(),
            LABEL: test_y,
            "pd": test_pd,
            "points": scaler.points(test_pd),
            "band": scaler.band(test_pd),
            "baseline_pd": baseline_pd,
        }
    )
    return TrainedModel(
        sources=tuple(sources),
        features=features,
        booster=booster,
        calibrator=calibrator,
        scaler=scaler,
        population=Population.describe(train_x),
        split=split,
        metrics=metrics,
        params=settings.params(features)
        | {"sources": ",".join(sources), "seasons": str(split.seasons)},
        test_predictions=predictions,
        fairness=fairness,
        mean_abs_contribution=np.abs(contrib).mean(axis=0),
        data_fingerprint=fingerprint(rows[["application_id", LABEL, *[f.name for f in features]]]),
        checks=checks,
    )
