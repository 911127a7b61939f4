"""Order-history features: what a farmer sells on the platform, as of each application.

Orders are indexed once by (farmer, time); every window total is a difference of integer
prefix sums, so one pass over the orders serves any number of as-of times, exactly and in
the same way whether farmers come all together or in partitions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.asof import DAY_NS, EventIndex, check_applications, prefix_sums, to_ns
from features.registry import output_columns

ORDER_COLUMNS = ("order_id", "farmer_id", "customer_id", "placed_at", "amount_minor", "status")
MONTHS = 12
MONTH_DAYS = 30

# prefix-sum channels (integer weights per order)
_AMOUNT, _COUNT, _REFUNDED, _CANCELLED, _RATING_TENTHS, _RATED, _NEW_CUSTOMER, _REPEAT = range(8)


def _occurrence(pair: np.ndarray) -> np.ndarray:
    """0 for the first time a value appears in `pair` (in array order), 1 the second, ..."""
    idx = np.argsort(pair, kind="stable")
    sorted_pair = pair[idx]
    start = np.r_[True, sorted_pair[1:] != sorted_pair[:-1]]
    group_start = np.maximum.accumulate(np.where(start, np.arange(len(pair)), 0))
    occurrence = np.empty(len(pair), dtype=np.int64)
    occurrence[idx] = np.arange(len(pair)) - group_start
    return occurrence


def _weights(orders: pd.DataFrame, index: EventIndex) -> np.ndarray:
    """Integer weight channels of the orders in index order."""
    o = orders.iloc[index.order]
    status = o["status"].to_numpy()
    completed = status == "completed"
    rating = o["rating"].to_numpy(dtype=float) if "rating" in o else np.full(len(o), np.nan)
    rated = completed & ~np.isnan(rating)
    farmer_codes = index.keys >> 32
    customer_codes = pd.factorize(o["customer_id"].to_numpy())[0].astype(np.int64)
    # a customer counts as one of the farmer's from their first completed order
    pair = np.where(
        completed, farmer_codes * (customer_codes.max(initial=0) + 1) + customer_codes, -1
    )
    occurrence = _occurrence(pair)
    w = np.zeros((len(o), 8), dtype=np.int64)
    w[:, _AMOUNT] = np.where(completed, o["amount_minor"].to_numpy(dtype=np.int64), 0)
    w[:, _COUNT] = 1
    w[:, _REFUNDED] = status == "refunded"
    w[:, _CANCELLED] = status == "cancelled"
    w[:, _RATING_TENTHS] = np.where(rated, np.round(np.nan_to_num(rating) * 10), 0)
    w[:, _RATED] = rated
    w[:, _NEW_CUSTOMER] = completed & (occurrence == 0)
    w[:, _REPEAT] = completed & (occurrence == 1)
    return w


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def build_order_features(orders: pd.DataFrame, applications: pd.DataFrame) -> pd.DataFrame:
    """Order-history features of each application.

    Requires:
        orders: order_id, farmer_id, customer_id, placed_at, amount_minor, status
            (completed / refunded / cancelled), rating (optional, 1-5, may be missing).
        applications: application_id, farmer_id, as_of (timezone-aware).
    Returns:
        One row per application, in input order: application_id, the `orders` features of
        the registry, then `dq_no_orders`.
    As of:
        An order counts only if placed strictly before the application's as_of.
    """
    check_applications(applications)
    missing = [c for c in ORDER_COLUMNS if c not in orders.columns]
    if missing:
        raise ValueError(f"orders lack column(s) {', '.join(missing)}")
    index = EventIndex.build(
        orders["farmer_id"].to_numpy(),
        to_ns(orders["placed_at"]),
        orders["order_id"].to_numpy(),
    )
    prefix = prefix_sums(_weights(orders, index))
    codes = index.code_of(applications["farmer_id"])
    as_of = to_ns(applications["as_of"])

    def window(days_back_from: int, days_back_to: int) -> np.ndarray:
        """Channel totals of orders placed in [as_of - from, as_of - to)."""
        hi = index.count_before(codes, as_of - days_back_to * DAY_NS)
        lo = index.count_before(codes, as_of - days_back_from * DAY_NS)
        return prefix[hi] - prefix[lo]

    end = index.count_before(codes, as_of)
    first = index.first_of(codes)
    seen = end > first
    to_date = prefix[end] - prefix[first]
    w30, w90, w365 = window(30, 0), window(90, 0), window(365, 0)
    prior90, prior365 = window(180, 90), window(730, 365)
    months = np.stack(
        [window((k + 1) * MONTH_DAYS, k * MONTH_DAYS)[:, _AMOUNT] for k in range(MONTHS)], axis=1
    ).astype(float)
    year = months.sum(axis=1)
    quarters = months[:, :-2] + months[:, 1:-1] + months[:, 2:]
    with np.errstate(invalid="ignore"):
        volatility = _ratio(months.std(axis=1), months.mean(axis=1))
    first_at = np.where(seen, index.times[np.minimum(first, len(index.times) - 1)], 0)
    last_at = np.where(seen, index.times[np.maximum(end - 1, 0)], 0)
    columns = {
        "orders_amount_30d": w30[:, _AMOUNT],
        "orders_amount_90d": w90[:, _AMOUNT],
        "orders_amount_365d": w365[:, _AMOUNT],
        "orders_count_90d": w90[:, _COUNT],
        "orders_count_365d": w365[:, _COUNT],
        "orders_growth_90d": _ratio(w90[:, _AMOUNT], prior90[:, _AMOUNT]),
        "orders_growth_365d": _ratio(w365[:, _AMOUNT], prior365[:, _AMOUNT]),
        "orders_monthly_volatility": volatility,
        "orders_peak_quarter_share": _ratio(quarters.max(axis=1), year),
        "orders_refund_rate_365d": _ratio(w365[:, _REFUNDED], w365[:, _COUNT]),
        "orders_cancel_rate_365d": _ratio(w365[:, _CANCELLED], w365[:, _COUNT]),
        "orders_distinct_customers": to_date[:, _NEW_CUSTOMER],
        "orders_repeat_customer_share": _ratio(to_date[:, _REPEAT], to_date[:, _NEW_CUSTOMER]),
        "orders_rating_mean_365d": _ratio(w365[:, _RATING_TENTHS], w365[:, _RATED] * 10),
        "orders_tenure_days": np.where(seen, (as_of - first_at) / DAY_NS, np.nan),
        "orders_days_since_last": np.where(seen, (as_of - last_at) / DAY_NS, np.nan),
    }
    out = pd.DataFrame({"application_id": applications["application_id"].to_numpy()})
    for name in output_columns("orders"):
        if name == "dq_no_orders":
            out[name] = ~seen
        else:
            values = np.asarray(columns[name], dtype=float)
            # a farmer with no order yet has no history at all: missing, not zero
            out[name] = np.where(seen, values, np.nan)
    return out
