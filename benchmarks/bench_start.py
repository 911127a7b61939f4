"""A worker's start: how long one fresh process takes to load a store as of now (the data a
worker decides from: tables read and typed, index series completed, reference tables and
every farmer's snapshot), and the most memory it holds while doing so, two ways in
alternation, `--repeats` fresh processes each, the median of each:

- building every farmer's snapshot rows itself (one worker, or a worker starting with
  `serve`'s host follower);
- beside a host follower that has published the snapshot (a worker started again after
  one died): the tables read at the snapshot's versions and instant, its rows taken;
- beside a host follower that has also prepared its data (what `serve`'s follower does:
  scoring/decide/prepared.py): those taken, only what was committed since read.

Issue 18 asks for 5 s at 100,000 farmers.

    python benchmarks/bench_start.py --data STORE [--repeats 3]

STORE is a store with its features built (`agricredit data load WORLD --data STORE`, then
`agricredit features build --data STORE`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from scoring.config import Settings
from scoring.decide.prepared import write_prepared
from scoring.decide.shared_snapshot import publish
from scoring.decide.state import load_source

ONE_LOAD = r"""
import json, re, sys, time
from scoring.config import Settings
from scoring.decide.state import load_source
live = sys.argv[2] or None
started = time.perf_counter()
source, _ = load_source(Settings(data_dir=sys.argv[1], clock="now", live_dir=live))
# this process's peak (ru_maxrss would start from the parent's at the fork)
peak = int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read())[1]) / 1024
print(json.dumps({"seconds": time.perf_counter() - started, "max_rss_mb": peak,
                  "farmers": len(source.inputs.farmers), "orders": len(source.inputs.orders),
                  "series": len(source.inputs.series)}))
"""
WAYS = {
    "own": "building its rows",
    "published": "beside a host follower's snapshot",
    "prepared": "beside its snapshot and prepared data",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a store with features built")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    published = Path(tempfile.mkdtemp(prefix="bench-start-"))
    prepared = Path(tempfile.mkdtemp(prefix="bench-start-"))
    source, versions = load_source(Settings(data_dir=args.data, clock="now"))
    for live in (published, prepared):  # what the host's follower has published
        publish(live, source, versions)
    write_prepared(prepared, args.data, source, versions)
    del source
    lives = {"own": "", "published": str(published), "prepared": str(prepared)}
    try:
        runs = _run(args, lives)
    finally:
        for live in (published, prepared):
            shutil.rmtree(live, ignore_errors=True)  # the prepared data: as large as the data
    report(args, runs)


def _run(args: argparse.Namespace, lives: dict[str, str]) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {way: [] for way in WAYS}
    for i in range(args.repeats):
        for way in list(WAYS) if i % 2 == 0 else list(WAYS)[::-1]:
            done = subprocess.run([sys.executable, "-c", ONE_LOAD, str(args.data), lives[way]],
                                  capture_output=True, text=True, check=True)  # fmt: skip
            run = json.loads(done.stdout.strip().splitlines()[-1])
            runs[way].append(run)
            print(f"  run {i + 1}, {WAYS[way]}: {run['seconds']:.2f} s, at most "
                  f"{run['max_rss_mb']:,.0f} MB", flush=True)  # fmt: skip
    return runs


def report(args: argparse.Namespace, runs: dict[str, list[dict]]) -> None:
    first = runs["own"][0]
    print(
        f"{first['farmers']:,} farmers, {first['orders']:,} orders, {first['series']:,} "
        f"field-scene rows: a worker's data load, median of {args.repeats} fresh processes:"
    )
    own = statistics.median(r["seconds"] for r in runs["own"])
    for way, title in WAYS.items():
        seconds = statistics.median(r["seconds"] for r in runs[way])
        memory = statistics.median(r["max_rss_mb"] for r in runs[way])
        print(f"  {title}: {seconds:.2f} s ({own / seconds:.2f}x of building), at most "
              f"{memory:,.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
