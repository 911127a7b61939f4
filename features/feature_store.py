"""The feature store's writer: a data directory's tables -> index series, training matrix
and farmer snapshot as Parquet, a manifest and a report plot, written whole or not at all,
with progress. The features themselves are assembled in features/assembly.py.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from features.arrival_log import ArrivalLog
from features.asof import before, instant_ns
from features.assembly import (
    FLAG_NAMES,
    Inputs,
    build_features,
    build_reference,
    field_table,
    snapshot_applications,
)
from features.distributed import features_on, index_series_on
from features.errors import TableValidationError
from features.registry import FEATURE_NAMES
from features.report import plot_feature_report
from features.runners import IN_PROCESS, LocalRunner, Runner
from features.satellite.seasons import field_season_metrics
from features.satellite.series import build_index_series
from features.satellite.zonal import FieldSet
from features.store import atomic_directory, file_sha256
from features.training_matrix import training_matrix
from features.validation import validate_dir

SERIES_FILE, TRAINING_FILE, SNAPSHOT_FILE, MANIFEST_FILE, REPORT_FILE = (
    "index_series.parquet",
    "training.parquet",
    "snapshot.parquet",
    "manifest.json",
    "report.png",
)
# each field's season metrics over the index series written beside them: a worker's start
# computes again only those of fields with observations the build did not have
FIELD_SEASONS_FILE = "field_seasons.parquet"
# each field's geodesic polygon area: a start measures only the fields added since
FIELD_AREAS_FILE = "field_areas.parquet"


class FeatureStoreIntegrityError(RuntimeError):
    """A feature store file differs from the hash its manifest recorded."""


def check_feature_store(features_dir: Path) -> dict[str, Any]:
    """The manifest of a feature store whose files all hash as it recorded.

    Raises:
        FeatureStoreIntegrityError: naming the file that is missing or differs.
    """
    manifest_path = features_dir / MANIFEST_FILE
    manifest: dict[str, Any] = json.loads(manifest_path.read_text())
    recorded = manifest.get("sha256")
    if not recorded:
        raise FeatureStoreIntegrityError(
            f"{manifest_path} records no file hashes (built by an older version): rebuild "
            "with `agricredit features build`"
        )
    for name, expected in recorded.items():
        path = features_dir / name
        if not path.exists():
            raise FeatureStoreIntegrityError(f"{path} is missing; rebuild the feature store")
        if file_sha256(path) != expected:
            raise FeatureStoreIntegrityError(
                f"{path} has changed since `features build` wrote it (SHA-256 differs from "
                f"{manifest_path}): rebuild the feature store; nothing is served from it"
            )
    return manifest


@dataclass(frozen=True)
class BuildSummary:
    """What `write_feature_store` wrote."""

    out: Path
    as_of: pd.Timestamp
    series_rows: int
    training_rows: int
    labelled_rows: int
    snapshot_rows: int
    seconds: float


def validated_tables(
    data_dir: Path | str, *, recorded_before: pd.Timestamp | None = None
) -> dict[str, pd.DataFrame]:
    """The typed tables of `data_dir` (rasters are not opened): from its arrival log, the
    rows recorded before `recorded_before` (every row without it); from a directory of
    table files (a simulated world, an export), the files as they are.

    Raises:
        TableValidationError: with every problem found in the tables or field boundaries.
    """
    if ArrivalLog.present(data_dir):
        return ArrivalLog(data_dir).tables(recorded_before=recorded_before)
    report = validate_dir(Path(data_dir), check_rasters=False)
    if not report.ok:
        raise TableValidationError(report.problems)
    return report.tables


def fieldset_of(fields: pd.DataFrame) -> FieldSet:
    """The validated field boundaries as the zonal kernel takes them."""
    return FieldSet(
        fields["field_id"].to_numpy(), fields["geometry"].to_numpy(), fields.attrs["crs"]
    )


def inputs_from_tables(
    data_dir: Path | str,
    tables: dict[str, pd.DataFrame],
    *,
    series: pd.DataFrame | None = None,
    progress: bool = False,
    measured: pd.Series | None = None,
    fields_made: pd.DataFrame | None = None,
) -> Inputs:
    """Inputs from validated tables; the index series is computed from the scenes unless
    one is given, and the field table (`field_table`) unless `fields_made` is it, with
    the fields' areas measured unless `measured` (by field_id) has them."""
    fields = tables["fields"]
    fieldset = fieldset_of(fields)
    if series is None:
        series = build_index_series(data_dir, tables["scenes"], fieldset, progress=progress)
    if fields_made is None:
        fields_made = field_table(fields, tables["farmers"], fieldset, measured=measured)
    return Inputs(
        farmers=tables["farmers"],
        fields=fields_made,
        orders=tables["orders"],
        contracts=tables["contracts"],
        loans=tables["loans"],
        repayments=tables["repayments"],
        buyers=tables["buyers"],
        market_prices=tables["market_prices"],
        series=series,
    )


def load_inputs(
    data_dir: Path | str, *, progress: bool = False, recorded_before: pd.Timestamp | None = None
) -> Inputs:
    """Validate the tables of `data_dir` and compute the index time series of its scenes;
    of a store, the rows recorded before `recorded_before` (all without it).

    Raises:
        TableValidationError: with every problem found in the tables or field boundaries.
    """
    tables = validated_tables(data_dir, recorded_before=recorded_before)
    return inputs_from_tables(data_dir, tables, progress=progress)


