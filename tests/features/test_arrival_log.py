"""The arrival log: a world loaded as its first commits reads back as the files it came
from; batches commit whole or not at all, once per batch id, checked against the store as
it is; changing facts are new versions; "as of T" sees only what was recorded before T."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import CRS, Transformer

from features.arrival_log import ArrivalLog
from features.boundaries import read_field_boundaries
from features.errors import TableValidationError
from features.ingest import append_file, load_data_dir
from features.validation import validate_dir
from features.versions import ARRIVAL_COLUMNS, latest_versions
from scoring.cli import main
from tests.factories import as_sent, copy_store, world_contracts


@pytest.fixture(scope="module")
def loaded(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("log") / "store"
    load_data_dir(tiny_world, store)
    return store


@pytest.fixture
def store(loaded: Path, tmp_path: Path) -> Path:
    """A private copy of the loaded store (its log is appended to)."""
    return copy_store(loaded, tmp_path / "store")


def _new_orders(tiny_world: Path, ids: list[str]) -> pd.DataFrame:
    orders = pd.read_parquet(tiny_world / "orders.parquet").head(len(ids)).copy()
    orders = orders.drop(columns=["recorded_at"])  # the product sets it when it commits
    orders["order_id"] = ids
    return orders


def test_a_loaded_world_reads_back_exactly_as_its_files(tiny_world, loaded):
    files = validate_dir(tiny_world, check_rasters=False).tables
    logged = ArrivalLog(loaded).tables()

    assert set(logged) == set(files)
    for name, frame in files.items():
        # a directory is read by its dates: of contracts, the latest version, with no arrivals
        arrivals = ["recorded_at", *ARRIVAL_COLUMNS]
        back = logged[name].drop(columns=arrivals, errors="ignore")
        if name == "fields":
            assert all(
                a.equals_exact(b, 0)
                for a, b in zip(frame.pop("geometry"), back.pop("geometry"), strict=True)
            )
            assert back.attrs["crs"] == frame.attrs["crs"]
        pd.testing.assert_frame_equal(back, frame, check_like=False)
    # history loaded at once is known when the export says it arrived (the simulator's
    # arrival lags), else when it happened (fields have no event time: from the start)
    orders, sent = logged["orders"], pd.read_parquet(tiny_world / "orders.parquet")
    assert (orders["recorded_at"].to_numpy() == sent["recorded_at"].to_numpy()).all()
    assert (orders["recorded_at"] >= orders["placed_at"]).all()
    assert (logged["fields"]["recorded_at"] == pd.Timestamp(0, tz="UTC")).all()


def test_a_batch_commits_once_per_batch_id(tiny_world, store):
    log = ArrivalLog(store)
    batch = _new_orders(tiny_world, ["N1", "N2"])

    first = log.append("orders", batch, batch_id="b-1", source="feed")
    again = log.append("orders", batch, batch_id="b-1", source="feed")
    with pytest.raises(TableValidationError, match="committed before with other rows"):
        log.append("orders", _new_orders(tiny_world, ["N3", "N4"]), batch_id="b-1", source="feed")

    assert first.written and not again.written
    assert again.version == first.version and again.rows == 2
    assert log.version("orders") == first.version
    assert (log.read("orders")["order_id"].isin(["N1", "N2"])).sum() == 2


def test_a_bad_batch_names_every_problem_and_writes_nothing(tiny_world, store):
    log = ArrivalLog(store)
    before = log.version("orders")
    known = pd.read_parquet(tiny_world / "orders.parquet")["order_id"].iloc[0]
    batch = _new_orders(tiny_world, ["N1", known, "N3"])
    batch["amount_minor"] = batch["amount_minor"].astype(object)
    batch.loc[0, "amount_minor"] = -5
    batch.loc[2, "farmer_id"] = "F-NOBODY"

    with pytest.raises(TableValidationError) as refused:
        log.append("orders", batch, batch_id="bad", source="orders.csv")

    found = {(p.row, p.column) for p in refused.value.problems}
    assert {(1, "amount_minor"), (2, "order_id"), (3, "farmer_id")} <= found
    assert all(p.file == "batch bad (orders.csv)" for p in refused.value.problems)
    assert log.version("orders") == before


def test_a_contract_moves_forward_as_new_versions_seen_as_of_their_arrival(tiny_world, store):
    log = ArrivalLog(store)
    versions = pd.read_parquet(tiny_world / "contracts.parquet")
    contracts = latest_versions("contracts", ("contract_id",), versions)
    contracts = contracts.drop(columns=["recorded_at", *ARRIVAL_COLUMNS])
    active = contracts[contracts["status"] == "active"].head(1).copy()
    cid = active["contract_id"].iloc[0]
    closed = active.assign(
        status="closed", delivered_kg=100.0, closed_at=pd.Timestamp("2030-01-02", tz="UTC")
    )

    commit = log.append(
        "contracts",
        closed,
        batch_id="close",
        source="feed",
        recorded_at=pd.Timestamp("2030-01-03", tz="UTC"),
    )
    reopened = closed.assign(status="active")
    reworded = closed.assign(quantity_kg=closed["quantity_kg"] * 2)
    redelivered = closed.assign(delivered_kg=90.0)
    paid = closed.assign(paid_at=pd.Timestamp("2030-02-01", tz="UTC"), paid_minor=5_000)

    with pytest.raises(TableValidationError, match="is closed; it cannot become active"):
        log.append("contracts", reopened, batch_id="reopen", source="feed")
    with pytest.raises(TableValidationError, match=r"signed terms cannot change \(quantity_kg\)"):
        log.append("contracts", reworded, batch_id="reword", source="feed")
    with pytest.raises(TableValidationError, match=r"delivered_kg was recorded before"):
        log.append("contracts", redelivered, batch_id="redeliver", source="feed")
    paying = log.append("contracts", paid, batch_id="pay", source="feed",
                        recorded_at=pd.Timestamp("2030-02-03", tz="UTC"))  # fmt: skip
    now = log.tables()["contracts"].set_index("contract_id")
    then = log.tables(recorded_before=commit.recorded_at)["contracts"].set_index("contract_id")
    assert now.loc[cid, "status"] == "closed" and then.loc[cid, "status"] == "active"
    assert len(now) == len(then) == len(contracts)
    # the latest version keeps when each of its dated facts first arrived
    assert now.loc[cid, "closed_recorded_at"] == commit.recorded_at
    assert now.loc[cid, "paid_recorded_at"] == paying.recorded_at
    assert pd.isna(then.loc[cid, "closed_recorded_at"])


def test_rows_recorded_at_or_after_t_are_not_seen_as_of_t(tiny_world, store):
    log = ArrivalLog(store)
    t = pd.Timestamp("2031-05-01", tz="UTC")
    log.append(
        "orders", _new_orders(tiny_world, ["LATE"]), batch_id="late", source="feed", recorded_at=t
    )

    assert "LATE" not in set(log.tables(recorded_before=t)["orders"]["order_id"])
    assert "LATE" in set(log.tables(recorded_before=t + pd.Timedelta("1us"))["orders"]["order_id"])


def test_fields_in_another_crs_are_reprojected_into_the_logs(tiny_world, store, tmp_path):
    fields = read_field_boundaries(tiny_world / "fields.geojson")
    new = fields.properties.head(1).assign(field_id="FIELD-NEW")
    utm = CRS.from_epsg(32736)
    to_utm = Transformer.from_crs(fields.crs, utm, always_xy=True)
    moved = shapely.transform(
        fields.geometry[0],
        lambda xy: np.column_stack(to_utm.transform(xy[:, 0], xy[:, 1])),
    )

    ArrivalLog(store).append(
        "fields", new, batch_id="f", source="fields.gpkg", geometry=[moved], crs=utm
    )

    back = ArrivalLog(store).tables()["fields"].set_index("field_id")
    assert back.attrs["crs"] == fields.crs
    assert back.loc["FIELD-NEW", "geometry"].equals_exact(fields.geometry[0], 1e-7)


def test_concurrent_batches_all_commit_and_keys_stay_unique(tiny_world, store):
    log = ArrivalLog(store)
    errors: list[Exception] = []

    def send(n: int) -> None:
        try:  # batches 0-3 new keys; 4-7 reuse batch 0-3's keys: exactly one of each pair
            key = f"C{n % 4}"
            log.append("orders", _new_orders(tiny_world, [key]), batch_id=f"t{n}", source="t")
        except TableValidationError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    orders = log.read("orders")
    assert sorted(orders.loc[orders["order_id"].str.startswith("C"), "order_id"]) == [
        "C0",
        "C1",
        "C2",
        "C3",
    ]
    assert len(errors) == 4


def test_data_append_command_commits_refuses_and_replays(tiny_world, store, tmp_path):
    batch = tmp_path / "orders.csv"
    _new_orders(tiny_world, ["CLI-1", "CLI-2"]).to_csv(batch, index=False)
    bad = tmp_path / "bad.jsonl"
    _new_orders(tiny_world, ["CLI-3"]).assign(status="lost").to_json(
        bad, orient="records", lines=True, date_format="iso"
    )
    run = CliRunner()

    first = run.invoke(
        main, ["data", "append", str(batch), "--table", "orders", "--data", str(store)]
    )
    again = run.invoke(
        main, ["data", "append", str(batch), "--table", "orders", "--data", str(store)]
    )
    refused = run.invoke(
        main, ["data", "append", str(bad), "--table", "orders", "--data", str(store)]
    )
    unknown = run.invoke(
        main, ["data", "append", str(batch), "--table", "ordres", "--data", str(store)]
    )

    listed = run.invoke(main, ["data", "commits", "--table", "orders", "--data", str(store)])
    assert first.exit_code == 0 and "committed 2 rows to orders" in first.output
    newest = listed.output.splitlines()[1].split()
    assert listed.exit_code == 0 and newest[:2] == ["orders", "1"] and newest[4] == "2"
    assert newest[5].startswith("sha256:") and newest[-1] == "orders.csv"
    assert "load:orders" in listed.output.splitlines()[2]
    assert again.exit_code == 0 and "was committed before" in again.output
    assert refused.exit_code == 1 and "row 1, column status" in refused.output
    assert "nothing was written" in refused.output
    assert unknown.exit_code == 2 and "no table 'ordres'" in unknown.output
    assert "Traceback" not in refused.output + unknown.output


def test_a_scenes_batch_brings_its_rasters_or_is_refused(tiny_world, store, tmp_path):
    import shutil

    scenes = pd.read_parquet(tiny_world / "scenes.parquet").head(1).drop(columns=["recorded_at"])
    scenes["scene_id"] = "SCENE-NEW"
    scenes["path"] = "incoming/new.tif"
    (tmp_path / "incoming").mkdir()
    shutil.copy(
        tiny_world / pd.read_parquet(tiny_world / "scenes.parquet")["path"].iloc[0],
        tmp_path / "incoming" / "new.tif",
    )
    good = tmp_path / "scenes.csv"
    scenes.to_csv(good, index=False)
    missing = tmp_path / "missing.csv"
    scenes.assign(scene_id="SCENE-GONE", path="incoming/gone.tif").to_csv(missing, index=False)

    append_file(store, "scenes", good)
    with pytest.raises(TableValidationError, match=r"gone\.tif does not exist"):
        append_file(store, "scenes", missing)

    assert (store / "incoming" / "new.tif").exists()
    ids = set(ArrivalLog(store).read("scenes")["scene_id"])
    assert "SCENE-NEW" in ids and "SCENE-GONE" not in ids


_STEP = st.tuples(
    st.sampled_from(["orders", "orders", "contract"]),
    st.integers(0, 30),  # the day the batch is recorded
    st.one_of(st.none(), st.integers(0, 30)),  # the day read as of (None: every row)
)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_STEP, min_size=1, max_size=4))
def test_tables_brought_up_to_later_versions_equal_a_whole_read(tiny_world, loaded, steps):
    with tempfile.TemporaryDirectory() as tmp:
        log = ArrivalLog(copy_store(loaded, Path(tmp) / "store"))
        t0 = pd.Timestamp("2031-01-01", tz="UTC")
        read = log.read_at(log.versions())
        active = as_sent(world_contracts(tiny_world).query("status == 'active'"))
        for i, (kind, recorded_day, read_day) in enumerate(steps):
            recorded_at = t0 + pd.Timedelta(days=recorded_day)
            if kind == "orders":
                rows = _new_orders(tiny_world, [f"N{i}-{k}" for k in range(1 + i % 3)])
            else:  # the next version of a contract: its closing
                rows = active.iloc[[i]].assign(
                    status="closed", delivered_kg=100.0, closed_at=recorded_at
                )
            table = "orders" if kind == "orders" else "contracts"
            log.append(table, rows, batch_id=f"b{i}", source="feed", recorded_at=recorded_at)
            instant = None if read_day is None else t0 + pd.Timedelta(days=read_day)
            versions = log.versions()

            moved = log.moved_on(read, versions, recorded_before=instant)
            whole = log.read_at(versions, recorded_before=instant)

            assert moved.tables.keys() == whole.tables.keys()
            for name, frame in whole.tables.items():
                if name != "fields":  # geometry objects compare by identity
                    pd.testing.assert_frame_equal(moved.tables[name], frame, check_exact=True)
            assert moved.whole == whole.whole and moved.files == whole.files
            read = moved


def test_a_table_that_did_not_move_is_kept_and_one_appended_to_reads_only_its_new_files(
    tiny_world, store
):
    log = ArrivalLog(store)
    before = log.read_at(log.versions())
    log.append("orders", _new_orders(tiny_world, ["NEW-1", "NEW-2"]), batch_id="n", source="feed")

    after = log.moved_on(before, log.versions(), recorded_before=None)

    assert all(after.tables[n] is before.tables[n] for n in before.tables if n != "orders")
    assert len(after.files["orders"]) == len(before.files["orders"]) + 1
    assert set(after.tables["orders"]["order_id"]) - set(before.tables["orders"]["order_id"]) == {
        "NEW-1",
        "NEW-2",
    }
