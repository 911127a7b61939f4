"""Ingest a data directory: validate it whole, then install it as a new store whose
arrival log holds it as its first commits, one batch per table, atomically."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from features.arrival_log import ArrivalLog, Commit, batch_id_of, copy_scene_files
from features.boundaries import read_field_boundaries
from features.errors import TableValidationError
from features.satellite.scenes import check_scene_files
from features.store import atomic_directory, copy_file
from features.tables import FIELDS, TABLES, get_table
from features.validation import (
    ValidationReport,
    find_table_file,
    read_raw_table,
    row_problems,
    type_table,
    validate_dir,
)


def load_data_dir(source: Path | str, target: Path | str) -> ValidationReport:
    """Validate `source` and, only if it is clean, install it as the store at `target`.

    Each table becomes the first commit of its arrival log (batch `load:<table>`). History
    loaded at once is taken as known when it happened: a row's `recorded_at` column if the
    export has one, else its event time (docs/data.md). Scene files are copied. Either the
    whole store is replaced or nothing is written.

    Raises:
        TableValidationError: with every problem found; `target` is left as it was.
    """
    source, target = Path(source), Path(target)
    report = validate_dir(source)
    if not report.ok:
        raise TableValidationError(report.problems)
    with atomic_directory(target) as staging:
        log = ArrivalLog(staging)
        for spec in TABLES:  # declared in foreign-key order
            found = find_table_file(source, spec)
            if not found:
                continue
            if spec.name == FIELDS.name:
                boundaries = read_field_boundaries(found[0])
                log.append(spec.name, boundaries.properties, batch_id=f"load:{spec.name}",
                           source=found[0].name, geometry=boundaries.geometry,
                           crs=boundaries.crs, bulk=True)  # fmt: skip
                continue
            log.append(spec.name, read_raw_table(found[0]), batch_id=f"load:{spec.name}",
                       source=found[0].name, bulk=True)  # fmt: skip
        for rel in report.tables["scenes"].path:
            copy_file(source / rel, staging / rel)
    return report


def read_batch_file(path: Path) -> pd.DataFrame:
    """A batch file as read, untyped: CSV, Parquet or JSON lines."""
    if path.suffix in (".jsonl", ".ndjson"):
        return pd.read_json(path, lines=True, dtype=False, convert_dates=False)
    if path.suffix in (".parquet", ".csv"):
        return read_raw_table(path)
    raise ValueError(
        f"{path.name}: a batch is a .csv, .parquet or .jsonl file (fields: a GeoJSON, "
        "GeoPackage, shapefile or FlatGeobuf file)"
    )


def append_file(
    data_dir: Path | str,
    table: str,
    path: Path | str,
    *,
    batch_id: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Commit:
    """Append the rows of one file to `table` of the store's arrival log as one batch
    (default batch id: the file's digest, so the same file is committed once). A scenes
    batch names its GeoTIFFs relative to the file; they are copied into the store.

    Raises:
        TableValidationError: every problem by batch, row and column; nothing is written.
    """
    data_dir, path = Path(data_dir), Path(path)
    say = progress or (lambda _: None)
    batch = batch_id or batch_id_of(path)
    log = ArrivalLog(data_dir)
    started = time.perf_counter()
    geometry, crs = None, None
    if table == FIELDS.name:
        boundaries = read_field_boundaries(path)
        if boundaries.problems:
            raise TableValidationError(boundaries.problems)
        raw, geometry, crs = boundaries.properties, boundaries.geometry, boundaries.crs
    else:
        raw = read_batch_file(path)
    say(f"read {len(raw):,} rows of {path.name} in {time.perf_counter() - started:.1f} s; "
        "validating against the store")  # fmt: skip
    if table == "scenes":
        commit = append_scenes(log, raw, path.parent, batch_id=batch, source=path.name)
    else:
        commit = log.append(table, raw, batch_id=batch, source=path.name, geometry=geometry,
                            crs=crs)  # fmt: skip
    say(f"done in {time.perf_counter() - started:.1f} s")
    return commit


def append_scenes(
    log: ArrivalLog, raw: pd.DataFrame, files_dir: Path, *, batch_id: str, source: str
) -> Commit:
    """Append a batch of scene rows whose rasters lie under `files_dir` (each row's path
    relative to it): every raster opened and read whole before anything is written, then
    copied into the store just before the commit.

    Raises:
        TableValidationError: every problem by batch, row and column; nothing is written.
    """
    spec = get_table("scenes")
    scenes, problems = type_table(raw, spec, source)
    if not problems:  # a path that climbs out of the directory is never opened
        problems = row_problems(spec, scenes, source)
    if not problems and log.committed("scenes", batch_id) is None:  # a retry needs no files
        problems = check_scene_files(files_dir, scenes, source)
    if problems:
        raise TableValidationError(problems)
    copy = copy_scene_files(files_dir, log.data_dir)
    return log.append("scenes", raw, batch_id=batch_id, source=source, before_commit=copy)
