"""Contract features: the buyer's record as known then, co-op shares, and whose contract."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contracts import build_contract_features, buyer_payment_events, coop_crop_areas

T = pd.Timestamp("2024-03-01T00:00Z")


def _day(offset: float) -> pd.Timestamp:
    return T + pd.Timedelta(days=offset)


def _contract(cid, *, buyer="B1", farmer=None, coop=None, signed=-60, due=None, paid=None,
              closed=None, delivered=None, qty=1000.0, price=50):  # fmt: skip
    return {
        "contract_id": cid, "buyer_id": buyer,
        "party_type": "farmer" if farmer else "coop", "farmer_id": farmer, "coop_id": coop,
        "crop": "maize", "quantity_kg": qty, "price_per_kg_minor": price,
        "signed_at": _day(signed), "delivery_start": _day(100), "delivery_end": _day(130),
        "status": "active", "delivered_kg": delivered,
        "closed_at": None if closed is None else _day(closed),
        "payment_due_at": None if due is None else _day(due),
        "paid_at": None if paid is None else _day(paid), "paid_minor": None,
    }  # fmt: skip


CONTRACTS = pd.DataFrame(
    [
        _contract("on_time", farmer="X", signed=-400, closed=-60, delivered=900, due=-30, paid=-35),
        _contract("late", farmer="X", signed=-400, closed=-50, delivered=500, due=-20, paid=-10),
        _contract("paid_after_as_of", farmer="Y", signed=-300, due=-5, paid=3),
        _contract("mine", farmer="A"),
        _contract("coop", coop="C1", qty=4000.0),
        _contract("future", farmer="A", signed=10),
    ]
)
for col in (
    "signed_at",
    "delivery_start",
    "delivery_end",
    "closed_at",
    "payment_due_at",
    "paid_at",
):
    CONTRACTS[col] = pd.to_datetime(CONTRACTS[col], utc=True)
FARMERS = pd.DataFrame(
    {"farmer_id": ["A", "M", "N", "X", "Y"], "coop_id": [None, "C1", "C1", None, None]}
)
FIELDS = pd.DataFrame(
    {"farmer_id": ["A", "M", "N"], "crop": ["maize"] * 3, "declared_area_ha": [1.0, 2.0, 6.0]}
)
PRICES = pd.DataFrame(
    {"crop": ["maize"] * 3, "observed_at": [_day(-40), _day(-20), _day(-1)],
     "price_per_kg_minor": [10, 40, 60]}
)  # fmt: skip


def _features(rows):
    apps = pd.DataFrame(
        rows, columns=["application_id", "farmer_id", "contract_id", "requested_minor"]
    )
    apps["as_of"] = pd.array([T] * len(apps), dtype="datetime64[ns, UTC]")
    out = build_contract_features(
        CONTRACTS, apps, farmers=FARMERS, fields=FIELDS,
        buyers=pd.DataFrame({"buyer_id": ["B1"], "grade": ["C"]}), market_prices=PRICES,
        buyer_payments=buyer_payment_events(CONTRACTS), coop_areas=coop_crop_areas(FIELDS, FARMERS),
    )  # fmt: skip
    return out.set_index("application_id")


def test_buyer_record_counts_a_payment_made_after_as_of_as_still_unpaid():
    row = _features([("a", "A", "mine", 10_000)]).loc["a"]

    # due before T: on time (0 days), 10 days late, and unpaid at T for 5 days
    assert row["contract_buyer_late_rate"] == 2 / 3
    assert row["contract_buyer_mean_days_late"] == 5.0
    assert row["contract_buyer_grade"] == 2
    assert not row["dq_no_buyer_record"]


def test_receivable_ratio_market_price_and_time_to_delivery():
    row = _features([("a", "A", "mine", 10_000)]).loc["a"]

    assert row["contract_receivable_minor"] == 50_000
    assert row["contract_requested_over_receivable"] == 0.2
    assert row["contract_price_over_market"] == 50 / 50  # prices of the last 28 days: 40, 60
    assert row["contract_days_to_delivery"] == 100
    assert row["contract_share"] == 1.0


def test_member_of_a_coop_gets_their_share_of_its_contract_by_declared_area():
    row = _features([("m", "M", "coop", 10_000)]).loc["m"]

    assert row["contract_share"] == 0.25  # 2 of the co-op's 8 ha of maize
    assert row["contract_receivable_minor"] == 4000 * 50 * 0.25


def test_party_delivery_counts_contracts_closed_before_as_of():
    row = _features([("x", "X", None, np.nan)]).loc["x"]

    assert row["contract_party_delivery_ratio"] == (900 + 500) / 2000
    assert row["contract_party_closed_contracts"] == 2
    assert row["dq_no_contract"]
    assert np.isnan(row["contract_receivable_minor"])


def test_someone_elses_contract_and_a_contract_not_yet_signed_give_no_values():
    out = _features([("other", "A", "late", 1.0), ("future", "A", "future", 1.0)])

    assert out.loc["other", "dq_no_contract"]
    assert not out.loc["future", "dq_no_contract"] and out.loc["future", "dq_contract_not_open"]
    assert out[["contract_receivable_minor", "contract_buyer_grade"]].isna().all(axis=None)
