"""A two-worker server on a store follows its arrival log: a batch a platform feed posts is
in both workers' decisions within seconds, without a restart."""

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


def test_orders_posted_to_a_running_server_reach_both_workers_decisions(served, tmp_path):
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

    assert pd.Timestamp(first["features_as_of"]) < recorded
    assert seen == 8, f"decisions still as of before the commit after {waited:.1f} s"
