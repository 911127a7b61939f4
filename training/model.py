"""LightGBM with the registry's monotone constraints, early stopping and a fixed seed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.registry import FeatureSpec


@dataclass(frozen=True)
class LightGBMSettings:
    """Hyper-parameters. Classes are deliberately not re-weighted: with about one default
    in ten, unweighted log-loss keeps raw scores close to probabilities, and calibration on
    held-out data corrects what remains; re-weighting would only have to be undone.

    Size: reasons are LightGBM's pred_contrib (TreeSHAP), whose cost grows with trees and
    leaves and is paid on every declined or referred request. On the default world, 7
    leaves at rate 0.05 (72 trees) lose 0.001 test AUC against 15 leaves at 0.02 (180
    trees) and make contributions 5.5x cheaper (benchmarks/bench_model_size.py)."""

    learning_rate: float = 0.05
    num_leaves: int = 7
    min_data_in_leaf: int = 40
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    max_rounds: int = 3000
    early_stopping_rounds: int = 100
    seed: int = 7
    num_threads: int = 2
    extra: dict[str, Any] = field(default_factory=dict)

    def params(self, features: list[FeatureSpec]) -> dict[str, Any]:
        """LightGBM parameters, deterministic for a given data set and seed."""
        return {
            "objective": "binary",
            "metric": ["binary_logloss", "auc"],
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1,
            "lambda_l2": self.lambda_l2,
            "monotone_constraints": [f.direction for f in features],
            "monotone_constraints_method": "advanced",
            "scale_pos_weight": 1.0,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.num_threads,
            "verbosity": -1,
            **self.extra,
        }


def fit_lightgbm(
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    valid_x: pd.DataFrame,
    valid_y: np.ndarray,
    *,
    features: list[FeatureSpec],
    settings: LightGBMSettings | None = None,
) -> lgb.Booster:
    """Train on the training seasons, stopping early on the validation season's log-loss."""
    settings = settings or LightGBMSettings()
    params = settings.params(features)
    names = [f.name for f in features]
    train = lgb.Dataset(train_x, label=train_y, feature_name=names, free_raw_data=False)
    valid = lgb.Dataset(valid_x, label=valid_y, reference=train, free_raw_data=False)
    return lgb.train(
        params,
        train,
        num_boost_round=settings.max_rounds,
        valid_sets=[valid],
        valid_names=["valid"],
        callbacks=[
            lgb.early_stopping(
                settings.early_stopping_rounds, first_metric_only=True, verbose=False
            )
        ],
    )


def raw_scores(booster: lgb.Booster, x: pd.DataFrame) -> np.ndarray:
    """Raw log-odds of the best iteration, one thread (the request path's setting)."""
    return np.asarray(
        booster.predict(x, raw_score=True, num_iteration=booster.best_iteration or None)
    )


def contributions(booster: lgb.Booster, x: pd.DataFrame) -> np.ndarray:
    """Per-feature contributions to the raw score (SHAP values; last column: expected value)."""
    return np.asarray(
        booster.predict(x, pred_contrib=True, num_iteration=booster.best_iteration or None)
    )
