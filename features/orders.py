"""Order-history features: what a farmer sells on the platform, as of each application.

Orders are indexed once by (farmer, time); every window total is a difference of integer
prefix sums, so one pass over the orders serves any number of as-of times, exactly and in
the same way whether farmers come all together or in partitions.
"""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd
import pyarrow as pa

from features.asof import DAY_NS, EventIndex, check_applications, to_ns
from features.registry import output_columns

ORDER_COLUMNS = ("order_id", "farmer_id", "customer_id", "placed_at", "amount_minor", "status")
MONTHS = 12
MONTH_DAYS = 30

# prefix-sum channels (integer weights per order)
_AMOUNT, _COUNT, _REFUNDED, _CANCELLED, _RATING_TENTHS, _RATED, _NEW_CUSTOMER, _REPEAT = range(8)
_CHANNELS = 8


@numba.njit(cache=True, nogil=True)
def _fnv1a(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    """64-bit FNV-1a hash of each string of an Arrow string array (offsets, bytes)."""
    out = np.empty(len(offsets) - 1, dtype=np.uint64)
    for i in range(len(offsets) - 1):
        h = np.uint64(14695981039346656037)
        for j in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(data[j])) * np.uint64(1099511628211)
        out[i] = h
    return out


def _string_hashes(values: pd.Series) -> np.ndarray:
    """A 64-bit hash per value, read straight from the Arrow buffers (no Python objects)."""
    arrow = getattr(values.array, "_pa_array", None)
    if arrow is None:
        arrow = pa.array(values.astype(str).to_numpy(dtype=object), type=pa.large_string())
    array = arrow.combine_chunks() if isinstance(arrow, pa.ChunkedArray) else arrow
    array = array.cast(pa.large_string())
    _, offsets, data = array.buffers()
    offsets = np.frombuffer(offsets, dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    return _fnv1a(offsets, data).view(np.int64)


@numba.njit(cache=True, nogil=True)
def _customer_occurrence(
    order: np.ndarray, starts: np.ndarray, customers: np.ndarray, completed: np.ndarray
) -> np.ndarray:
    """Per sorted order: 0 for a customer's first completed order with that farmer, 1 for
    the second, ...; -1 for orders not completed. Counted within each farmer's orders."""
    occurrence = np.full(len(order), -1, dtype=np.int64)
    for f in range(len(starts) - 1):
        a, b = starts[f], starts[f + 1]
        keys = np.empty(b - a, dtype=np.int64)
        n = 0
        where = np.empty(b - a, dtype=np.int64)
        for k in range(a, b):
            if completed[order[k]]:
                keys[n] = customers[order[k]]
                where[n] = k
                n += 1
        idx = np.argsort(keys[:n], kind="mergesort")  # stable: time order within a customer
        run = 0
        for j in range(n):
            run = run + 1 if j > 0 and keys[idx[j]] == keys[idx[j - 1]] else 0
            occurrence[where[idx[j]]] = run
    return occurrence


@numba.njit(cache=True, nogil=True)
def _order_prefix_sums(
    order: np.ndarray,
    occurrence: np.ndarray,
    amount: np.ndarray,
    rating: np.ndarray,
    completed: np.ndarray,
    refunded: np.ndarray,
    cancelled: np.ndarray,
) -> np.ndarray:
    """Prefix sums of the weight channels over the sorted orders, with a leading zero row."""
    p = np.zeros((len(order) + 1, _CHANNELS), dtype=np.int64)
    for k in range(len(order)):
        i = order[k]
        for c in range(_CHANNELS):
            p[k + 1, c] = p[k, c]
        p[k + 1, _COUNT] += 1
        p[k + 1, _REFUNDED] += refunded[i]
        p[k + 1, _CANCELLED] += cancelled[i]
        if completed[i]:
            p[k + 1, _AMOUNT] += amount[i]
            if not np.isnan(rating[i]):
                p[k + 1, _RATING_TENTHS] += np.int64(np.round(rating[i] * 10.0))
                p[k + 1, _RATED] += 1
            p[k + 1, _NEW_CUSTOMER] += occurrence[k] == 0
            p[k + 1, _REPEAT] += occurrence[k] == 1
    return p


def _prefix(orders: pd.DataFrame, index: EventIndex) -> np.ndarray:
    """Prefix sums of the orders' integer weight channels, in index order."""
    status = orders["status"]
    completed = (status == "completed").to_numpy(dtype=bool)
    rating = (
        orders["rating"].to_numpy(dtype=float, na_value=np.nan)
        if "rating" in orders
        else np.full(len(orders), np.nan)
    )
    # Customers are told apart by a 64-bit hash: two of one farmer's customers would have
    # to collide (odds about 1e-16 per farmer) to be counted as one.
    occurrence = _customer_occurrence(
        index.order, index.starts, _string_hashes(orders["customer_id"]), completed
    )
    return _order_prefix_sums(
        index.order,
        occurrence,
        orders["amount_minor"].to_numpy(dtype=np.int64),
        rating,
        completed,
        (status == "refunded").to_numpy(dtype=bool),
        (status == "cancelled").to_numpy(dtype=bool),
    )


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
    index = EventIndex.build(orders["farmer_id"], to_ns(orders["placed_at"]))
    prefix = _prefix(orders, index)
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
    times = index.times if len(index.times) else np.zeros(1, dtype=np.int64)  # no orders at all
    first_at = np.where(seen, times[np.minimum(first, len(times) - 1)], 0)
    last_at = np.where(seen, times[np.maximum(end - 1, 0)], 0)
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
