"""Point in time by arrival: rows recorded at or after T change no feature as of T, whatever
their event time (a late-posted repayment, a backfilled order, a contract closed late), and
`features build --as-of T` on a store reads only what was recorded before T."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.arrival_log import ArrivalLog
from features.assembly import build_features, build_reference, snapshot_applications
from features.feature_store import (
    SERIES_FILE,
    SNAPSHOT_FILE,
    inputs_from_tables,
    validated_tables,
    write_feature_store,
)
from features.ingest import load_data_dir
from tests.factories import as_sent, copy_store


@pytest.fixture(scope="module")
def loaded(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("pit") / "store"
    load_data_dir(tiny_world, store)
    write_feature_store(store)  # the index series, read back below
    return store


def _features_as_of(store: Path, t: pd.Timestamp) -> pd.DataFrame:
    tables = validated_tables(store, recorded_before=t)
    series = pd.read_parquet(store / "features" / SERIES_FILE)
    inputs = inputs_from_tables(store, tables, series=series)
    apps = snapshot_applications(inputs.farmers, inputs.contracts, t)
    return build_features(inputs, apps, reference=build_reference(inputs))


def _late_batches(store: Path, t: pd.Timestamp, draw: st.DrawFn) -> list[tuple[str, pd.DataFrame]]:
    """Rows of several tables, each with an event time drawn before or after T."""
    now = ArrivalLog(store).tables()
    days = st.integers(min_value=-400, max_value=30)
    orders = now["orders"].drop(columns=["recorded_at"])
    picked = orders.sample(draw(st.integers(1, 40)), random_state=draw(st.integers(0, 10**6)))
    shifts = pd.to_timedelta([draw(days) for _ in range(len(picked))], unit="D")
    late_orders = picked.assign(
        order_id=[f"LATE-{draw(st.uuids()).hex}" for _ in range(len(picked))],
        placed_at=(t + shifts).to_numpy(),
    )
    repayments = now["repayments"].drop(columns=["recorded_at"])
    late_pay = repayments.sample(draw(st.integers(1, 10)), random_state=draw(st.integers(0, 99)))
    late_pay = late_pay.assign(
        repayment_id=[f"LATE-{draw(st.uuids()).hex}" for _ in range(len(late_pay))],
        paid_at=t + pd.Timedelta(days=draw(days)),
    )
    contracts = as_sent(now["contracts"])
    active = contracts[contracts["status"] == "active"]
    closed = active.head(draw(st.integers(0, 5))).assign(
        status="closed", delivered_kg=1.0, closed_at=t - pd.Timedelta(days=draw(st.integers(1, 60)))
    )
    return [("orders", late_orders), ("repayments", late_pay), ("contracts", closed)]


@settings(max_examples=5, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(data=st.data(), days_before_end=st.integers(min_value=1, max_value=300))
def test_rows_recorded_at_or_after_t_change_no_feature_as_of_t(loaded, tmp_path_factory,
                                                               data, days_before_end):  # fmt: skip
    store = copy_store(loaded, tmp_path_factory.mktemp("pit-example") / "store")
    end = validated_tables(store)["orders"]["placed_at"].max()
    t = (end - pd.Timedelta(days=days_before_end)).floor("s")
    before = _features_as_of(store, t)

    log = ArrivalLog(store)
    late_by = pd.Timedelta(seconds=data.draw(st.integers(0, 86_400 * 30)))
    for n, (table, rows) in enumerate(_late_batches(store, t, data.draw)):
        if not rows.empty:
            log.append(table, rows, batch_id=f"late-{n}", source="late", recorded_at=t + late_by)
    after = _features_as_of(store, t)
    seen_later = _features_as_of(store, t + late_by + pd.Timedelta("1us"))

    pd.testing.assert_frame_equal(after, before)
    # the same rows do count once they have arrived (the test can fail)
    assert not seen_later.equals(before) or all(
        r.empty for _, r in _late_batches(store, t, data.draw)
    )


def test_features_build_as_of_a_time_reads_only_rows_recorded_before_it(loaded, tmp_path):
    store = copy_store(loaded, tmp_path / "store")
    t = validated_tables(store)["orders"]["placed_at"].max() - pd.Timedelta(days=30)
    first = write_feature_store(store, out=tmp_path / "first", as_of=t)
    later = t + pd.Timedelta(days=2)
    without = _features_as_of(store, later).set_index("farmer_id")
    orders = validated_tables(store)["orders"].drop(columns=["recorded_at"]).head(50)
    ArrivalLog(store).append(
        "orders", orders.assign(order_id=[f"BACKFILL-{i}" for i in range(50)],
                                placed_at=t - pd.Timedelta(days=3)),
        batch_id="backfill", source="backfill", recorded_at=t + pd.Timedelta(days=1),
    )  # fmt: skip
    second = write_feature_store(store, out=tmp_path / "second", as_of=t)

    a = pd.read_parquet(first.out / SNAPSHOT_FILE)
    b = pd.read_parquet(second.out / SNAPSHOT_FILE)
    pd.testing.assert_frame_equal(a, b)
    # recorded the day after T, they count from then on: one more order each in 90 days
    with_ = _features_as_of(store, later).set_index("farmer_id")
    added = orders["farmer_id"].value_counts()
    grew = with_.loc[added.index, "orders_count_90d"] - without.loc[added.index, "orders_count_90d"]
    assert (grew == added).all(), pd.concat([grew, added], axis=1)


def test_the_simulated_worlds_late_arrivals_are_unseen_until_they_arrive(loaded, tiny_world):
    scenes = pd.read_parquet(tiny_world / "scenes.parquet")
    orders = pd.read_parquet(tiny_world / "orders.parquet")
    scene = scenes.iloc[len(scenes) // 2]
    backfilled = orders[orders["recorded_at"] - orders["placed_at"] > pd.Timedelta(days=5)]
    order = backfilled.iloc[0]

    assert (
        pd.Timedelta(days=1) <= scene["recorded_at"] - scene["acquired_at"] <= pd.Timedelta(days=3)
    )
    for row, table, key, event in ((scene, "scenes", "scene_id", "acquired_at"),
                                   (order, "orders", "order_id", "placed_at")):  # fmt: skip
        between = row[event] + (row["recorded_at"] - row[event]) / 2
        unseen = validated_tables(loaded, recorded_before=between)[table][key]
        seen = validated_tables(loaded, recorded_before=row["recorded_at"] + pd.Timedelta("1us"))
        assert row[key] not in set(unseen) and row[key] in set(seen[table][key])
