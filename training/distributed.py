"""Training on a Dask cluster: LightGBM's own distributed learner (DaskLGBMClassifier) on
the same split, parameters and monotone constraints. The result is an ordinary Booster cut
where in-process early stopping would cut, so the registered artifact and the service are
the same as after single-machine training."""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.registry import FeatureSpec
from features.runners import DaskRunner
from training.model import LightGBMSettings

log = logging.getLogger(__name__)
DASK_ROUNDS = 600  # the cluster learner has no early stopping: grow this many, keep the best
_SKLEARN_NAMES = {"seed": "random_state"}
_NOT_PASSED = {"metric", "num_threads"}  # the metric is the caller's; threads are per worker


def _chunks(client: Any, x: np.ndarray, parts: int) -> Any:  # a dask.array.Array
    """A Dask array of `x` in `parts` row blocks, each sent to the cluster once (scattered,
    not embedded in the task graph)."""
    import dask.array as da

    rows = max(math.ceil(len(x) / parts), 1)
    blocks = [x[i : i + rows] for i in range(0, len(x), rows)]
    futures = client.scatter(blocks)
    return da.concatenate(  # type: ignore[no-untyped-call]
        [
            da.from_delayed(f, shape=b.shape, dtype=b.dtype)  # type: ignore[no-untyped-call]
            for f, b in zip(futures, blocks, strict=True)
        ]
    )


def validation_losses(booster: lgb.Booster, x: np.ndarray, y: np.ndarray) -> list[float]:
    """Log-loss on (x, y) after each tree. lightgbm.dask reports one worker's share of the
    validation rows only, so the curve is computed here, on all of them."""
    raw = np.zeros(len(x))
    losses = []
    for i in range(booster.num_trees()):
        raw += booster.predict(x, raw_score=True, start_iteration=i, num_iteration=1)
        p = np.clip(1.0 / (1.0 + np.exp(-raw)), 1e-15, 1 - 1e-15)
        losses.append(float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))))
    return losses


def early_stopping_point(losses: list[float], patience: int) -> int | None:
    """The iteration (1-based) in-process early stopping would keep: the best so far once
    `patience` rounds have brought nothing better; None if that never happened."""
    best, best_at = float("inf"), 0
    for i, loss in enumerate(losses):
        if loss < best:
            best, best_at = loss, i
        elif i - best_at >= patience:
            return best_at + 1
    return None


def fit_lightgbm_dask(
    runner: DaskRunner,
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    valid_x: pd.DataFrame,
    valid_y: np.ndarray,
    *,
    features: list[FeatureSpec],
    settings: LightGBMSettings | None = None,
    rounds: int = DASK_ROUNDS,
) -> lgb.Booster:
    """Grow `rounds` trees on the cluster, the training rows spread over its workers, and
    keep those up to where early stopping on the validation season would have stopped."""
    from lightgbm.dask import DaskLGBMClassifier

    settings = settings or LightGBMSettings()
    params = {
        _SKLEARN_NAMES.get(k, k): v
        for k, v in settings.params(features).items()
        if k not in _NOT_PASSED
    }
    client, workers = runner.client, runner.workers
    model = DaskLGBMClassifier(client=client, n_estimators=rounds, **params)
    with warnings.catch_warnings():
        # the wrapper always passes n_jobs; each worker's thread count replaces it anyway
        warnings.filterwarnings("ignore", "Parameter n_jobs will be ignored", UserWarning)
        model.fit(
            _chunks(client, train_x.to_numpy(dtype=float), workers),
            _chunks(client, np.asarray(train_y, dtype=float), workers),
            feature_name=[f.name for f in features],
        )
    grown = model.booster_
    losses = validation_losses(grown, valid_x.to_numpy(dtype=float), np.asarray(valid_y, float))
    best = early_stopping_point(losses, settings.early_stopping_rounds)
    if best is None:
        log.warning("validation loss still falling after %d rounds; raise rounds", rounds)
        best = int(np.argmin(losses)) + 1
    booster = lgb.Booster(model_str=grown.model_to_string(num_iteration=best))
    booster.best_iteration = best
    return booster
