"""A two-worker server on a store follows its arrival log: batches a platform feed posts
(new orders; the application's contract delivered and closed) are in both workers'
decisions within seconds, without a restart, and move them as they should; the host's
follower, which builds the rows both workers decide from, is replaced when it dies."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from features.feature_store import SNAPSHOT_FILE, validated_tables, write_feature_store
from features.ingest import load_data_dir
from scoring.decide.data import FeatureSource
from scoring.ledger.keys import create_key
from scoring.ledger.repo import Ledger
from tests.factories import api_client, applications, as_sent, json_rows, running_server

pytestmark = pytest.mark.e2e


def test_a_feeds_orders_and_a_closed_contract_reach_both_workers_decisions(served, tmp_path):
    store = tmp_path / "store"
    load_data_dir(served.world, store)
    write_feature_store(store)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    body = applications(FeatureSource.load(store), store, 1)[0]
    orders = validated_tables(store)["orders"].drop(columns=["recorded_at"])
    mine = orders.head(3).assign(farmer_id=body["farmer_id"])
    placed = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(hours=1)
    rows = mine.assign(
        order_id=[f"LIVE-{i}" for i in range(len(mine))], placed_at=placed.isoformat()
    )
    rows = json_rows(rows)
    contracts = as_sent(validated_tables(store)["contracts"])
    contract = contracts[contracts["contract_id"] == body["contract_id"]]
    assert (contract["status"] == "active").all()

    with running_server(store, served.training, url, tmp_path, workers=2) as (base, keys, _, _):
        book = Ledger(url)
        _, feed = create_key(book.keys, role="data", name="orders feed")
        book.close()
        lender = {"Authorization": f"Bearer {keys['lender']}"}
        with api_client(base, timeout=30) as client:
            first = client.post("/v1/score", json=body, headers=lender).json()
            posted = client.post("/v1/data/orders", json={"batch_id": "live-1", "rows": rows},
                                 headers={"Authorization": f"Bearer {feed}"})  # fmt: skip
            assert posted.status_code == 201, posted.text
            recorded = pd.Timestamp(posted.json()["recorded_at"])
            started, seen = time.monotonic(), 0
            while seen < 8 and time.monotonic() - started < 60:
                answer = client.post("/v1/score", json=body, headers=lender).json()
                # consecutive answers (connections spread over both workers) as of after it
                seen = seen + 1 if pd.Timestamp(answer["features_as_of"]) > recorded else 0
                time.sleep(0.05)
            waited = time.monotonic() - started
            # the host's follower dies: the supervisor starts another, which the workers follow
            follower = _host_follower(store, base)
            os.kill(follower, signal.SIGKILL)
            # the contract delivered and closed: the same application is declined for it
            closed = contract.assign(status="closed", delivered_kg=1000.0,
                                     closed_at=pd.Timestamp.now(tz="UTC").isoformat())  # fmt: skip
            closing = json_rows(closed)
            posted = client.post("/v1/data/contracts", json={"batch_id": "close-1",
                                                             "rows": closing},
                                 headers={"Authorization": f"Bearer {feed}"})  # fmt: skip
            assert posted.status_code == 201, posted.text
            started, declined = time.monotonic(), 0
            while declined < 8 and time.monotonic() - started < 60:
                answer = client.post("/v1/score", json=body, headers=lender).json()
                codes = {r["code"] for r in answer["reasons"]}
                declined = declined + 1 if "NO_ACTIVE_CONTRACT" in codes else 0
                time.sleep(0.05)

    assert pd.Timestamp(first["features_as_of"]) < recorded
    assert seen == 8, f"decisions still as of before the commit after {waited:.1f} s"
    assert first["decision"] != "decline" or "NO_ACTIVE_CONTRACT" not in {
        r["code"] for r in first["reasons"]
    }
    assert declined == 8 and answer["decision"] == "decline"


def _host_follower(store: Path, base: str) -> int:
    """The process of the server on `store` that is neither of its two workers: the host's
    follower (spawned with the server's environment)."""
    clients = [api_client(base, timeout=30) for _ in range(4)]
    try:
        workers = {client.get("/healthz").json()["worker"] for client in clients}
    finally:
        for client in clients:
            client.close()
    assert len(workers) == 2
    mine = f"AGRICREDIT_DATA_DIR={store}".encode() + b"\0"
    found = []
    for proc in Path("/proc").iterdir():
        try:
            spawned = b"spawn_main" in (proc / "cmdline").read_bytes()
            ours = mine in (proc / "environ").read_bytes()
        except OSError:  # not a process, or one that has gone
            continue
        if spawned and ours and int(proc.name) not in workers:
            found.append(int(proc.name))
    assert len(found) == 1, found
    return found[0]


def test_under_the_wall_clock_a_running_servers_features_equal_a_build_as_of_their_instant(
    served, tmp_path
):
    store = tmp_path / "store"
    load_data_dir(served.world, store)
    write_feature_store(store)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    source = FeatureSource.load(store)
    bodies = [
        b
        for b in applications(source, store, 40)
        if source.snapshot is not None
        and source.snapshot.rows[b["farmer_id"]].contract_id == b["contract_id"]
    ][:3]
    orders = validated_tables(store)["orders"].drop(columns=["recorded_at"])
    mine = orders.head(2).assign(farmer_id=bodies[0]["farmer_id"])
    placed = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(hours=1)
    rows = mine.assign(order_id=["NOW-1", "NOW-2"], placed_at=placed.isoformat())
    rows = json_rows(rows)

    env = {"AGRICREDIT_CLOCK": "now"}
    with running_server(store, served.training, url, tmp_path, workers=2, extra_env=env) as (
        base,
        keys,
        _,
        _,
    ):
        book = Ledger(url)
        _, feed = create_key(book.keys, role="data", name="orders feed")
        lender = {"Authorization": f"Bearer {keys['lender']}"}
        with api_client(base, timeout=30) as client:
            ready = client.get("/readyz").json()
            posted = client.post("/v1/data/orders", json={"batch_id": "now-1", "rows": rows},
                                 headers={"Authorization": f"Bearer {feed}"})  # fmt: skip
            assert posted.status_code == 201, posted.text
            recorded = pd.Timestamp(posted.json()["recorded_at"])
            started, answers = time.monotonic(), []
            while len(answers) < 6 and time.monotonic() - started < 60:
                answer = client.post("/v1/score", json=bodies[len(answers) % len(bodies)],
                                     headers=lender).json()  # fmt: skip
                answers = (
                    [*answers, answer] if pd.Timestamp(answer["features_as_of"]) > recorded else []
                )
                time.sleep(0.05)
        stored = {a["decision_id"]: book.get(a["decision_id"]) for a in answers}
        book.close()

    # the worker started as of the wall clock, months after the data's last event
    assert pd.Timestamp(ready["decisions_as_of"]) > pd.Timestamp(ready["data_as_of"])
    assert len(answers) == 6, "decisions still as of before the commit after 60 s"
    builds: dict[str, pd.DataFrame] = {}  # one per instant: each worker's snapshot
    for answer in answers:
        as_of = answer["features_as_of"]
        if as_of not in builds:
            out = tmp_path / f"offline-{len(builds)}"
            built = write_feature_store(store, out=out, as_of=pd.Timestamp(as_of))
            builds[as_of] = pd.read_parquet(built.out / SNAPSHOT_FILE).set_index("farmer_id")
        frame = builds[as_of]
        used = stored[answer["decision_id"]].body["feature_vector"]
        farmer = stored[answer["decision_id"]].body["request"]["farmer_id"]
        for name, value in used.items():
            if name == "contract_requested_over_receivable":
                continue  # the one feature of the request, not of the data
            want = frame.loc[farmer, name]
            assert (value is None and pd.isna(want)) or value == want, (name, value, want)
