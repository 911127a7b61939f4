"""Benchmark: /v1/score as of the wall clock while a feed appends to the store it serves.

Loads a simulated world (default data/world, built by `make demo`) into a store with an
arrival log, builds its features and serves it with `AGRICREDIT_CLOCK=now` on WORKERS
workers, two ways in alternation (`--repeats` servers each): one follower for the host,
which builds the farmers' snapshot rows and publishes them to the workers (what `serve`
does), and each worker following the log and building its rows itself (what one worker
does; `AGRICREDIT_HOST_FOLLOWER=false`). On each server wrk drives full decisions at
`--concurrency` connections for `--seconds`, in turn:

- quiet: nothing arrives;
- live: a feed posts orders to `POST /v1/data/orders` at `--rows-per-second` (one batch a
  second) and a scene (a copy of one of the world's GeoTIFFs, acquired a day ago) is
  appended every `--scene-seconds`;

then `mlflow models serve`'s bare prediction of the same champion at the same load (the
peer of benchmarks/bench_serve.py). Each figure is the median of the runs.

It also reports the feed's own rate, how long after its commit each posted batch was first
seen in a decision's `features_as_of` (every batch carries an order of the farmer the probe
applies for: a commit moves on only the rows of the farmers it touched), and the workers'
reloads (/metrics).

    python benchmarks/bench_live.py [--data data/world] [--seconds 10] [--concurrency 8]
                                    [--workers 2] [--repeats 3] [--rows-per-second 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
from bench_serve import BIN, Load, drive, free_port, peer, wait_ready

from features.feature_store import validated_tables, write_feature_store
from features.ingest import append_file, load_data_dir


class Feed:
    """Posts order batches once a second and appends a scene now and then, on a thread."""

    def __init__(
        self, store: Path, url: str, key: str, orders: pd.DataFrame, args, probed: str
    ) -> None:
        self.store, self.url, self.key, self.args = store, url, key, args
        self.orders = orders
        self.probed = probed  # every batch has an order of the farmer the probe applies for
        self.scenes = validated_tables(store)["scenes"].drop(columns=["recorded_at"])
        self.commits: list[tuple[str, pd.Timestamp]] = []  # (kind, recorded_at)
        self.rows = 0
        self.seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _orders(self, n: int) -> list[dict]:
        rows = self.orders.sample(n, replace=True, random_state=len(self.commits))
        placed = pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=5)
        rows = rows.assign(
            order_id=[f"FEED-{uuid.uuid4().hex[:16]}" for _ in range(n)],
            placed_at=placed.isoformat(),
        )
        rows.iloc[0, rows.columns.get_loc("farmer_id")] = self.probed
        return rows.astype(object).where(rows.notna(), None).to_dict("records")

    def _scene(self, n: int) -> pd.Timestamp:
        row = self.scenes.iloc[[n % len(self.scenes)]]
        folder = Path(tempfile.mkdtemp())
        shutil.copy(self.store / row["path"].iloc[0], folder / "scene.tif")
        fresh = row.assign(
            scene_id=f"FEED-SCENE-{uuid.uuid4().hex[:8]}",
            acquired_at=pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=1),
            path="scene.tif",
        )
        fresh.to_parquet(folder / "scenes.parquet", index=False)
        return append_file(self.store, "scenes", folder / "scenes.parquet").recorded_at

    def _run(self) -> None:
        started = time.monotonic()
        last_scene = started
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                tick = time.monotonic()
                body = {
                    "batch_id": uuid.uuid4().hex,
                    "rows": self._orders(self.args.rows_per_second),
                }
                answer = client.post("/v1/data/orders", json=body,
                                     headers={"Authorization": f"Bearer {self.key}"})  # fmt: skip
                answer.raise_for_status()
                self.commits.append(("orders", pd.Timestamp(answer.json()["recorded_at"])))
                self.rows += len(body["rows"])
                if tick - last_scene >= self.args.scene_seconds:
                    self.commits.append(("scene", self._scene(len(self.commits))))
                    last_scene = tick
                self._stop.wait(max(0.0, 1.0 - (time.monotonic() - tick)))
        self.seconds = time.monotonic() - started

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def visibility(commits: list[tuple[str, pd.Timestamp]], seen: list[tuple[float, str]]) -> dict:
    """Per kind, seconds from each commit to the first decision answered as of after it."""
    out: dict[str, list[float]] = {}
    for kind, recorded in commits:
        later = [at for at, as_of in seen if pd.Timestamp(as_of) > recorded]
        if later:
            out.setdefault(kind, []).append(min(later) - recorded.timestamp())
    return out


def new_key(env: dict, role: str) -> str:
    """A key of `role` in the benchmark's ledger."""
    made = subprocess.run([BIN / "agricredit", "keys", "create", "--role", role], env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    return made.stdout.splitlines()[1]


MODES = {"host": "one follower for the host", "own": "each worker its own follower"}


@dataclass
class Run:
    """One server's run: wrk quiet and under the feed, and what the feed saw."""

    quiet: dict[int, Load]
    live: dict[int, Load]
    feed: Feed
    seen: list[tuple[float, str]]
    reloads: float
    ready_s: float


def serve_and_drive(mode: str, store: Path, bodies: Path, orders: pd.DataFrame, env: dict,
                    keys: tuple[str, str], args) -> Run:  # fmt: skip
    """Serve the store with `mode`'s followers; drive it with nothing arriving, then while
    the feed runs."""
    lender, feeder = keys
    env = env | {"AGRICREDIT_HOST_FOLLOWER": "true" if mode == "host" else "false"}
    port = free_port()
    log = open(store.parent / f"serve-{mode}.log", "ab")
    begun = time.monotonic()
    proc = subprocess.Popen(
        [BIN / "agricredit", "serve", "--port", str(port), "--workers", str(args.workers)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    quiet: dict[int, Load] = {}
    live: dict[int, Load] = {}
    seen: list[tuple[float, str]] = []
    try:
        wait_ready(f"{url}/readyz", proc)
        ready_s = time.monotonic() - begun
        drive(url, "/v1/score", bodies, key=lender, concurrency=args.concurrency[0], seconds=2)
        probed = json.loads(bodies.read_text().splitlines()[0])["farmer_id"]
        feed = Feed(store, url, feeder, orders, args, probed)
        probing = threading.Event()

        def probe() -> None:  # what the decisions are as of, while the feed runs
            with httpx.Client(base_url=url, timeout=30) as client:
                line = bodies.read_text().splitlines()[0]
                while not probing.is_set():
                    answer = client.post("/v1/score", content=line, headers={
                        "Authorization": f"Bearer {lender}", "Idempotency-Key": uuid.uuid4().hex,
                        "content-type": "application/json"})  # fmt: skip
                    seen.append((time.time(), answer.json()["features_as_of"]))
                    time.sleep(0.1)

        for c in args.concurrency:
            quiet[c] = drive(url, "/v1/score", bodies, key=lender, concurrency=c,
                             seconds=args.seconds, server=proc.pid)  # fmt: skip
        feed.start()
        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        for c in args.concurrency:
            live[c] = drive(url, "/v1/score", bodies, key=lender, concurrency=c,
                            seconds=args.seconds, server=proc.pid)  # fmt: skip
        feed.stop()
        probing.set()
        prober.join()
        metrics = httpx.get(f"{url}/metrics").text
    finally:
        proc.terminate()
        proc.wait()
    reloads = sum(float(line.split()[1]) for line in metrics.splitlines()
                  if line.startswith("agricredit_data_reloads_total"))  # fmt: skip
    return Run(quiet, live, feed, seen, reloads, ready_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/world"))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows-per-second", type=int, default=1000)
    parser.add_argument("--scene-seconds", type=float, default=10.0)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench_live needs wrk: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp())
    store = tmp / "store"
    started = time.perf_counter()
    load_data_dir(args.data, store)
    write_feature_store(store)
    print(f"store loaded and built in {time.perf_counter() - started:.1f} s")
    snap = pd.read_parquet(store / "features" / "snapshot.parquet")
    snap = snap[snap["contract_id"].notna() & (snap["contract_id"] != "nan")]
    bodies = tmp / "score.jsonl"
    bodies.write_text("".join(json.dumps({
        "farmer_id": r.farmer_id, "contract_id": r.contract_id, "requested_minor": 800_000,
        "inputs": [{"supplier_id": "S002", "item": "seed", "amount_minor": 800_000}],
    }) + "\n" for r in snap.itertuples()))  # fmt: skip
    orders = validated_tables(store)["orders"].drop(columns=["recorded_at"])
    env = os.environ | {
        "AGRICREDIT_DATA_DIR": str(store),
        "AGRICREDIT_DATABASE_URL": f"sqlite:///{tmp / 'ledger.db'}",
        "AGRICREDIT_CLOCK": "now",
    }
    keys = new_key(env, "lender"), new_key(env, "data")
    runs: dict[str, list[Run]] = {mode: [] for mode in MODES}
    for i in range(args.repeats):  # the two modes alternate, neither always first
        for mode in list(MODES) if i % 2 == 0 else list(MODES)[::-1]:
            runs[mode].append(serve_and_drive(mode, store, bodies, orders, env, keys, args))
            print(f"  run {i + 1}, {MODES[mode]}: ready in {runs[mode][-1].ready_s:.1f} s",
                  flush=True)  # fmt: skip
    theirs = peer(argparse.Namespace(data=store, seconds=args.seconds, repeats=args.repeats),
                  tmp, args.concurrency)  # fmt: skip
    print(f"{len(snap)} distinct applications, {args.workers} workers, clock now; median of "
          f"{args.repeats} runs of {args.seconds} s each way, the ways alternating")  # fmt: skip
    for c in args.concurrency:
        for mode, title in MODES.items():
            quiet = sorted((r.quiet[c] for r in runs[mode]), key=lambda r: r.rps)
            live = sorted((r.live[c] for r in runs[mode]), key=lambda r: r.rps)
            q, lv = quiet[len(quiet) // 2], live[len(live) // 2]
            print(f"{title}:")
            print(q.line(f"{c} connections, nothing arriving"))
            print(lv.line(f"{c} connections, feed running"))
            print(f"  live {lv.rps / theirs[c].rps:.1f}x mlflow's requests/s; "
                  f"quiet {q.rps / theirs[c].rps:.1f}x")  # fmt: skip
        print(theirs[c].line(f"{c} connections, mlflow models serve"))
    for mode, title in MODES.items():
        feeds = runs[mode]
        rows = sum(r.feed.rows for r in feeds)
        seconds = sum(r.feed.seconds for r in feeds)
        scenes = sum(k == "scene" for r in feeds for k, _ in r.feed.commits)
        reloads = sum(r.reloads for r in feeds)
        print(f"{title}: feed {rows:,} order rows in {seconds:.1f} s ({rows / seconds:,.0f} "
              f"rows/s), {scenes} scenes, {reloads:.0f} reloads over the workers")  # fmt: skip
        lags: dict[str, list[float]] = {}
        for r in feeds:
            for kind, found in visibility(r.feed.commits, r.seen).items():
                lags.setdefault(kind, []).extend(found)
        for kind, found in lags.items():
            found = sorted(found)
            median, worst = found[len(found) // 2], found[-1]
            print(f"  {kind}: first decided on {len(found)} commits, median {median:.2f} s "
                  f"after the commit, worst {worst:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
