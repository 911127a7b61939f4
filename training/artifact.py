"""The model as served: a directory of plain files, read back without running any code.

model.txt         LightGBM's native text model (never a pickle)
calibrator.json   Platt parameters
scaling.json      score points and bands
features.json     the feature declarations, in the model's column order
model.json        SHA-256 of model.txt, best iteration, format version
"""

from __future__ import annotations

import hashlib
import json
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

    def matrix(self, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
        # a plain float matrix in the model's column order: LightGBM skips pandas handling;
        # an array is taken to be in that order already
        if isinstance(rows, np.ndarray):
            return rows
        return np.asarray(rows[self.feature_names].to_numpy(dtype=float, na_value=np.nan))

    def raw(self, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Raw log-odds of default."""
        return np.asarray(self.booster.predict(self.matrix(rows), raw_score=True, num_threads=1))

    def predict_pd(self, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Calibrated probability of default."""
        return self.calibrator.predict(self.raw(rows))

    def contributions(self, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Per-feature contributions to the raw score; the last column is the expected value."""
        x = self.matrix(rows)
        out = np.asarray(self.booster.predict(x, pred_contrib=True, num_threads=1))
        return out.reshape(len(x), -1)


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