def latest_event(inputs: Inputs) -> pd.Timestamp:
    """The most recent timestamp anywhere in the inputs: when the data were extracted."""
    stamps = [
        inputs.orders["placed_at"],
        inputs.contracts["signed_at"],
        inputs.contracts["closed_at"],
        inputs.contracts["paid_at"],
        inputs.loans["applied_at"],
        inputs.loans["disbursed_at"],
        inputs.repayments["paid_at"],
        inputs.market_prices["observed_at"],
        inputs.series["acquired_at"],
    ]
    # a store's rows also say when they were recorded: nothing is in before that
    stamps += [
        frame["recorded_at"]
        for frame in (inputs.orders, inputs.contracts, inputs.loans, inputs.repayments,
                      inputs.market_prices)
        if "recorded_at" in frame
    ]  # fmt: skip
    # one pass over each column (its max skips the missing), not two
    return max(pd.Timestamp(m) for m in (s.max() for s in stamps) if pd.notna(m))


def write_feature_store(
    data_dir: Path | str,
    *,
    out: Path | str | None = None,
    as_of: pd.Timestamp | str | None = None,
    progress: bool = False,
    runner: Runner = IN_PROCESS,
) -> BuildSummary:
    """Build and write the index series, the training matrix and the farmer snapshot.

    `as_of` defaults to just after the latest event in the data. From a store, only rows
    recorded before `as_of` are read (docs/ingestion.md). Everything is written to
    `out` (default DATA_DIR/features) at once, or nothing is. The zonal statistics and
    the features run where `runner` says (on a Dask cluster: features/distributed.py);
    the result is the same.
    """
    started = time.perf_counter()
    data_dir = Path(data_dir)
    out = Path(out) if out is not None else data_dir / "features"
    steps = tqdm(total=4, desc="features", unit="step", disable=not progress)
    steps.set_postfix_str("index series")
    build = build_features
    recorded_before = None if as_of is None else pd.Timestamp(as_of)
    if recorded_before is not None:
        instant_ns(recorded_before)  # refuses a naive time before anything is read
    tables = validated_tables(data_dir, recorded_before=recorded_before)
    if isinstance(runner, LocalRunner):
        inputs = inputs_from_tables(data_dir, tables, progress=progress)
    else:
        series = index_series_on(runner, data_dir, tables["scenes"], fieldset_of(tables["fields"]))
        inputs = inputs_from_tables(data_dir, tables, series=series)
        build = partial(features_on, runner)
    when = latest_event(inputs) + pd.Timedelta(seconds=1) if as_of is None else pd.Timestamp(as_of)
    instant_ns(when)  # refuses a naive time with a clear message
    steps.update()
    steps.set_postfix_str("reference tables")
    reference = build_reference(inputs)
    steps.update()
    steps.set_postfix_str("training matrix")
    scenes = tables["scenes"]
    arrived = scenes.set_index("scene_id")["recorded_at"] if "recorded_at" in scenes else None
    versions = buyer_versions = None
    if ArrivalLog.present(data_dir):  # every contract version (its progress reports), buyer's
        log = ArrivalLog(data_dir)
        versions = log.table("contracts", recorded_before=recorded_before, history=True)
        buyer_versions = log.table("buyers", recorded_before=recorded_before, history=True)
    training = training_matrix(
        inputs, reference=reference, as_of=when, build=build, scene_recorded=arrived,
        contract_versions=versions, buyer_versions=buyer_versions,
    )  # fmt: skip
    steps.update()
    steps.set_postfix_str("snapshot")
    snapshot = build(
        inputs, snapshot_applications(inputs.farmers, inputs.contracts, when), reference=reference
    )
    steps.update()
    steps.close()
    series = inputs.series[before(inputs.series["acquired_at"], instant_ns(when))]
    seasons = reference.field_seasons
    if seasons is None or len(series) != len(inputs.series):
        seasons = field_season_metrics(series, inputs.fields)  # of the series written
    with atomic_directory(out) as staging:
        series.to_parquet(staging / SERIES_FILE, index=False)
        seasons.to_parquet(staging / FIELD_SEASONS_FILE, index=False)
        inputs.fields[["field_id", "polygon_ha"]].to_parquet(
            staging / FIELD_AREAS_FILE, index=False
        )
        training.to_parquet(staging / TRAINING_FILE, index=False)
        snapshot.to_parquet(staging / SNAPSHOT_FILE, index=False)
        manifest = {
            "as_of": when.isoformat(),
            "data_dir": str(data_dir),
            "features": list(FEATURE_NAMES),
            "flags": list(FLAG_NAMES),
            "rows": {
                "series": len(inputs.series),
                "training": len(training),
                "snapshot": len(snapshot),
            },
            # what the service checks before it serves from these files
            "sha256": {
                name: file_sha256(staging / name)
                for name in (
                    SERIES_FILE,
                    TRAINING_FILE,
                    SNAPSHOT_FILE,
                    FIELD_SEASONS_FILE,
                    FIELD_AREAS_FILE,
                )
            },
        }
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
        plot_feature_report(series, inputs.fields, training, staging / REPORT_FILE)
    return BuildSummary(
        out=out,
        as_of=when,
        series_rows=len(series),
        training_rows=len(training),
        labelled_rows=int(training["outcome_known"].sum()),
        snapshot_rows=len(snapshot),
        seconds=time.perf_counter() - started,
    )
