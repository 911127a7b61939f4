"""A worker follows its store's arrival log: after a commit it decides from the new data,
and what it decides from equals what `features build --as-of` gives over the same data."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.arrival_log import ArrivalLog
from features.assembly import build_reference
from features.feature_store import SNAPSHOT_FILE, validated_tables, write_feature_store
from features.ingest import append_file, load_data_dir
from features.registry import ROW_COLUMNS
from features.satellite.seasons import field_season_metrics
from features.tables import TABLES
from scoring.decide.data import FeatureSource
from scoring.decide.follower import CommitWatch, LogFollower, caught_up
from scoring.decide.prepared import PREPARED_FILE, read_prepared, write_prepared
from scoring.decide.shared_snapshot import publish
from scoring.decide.state import load_source
from tests.factories import applications, bearer, copy_store


@pytest.fixture(scope="module")
def built_store(served, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("follow") / "store"
    load_data_dir(served.world, store)
    write_feature_store(store)
    return store


@pytest.fixture
def live(state, built_store: Path, tmp_path: Path):
    store = copy_store(built_store, tmp_path / "store")
    state.settings = state.settings.model_copy(update={"data_dir": store})
    state.source, state.log_versions = load_source(state.settings)
    return state, store


def test_a_commit_reaches_the_data_decisions_read_and_equals_a_build_as_of_then(live, tmp_path):
    state, store = live
    follower = LogFollower(state, poll_seconds=0.1)
    before = state.source
    orders = validated_tables(store)["orders"].drop(columns=["recorded_at"])
    farmer = orders["farmer_id"].value_counts().index[-1]  # one with few orders
    now = pd.Timestamp.now(tz="UTC").floor("s")
    new = (
        orders[orders["farmer_id"] == farmer]
        .head(3)
        .assign(order_id=["LIVE-1", "LIVE-2", "LIVE-3"], placed_at=now - pd.Timedelta(days=1))
    )

    assert follower.catch_up() is False  # nothing new
    ArrivalLog(store).append("orders", new, batch_id="live", source="test")
    assert follower.catch_up() is True

    after = state.source
    assert after is not before and after.data_as_of > now
    assert after.snapshot is not None and after.snapshot.as_of == after.data_as_of
    assert before.snapshot is not None
    # the commit touched one farmer: only their row is built again, as of the data now
    assert after.snapshot.instant_of(farmer) == after.data_as_of
    moved = [f for f in after.snapshot.rows
             if after.snapshot.instant_of(f) != before.snapshot.instant_of(f)]  # fmt: skip
    assert moved == [farmer]
    row = after.snapshot.values[after.snapshot.rows[farmer].row]
    assert row[list(ROW_COLUMNS).index("orders_count_90d")] >= 3
    # only the orders moved: every other table is kept as it was read, and what was built
    # from them; of the orders, only the commit's file was read
    assert before.log_tables is not None and after.log_tables is not None
    kept = [n for n in after.log_tables.tables if n != "orders"]
    assert all(after.log_tables.tables[n] is before.log_tables.tables[n] for n in kept)
    assert after.inputs.fields is before.inputs.fields
    assert after.farmer(farmer) is before.farmer(farmer)
    assert len(after.log_tables.files["orders"]) == len(before.log_tables.files["orders"]) + 1
    # online equals offline: each row is `features build --as-of` its instant
    _each_row_is_a_build_as_of_its_instant(after, store, tmp_path / "offline")


def test_a_failed_load_keeps_the_data_as_they_were(live, monkeypatch):
    state, store = live
    follower = LogFollower(state, poll_seconds=0.1)
    before = state.source
    orders = validated_tables(store)["orders"].drop(columns=["recorded_at"]).head(1)
    ArrivalLog(store).append("orders", orders.assign(order_id="LIVE-X"), batch_id="x", source="t")

    def broken(*_args, **_kwargs):
        raise OSError("disk went away")

    monkeypatch.setattr(FeatureSource, "load", broken)
    with pytest.raises(OSError):
        follower.catch_up()
    assert state.source is before
    monkeypatch.undo()
    assert follower.catch_up() is True  # tried again at the next poll


def test_a_worker_started_on_a_store_appended_to_since_its_build_serves_it_as_it_is(live):
    _, store = live
    built = FeatureSource.load(store, live=True)
    orders = validated_tables(store)["orders"].drop(columns=["recorded_at"]).head(1)
    ArrivalLog(store).append("orders", orders.assign(order_id="LATE-START"), batch_id="s",
                             source="test")  # fmt: skip

    started = FeatureSource.load(store, live=True)

    assert built.snapshot is not None and built.snapshot.as_of == built.data_as_of  # as built
    assert started.snapshot is not None and started.snapshot.as_of == started.data_as_of
    assert started.data_as_of > built.data_as_of


def _each_row_is_a_build_as_of_its_instant(source: FeatureSource, store: Path, out: Path) -> None:
    """Every snapshot row equals `features build --as-of` its own instant, bit for bit."""
    snapshot = source.snapshot
    assert snapshot is not None
    compared = 0
    for t in np.unique(snapshot.instants):
        at = pd.Timestamp(int(t), tz="UTC")
        frame = pd.read_parquet(
            write_feature_store(store, out=out / str(t), as_of=at).out / SNAPSHOT_FILE
        )
        expected = frame[list(ROW_COLUMNS)].to_numpy(dtype=float, na_value=np.nan)
        for farmer, contract, want in zip(frame["farmer_id"], frame["contract_id"], expected,
                                          strict=True):  # fmt: skip
            found = snapshot.row_at(str(farmer), int(t))
            if found is not None:
                assert found.contract_id == str(contract), farmer
                np.testing.assert_array_equal(snapshot.values[found.row], want, err_msg=farmer)
                compared += 1
    assert compared == len(snapshot.rows)


def _offline_snapshot(store: Path, out: Path, as_of: pd.Timestamp) -> np.ndarray:
    """`features build --as-of` of the store: every farmer's row, in snapshot order."""
    built = write_feature_store(store, out=out, as_of=as_of)
    frame = pd.read_parquet(built.out / SNAPSHOT_FILE)
    return frame[list(ROW_COLUMNS)].to_numpy(dtype=float, na_value=np.nan)


