"""Point-in-time correctness, for all inputs: nothing at or after as-of moves a feature.

Each property draws an as-of time, a group of farmers and a seed from hypothesis, then
changes the tiny world in a way that must not matter and compares every feature.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.assembly import (
    Inputs,
    build_features,
    build_reference,
    restrict_to_farmers,
    snapshot_applications,
)

START = pd.Timestamp("2022-01-01", tz="UTC")
SPAN_DAYS = 4 * 365  # the tiny world's history runs 2021 to early 2025
PROPERTY = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

as_of_times = st.integers(0, SPAN_DAYS * 24).map(lambda h: START + pd.Timedelta(hours=h))
seeds = st.integers(0, 2**32 - 1)


def _applications(inputs: Inputs, as_of: pd.Timestamp, seed: int) -> pd.DataFrame:
    """Snapshot applications at `as_of` for a sample of farmers, some with a requested amount,
    plus every loan application made before as_of, re-dated to as_of."""
    rng = np.random.default_rng(seed)
    farmers = inputs.farmers.sample(n=60, random_state=seed % 2**31)
    apps = snapshot_applications(farmers, inputs.contracts, as_of)
    apps["requested_minor"] = np.where(rng.random(len(apps)) < 0.7, 1e6, np.nan)
    loans = inputs.loans[inputs.loans["applied_at"] < as_of]
    redated = pd.DataFrame(
        {
            "application_id": "loan-" + loans["loan_id"].astype(str),
            "farmer_id": loans["farmer_id"].to_numpy(),
            "as_of": pd.array([as_of] * len(loans), dtype="datetime64[ns, UTC]"),
            "contract_id": loans["contract_id"].to_numpy(),
            "requested_minor": loans["amount_minor"].to_numpy(dtype=float),
        }
    )
    return pd.concat([apps, redated], ignore_index=True)


def _features(inputs: Inputs, apps: pd.DataFrame) -> pd.DataFrame:
    out = build_features(inputs, apps, reference=build_reference(inputs))
    return out.sort_values("application_id", ignore_index=True)


def _shifted_copies(
    frame: pd.DataFrame,
    time_cols: list[str],
    as_of: pd.Timestamp,
    rng: np.random.Generator,
    id_col: str,
) -> pd.DataFrame:
    """Copies of random rows re-dated at or after as_of (first column exactly at as_of)."""
    picked = frame.sample(n=min(len(frame), 40), random_state=int(rng.integers(2**31)))
    lag = pd.to_timedelta(rng.integers(0, 400 * 24, len(picked)), unit="h")
    lag = lag.where(np.arange(len(picked)) > 0, pd.Timedelta(0))
    out = picked.copy()
    for col in time_cols:
        offset = out[col] - picked[time_cols[0]]  # keep each row's internal order
        out[col] = (as_of + lag + offset.fillna(pd.Timedelta(0))).where(out[col].notna())
    out[id_col] = [f"future-{id_col}-{i}" for i in range(len(out))]
    return out


def _with_future(inputs: Inputs, as_of: pd.Timestamp, seed: int) -> Inputs:
    """The inputs plus new rows dated at or after as_of in every dated table, and the
    outcomes of open contracts and unpaid loans revealed after as_of."""
    rng = np.random.default_rng(seed)
    orders = _shifted_copies(inputs.orders, ["placed_at"], as_of, rng, "order_id")
    orders["amount_minor"] = rng.integers(1, 10**8, len(orders))
    contracts = _shifted_copies(
        inputs.contracts,
        ["signed_at", "delivery_start", "delivery_end", "closed_at", "payment_due_at", "paid_at"],
        as_of, rng, "contract_id",
    )  # fmt: skip
    loans = _shifted_copies(
        inputs.loans, ["applied_at", "disbursed_at", "due_at"], as_of, rng, "loan_id"
    )
    repayments = _shifted_copies(inputs.repayments, ["paid_at"], as_of, rng, "repayment_id")
    prices = _shifted_copies(inputs.market_prices, ["observed_at"], as_of, rng, "crop")
    prices["crop"] = inputs.market_prices["crop"].sample(len(prices), replace=True).to_numpy()
    series = _shifted_copies(inputs.series, ["acquired_at"], as_of, rng, "scene_id")
    series["ndvi_mean"] = rng.uniform(-0.2, 0.95, len(series))
    series["field_id"] = inputs.series["field_id"].sample(len(series), replace=True).to_numpy()
    # outcomes learnt only later: contracts open at as_of close and get paid after it
    later = as_of + pd.to_timedelta(rng.integers(0, 200 * 24, len(inputs.contracts)), unit="h")
    known = inputs.contracts.copy()
    still_open = known["closed_at"].isna() | (known["closed_at"] >= as_of)
    known.loc[still_open, "closed_at"] = later[still_open.to_numpy()]
    known.loc[still_open, "delivered_kg"] = known.loc[still_open, "quantity_kg"] * 0.1
    unpaid = known["paid_at"].isna() | (known["paid_at"] >= as_of)
    known.loc[unpaid, "paid_at"] = later[unpaid.to_numpy()] + pd.Timedelta(days=1)
    known.loc[unpaid, "paid_minor"] = 1
    return replace(
        inputs,
        orders=pd.concat([inputs.orders, orders], ignore_index=True),
        contracts=pd.concat([known, contracts], ignore_index=True),
        loans=pd.concat([inputs.loans, loans], ignore_index=True),
        repayments=pd.concat([inputs.repayments, repayments], ignore_index=True),
        market_prices=pd.concat([inputs.market_prices, prices], ignore_index=True),
        series=pd.concat([inputs.series, series], ignore_index=True),
    )


def _assert_same(left: pd.DataFrame, right: pd.DataFrame) -> None:
    # sums of floats may be added in another order: equal to 1e-9, not to the last bit
    pd.testing.assert_frame_equal(left, right, check_exact=False, rtol=1e-9, atol=1e-9)


@PROPERTY
@given(as_of=as_of_times, seed=seeds)
def test_rows_dated_at_or_after_as_of_change_no_feature(tiny_inputs, as_of, seed):
    apps = _applications(tiny_inputs, as_of, seed)
    before = _features(tiny_inputs, apps)
    after = _features(_with_future(tiny_inputs, as_of, seed), apps)
    _assert_same(before, after)


@PROPERTY
@given(as_of=as_of_times, seed=seeds)
def test_shuffling_input_rows_changes_nothing(tiny_inputs, as_of, seed):
    apps = _applications(tiny_inputs, as_of, seed)
    rng = np.random.default_rng(seed)

    def shuffle(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.sample(frac=1.0, random_state=int(rng.integers(2**31)))

    shuffled = Inputs(**{k: shuffle(v) for k, v in tiny_inputs.__dict__.items()})
    _assert_same(_features(tiny_inputs, apps), _features(shuffled, shuffle(apps)))


@PROPERTY
@given(as_of=as_of_times, seed=seeds, parts=st.integers(2, 5))
def test_partitioned_and_whole_runs_agree(tiny_inputs, as_of, seed, parts):
    apps = _applications(tiny_inputs, as_of, seed)
    reference = build_reference(tiny_inputs)
    whole = build_features(tiny_inputs, apps, reference=reference)
    group = np.random.default_rng(seed).integers(0, parts, len(tiny_inputs.farmers))
    pieces = []
    for g in range(parts):
        farmer_ids = tiny_inputs.farmers["farmer_id"][group == g]
        part = restrict_to_farmers(tiny_inputs, farmer_ids)
        mine = apps[apps["farmer_id"].isin(farmer_ids)]
        if len(mine):
            pieces.append(build_features(part, mine, reference=reference))
    joined = pd.concat(pieces).sort_values("application_id", ignore_index=True)
    _assert_same(whole.sort_values("application_id", ignore_index=True), joined)
