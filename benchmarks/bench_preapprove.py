"""Benchmark: co-op pre-approval end to end over HTTP, ledger included.

Starts `agricredit serve` on a world with one co-op of 100,000 members (data/bench/
world-coop, simulated with --members-per-coop 100000 and no imagery on first use, so every
member is referred for missing imagery and gets reasons: the costliest mix) and on the
default world (data/world, its largest financed co-op: a realistic mix). For each size it
times a lender's request until the complete result is in hand: POST, then for a job
(202) polling GET every 20 ms until done and fetching the result; and checks the ledger
holds one row per member plus the batch row.

    python benchmarks/bench_preapprove.py [--sizes 100 10000 100000] [--repeats 3]
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
import uuid
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
COOP_WORLD = Path("data/bench/world-coop")
COOP_WORLD_ARGS = [
    "--farmers", "100000", "--counties", "1", "--imagery-counties", "0",
    "--members-per-coop", "100000", "--coop-member-share", "1.0",
]  # fmt: skip


def ensure_world() -> None:
    if not (COOP_WORLD / "features" / "manifest.json").exists():
        subprocess.run([BIN / "agricredit", "simulate", "--out", str(COOP_WORLD),
                        *COOP_WORLD_ARGS], check=True)  # fmt: skip
        subprocess.run([BIN / "agricredit", "features", "build", "--data", str(COOP_WORLD)],
                       check=True)  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ledger_rows(url: str) -> int:
    from scoring.ledger.repo import Ledger

    book = Ledger(url)
    try:
        return book.count()
    finally:
        book.close()


def preapprove(client: httpx.Client, coop: str, contract: str, members: list[str] | None) -> dict:
    """One pre-approval, from the request to the complete result."""
    body = {"contract_id": contract}
    if members is not None:
        body["members"] = [{"farmer_id": f} for f in members]
    answer = client.post(
        f"/v1/coops/{coop}/preapprovals", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
    )
    if answer.status_code == 200:
        return answer.json()
    if answer.status_code != 202:
        raise RuntimeError(f"{answer.status_code}: {answer.text[:500]}")
    job = answer.json()["job_id"]
    while True:
        time.sleep(0.02)
        status = client.get(f"/v1/preapprovals/{job}").json()
        if status["status"] == "done" and status["members"] is not None:
            return status
        if status["status"] == "failed":
            raise RuntimeError(status["error"])


def run_world(world: Path, cases: list[tuple[str, int | None]], repeats: int) -> None:
    from scoring.decide.data import FeatureSource

    source = FeatureSource.load(world)
    c = source.inputs.contracts
    t = source.data_as_of
    open_ = c[(c["party_type"] == "coop") & (c["signed_at"] < t)
              & (c["closed_at"].isna() | (c["closed_at"] >= t))
              & (c["buyer_id"].map(source.buyer_grades) != "D")]  # fmt: skip
    latest = open_.sort_values("signed_at").groupby("coop_id")["contract_id"].last()
    coop = max(latest.index, key=lambda k: len(source.coop_members[k]))
    contract, everyone = latest[coop], source.coop_members[coop]
    tmp = Path(tempfile.mkdtemp())
    ledger_url = f"sqlite:///{tmp / 'ledger.db'}"
    env = os.environ | {
        "AGRICREDIT_DATA_DIR": str(world),
        "AGRICREDIT_DATABASE_URL": ledger_url,
        "AGRICREDIT_CLOCK": "data",  # the benchmark world, as of its own data
    }
    made = subprocess.run([BIN / "agricredit", "keys", "create", "--role", "lender"], env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    key = made.stdout.splitlines()[1]
    port = free_port()
    log = open(tmp / "serve.log", "wb")  # the server writes it while it runs
    server = subprocess.Popen([BIN / "agricredit", "serve", "--port", str(port)], env=env,
                              stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=600
        ) as client:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.5)
            preapprove(client, coop, contract, everyone[:10])  # warm up
            print(f"{world}: co-op {coop} ({len(everyone):,} members), contract {contract}")
            for label, size in cases:
                members = None if size is None else everyone[:size]
                n = len(everyone) if size is None else size
                times = []
                for _ in range(repeats):
                    before = ledger_rows(ledger_url)
                    start = time.perf_counter()
                    result = preapprove(client, coop, contract, members)
                    times.append(time.perf_counter() - start)
                    written = ledger_rows(ledger_url) - before
                    if len(result["members"]) != n or written != n + 1:
                        raise RuntimeError(
                            f"{label}: {len(result['members'])} results, {written} rows"
                        )
                s = result["summary"]
                median = statistics.median(times)
                print(
                    f"  {label:<26} {n:>7,} members  median {median:7.3f} s over {repeats}  "
                    f"{n / median:9,.0f} members/s  (approved {s['approved']:,}, referred "
                    f"{s['referred']:,}, declined {s['declined']:,})"
                )
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    run_world(Path("data/world"), [("largest financed co-op", None)], args.repeats)
    ensure_world()
    cases = [
        (f"{n:,} listed members", n) if n < 100_000 else ("every member", None) for n in args.sizes
    ]
    run_world(COOP_WORLD, cases, args.repeats)


if __name__ == "__main__":
    main()
