"""A season going on while a two-worker server decides: orders, a delivery against the
application's contract, a repayment and a drought's scenes (rasters uploaded, then their
rows), all sent over HTTP by a platform feed, reach both workers' decisions
within seconds and move them as they should.

The world is extracted in the growing season (25 May 2026) and the product's clock is
shifted there (features/clock.py), so the server decides as of the wall clock, in season,
whatever today's date: the drought shows against the same weeks of earlier seasons.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

from features.clock import SHIFT_ENV
from features.feature_store import validated_tables, write_feature_store
from features.ingest import load_data_dir
from features.simulate.params import WorldParams
from features.simulate.world import simulate_world
from features.versions import ARRIVAL_COLUMNS
from scoring.decide.policy import load_policy
from scoring.ledger.keys import create_key
from scoring.ledger.repo import Ledger
from tests.factories import STUB_FEATURE, STUB_ORDERS, api_client, json_rows, running_server

pytestmark = pytest.mark.e2e


def codes(answer: dict) -> set[str]:
    return {r["code"] for r in answer["reasons"]}


EXTRACTED = pd.Timestamp("2026-05-25T00:00:00+00:00")
DROUGHT_SCENES = 6  # a provider's delivery of the last twelve days, every scene bare
BARE_RED, BARE_NIR = 1900, 2100  # reflectance x 10 000: NDVI 0.05, a field burnt dry


def _drought_batch(world: Path, county: str, at: pd.Timestamp, out: Path) -> Path:
    """DROUGHT_SCENES scenes over `county`, every other day before `at`, every pixel clear and
    bare, written as a provider would deliver them: GeoTIFFs and a scenes file naming them."""
    scenes = pd.read_parquet(world / "scenes.parquet")
    last = scenes[scenes["path"].str.contains(f"/{county.lower()}/")].iloc[-1]
    with rasterio.open(world / last["path"]) as src:
        profile, bands = src.profile, src.read()
    bands[0][:], bands[1][:], bands[3][:] = BARE_RED, BARE_NIR, 1  # red, NIR, mask clear
    out.mkdir()
    rows = []
    for i in range(DROUGHT_SCENES):
        name = f"drought_{i}.tif"
        with rasterio.open(out / name, "w", **profile) as dst:
            dst.write(bands)
        rows.append(last.drop(labels=["recorded_at"]).to_dict()
                    | {"scene_id": f"DROUGHT-{i}", "path": name,
                       "acquired_at": (at - pd.Timedelta(days=2 * i + 1)).isoformat()})  # fmt: skip
    pd.DataFrame(rows).to_csv(out / "scenes.csv", index=False)
    return out / "scenes.csv"


@pytest.fixture(scope="module")
def season(tmp_path_factory):
    """The store of a small world extracted in season, with its features, and the clock
    shift that puts the product six hours after the extraction."""
    root = tmp_path_factory.mktemp("season")
    world = root / "world"
    simulate_world(WorldParams.ending(EXTRACTED, farmers=240, seasons=3, counties=2, seed=11),
                   world, progress=False)  # fmt: skip
    store = root / "store"
    load_data_dir(world, store)
    write_feature_store(store)
    start = EXTRACTED + pd.Timedelta(hours=6)
    return world, store, (start - pd.Timestamp.now(tz="UTC")).total_seconds()


def _applicants(world: Path, store: Path) -> tuple[dict, dict, dict, pd.Series]:
    """A: a farmer with many orders (the stub champion approves) and a contract of their
    own; B: a farmer with a contract of their own and one loan unpaid long past due. With
    A's contract row and B's unpaid loan."""
    tables = validated_tables(store)
    loans, repayments = tables["loans"], tables["repayments"]
    paid = loans["loan_id"].map(repayments.groupby("loan_id")["amount_minor"].sum()).fillna(0)
    unpaid = loans[paid < loans["amount_minor"]]
    snap = pd.read_parquet(store / "features" / "snapshot.parquet").set_index("farmer_id")
    contracts = tables["contracts"]
    own = contracts[(contracts["status"] == "active") & (contracts["party_type"] == "farmer")]
    own = own[own["contract_id"].to_numpy() == own["farmer_id"].map(snap["contract_id"])]
    many = own["farmer_id"].map(snap[STUB_FEATURE]).fillna(0) >= STUB_ORDERS
    owing = unpaid["farmer_id"].value_counts()
    a = own[many & ~own["farmer_id"].isin(owing.index)].iloc[0]
    b = own[own["farmer_id"].map(owing) == 1].iloc[0]
    example = json.loads((world / "world.json").read_text())["example_application"]

    def body(row: pd.Series) -> dict:
        return {"farmer_id": row["farmer_id"], "contract_id": row["contract_id"],
                "requested_minor": 1_500_000, "inputs": example["inputs"]}  # fmt: skip

    b_loan = unpaid[unpaid["farmer_id"] == b["farmer_id"]].iloc[0]
    return (
        body(a),
        body(b),
        a.drop(labels=["recorded_at", *ARRIVAL_COLUMNS], errors="ignore").to_dict(),
        b_loan,
    )


def test_orders_a_delivery_a_repayment_and_a_drought_move_a_running_servers_decisions(
    season, served, tmp_path, monkeypatch
):
    world, store, shift = season
    monkeypatch.setenv(SHIFT_ENV, str(shift))  # the appends below stamp the shifted clock
    a, b, contract, unpaid = _applicants(world, store)
    tables = validated_tables(store)
    county = tables["farmers"].set_index("farmer_id").loc[a["farmer_id"], "county"]
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    env = {"AGRICREDIT_CLOCK": "now", SHIFT_ENV: str(shift)}

    with running_server(store, served.training, url, tmp_path, workers=2,
                        extra_env=env) as (base, keys, _, _):  # fmt: skip
        book = Ledger(url)
        _, feed = create_key(book.keys, role="data", name="platform feed")
        lender = {"Authorization": f"Bearer {keys['lender']}"}
        with api_client(base, timeout=30) as client:

            def score(body: dict) -> dict:
                answer = client.post("/v1/score", json=body, headers=lender)
                assert answer.status_code == 200, answer.text
                out = answer.json()
                out["features"] = book.get(out["decision_id"]).body["feature_vector"]
                return out

            def after(recorded: pd.Timestamp, body: dict, ok: Callable[[dict], bool]) -> dict:
                """The answer once eight in a row (both workers) are as of after the commit."""
                started, streak, answer = time.monotonic(), 0, {}
                while streak < 8 and time.monotonic() - started < 60:
                    answer = score(body)
                    streak = streak + 1 if pd.Timestamp(answer["features_as_of"]) > recorded else 0
                assert streak == 8, f"decisions still as of before {recorded} after 60 s"
                assert ok(answer), json.dumps(
                    {k: answer[k] for k in ("decision", "reasons", "features")}
                )
                return answer

            def post(table: str, batch: str, rows: list[dict]) -> pd.Timestamp:
                posted = client.post(f"/v1/data/{table}", json={"batch_id": batch, "rows": rows},
                                     headers={"Authorization": f"Bearer {feed}"})  # fmt: skip
                assert posted.status_code == 201, posted.text
                return pd.Timestamp(posted.json()["recorded_at"])

            a0, b0 = score(a), score(b)
            # 1. orders: three sales by A an hour ago
            now = pd.Timestamp(a0["features_as_of"])
            orders = tables["orders"]
            sales = orders[orders["status"] == "completed"].head(3).drop(columns=["recorded_at"])
            sales = sales.assign(farmer_id=a["farmer_id"], order_id=["SEASON-1", "SEASON-2",
                                 "SEASON-3"], placed_at=now - pd.Timedelta(hours=1))  # fmt: skip
            orders_at = post("orders", "season-orders", json_rows(sales))
            a1 = after(orders_at, a, lambda _: True)
            # 2. most of A's contract delivered: what is left to deliver bounds the limit
            left_kg = float(np.floor(a0["limit_minor"] / 4 / contract["price_per_kg_minor"]))
            delivered = pd.DataFrame([contract | {
                "delivered_kg": contract["quantity_kg"] - left_kg}])  # fmt: skip
            a2 = after(post("contracts", "season-delivery", json_rows(delivered)), a,
                       lambda x: x["limit_minor"] < a0["limit_minor"])  # fmt: skip
            # 3. B repays the loan long past due
            repayment = pd.DataFrame([{"repayment_id": "SEASON-R1", "loan_id": unpaid["loan_id"],
                                       "paid_at": now - pd.Timedelta(hours=2),
                                       "amount_minor": int(unpaid["amount_minor"])}])  # fmt: skip
            b3 = after(post("repayments", "season-repayment", json_rows(repayment)), b,
                       lambda x: "LOAN_IN_ARREARS" not in codes(x))  # fmt: skip
            # 4. a drought's scenes over A's county, from the provider's feed: each raster
            # uploaded, then one batch naming them
            scenes = pd.read_csv(_drought_batch(world, county, now, tmp_path / "drought"))
            auth = {"Authorization": f"Bearer {feed}"}
            for name in scenes["path"]:
                put = client.put(f"/v1/data/files/{name}", headers=auth,
                                 content=(tmp_path / "drought" / name).read_bytes())  # fmt: skip
                assert put.status_code == 201, put.text
            scenes_at = post("scenes", "season-drought", json_rows(scenes))
            a4 = after(scenes_at, a, lambda x: "CROP_STRESS" in {r["code"] for r in x["reasons"]})
        book.close()

    # the clock: in season, after the extraction
    assert EXTRACTED < now < EXTRACTED + pd.Timedelta(days=1)
    # orders: three more sales, an hour ago
    assert a1["features"]["orders_count_90d"] == a0["features"]["orders_count_90d"] + 3
    sold = a1["features"]["orders_amount_30d"] - a0["features"]["orders_amount_30d"]
    assert sold == pytest.approx(float(sales["amount_minor"].sum()), rel=1e-12)
    assert a1["features"]["orders_days_since_last"] < 1 / 24 + 1e-3
    assert pd.Timestamp(a1["data_seen"]["orders"]) == orders_at  # the answer says what it saw
    assert pd.Timestamp(a4["data_seen"]["scenes"]) == scenes_at
    # the delivery: the receivable is what is left to deliver, and the limit follows it
    assert a0["decision"] == "approve" and a2["decision"] in ("approve", "refer")
    assert a2["features"]["contract_receivable_minor"] == left_kg * contract["price_per_kg_minor"]
    assert a2["limit_minor"] <= 0.6 * a2["features"]["contract_receivable_minor"]
    # the repayment: the loan no longer outstanding, the arrears knock-out gone
    assert "LOAN_IN_ARREARS" in codes(b0) and b0["decision"] == "decline"
    assert b3["features"]["history_outstanding_minor"] == 0
    assert "LOAN_IN_ARREARS" not in codes(b3)
    # the drought: NDVI of the last weeks far below earlier seasons', the answer a refer
    bound = load_policy().knockouts.max_recent_ndvi_drop
    assert bound is not None
    assert a2["features"]["sat_recent_anomaly_own"] > -bound
    assert a4["features"]["sat_recent_anomaly_own"] < -bound
    assert a4["features"]["sat_clear_obs_60d"] > a2["features"]["sat_clear_obs_60d"]
    assert a2["decision"] == "approve" or "CROP_STRESS" not in codes(a2)
    assert a4["decision"] == "refer" and "CROP_STRESS" in codes(a4)