def test_under_the_wall_clock_decisions_are_as_of_the_instant_read_and_equal_a_build_then(
    live, tmp_path
):
    state, store = live
    state.settings = state.settings.model_copy(update={"clock": "now"})
    follower = LogFollower(state, poll_seconds=0.1, refresh_seconds=3600)
    orders = validated_tables(store)["orders"].drop(columns=["recorded_at"])
    farmer = orders["farmer_id"].value_counts().index[-1]
    placed = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(hours=2)
    new = (
        orders[orders["farmer_id"] == farmer]
        .head(2)
        .assign(order_id=["NOW-1", "NOW-2"], placed_at=placed)
    )
    committed = ArrivalLog(store).append("orders", new, batch_id="now", source="test")

    assert follower.catch_up() is True
    as_of = state.as_of()
    assert as_of > committed.recorded_at
    assert follower.catch_up() is False  # the snapshot is younger than refresh_seconds
    # appended after the instant: not in these features, and the next poll reads it
    late = ArrivalLog(store).append("orders", new.assign(order_id=["NOW-3", "NOW-4"]),
                                    batch_id="late", source="test")  # fmt: skip
    assert late.recorded_at > as_of
    expected = _offline_snapshot(store, tmp_path / "offline", as_of)
    np.testing.assert_array_equal(state.source.snapshot.values, expected)
    assert follower.catch_up() is True and state.as_of() > late.recorded_at


def test_under_the_wall_clock_the_features_move_with_the_time_when_nothing_arrives(live, tmp_path):
    state, store = live
    state.settings = state.settings.model_copy(update={"clock": "now"})
    follower = LogFollower(state, poll_seconds=0.1, refresh_seconds=0)
    assert follower.catch_up() is True  # the built snapshot is of the data's time
    first = state.as_of()
    data = state.source.inputs
    assert follower.catch_up() is True  # no commit: the same data, as of a later instant
    second = state.as_of()

    assert second > first and state.source.inputs is data
    days_since = state.source.snapshot.values[:, list(ROW_COLUMNS).index("orders_days_since_last")]
    assert np.nanmin(days_since) > (first - state.source.data_as_of).days
    expected = _offline_snapshot(store, tmp_path / "offline", second)
    np.testing.assert_array_equal(state.source.snapshot.values, expected)


