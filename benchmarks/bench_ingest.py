"""Ingestion into the arrival log: order batches as a CSV delivers them (text), validated
against their declaration and the store as it is and committed, against the peer of the
same rows written to a bare Delta table unchecked, in alternating rounds. The store grows
with every batch, as a live one does (the key check reads every recorded key).

    python benchmarks/bench_ingest.py [--farmers 2000] [--rows 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
from deltalake import write_deltalake

from features.arrival_log import ArrivalLog
from features.ingest import load_data_dir
from features.simulate.params import WorldParams
from features.simulate.world import simulate_world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--farmers", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=100_000, help="rows per batch")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        world, store = Path(tmp) / "world", Path(tmp) / "store"
        print(f"simulating {args.farmers} farmers and loading them into a store ...", flush=True)
        simulate_world(WorldParams(farmers=args.farmers, seed=7), world, progress=False)
        load_data_dir(world, store)
        log = ArrivalLog(store)
        # a feed's rows, without the time the simulator's world says each was recorded
        orders = pd.read_parquet(world / "orders.parquet").drop(columns=["recorded_at"])
        print(f"{len(log.read('orders', columns=['order_id'])):,} orders recorded at the start; "
              f"batches of {args.rows:,} rows")  # fmt: skip
        print("| round | validated and committed | rows/s | bare Delta write (peer) | rows/s | "
              "ratio | orders recorded after |")  # fmt: skip
        print("| --- | --- | --- | --- | --- | --- | --- |")
        checked, bare = [], []
        for n in range(1, args.rounds + 1):
            batch = orders.sample(args.rows, replace=True, random_state=n).reset_index(drop=True)
            batch["order_id"] = [f"B{n}-{i}" for i in range(len(batch))]
            text = batch.astype(str).replace({"NaT": "", "nan": "", "<NA>": ""})
            start = time.perf_counter()
            log.append("orders", text, batch_id=f"bench-{n}", source="bench")
            checked.append(time.perf_counter() - start)
            start = time.perf_counter()
            write_deltalake(str(Path(tmp) / "bare"), pa.Table.from_pandas(batch), mode="append")
            bare.append(time.perf_counter() - start)
            recorded = len(log.read("orders", columns=["order_id"]))
            print(f"| {n} | {checked[-1]:.3f} s | {args.rows / checked[-1]:,.0f} | "
                  f"{bare[-1]:.3f} s | {args.rows / bare[-1]:,.0f} | "
                  f"{checked[-1] / bare[-1]:.1f}x | {recorded:,} |")  # fmt: skip
        med_c, med_b = statistics.median(checked), statistics.median(bare)
        print(f"median: validated {args.rows / med_c:,.0f} rows/s, bare {args.rows / med_b:,.0f} "
              f"rows/s, ratio {med_c / med_b:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
