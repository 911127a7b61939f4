"""Benchmark: `features build` and training in process against a local Dask cluster of 2
workers, on the 100,000-farmer world (data/bench/world-100k: 20 counties, 1 imaged;
simulated on first use), with the peak memory of each.

Each run is a fresh process; memory is the peak of the summed resident memory of that
process and all its children (the cluster's scheduler and workers), sampled every 0.1 s.
The two builds' training matrices and snapshots are checked equal; training reports the
test AUC of each model (`train_model`: fit, calibration, baseline, metrics) and fails
unless the cluster's is within AUC_BOUND of the in-process one (the bound the test suite
cannot afford to check: it needs this world, minutes to build).

    python benchmarks/bench_scale.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil
from bench_features import world

BUILD = """
import sys
from features.feature_store import write_feature_store
workers = int(sys.argv[3])
if workers == 0:
    write_feature_store(sys.argv[1], out=sys.argv[2])
else:
    from distributed import Client, LocalCluster
    from features.runners import DaskRunner
    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as c, \\
            Client(c) as client:
        write_feature_store(sys.argv[1], out=sys.argv[2], runner=DaskRunner(client))
"""


TRAIN = """
import json, sys
import pandas as pd
from training.pipeline import train_model
matrix = pd.read_parquet(sys.argv[1])
workers = int(sys.argv[3])
if workers == 0:
    model = train_model(matrix)
else:
    from functools import partial
    from distributed import Client, LocalCluster
    from features.runners import DaskRunner
    from training.distributed import fit_lightgbm_dask
    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as c, \\
            Client(c) as client:
        model = train_model(matrix, fit=partial(fit_lightgbm_dask, DaskRunner(client)))
open(sys.argv[2], "w").write(json.dumps({"auc": model.metrics["test_auc"],
                                         "trees": model.booster.num_trees()}))
"""


AUC_BOUND = 0.005  # the distributed learner bins and samples per worker (docs/scale.md)


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run(script: str, source: Path, out: Path, workers: int) -> tuple[float, float]:
    """(seconds, peak GB) of a script in a fresh process."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", script, str(source), str(out), str(workers)])
    watched, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, tree_rss(watched))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)
    if proc.returncode != 0:
        raise RuntimeError(f"run with {workers} workers failed ({proc.returncode})")
    return time.perf_counter() - start, peak / 1e9


def main() -> None:
    data = world(100_000)
    tmp = Path(tempfile.mkdtemp())
    here = run(BUILD, data, tmp / "here", 0)
    there = run(BUILD, data, tmp / "there", 2)
    for name in ("training.parquet", "snapshot.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp / "here" / name), pd.read_parquet(tmp / "there" / name)
        )
    rows = len(pd.read_parquet(tmp / "here" / "training.parquet"))
    print(f"{data}: features build, {rows:,} training rows (outputs equal)")
    print(f"  in process                  {here[0]:7.1f} s   peak {here[1]:5.2f} GB")
    print(f"  local cluster, 2 workers    {there[0]:7.1f} s   peak {there[1]:5.2f} GB"
          f"   ({here[0] / there[0]:.2f}x the in-process speed)")  # fmt: skip
    matrix = tmp / "here" / "training.parquet"
    trained = {w: run(TRAIN, matrix, tmp / f"model-{w}.json", w) for w in (0, 2)}
    print("training (train_model)")
    aucs = {}
    for w, (seconds, peak) in trained.items():
        m = json.loads((tmp / f"model-{w}.json").read_text())
        aucs[w] = m["auc"]
        where = "in process" if w == 0 else "local cluster, 2 workers"
        print(f"  {where:<27} {seconds:7.1f} s   peak {peak:5.2f} GB   test AUC {m['auc']:.4f}"
              f" ({m['trees']} trees)")  # fmt: skip
    gap = abs(aucs[2] - aucs[0])
    print(f"  cluster AUC within {AUC_BOUND} of in process: {gap:.4f} apart")
    if gap > AUC_BOUND:
        sys.exit(f"the cluster's model is {gap:.4f} AUC from the in-process one (> {AUC_BOUND})")


if __name__ == "__main__":
    main()