def test_data_read_as_of_an_instant_leave_out_what_was_recorded_after_it(live, tmp_path):
    _, store = live
    log = ArrivalLog(store)
    orders = validated_tables(store)["orders"].drop(columns=["recorded_at"])
    farmer = orders["farmer_id"].value_counts().index[-1]
    placed = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(hours=3)
    mine = orders[orders["farmer_id"] == farmer].head(1).assign(placed_at=placed)
    log.append("orders", mine.assign(order_id="BEFORE"), batch_id="before", source="test")
    with log.settled() as instant:
        pass
    log.append("orders", mine.assign(order_id="AFTER"), batch_id="after", source="test")

    read = FeatureSource.load(store, live=True, as_of=instant)

    ids = set(read.inputs.orders["order_id"])
    assert "BEFORE" in ids and "AFTER" not in ids
    assert read.snapshot is not None and read.snapshot.as_of == instant
    expected = _offline_snapshot(store, tmp_path / "offline", instant)
    np.testing.assert_array_equal(read.snapshot.values, expected)


def test_an_answer_states_each_tables_latest_arrival_and_readiness_and_metrics_its_age(
    live, client
):
    state, store = live
    orders = validated_tables(store)["orders"].drop(columns=["recorded_at"])
    new = orders.head(2).assign(order_id=["SEEN-1", "SEEN-2"],
                                placed_at=pd.Timestamp.now(tz="UTC").floor("s"))  # fmt: skip
    commit = ArrivalLog(store).append("orders", new, batch_id="seen", source="test")
    LogFollower(state, poll_seconds=0.1).catch_up()
    body = applications(state.source, store, 1)[0]

    answer = client.post("/v1/score", json=body, headers=bearer(state)).json()
    ready = client.get("/readyz").json()
    metrics = client.get("/metrics").text

    log = ArrivalLog(store)
    latest = {spec.name: log.read(spec.name, columns=["recorded_at"])["recorded_at"].max()
              for spec in TABLES}  # fmt: skip
    assert latest["orders"] == commit.recorded_at
    assert answer["data_seen"] == {t: at.isoformat() for t, at in latest.items()}
    now = pd.Timestamp.now(tz="UTC")
    for table, at in latest.items():
        fresh = ready["tables"][table]
        assert fresh["last_recorded_at"] == at.isoformat()
        assert fresh["age_seconds"] == pytest.approx((now - at).total_seconds(), abs=30), table
    gauge = re.search(r'agricredit_table_last_recorded_seconds\{table="orders"\} (\S+)', metrics)
    assert gauge and float(gauge.group(1)) == commit.recorded_at.timestamp()


def test_after_a_new_scene_only_its_fields_season_metrics_are_computed_again_and_equal_a_build(
    live, tmp_path, monkeypatch
):
    state, store = live
    state.settings = state.settings.model_copy(update={"clock": "now"})  # rows move on
    state.source, state.log_versions = load_source(state.settings)
    follower = LogFollower(state, poll_seconds=0.1, refresh_seconds=3600)
    before = state.source
    scenes = validated_tables(store)["scenes"]
    last = scenes.iloc[[-1]].drop(columns=["recorded_at"])
    batch = tmp_path / "scene"
    batch.mkdir()
    shutil.copy(store / last["path"].iloc[0], batch / "scene.tif")
    acquired = before.data_as_of - pd.Timedelta(hours=1)
    last.assign(scene_id="FOLLOW-SCENE", path="scene.tif", acquired_at=acquired).to_parquet(
        batch / "scenes.parquet", index=False
    )
    append_file(store, "scenes", batch / "scenes.parquet")
    assert follower.catch_up() is True

    after = state.source
    covered = after.inputs.series.loc[after.inputs.series["scene_id"] == "FOLLOW-SCENE", "field_id"]
    assert covered.nunique() > 0  # the scene covers some fields, and only theirs changed
    whole = build_reference(after.inputs)  # every field's metrics computed afresh
    assert whole.field_seasons is not None and after.reference.field_seasons is not None
    pd.testing.assert_frame_equal(after.reference.field_seasons, whole.field_seasons,
                                  check_exact=True)  # fmt: skip
    pd.testing.assert_frame_equal(after.reference.county_peaks, whole.county_peaks,
                                  check_exact=True)  # fmt: skip
    # only the rows of the farmers whose fields the scene covers are built again; every
    # row is `features build --as-of` its instant
    fields = after.inputs.fields
    owners = set(fields.loc[fields["field_id"].isin(covered), "farmer_id"])
    assert after.snapshot is not None and before.snapshot is not None
    moved = {f for f in after.snapshot.rows
             if after.snapshot.instant_of(f) != before.snapshot.instant_of(f)}  # fmt: skip
    assert moved == owners and len(owners) < len(after.snapshot.rows)
    _each_row_is_a_build_as_of_its_instant(after, store, tmp_path / "offline")
    # a worker starting now reads the build's field season metrics and computes again only
    # those of the fields the new scene covers: the same reference
    computed: list[set[str]] = []

    def counted(series, fields, **kwargs):
        computed.append(set(fields["field_id"]))
        return field_season_metrics(series, fields, **kwargs)

    monkeypatch.setattr("scoring.decide.data.field_season_metrics", counted)
    monkeypatch.setattr("features.assembly.field_season_metrics", counted)
    started = FeatureSource.load(store, live=True)
    assert computed == [set(covered)]
    assert started.reference.field_seasons is not None
    pd.testing.assert_frame_equal(started.reference.field_seasons, whole.field_seasons,
                                  check_exact=True)  # fmt: skip
    pd.testing.assert_frame_equal(started.reference.county_peaks, whole.county_peaks,
                                  check_exact=True)  # fmt: skip


