"""`validate_dir` and `load_data_dir` on broken copies of a simulated world."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import rasterio

from features.errors import TableValidationError
from features.feature_store import validated_tables
from features.ingest import load_data_dir
from features.validation import validate_dir
from tests.factories import copy_world, make_scene


def _edit_table(world: Path, name: str, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    path = world / f"{name}.parquet"
    edited = edit(pd.read_parquet(path))
    path.unlink()  # break the hard link to the pristine world before writing
    edited.to_parquet(path)


def _set(frame: pd.DataFrame, row: int, column: str, value: object) -> pd.DataFrame:
    frame = frame.copy()
    if isinstance(value, str) and not pd.api.types.is_string_dtype(frame[column]):
        frame[column] = frame[column].astype(str)  # a text column, as a bad export has
    frame.loc[row - 1, column] = value
    return frame


def _first_scene(world: Path) -> Path:
    return world / pd.read_parquet(world / "scenes.parquet").path.iloc[0]


def drop_column(world: Path) -> None:
    _edit_table(world, "orders", lambda f: f.drop(columns="amount_minor"))


def wrong_type(world: Path) -> None:
    _edit_table(world, "loans", lambda f: _set(f, 5, "amount_minor", "lots"))


def duplicate_key(world: Path) -> None:
    _edit_table(world, "farmers", lambda f: _set(f, 4, "farmer_id", f.farmer_id.iloc[2]))


def dangling_foreign_key(world: Path) -> None:
    _edit_table(world, "loans", lambda f: _set(f, 2, "contract_id", "K-NOPE"))


def negative_amount(world: Path) -> None:
    _edit_table(world, "orders", lambda f: _set(f, 7, "amount_minor", -50))


def unclosed_polygon(world: Path) -> None:
    path = world / "fields.geojson"
    collection = json.loads(path.read_text())
    ring = collection["features"][2]["geometry"]["coordinates"][0]
    ring.pop()  # drop the closing position
    path.unlink()
    path.write_text(json.dumps(collection))


def geotiff_without_crs(world: Path) -> None:
    path = _first_scene(world)
    with rasterio.open(path) as ds:
        bands, transform = ds.read(), ds.transform
    path.unlink()  # break the hard link to the pristine world
    make_scene(path, bands, crs=None, transform=transform)


def truncated_geotiff(world: Path) -> None:
    path = _first_scene(world)
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data[: len(data) // 2])


CASES = [
    (drop_column, "orders.parquet", None, "amount_minor", "missing column"),
    (wrong_type, "loans.parquet", 5, "amount_minor", "expected a whole number"),
    (duplicate_key, "farmers.parquet", 4, "farmer_id", "duplicate key"),
    (dangling_foreign_key, "loans.parquet", 2, "contract_id", "refers to no contract_id"),
    (negative_amount, "orders.parquet", 7, "amount_minor", "must be >= 0"),
    (unclosed_polygon, "fields.geojson", 3, "geometry", "not closed"),
    # a raster's problem names the scenes row that names the raster
    (geotiff_without_crs, "scenes.parquet", 1, "path", "has no CRS"),
    (truncated_geotiff, "scenes.parquet", 1, "path", "truncated or corrupt"),
]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """An existing store that a failed load must leave exactly as it was."""
    path = tmp_path / "store"
    path.mkdir()
    (path / "farmers.parquet").write_text("the previous, good store")
    return path


@pytest.mark.parametrize(
    ("breaker", "file", "row", "column", "fragment"), CASES, ids=[c[0].__name__ for c in CASES]
)
def test_broken_copy_is_reported_by_name_and_nothing_is_written(
    tiny_world, tmp_path, store, breaker, file, row, column, fragment
):
    world = copy_world(tiny_world, tmp_path / "broken")
    breaker(world)

    report = validate_dir(world)

    matches = [
        p
        for p in report.problems
        if p.file.endswith(file) and p.row == row and p.column == column and fragment in p.message
    ]
    assert matches, f"expected {file} row {row} column {column} '{fragment}'; got {report.problems}"
    before = sorted(p.name for p in store.parent.iterdir())
    with pytest.raises(TableValidationError):
        load_data_dir(world, store)
    assert sorted(p.name for p in store.parent.iterdir()) == before
    assert (store / "farmers.parquet").read_text() == "the previous, good store"


def test_simulated_world_is_valid(tiny_world):
    report = validate_dir(tiny_world)

    assert report.problems == []
    assert set(report.tables) >= {"farmers", "fields", "orders", "contracts", "scenes", "loans"}


def test_valid_world_loads_into_a_store_replacing_the_old_one(tiny_world, store):
    load_data_dir(tiny_world, store)

    assert not (store / "farmers.parquet").exists()  # the old store is gone
    loans = validated_tables(store)["loans"]
    assert loans.applied_at.dt.tz is not None and len(loans) == len(
        pd.read_parquet(tiny_world / "loans.parquet")
    )
    assert not list(store.parent.glob(".store.*"))


def test_every_problem_is_collected_not_only_the_first(tiny_world, tmp_path):
    world = copy_world(tiny_world, tmp_path / "broken")
    negative_amount(world)
    dangling_foreign_key(world)
    _edit_table(world, "orders", lambda f: _set(f, 9, "status", "lost"))

    report = validate_dir(world, check_rasters=False)

    messages = " | ".join(str(p) for p in report.problems)
    assert "must be >= 0" in messages
    assert "refers to no contract_id" in messages
    assert "expected one of completed, refunded, cancelled" in messages


def test_csv_tables_are_accepted_and_rows_are_numbered(tiny_world, tmp_path):
    world = copy_world(tiny_world, tmp_path / "csv")
    repayments = pd.read_parquet(world / "repayments.parquet")
    (world / "repayments.parquet").unlink()
    repayments = _set(repayments, 4, "paid_at", "yesterday")
    repayments.to_csv(world / "repayments.csv", index=False)

    report = validate_dir(world, check_rasters=False)

    assert [(p.file, p.row, p.column) for p in report.problems] == [
        ("repayments.csv", 4, "paid_at")
    ]


def test_missing_table_and_missing_directory_are_reported(tiny_world, tmp_path):
    world = copy_world(tiny_world, tmp_path / "partial")
    (world / "buyers.parquet").unlink()

    problems = validate_dir(world, check_rasters=False).problems
    nowhere = validate_dir(tmp_path / "nowhere").problems

    assert any("table buyers is missing" in p.message for p in problems)
    assert nowhere and "not a directory" in nowhere[0].message
    assert [p.file for p in problems] == ["buyers.parquet or .csv"]
