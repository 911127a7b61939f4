"""A worker's start: how long one fresh process takes to load a store as of now (the data a
worker decides from: tables read and typed, index series completed, reference tables and
every farmer's snapshot built), and the most memory it holds while doing so, in
`--repeats` fresh processes; the median of each. Issue 18 asks for 5 s at 100,000 farmers.

    python benchmarks/bench_start.py --data STORE [--repeats 3]

STORE is a store with its features built (`agricredit data load WORLD --data STORE`, then
`agricredit features build --data STORE`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ONE_LOAD = """
import json, resource, sys, time
import pandas as pd
from scoring.decide.data import FeatureSource
started = time.perf_counter()
source = FeatureSource.load(sys.argv[1], live=True, as_of=pd.Timestamp.now(tz="UTC"))
print(json.dumps({"seconds": time.perf_counter() - started,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "farmers": len(source.inputs.farmers), "orders": len(source.inputs.orders),
                  "series": len(source.inputs.series)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a store with features built")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for i in range(args.repeats):
        done = subprocess.run([sys.executable, "-c", ONE_LOAD, str(args.data)],
                              capture_output=True, text=True, check=True)  # fmt: skip
        run = json.loads(done.stdout.strip().splitlines()[-1])
        runs.append(run)
        print(f"  run {i + 1}: {run['seconds']:.2f} s, at most {run['max_rss_mb']:,.0f} MB",
              flush=True)  # fmt: skip
    first = runs[0]
    print(f"{first['farmers']:,} farmers, {first['orders']:,} orders, {first['series']:,} "
          f"field-scene rows: a worker's data load, median of {args.repeats} fresh processes "
          f"{statistics.median(r['seconds'] for r in runs):.2f} s, at most "
          f"{statistics.median(r['max_rss_mb'] for r in runs):,.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