def test_beside_a_host_follower_a_worker_takes_its_rows_and_has_the_data_it_built_them_from(
    live, tmp_path, monkeypatch
):
    state, store = live
    state.settings = state.settings.model_copy(update={"clock": "now"})
    live_dir = tmp_path / "live"
    # the host's follower: it loads the store and publishes every farmer's rows
    host, host_seen = load_source(state.settings)
    first, first_seen = host, host_seen
    publish(live_dir, host, host_seen)
    state.settings = state.settings.model_copy(update={"live_dir": live_dir})
    state.source, state.log_versions = load_source(state.settings)  # a worker starting beside
    worker = LogFollower(state, poll_seconds=0.1, refresh_seconds=3600)
    _same_snapshot(state.source, host)

    orders = validated_tables(store)["orders"].drop(columns=["recorded_at"])
    farmer = orders["farmer_id"].value_counts().index[-1]
    placed = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(hours=1)
    new = orders[orders["farmer_id"] == farmer].head(2)
    ArrivalLog(store).append("orders", new.assign(order_id=["HOST-1", "HOST-2"], placed_at=placed),
                             batch_id="host", source="test")  # fmt: skip
    got = caught_up(state.settings, ArrivalLog(store), host, host_seen, 3600)
    assert got is not None
    host, host_seen = got
    publish(live_dir, host, host_seen)

    def no_rows_built_here(*_args, **_kwargs):
        raise AssertionError("a worker beside the host's follower built rows")

    monkeypatch.setattr("scoring.decide.data._built_snapshot", no_rows_built_here)
    assert worker.catch_up() is True
    monkeypatch.undo()
    after = state.source
    assert worker.seen == host_seen
    _same_snapshot(after, host)
    assert after.snapshot.instant_of(farmer) == after.log_tables.recorded_before
    # the worker's tables are the host's, rows in the same places: a decision that builds
    # its own features (another contract) reads what the rows were built from
    pd.testing.assert_frame_equal(after.inputs.orders, host.inputs.orders, check_exact=True)
    whole = FeatureSource.load(store, live=True, as_of=after.log_tables.recorded_before,
                               versions=host_seen)  # fmt: skip
    assert after._orders.keys() == whole._orders.keys()
    for f, at in whole._orders.items():
        np.testing.assert_array_equal(np.sort(after._orders[f]), np.sort(at), err_msg=f)
    assert worker.catch_up() is False  # nothing published since

    # a snapshot of an older state of the log than the worker's is not taken
    publish(live_dir, first, first_seen)
    assert worker.catch_up() is False and state.source is after


