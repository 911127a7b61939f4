"""The model as served: a directory of plain files, read back without running any code.

model.txt         LightGBM's native text model (never a pickle)
calibrator.json   Platt parameters
scaling.json      score points and bands
features.json     the feature declarations, in the model's column order
population.json   where the training applicants stand on each feature (training/population.py)
model.json        the SHA-256 of every other file, the bundle's digest, the format version

The bundle's digest is the SHA-256 of its files' names and hashes: change any byte of any
file (the calibrator's intercept as much as a tree) and it no longer matches the digest the
registry recorded, so the bundle is refused before anything in it is used.
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
from features.store import file_sha256
from training.calibration import Calibrator
from training.population import Population
from training.scaling import ScoreScaler

FORMAT = "agricredit-model/2"
MODEL_FILE = "model.txt"
MANIFEST = "model.json"
FILES = (MODEL_FILE, "calibrator.json", "scaling.json", "features.json", "population.json")


class ModelIntegrityError(RuntimeError):
    """A bundle's files do not match the hashes it was registered with."""


@dataclass
class ModelBundle:
    """Booster, calibrator, scaling, the features it reads in column order, and where its
    training applicants stood on them. `sha256` is the bundle's digest."""

    booster: lgb.Booster
    calibrator: Calibrator
    scaler: ScoreScaler
    features: list[FeatureSpec]
    population: Population
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


def bundle_digest(files: dict[str, str]) -> str:
    """The digest of a bundle: SHA-256 over its files' names and hashes, in name order."""
    text = "".join(f"{name} {files[name]}\n" for name in sorted(files))
    return hashlib.sha256(text.encode()).hexdigest()


def write_bundle(
    directory: Path,
    *,
    booster: lgb.Booster,
    calibrator: Calibrator,
    scaler: ScoreScaler,
    features: list[FeatureSpec],
    population: Population,
) -> str:
    """Write the bundle's files into `directory`; returns the bundle's digest."""
    directory.mkdir(parents=True, exist_ok=True)
    # save only the best iteration, so the served model is exactly the evaluated one
    booster.save_model(directory / MODEL_FILE, num_iteration=booster.best_iteration or None)
    (directory / "calibrator.json").write_text(json.dumps(calibrator.to_dict(), indent=2))
    (directory / "scaling.json").write_text(json.dumps(scaler.to_dict(), indent=2))
    (directory / "features.json").write_text(json.dumps([asdict(f) for f in features], indent=2))
    (directory / "population.json").write_text(json.dumps(population.to_dict()))
    files = {name: file_sha256(directory / name) for name in FILES}
    digest = bundle_digest(files)
    (directory / MANIFEST).write_text(
        json.dumps(
            {
                "format": FORMAT,
                "files": files,
                "sha256": digest,
                "best_iteration": booster.best_iteration,
            },
            indent=2,
        )
    )
    return digest


def read_bundle(directory: Path, *, expected_sha256: str | None = None) -> ModelBundle:
    """Read a bundle whose every file hashes as its manifest says and whose digest is
    `expected_sha256` (the registered one), checked before any file is parsed.

    Raises:
        ModelIntegrityError: naming the file that differs, or why it is not a bundle.
    """
    try:
        meta = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise ModelIntegrityError(f"{directory / MANIFEST}: not a readable manifest: {exc}") from (
            exc
        )
    if meta.get("format") != FORMAT:
        raise ModelIntegrityError(
            f"{directory} is a {meta.get('format')!r} bundle, not {FORMAT}; retrain to serve it"
        )
    files: dict[str, str] = meta.get("files") or {}
    if sorted(files) != sorted(FILES):
        raise ModelIntegrityError(f"{directory / MANIFEST} lists {sorted(files)}, not {FILES}")
    extra = sorted(p.name for p in directory.iterdir() if p.name not in (*FILES, MANIFEST))
    if extra:
        raise ModelIntegrityError(f"{directory} holds files no hash covers: {', '.join(extra)}")
    expected = expected_sha256 or meta["sha256"]
    if bundle_digest(files) != expected:
        raise ModelIntegrityError(
            f"{directory / MANIFEST}: its file hashes give digest {bundle_digest(files)}, "
            f"registered {expected}; the bundle was changed after registration: refusing it"
        )
    # hash the bytes that are then parsed: nothing can change between the check and the use
    content: dict[str, bytes] = {}
    for name, registered in files.items():
        try:
            content[name] = (directory / name).read_bytes()
        except OSError as exc:
            raise ModelIntegrityError(f"{directory / name}: cannot be read: {exc}") from exc
        digest = hashlib.sha256(content[name]).hexdigest()
        if digest != registered:
            raise ModelIntegrityError(
                f"{directory / name} has SHA-256 {digest}, registered {registered}; the file "
                "was changed after registration: refusing to load the bundle"
            )
    booster = lgb.Booster(model_str=content[MODEL_FILE].decode())
    features = [FeatureSpec(**f) for f in json.loads(content["features.json"])]
    if booster.feature_name() != [f.name for f in features]:
        raise ModelIntegrityError(f"{directory}: model columns differ from features.json")
    return ModelBundle(
        booster=booster,
        calibrator=Calibrator.from_dict(json.loads(content["calibrator.json"])),
        scaler=ScoreScaler.from_dict(json.loads(content["scaling.json"])),
        features=features,
        population=Population.from_dict(json.loads(content["population.json"])),
        sha256=expected,
    )
