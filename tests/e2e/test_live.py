"""A two-worker server on a store follows its arrival log: batches a platform feed posts
(new orders; the application's contract delivered and closed) are in both workers'
decisions within seconds, without a restart, and move them as they should."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from features.feature_store import validated_tables, write_feature_store
from features.ingest import load_data_dir
from scoring.decide.data import FeatureSource
from scoring.ledger.keys import create_key
from scoring.ledger.repo import Ledger
from tests.factories import api_client, applications, running_server

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
    rows = rows.astype(object).where(rows.notna(), None).to_dict("records")
    contracts = validated_tables(store)["contracts"].drop(columns=["recorded_at"])
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
            # the contract delivered and closed: the same application is declined for it
            closed = contract.assign(status="closed", delivered_kg=1000.0,
                                     closed_at=pd.Timestamp.now(tz="UTC").isoformat())  # fmt: skip
            closing = closed.astype(object).where(closed.notna(), None).to_dict("records")
            for row in closing:
                for column, value in row.items():
                    if isinstance(value, pd.Timestamp):
                        row[column] = value.isoformat()
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
