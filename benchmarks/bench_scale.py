"""Benchmark: `features build` in process against a local Dask cluster of 2 workers, on
the 100,000-farmer world (data/bench/world-100k: 20 counties, 1 imaged; simulated on first
use), with the peak memory of each.

Each build runs in a fresh process; memory is the peak of the summed resident memory of
that process and all its children (the cluster's scheduler and workers), sampled every
0.1 s. The two builds' training matrices and snapshots are checked equal.

    python benchmarks/bench_scale.py
"""

from __future__ import annotations

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
from features.build import write_feature_store
workers = int(sys.argv[3])
if workers == 0:
    write_feature_store(sys.argv[1], out=sys.argv[2])
else:
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as c, \\
            Client(c) as client:
        write_feature_store(sys.argv[1], out=sys.argv[2], client=client)
"""


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def build(data: Path, out: Path, workers: int) -> tuple[float, float]:
    """(seconds, peak GB) of one features build in a fresh process."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", BUILD, str(data), str(out), str(workers)])
    watched, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, tree_rss(watched))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)
    if proc.returncode != 0:
        raise RuntimeError(f"build with {workers} workers failed ({proc.returncode})")
    return time.perf_counter() - start, peak / 1e9


def main() -> None:
    data = world(100_000)
    tmp = Path(tempfile.mkdtemp())
    here = build(data, tmp / "here", 0)
    there = build(data, tmp / "there", 2)
    for name in ("training.parquet", "snapshot.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp / "here" / name), pd.read_parquet(tmp / "there" / name)
        )
    rows = len(pd.read_parquet(tmp / "here" / "training.parquet"))
    print(f"{data}: features build, {rows:,} training rows (outputs equal)")
    print(f"  in process                  {here[0]:7.1f} s   peak {here[1]:5.2f} GB")
    print(f"  local cluster, 2 workers    {there[0]:7.1f} s   peak {there[1]:5.2f} GB"
          f"   ({here[0] / there[0]:.2f}x the in-process speed)")  # fmt: skip


if __name__ == "__main__":
    main()
