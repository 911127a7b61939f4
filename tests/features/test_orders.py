"""Order-history features: exact answers on hand-built orders, and the as-of cut."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.orders import build_order_features

AS_OF = pd.Timestamp("2024-06-01T12:00Z")


def _order(order_id, farmer, days_before, amount, status="completed", customer="c1", rating=None):
    return {
        "order_id": order_id,
        "farmer_id": farmer,
        "customer_id": customer,
        "placed_at": AS_OF - pd.Timedelta(days=days_before),
        "category": "maize",
        "quantity_kg": 1.0,
        "amount_minor": amount,
        "status": status,
        "rating": np.nan if rating is None else float(rating),
    }


def _apps(*farmers, as_of=AS_OF):
    return pd.DataFrame(
        {
            "application_id": [f"a-{f}" for f in farmers],
            "farmer_id": list(farmers),
            "as_of": pd.array([as_of] * len(farmers), dtype="datetime64[ns, UTC]"),
        }
    )


ORDERS = pd.DataFrame(
    [
        _order("o1", "A", 10, 100, rating=5),
        _order("o2", "A", 40, 200, rating=3),
        _order("o3", "A", 100, 50, status="refunded", customer="c2"),
        _order("o4", "A", 200, 70, status="cancelled", customer="c3"),
        _order("o5", "A", 0, 999),  # placed exactly at as-of: not yet known
        _order("o6", "A", -5, 999, customer="c9"),  # after as-of
        _order("o7", "Z", 3, 10),  # another farmer
    ]
)


def test_windows_rates_customers_and_recency_have_exact_values():
    row = build_order_features(ORDERS, _apps("A")).iloc[0]

    assert row["orders_amount_30d"] == 100
    assert row["orders_amount_90d"] == 300
    assert row["orders_amount_365d"] == 300
    assert row["orders_count_90d"] == 2
    assert row["orders_count_365d"] == 4
    assert row["orders_refund_rate_365d"] == 0.25
    assert row["orders_cancel_rate_365d"] == 0.25
    assert row["orders_distinct_customers"] == 1  # only c1 completed an order
    assert row["orders_repeat_customer_share"] == 1.0
    assert row["orders_rating_mean_365d"] == 4.0
    assert row["orders_tenure_days"] == 200
    assert row["orders_days_since_last"] == 10
    assert np.isnan(row["orders_growth_90d"])  # nothing completed in the 90 days before
    assert not row["dq_no_orders"]


def test_growth_compares_with_the_window_before():
    orders = pd.DataFrame([_order("x1", "G", 10, 300), _order("x2", "G", 120, 100)])

    row = build_order_features(orders, _apps("G")).iloc[0]

    assert row["orders_growth_90d"] == 3.0


def test_farmer_without_orders_gets_missing_values_and_a_flag():
    out = build_order_features(ORDERS, _apps("A", "nobody"))

    row = out.set_index("application_id").loc["a-nobody"]
    assert row.drop("dq_no_orders").isna().all()
    assert row["dq_no_orders"]


def test_an_order_one_microsecond_before_as_of_counts():
    orders = pd.DataFrame([_order("m", "M", 0, 5)])
    orders["placed_at"] = AS_OF - pd.Timedelta(microseconds=1)

    assert build_order_features(orders, _apps("M")).iloc[0]["orders_amount_30d"] == 5


def test_applications_without_a_timezone_are_refused_with_the_fix():
    apps = _apps("A")
    apps["as_of"] = apps["as_of"].dt.tz_localize(None)

    with pytest.raises(ValueError, match="timezone-aware"):
        build_order_features(ORDERS, apps)
