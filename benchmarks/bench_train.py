"""Benchmark: training time on the default and the 100,000-farmer worlds, and LightGBM
against scikit-learn's HistGradientBoostingClassifier on the same matrix.

`train_model` (split, LightGBM with early stopping, calibration, baseline, metrics,
contributions) is timed as a whole, median of the repeats. The peer comparison fits both
boosters on the training seasons with the same rounds, learning rate and leaves, with no
early stopping, and scores the test season.

The worlds are simulated and their features built on first use (data/world, data/bench/).

    python benchmarks/bench_train.py [--repeats 3] [--skip-large]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import lightgbm as lgb
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from timing import timed

from features.feature_store import MANIFEST_FILE, TRAINING_FILE, write_feature_store
from training.dataset import labelled, select_features, split_out_of_time, xy
from training.metrics import auc
from training.model import LightGBMSettings
from training.pipeline import train_model

WORLDS = {
    "default (2,000 farmers)": (Path("data/world"), []),
    "100,000 farmers": (
        Path("data/bench/world-100k"),
        ["--farmers", "100000", "--counties", "20", "--imagery-counties", "1"],
    ),
}


def matrix_of(path: Path, args: list[str]) -> pd.DataFrame:
    """The world's training matrix, simulating and building features when missing."""
    cli = str(Path(sys.executable).parent / "agricredit")
    if not (path / "world.json").exists():
        subprocess.run([cli, "simulate", "--out", str(path), "--quiet", *args], check=True)
    if not (path / "features" / MANIFEST_FILE).exists():
        write_feature_store(path)
    return pd.read_parquet(path / "features" / TRAINING_FILE)


def compare_boosters(matrix: pd.DataFrame, rounds: int, repeats: int) -> None:
    split = split_out_of_time(labelled(matrix))
    # scikit-learn cannot bin a column with no value at all; both boosters drop those
    features = [f for f in select_features() if split.train[f.name].notna().any()]
    x, y = xy(split.train, features)
    tx, ty = xy(split.test, features)
    params = LightGBMSettings().params(features)

    def fit_lgb():
        return lgb.train(params, lgb.Dataset(x, label=y), num_boost_round=rounds)

    def fit_hgb():
        return HistGradientBoostingClassifier(
            max_iter=rounds, learning_rate=0.02, max_leaf_nodes=15, min_samples_leaf=40,
            l2_regularization=1.0, early_stopping=False, random_state=7,
            monotonic_cst=[f.direction for f in features],
        ).fit(x, y)  # fmt: skip

    t_lgb, booster = timed(fit_lgb, repeats)
    t_hgb, hgb = timed(fit_hgb, repeats)
    a_lgb = auc(ty, booster.predict(tx))
    a_hgb = auc(ty, hgb.predict_proba(tx)[:, 1])
    print(f"    same matrix, {rounds} rounds, monotone: LightGBM {t_lgb:6.2f} s (test AUC "
          f"{a_lgb:.4f}); HistGradientBoosting {t_hgb:6.2f} s (test AUC {a_hgb:.4f}); "
          f"LightGBM {t_hgb / t_lgb:4.1f}x faster")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    for name, (path, sim_args) in WORLDS.items():
        if args.skip_large and "100,000" in name:
            continue
        matrix = matrix_of(path, sim_args)
        seconds, model = timed(lambda m=matrix: train_model(m), args.repeats)
        m = model.metrics
        print(f"{name}: {int(matrix['outcome_known'].sum()):,} labelled loans; train_model "
              f"median {seconds:6.2f} s over {args.repeats}; test AUC {m['test_auc']:.4f}, "
              f"best iteration {int(m['best_iteration'])}")  # fmt: skip
        compare_boosters(matrix, max(int(m["best_iteration"]), 50), args.repeats)


if __name__ == "__main__":
    main()
