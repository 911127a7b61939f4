"""A follower's reload after a commit: the store loaded again as of now from the data it had
(only what the commits added read, what did not move kept, only the touched farmers' rows
built again) against the same load read whole, alternating in one process on a private
copy of STORE. Each round appends one batch of `--rows` orders through the arrival log,
then times both loads as of the same instant and versions, and checks that the rows built
again equal the whole load's and every other row is the one it had.

    python benchmarks/bench_reload.py --data STORE [--rounds 5] [--rows 50]

STORE is a store with its features built (`agricredit data load WORLD --data STORE`, then
`agricredit features build --data STORE`).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from features import clock
from features.arrival_log import ArrivalLog
from features.asof import instant_ns
from scoring.decide.data import FeatureSource


def check_rows(
    before: FeatureSource,
    after: FeatureSource,
    whole: FeatureSource,
    instant: pd.Timestamp,
    i: int,
) -> None:
    """The rows the reload built again (those of the farmers the batch touched, as of its
    instant) equal the whole load's; every other row is the one it had."""
    assert before.snapshot and after.snapshot and whole.snapshot
    t = instant_ns(instant)
    for farmer, row in after.snapshot.rows.items():
        if after.snapshot.row_at(farmer, t) is not None:
            want = whole.snapshot.values[whole.snapshot.rows[farmer].row]
        else:
            want = before.snapshot.values[before.snapshot.rows[farmer].row]
        if not np.array_equal(after.snapshot.values[row.row], want, equal_nan=True):
            sys.exit(f"round {i + 1}: farmer {farmer}'s row differs from a whole load")


def followed_and_whole(
    store: Path, log: ArrivalLog, source: FeatureSource, i: int
) -> tuple[FeatureSource, float, float]:
    """The store loaded as a follower loads it after a commit (from `source`) and read
    whole, as of one settled instant and the versions read with it, in an order that
    alternates with round `i` (so neither always meets a warm cache); the rows checked.
    Returns the followed data and the seconds of each load."""
    with log.settled() as instant:
        versions = log.versions()
    loaded: dict[str, FeatureSource] = {}
    took: dict[str, float] = {}
    for name in ("followed", "whole") if i % 2 == 0 else ("whole", "followed"):
        started = time.perf_counter()
        loaded[name] = FeatureSource.load(
            store,
            live=True,
            as_of=instant,
            reuse=source if name == "followed" else None,
            versions=versions,
        )
        took[name] = time.perf_counter() - started
    check_rows(source, loaded["followed"], loaded["whole"], instant, i)
    return loaded["followed"], took["followed"], took["whole"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a store with features built")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=50, help="orders in each round's batch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        shutil.copytree(args.data, store)
        log = ArrivalLog(store)
        source = FeatureSource.load(store, live=True, as_of=clock.now(), versions=log.versions())
        incremental, whole = [], []
        for i in range(args.rounds):
            batch = source.inputs.orders.sample(args.rows, random_state=i)
            batch = batch.drop(columns=["recorded_at"]).assign(
                order_id=[f"BENCH-{i}-{k}" for k in range(args.rows)]
            )
            log.append("orders", batch.astype(str), batch_id=f"bench-{i}", source="bench")
            source, took, took_whole = followed_and_whole(store, log, source, i)
            incremental.append(took)
            whole.append(took_whole)
            print(f"  round {i + 1}: incremental {incremental[-1]:.3f} s, "
                  f"whole {whole[-1]:.3f} s", flush=True)  # fmt: skip
    inc, who = statistics.median(incremental), statistics.median(whole)
    print(f"{len(source.inputs.farmers):,} farmers, {len(source.inputs.orders):,} orders: "
          f"a reload after a batch of {args.rows} orders, median of {args.rounds} rounds: "
          f"incremental {inc:.3f} s, whole {who:.3f} s ({who / inc:.1f}x faster); "
          "rows equal")  # fmt: skip


if __name__ == "__main__":
    main()
