"""Everything that records a training run in MLflow: parameters, metrics, plots, the model
card and the model bundle, then registration as a model version."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow

from features.registry import FEATURE_NAMES
from training.artifact import write_bundle
from training.config import TrainingSettings, get_training_settings
from training.model_card import render_model_card
from training.pipeline import TrainedModel
from training.plots import plot_calibration, plot_contributions, plot_roc, plot_score_distribution
from training.promotion import TEST_MATRIX, evaluation_rows
from training.registry import BUNDLE_PATH, get_client, register_version


@dataclass(frozen=True)
class TrackedRun:
    """Where a trained model was recorded."""

    run_id: str
    version: str | None
    sha256: str


def use_experiment(name: str, settings: TrainingSettings | None = None) -> str:
    """Select (creating if needed) the experiment, with artifacts under the artifact root."""
    settings = settings or get_training_settings()
    get_client(settings)
    existing = mlflow.get_experiment_by_name(name)
    if existing is None:
        root = Path(settings.artifact_root).resolve()
        root.mkdir(parents=True, exist_ok=True)
        experiment_id = mlflow.create_experiment(name, artifact_location=root.as_uri())
    else:
        experiment_id = existing.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def _log_plots(model: TrainedModel, directory: Path) -> None:
    p = model.test_predictions
    y = p["defaulted"].to_numpy(dtype=bool)
    plot_roc(
        y,
        {"LightGBM": p["pd"].to_numpy(), "logistic baseline": p["baseline_pd"].to_numpy()},
        directory / "roc.png",
    )
    plot_calibration(y, p["pd"].to_numpy(), directory / "calibration.png")
    plot_score_distribution(y, p["points"].to_numpy(), directory / "score_distribution.png")
    plot_contributions(
        [f.name for f in model.features],
        model.mean_abs_contribution,
        directory / "contributions.png",
    )


def log_trained_model(
    model: TrainedModel,
    *,
    run_name: str,
    register: bool = True,
    nested: bool = False,
    settings: TrainingSettings | None = None,
) -> TrackedRun:
    """Record `model` as an MLflow run (nested under the active run if asked) and, if
    `register`, as a new version of the registered model."""
    settings = settings or get_training_settings()
    client = get_client(settings)
    with (
        mlflow.start_run(run_name=run_name, nested=nested) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        work = Path(tmp)
        mlflow.log_params({k: str(v)[:500] for k, v in model.params.items()})
        mlflow.log_metrics(model.metrics | {"checks_passed": float(model.checks_passed)})
        mlflow.set_tags(
            {"data_fingerprint": model.data_fingerprint, "sources": ",".join(model.sources)}
            | {
                f"check.{c.name}": ("pass: " if c.passed else "FAIL: ") + c.detail
                for c in model.checks
            }
        )
        sha = write_bundle(
            work / BUNDLE_PATH,
            booster=model.booster,
            calibrator=model.calibrator,
            scaler=model.scaler,
            features=model.features,
            population=model.population,
        )
        mlflow.log_artifacts(str(work / BUNDLE_PATH), artifact_path=BUNDLE_PATH)
        (work / "plots").mkdir()
        _log_plots(model, work / "plots")
        mlflow.log_artifacts(str(work / "plots"), artifact_path="plots")
        model.test_predictions.to_parquet(work / "test_predictions.parquet", index=False)
        mlflow.log_artifact(str(work / "test_predictions.parquet"))
        # the test season itself, so a later gate scores this and the next model on it
        evaluation_rows(model.split.test, list(FEATURE_NAMES)).to_parquet(
            work / TEST_MATRIX, index=False
        )
        mlflow.log_artifact(str(work / TEST_MATRIX))
        if not model.fairness.empty:
            model.fairness.to_csv(work / "fairness.csv", index=False)
            mlflow.log_artifact(str(work / "fairness.csv"))
        version = register_version(client, run.info.run_id, sha) if register else None
        card = render_model_card(model, run_id=run.info.run_id, version=version or "")
        (work / "model_card.md").write_text(card)
        mlflow.log_artifact(str(work / "model_card.md"))
    return TrackedRun(run.info.run_id, version, sha)
