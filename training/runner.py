"""The shell around training: read the data directory, train, track, ablate."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import mlflow
import pandas as pd

from features.arrival_log import ArrivalLog
from features.feature_store import MANIFEST_FILE, TRAINING_FILE, write_feature_store
from features.registry import SOURCES
from features.runners import IN_PROCESS, DaskRunner, Runner
from training.config import get_training_settings
from training.distributed import fit_lightgbm_dask
from training.model import fit_lightgbm
from training.pipeline import TrainedModel, train_model
from training.registry import MODEL_NAME
from training.scaling import ScoreScaler
from training.tracking import log_trained_model, use_experiment

AUDIT_COLUMNS = ("county", "gender")


def _inputs(
    data_dir: Path, echo: Callable[[str], None]
) -> tuple[pd.DataFrame, pd.Series | None, pd.DataFrame]:
    features_dir = data_dir / "features"
    if not (features_dir / MANIFEST_FILE).exists():
        echo(f"no features in {features_dir}; building them first")
        write_feature_store(data_dir, progress=True)
    matrix = pd.read_parquet(features_dir / TRAINING_FILE)
    if ArrivalLog.present(data_dir):  # a store: its log holds the tables
        log = ArrivalLog(data_dir)
        loans, farmers = log.table("loans"), log.table("farmers")
    else:
        loans = pd.read_parquet(data_dir / "loans.parquet")
        farmers = pd.read_parquet(data_dir / "farmers.parquet")
    oracle = loans.set_index("loan_id")["true_pd"] if "true_pd" in loans else None
    audit = farmers[["farmer_id", *[c for c in AUDIT_COLUMNS if c in farmers]]]
    return matrix, oracle, audit


def run_training(
    data_dir: Path,
    *,
    sources: tuple[str, ...] = SOURCES,
    experiment: str | None = None,
    ablate: bool = False,
    register: bool = True,
    scaler: ScoreScaler | None = None,
    echo: Callable[[str], None] = print,
    runner: Runner = IN_PROCESS,
) -> TrainedModel:
    """Train on DATA_DIR's features, record the run (and ablations) and register it; with
    a Dask runner every booster grows on its cluster."""
    settings = get_training_settings()
    matrix, oracle, audit = _inputs(Path(data_dir), echo)
    use_experiment(experiment or settings.experiment, settings)
    fit = partial(fit_lightgbm_dask, runner) if isinstance(runner, DaskRunner) else fit_lightgbm
    model = train_model(
        matrix, sources=sources, oracle_pd=oracle, groups=audit, scaler=scaler, fit=fit
    )
    tracked = log_trained_model(model, run_name="+".join(sources), register=register)
    m = model.metrics
    echo(
        f"run {tracked.run_id}: test AUC {m['test_auc']:.4f} (baseline {m['baseline_auc']:.4f}"
        + (
            f", oracle {m['oracle_auc']:.4f}, ratio {m['auc_over_oracle']:.3f}"
            if "oracle_auc" in m
            else ""
        )
        + f"), ECE {m['test_ece']:.4f}, Brier {m['test_brier']:.4f}, KS {m['test_ks']:.3f}"
    )
    for check in model.checks:
        if not check.passed:
            echo(f"  check FAILED: {check.name}: {check.detail}")
    if tracked.version:
        echo(
            f"registered {MODEL_NAME} version {tracked.version} (bundle digest "
            f"{tracked.sha256[:16]}...)"
        )
    if ablate:
        with mlflow.start_run(run_id=tracked.run_id):
            for left_out in sources:
                kept = tuple(s for s in sources if s != left_out)
                ablated = train_model(matrix, sources=kept, oracle_pd=oracle, groups=audit, fit=fit)
                log_trained_model(
                    ablated, run_name=f"without {left_out}", register=False, nested=True
                )
                echo(
                    f"  without {left_out:<9}: test AUC {ablated.metrics['test_auc']:.4f} "
                    f"({ablated.metrics['test_auc'] - m['test_auc']:+.4f})"
                )
    return model
