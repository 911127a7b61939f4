"""Benchmark: order-feature throughput and the whole feature build on a large world.

Order features for every loan application and a snapshot of every farmer, timed over
the orders table of the world (median of the repeats), reported as orders of input per
second. The peer is the plain pandas way of computing windowed order totals (join each
application to its farmer's orders, filter by time, group) for just the three amount
windows and two counts, timed in the same run. Then the whole `features build`, once.

The world is simulated on first use into data/bench/ (100,000 farmers: a few minutes).

    python benchmarks/bench_features.py [--farmers 100000] [--repeats 3] [--no-peer]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
from timing import timed

from features.assembly import loan_applications, snapshot_applications
from features.feature_store import write_feature_store
from features.orders import build_order_features
from features.versions import latest_versions

DAY = pd.Timedelta(days=1)


def world(farmers: int) -> Path:
    """The benchmark world, simulated once (20 counties, 1 imaged) and then reused."""
    out = Path("data/bench") / f"world-{farmers // 1000}k"
    if not (out / "world.json").exists():
        print(f"simulating {out} ...", flush=True)
        cli = str(Path(sys.executable).parent / "agricredit")
        subprocess.run(
            [cli, "simulate", "--out", str(out), "--quiet", "--farmers", str(farmers),
             "--counties", "20", "--imagery-counties", "1"],
            check=True,
        )  # fmt: skip
    return out


def pandas_window_sums(orders: pd.DataFrame, apps: pd.DataFrame) -> pd.DataFrame:
    """The peer: join, filter and group, for the amount windows and order counts only."""
    joined = apps[["application_id", "farmer_id", "as_of"]].merge(
        orders[["farmer_id", "placed_at", "amount_minor", "status"]], on="farmer_id"
    )
    age = joined["as_of"] - joined["placed_at"]
    seen = age > pd.Timedelta(0)
    done = joined["status"] == "completed"
    out = pd.DataFrame(index=apps["application_id"])
    for days in (30, 90, 365):
        window = seen & (age <= days * DAY)
        sums = joined["amount_minor"].where(window & done, 0).groupby(joined["application_id"])
        out[f"amount_{days}d"] = sums.sum()
        if days != 30:
            out[f"count_{days}d"] = window.groupby(joined["application_id"]).sum()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--farmers", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-peer", action="store_true")
    args = parser.parse_args()
    data = world(args.farmers)
    orders = pd.read_parquet(data / "orders.parquet")
    loans = pd.read_parquet(data / "loans.parquet")
    farmers = pd.read_parquet(data / "farmers.parquet")
    contracts = latest_versions(
        "contracts", ("contract_id",), pd.read_parquet(data / "contracts.parquet")
    )
    as_of = orders["placed_at"].max() + pd.Timedelta(seconds=1)
    apps = pd.concat(
        [loan_applications(loans), snapshot_applications(farmers, contracts, as_of)],
        ignore_index=True,
    )
    n = len(orders)
    print(f"{data}: {n:,} orders, {len(apps):,} applications ({len(loans):,} loans + snapshot)")
    ours = timed(lambda: build_order_features(orders, apps), args.repeats)[0]
    print(f"  order features (16 per row)   median {ours:6.2f} s  {n / ours:12,.0f} orders/s")
    if not args.no_peer:
        peer = timed(lambda: pandas_window_sums(orders, apps), args.repeats)[0]
        print(f"  pandas join-filter-group (5)  median {peer:6.2f} s  {n / peer:12,.0f} orders/s"
              f"  project is {peer / ours:4.1f}x faster")  # fmt: skip
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = Path(tempfile.mkdtemp()) / "features"
    summary = write_feature_store(data, out=out, progress=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  features build (all sources, zonal series included): {summary.seconds:6.1f} s, "
          f"{summary.series_rows:,} field-scenes, {summary.training_rows:,} loans; "
          f"peak RSS {max(peak, peak_before):,.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
