"""Benchmark: model size against accuracy and the cost of a decision's reasons.

Reasons are LightGBM's pred_contrib (TreeSHAP), computed for every declined or referred
request; their cost grows with the trees and leaves of the model. For a few sizes this
trains on the default world's out-of-time split (data/world, built by `make demo`) and
reports trees, test AUC and ECE, and the median time of one row's prediction and one
row's contributions (one thread, as in the request path).

    python benchmarks/bench_model_size.py [--calls 2000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from timing import timed

from features.feature_store import TRAINING_FILE
from training.dataset import labelled, split_out_of_time, xy
from training.model import LightGBMSettings
from training.pipeline import train_model

SIZES = [(0.02, 15), (0.05, 15), (0.05, 7), (0.1, 7)]  # (learning rate, leaves)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/world"))
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    matrix = pd.read_parquet(args.data / "features" / TRAINING_FILE)
    default = LightGBMSettings()
    print(f"default world, {args.calls} single-row calls, median of 3 rounds")
    print("  rate  leaves  trees  test AUC  ECE     predict   contributions")
    for rate, leaves in SIZES:
        trained = train_model(
            matrix, settings=LightGBMSettings(learning_rate=rate, num_leaves=leaves)
        )
        split = split_out_of_time(labelled(matrix))
        x, _ = xy(split.test, trained.features)
        rows = x.to_numpy(dtype=float)[: args.calls]

        def each(kind: str, rows=rows, booster=trained.booster) -> None:
            for row in rows:
                booster.predict(row[None, :], num_threads=1, **{kind: True})

        predict, _ = timed(lambda each=each: each("raw_score"), 3)
        contrib, _ = timed(lambda each=each: each("pred_contrib"), 3)
        mark = (
            "  (default)" if (rate, leaves) == (default.learning_rate, default.num_leaves) else ""
        )
        m = trained.metrics
        print(
            f"  {rate:<5} {leaves:>6} {trained.booster.num_trees():>6}  {m['test_auc']:.4f}"
            f"   {m['test_ece']:.4f}  {predict / len(rows) * 1e6:6.1f} us  "
            f"{contrib / len(rows) * 1e6:8.1f} us{mark}"
        )


if __name__ == "__main__":
    main()