def test_a_worker_started_again_from_the_prepared_data_equals_one_that_read_the_store(
    live, tmp_path, monkeypatch
):
    state, store = live
    settings = state.settings.model_copy(update={"clock": "now"})
    live_dir = tmp_path / "live"
    host, host_seen = load_source(settings)
    publish(live_dir, host, host_seen)
    write_prepared(live_dir, store, host, host_seen)
    (mapped,) = live_dir.glob("prepared-*.buffers")  # the arrays' data, mapped by a worker
    assert mapped.stat().st_size > 2 * (live_dir / PREPARED_FILE).stat().st_size
    # commits after the data were prepared: orders, and a repayment of an open loan
    orders = validated_tables(store)["orders"].drop(columns=["recorded_at"])
    farmer = orders["farmer_id"].value_counts().index[-1]
    placed = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(hours=1)
    new = orders[orders["farmer_id"] == farmer].head(2)
    log = ArrivalLog(store)
    log.append("orders", new.assign(order_id=["PREP-1", "PREP-2"], placed_at=placed),
               batch_id="prep-orders", source="test")  # fmt: skip
    loans = host.inputs.loans
    loan = loans.loc[~loans["loan_id"].isin(host.settlements.dropna().index)].iloc[0]
    paid = {"repayment_id": ["PREP-R1"], "loan_id": [loan["loan_id"]], "paid_at": [placed],
            "amount_minor": [int(loan["amount_minor"])]}  # fmt: skip
    log.append("repayments", pd.DataFrame(paid), batch_id="prep-pay", source="test")
    got = caught_up(settings, log, host, host_seen, 3600)
    assert got is not None
    host, host_seen = got
    publish(live_dir, host, host_seen)

    def whole_read(*_args, **_kwargs):
        raise AssertionError("a worker with prepared data read the whole store")

    beside = settings.model_copy(update={"live_dir": live_dir})
    with monkeypatch.context() as m:
        m.setattr(ArrivalLog, "read_at", whole_read)
        worker, seen = load_source(beside)
    assert seen == host_seen
    read = FeatureSource.load(store, live=True, as_of=host.log_tables.recorded_before,
                              versions=host_seen)  # fmt: skip
    for name, frame in read.log_tables.tables.items():
        mine = worker.log_tables.tables[name].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, frame.reset_index(drop=True), check_exact=True,
                                      obj=name)  # fmt: skip
    for name in ("farmers", "fields", "orders", "contracts", "loans", "repayments", "series"):
        pd.testing.assert_frame_equal(getattr(worker.inputs, name).reset_index(drop=True),
                                      getattr(read.inputs, name).reset_index(drop=True),
                                      check_exact=True, obj=name)  # fmt: skip
    pd.testing.assert_series_equal(worker.settlements.sort_index(), read.settlements.sort_index())
    assert worker._loans == read._loans and worker._field_rows == read._field_rows
    assert worker.data_seen == read.data_seen and worker.data_as_of == read.data_as_of
    assert worker._orders.keys() == read._orders.keys()
    for f, at in read._orders.items():  # each farmer's rows, wherever they sit
        np.testing.assert_array_equal(
            worker.inputs.orders.iloc[np.sort(worker._orders[f])]["order_id"].to_numpy(),
            read.inputs.orders.iloc[np.sort(at)]["order_id"].to_numpy(), err_msg=f)  # fmt: skip
    _same_snapshot(worker, host)

    # data prepared from another store, or a file that is not such data, are not taken
    assert read_prepared(live_dir, tmp_path) is None
    (live_dir / PREPARED_FILE).write_bytes(b"not a pickle")
    assert read_prepared(live_dir, store) is None


def _same_snapshot(source: FeatureSource, host: FeatureSource) -> None:
    assert source.snapshot is not None and host.snapshot is not None
    assert source.snapshot.as_of == host.snapshot.as_of
    assert source.snapshot.rows.keys() == host.snapshot.rows.keys()
    for farmer, row in host.snapshot.rows.items():
        mine = source.snapshot.rows[farmer]
        assert mine.contract_id == row.contract_id
        assert source.snapshot.instants[mine.row] == host.snapshot.instants[row.row]
        np.testing.assert_array_equal(
            source.snapshot.values[mine.row], host.snapshot.values[row.row], err_msg=farmer
        )


def test_the_commit_watch_looks_again_after_a_commit_a_failed_look_and_its_bound(live):
    _, store = live
    log_ = ArrivalLog(store)
    watch = CommitWatch(log_, every=3600.0)
    assert watch.moved()  # never looked
    watch.look_done()
    assert not watch.moved()  # nothing committed since
    orders = validated_tables(store)["orders"].drop(columns=["recorded_at"]).head(1)
    log_.append("orders", orders.assign(order_id="WATCHED"), batch_id="watched", source="t")
    assert watch.moved()
    assert watch.moved()  # the look failed (not done): still to be made
    watch.look_done()
    assert not watch.moved()
    watch.every = 0.0  # whatever the stamps say, looked at again once `every` passed
    assert watch.moved()

    without = CommitWatch(None, every=3600.0)  # a directory of files under the wall clock
    assert without.moved()
    without.look_done()
    assert not without.moved()
