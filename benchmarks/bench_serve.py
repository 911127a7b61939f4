"""Benchmark: the running decision API over loopback against MLflow's bare prediction server.

Starts `agricredit serve` on the default world (data/world, built by `make demo`) with a
fresh SQLite ledger, and `mlflow models serve` on the same champion booster logged as an
MLflow LightGBM model. CONCURRENCY clients each send REQUESTS/CONCURRENCY requests one
after another (bounded load): full decisions with a new Idempotency-Key each (features,
prediction, policy, reasons where needed, ledger write) against single-row predictions.
Reports p50, p99 and requests per second of each, measured in the same run.

    python benchmarks/bench_serve.py [--requests 2000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.5)
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; see its log")
    raise RuntimeError(f"{url} not ready")


def drive(url: str, bodies: list[dict], headers, concurrency: int) -> tuple[list[float], float]:
    """Send every body once, `concurrency` at a time; latencies (s) and wall time."""
    chunks = [bodies[i::concurrency] for i in range(concurrency)]

    def client(part: list[dict]) -> list[float]:
        out = []
        with httpx.Client(timeout=60) as http:
            for i, body in enumerate(part):
                start = time.perf_counter()
                response = http.post(url, json=body, headers=headers(i))
                out.append(time.perf_counter() - start)
                if response.status_code >= 400:
                    raise RuntimeError(f"{url}: {response.status_code} {response.text[:500]}")
        return out

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = [x for part in pool.map(client, chunks) for x in part]
    return latencies, time.perf_counter() - start


def report(name: str, latencies: list[float], wall: float) -> float:
    ms = np.array(latencies) * 1000
    rps = len(latencies) / wall
    print(
        f"  {name:<44} p50 {np.percentile(ms, 50):7.2f} ms  p99 {np.percentile(ms, 99):7.2f} ms"
        f"  {rps:8.1f} req/s"
    )
    return rps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--data", type=Path, default=Path("data/world"))
    parser.add_argument("--workers", type=int, default=1, help="agricredit serve --workers")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    env = os.environ | {
        "AGRICREDIT_DATA_DIR": str(args.data),
        "AGRICREDIT_DATABASE_URL": f"sqlite:///{tmp / 'ledger.db'}",
    }
    key = subprocess.run(
        [BIN / "agricredit", "keys", "create", "--role", "lender"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()[1]
    snap = pd.read_parquet(args.data / "features" / "snapshot.parquet")
    snap = snap[snap["contract_id"].notna() & (snap["contract_id"] != "nan")]
    bodies = [
        {
            "farmer_id": r.farmer_id,
            "contract_id": r.contract_id,
            "requested_minor": 800_000,
            "inputs": [{"supplier_id": "S002", "item": "seed", "amount_minor": 800_000}],
        }
        for r in snap.itertuples()
    ]
    bodies = [bodies[i % len(bodies)] for i in range(args.requests)]

    port = free_port()
    log = open(tmp / "serve.log", "wb")  # the server writes it while it runs
    ours = subprocess.Popen(
        [BIN / "agricredit", "serve", "--port", str(port), "--workers", str(args.workers)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", ours)
        counter = iter(range(10**9))

        def headers(_: int) -> dict:
            return {"Authorization": f"Bearer {key}", "Idempotency-Key": f"b{next(counter)}"}

        drive(f"http://127.0.0.1:{port}/v1/score", bodies[:50], headers, args.concurrency)
        lat, wall = drive(f"http://127.0.0.1:{port}/v1/score", bodies, headers, args.concurrency)
    finally:
        ours.terminate()
        ours.wait()

    peer_rps = peer(args, bodies, tmp)
    print(
        f"{args.requests} requests, {args.concurrency} concurrent clients, loopback, "
        f"{args.workers} agricredit worker(s)"
    )
    rps = report("agricredit /v1/score (decision + ledger)", lat, wall)
    if peer_rps:
        report("mlflow models serve (bare prediction)", *peer_rps)
        print(f"  agricredit serves {rps / (len(peer_rps[0]) / peer_rps[1]):.1f}x the requests/s")
    print(f"  median latency {statistics.median(lat) * 1000:.2f} ms")


def peer(args, bodies: list[dict], tmp: Path) -> tuple[list[float], float] | None:
    """The champion booster logged as an MLflow LightGBM model, served by mlflow."""
    import mlflow
    import mlflow.lightgbm

    from training.registry import get_client, load_version

    bundle = load_version(get_client(), "champion").bundle
    rows = pd.read_parquet(args.data / "features" / "snapshot.parquet")[bundle.feature_names]
    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'peer.db'}")
    with mlflow.start_run() as run:
        mlflow.lightgbm.log_model(bundle.booster, name="model")
    port = free_port()
    env = os.environ | {
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'peer.db'}",
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
    }
    log = open(tmp / "mlflow.log", "wb")  # the server writes it while it runs
    proc = subprocess.Popen(
        [
            BIN / "mlflow",
            "models",
            "serve",
            "-m",
            f"runs:/{run.info.run_id}/model",
            "-p",
            str(port),
            "--env-manager",
            "local",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/ping", proc)
        # a bare prediction needs no missing values to be timed: JSON has no NaN
        records = rows.astype(float).fillna(0.0).to_numpy().tolist()
        payloads = [
            {
                "dataframe_split": {
                    "columns": list(rows.columns),
                    "data": [records[i % len(records)]],
                }
            }
            for i in range(len(bodies))
        ]
        url = f"http://127.0.0.1:{port}/invocations"
        drive(url, payloads[:50], lambda _: {}, args.concurrency)
        return drive(url, payloads, lambda _: {}, args.concurrency)
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
