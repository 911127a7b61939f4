"""The model as served: a directory of plain files, read back without running any code.

model.txt         LightGBM's native text model (never a pickle)
calibrator.json   Platt parameters
scaling.json      score points and bands
features.json     the feature declarations, in the model's column order
model.json        SHA-256 of model.txt, best iteration, format version
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import threading
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.registry import FeatureSpec
from training.calibration import Calibrator
from training.scaling import ScoreScaler

FORMAT = "agricredit-model/1"
MODEL_FILE = "model.txt"


class ModelIntegrityError(RuntimeError):
    """The model file does not match the hash it was registered with."""


# at most this many rows go through the single-row API one by one; more, through predict
SINGLE_ROW_MAX = 16


class SingleRowPredictor:
    """LightGBM's single-row prediction API (LGBM_BoosterPredictForMatSingleRowFast), set
    up once per booster and kind of output.

    `Booster.predict` parses its parameters and builds a predictor on every call: about
    17 us before the first tree is walked, more than a whole raw score costs here (5.7 us
    for one row; contributions 46 us, against 22 and 63 us through `Booster.predict`, on
    the demo model; docs/scoring.md). A decision batch is a few
    rows, so the service predicts them through this. One call at a time per instance (the
    API keeps its row buffer in the handle): a caller that finds it busy gets None and
    uses `Booster.predict`.
    """

    def __init__(self, booster: lgb.Booster, *, contributions: bool) -> None:
        from lightgbm import basic

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


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ModelBundle:
    """Booster, calibrator, scaling and the features it reads, in column order."""

    booster: lgb.Booster
    calibrator: Calibrator
    scaler: ScoreScaler
    features: list[FeatureSpec]
    sha256: str

    @cached_property
    def feature_names(self) -> list[str]:
        """Model input columns, in order."""
        return [f.name for f in self.features]

    def _x(self, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
        # a plain float matrix in the model's column order: LightGBM skips pandas handling;
        # an array is taken to be in that order already
        if isinstance(rows, np.ndarray):
            return rows
        return rows[self.feature_names].to_numpy(dtype=float, na_value=np.nan)

    @cached_property
    def _raw_rows(self) -> SingleRowPredictor:
        return SingleRowPredictor(self.booster, contributions=False)

    @cached_property
    def _contribution_rows(self) -> SingleRowPredictor:
        return SingleRowPredictor(self.booster, contributions=True)

    def _predict(self, rows, single: str, **kind) -> np.ndarray:
        # a few rows through the single-row predictor `single` names, unless it is busy
        x = self._x(rows)
        if len(x) <= SINGLE_ROW_MAX:
            out = getattr(self, single).predict(x)
            if out is not None:
                return out
        return self.booster.predict(x, num_threads=1, **kind).reshape(len(x), -1)

    def raw(self, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Raw log-odds of default."""
        return self._predict(rows, "_raw_rows", raw_score=True)[:, 0]

    def predict_pd(self, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Calibrated probability of default."""
        return self.calibrator.predict(self.raw(rows))

    def contributions(self, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Per-feature contributions to the raw score; the last column is the expected value."""
        return self._predict(rows, "_contribution_rows", pred_contrib=True)


def write_bundle(
    directory: Path,
    *,
    booster: lgb.Booster,
    calibrator: Calibrator,
    scaler: ScoreScaler,
    features: list[FeatureSpec],
) -> str:
    """Write the bundle's files into `directory`; returns the model file's SHA-256."""
    directory.mkdir(parents=True, exist_ok=True)
    # save only the best iteration, so the served model is exactly the evaluated one
    booster.save_model(directory / MODEL_FILE, num_iteration=booster.best_iteration or None)
    digest = sha256_of(directory / MODEL_FILE)
    (directory / "calibrator.json").write_text(json.dumps(calibrator.to_dict(), indent=2))
    (directory / "scaling.json").write_text(json.dumps(scaler.to_dict(), indent=2))
    (directory / "features.json").write_text(json.dumps([asdict(f) for f in features], indent=2))
    (directory / "model.json").write_text(
        json.dumps({"format": FORMAT, "sha256": digest, "best_iteration": booster.best_iteration})
    )
    return digest


def read_bundle(directory: Path, *, expected_sha256: str | None = None) -> ModelBundle:
    """Read a bundle; the model file must hash to `expected_sha256` (the registered hash)
    before LightGBM parses it.

    Raises:
        ModelIntegrityError: if the hash differs or the files are not a bundle.
    """
    meta = json.loads((directory / "model.json").read_text())
    if meta.get("format") != FORMAT:
        raise ModelIntegrityError(f"{directory} is not an {FORMAT} bundle")
    digest = sha256_of(directory / MODEL_FILE)
    expected = expected_sha256 or meta["sha256"]
    if digest != expected:
        raise ModelIntegrityError(
            f"{directory / MODEL_FILE} has SHA-256 {digest}, registered {expected}; "
            "the model file was changed after registration: refusing to load it"
        )
    booster = lgb.Booster(model_file=str(directory / MODEL_FILE))
    features = [FeatureSpec(**f) for f in json.loads((directory / "features.json").read_text())]
    if booster.feature_name() != [f.name for f in features]:
        raise ModelIntegrityError(f"{directory}: model columns differ from features.json")
    return ModelBundle(
        booster=booster,
        calibrator=Calibrator.from_dict(json.loads((directory / "calibrator.json").read_text())),
        scaler=ScoreScaler.from_dict(json.loads((directory / "scaling.json").read_text())),
        features=features,
        sha256=digest,
    )
