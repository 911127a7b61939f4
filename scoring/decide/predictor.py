"""The serving predictor: a decision batch's few rows through LightGBM's single-row API.

`Booster.predict` parses its parameters and builds a predictor on every call: about 17 us
before the first tree is walked, more than a whole raw score costs here (5.7 us for one
row; contributions 46 us, against 22 and 63 us through `Booster.predict`, on the demo
model; docs/performance.md). A decision batch is a few rows, so the service predicts them
through the single-row API, set up once per booster and kind of output; larger sets go
through `Booster.predict`. Both give the same numbers bit for bit (tested).
"""

from __future__ import annotations

import ctypes
import threading
from functools import cached_property

import lightgbm as lgb
import numpy as np
import pandas as pd
from lightgbm import basic

from scoring.decide.reasons import Explainer
from training.artifact import ModelBundle
from training.scaling import ScoreScaler

# at most this many rows go through the single-row API one by one; more, through predict
SINGLE_ROW_MAX = 16


class SingleRowPredictor:
    """LightGBM's single-row prediction API (LGBM_BoosterPredictForMatSingleRowFast) for
    one booster and kind of output. It calls LightGBM's C API through the private names of
    `lightgbm.basic`, which is why lightgbm is pinned below 5 (pyproject.toml).

    One call at a time per instance (the API keeps its row buffer in the handle): a caller
    that finds it busy gets None and uses `Booster.predict`.
    """

    def __init__(self, booster: lgb.Booster, *, contributions: bool) -> None:
        self._lib = basic._LIB
        self.width = booster.num_feature() + 1 if contributions else 1
        self._n_features = booster.num_feature()
        self._booster = booster  # keeps the booster's handle alive as long as this one
        self._handle = ctypes.c_void_p()
        basic._safe_call(
            self._lib.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(
                    basic._C_API_PREDICT_CONTRIB
                    if contributions
                    else basic._C_API_PREDICT_RAW_SCORE
                ),
                ctypes.c_int(0),  # start iteration
                ctypes.c_int(-1),  # every iteration (the saved model is the best one)
                ctypes.c_int(basic._C_API_DTYPE_FLOAT64),
                ctypes.c_int32(self._n_features),
                basic._c_str("num_threads=1"),
                ctypes.byref(self._handle),
            )
        )
        self._safe_call = basic._safe_call
        self._lock = threading.Lock()

    def predict(self, rows: np.ndarray) -> np.ndarray | None:
        """One output row per input row (features in the model's order), or None when
        another thread is using this predictor."""
        x = np.ascontiguousarray(rows, dtype=np.float64).reshape(-1, self._n_features)
        out = np.empty((len(x), self.width))
        if not self._lock.acquire(blocking=False):
            return None
        try:
            length = ctypes.c_int64()
            fast = self._lib.LGBM_BoosterPredictForMatSingleRowFast
            x_at, x_step = x.ctypes.data, x.strides[0]
            out_at, out_step = out.ctypes.data, out.strides[0]
            for i in range(len(x)):
                self._safe_call(
                    fast(
                        self._handle,
                        ctypes.c_void_p(x_at + i * x_step),
                        ctypes.byref(length),
                        ctypes.c_void_p(out_at + i * out_step),
                    )
                )
        finally:
            self._lock.release()
        return out

    def __del__(self) -> None:
        if getattr(self, "_handle", None):
            self._lib.LGBM_FastConfigFree(self._handle)


class Predictor:
    """A model bundle as the service predicts with it: the same outputs as the bundle's
    own methods, a batch's few rows through the single-row API."""

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle
        self.booster: lgb.Booster = bundle.booster
        self.scaler: ScoreScaler = bundle.scaler
        self.sha256: str = bundle.sha256
        self.feature_names: list[str] = bundle.feature_names

    @cached_property
    def explainer(self) -> Explainer:
        """Turns this model's contributions into true reasons."""
        return Explainer.build(self.bundle.features, self.bundle.population)

    @cached_property
    def _raw_rows(self) -> SingleRowPredictor:
        return SingleRowPredictor(self.booster, contributions=False)

    @cached_property
    def _contribution_rows(self) -> SingleRowPredictor:
        return SingleRowPredictor(self.booster, contributions=True)

    def _predict(self, rows: pd.DataFrame | np.ndarray, single: str, **kind: bool) -> np.ndarray:
        # a few rows through the single-row predictor `single` names, unless it is busy
        x = rows if isinstance(rows, np.ndarray) else self.bundle.matrix(rows)
        if len(x) <= SINGLE_ROW_MAX:
            predictor: SingleRowPredictor = getattr(self, single)
            out = predictor.predict(x)
            if out is not None:
                return out
        return np.asarray(self.booster.predict(x, num_threads=1, **kind)).reshape(len(x), -1)

    def raw(self, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Raw log-odds of default."""
        return self._predict(rows, "_raw_rows", raw_score=True)[:, 0]

    def predict_pd(self, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Calibrated probability of default."""
        return self.bundle.calibrator.predict(self.raw(rows))

    def contributions(self, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Per-feature contributions to the raw score; the last column is the expected value."""
        return self._predict(rows, "_contribution_rows", pred_contrib=True)
