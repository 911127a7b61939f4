"""The data the service decides from, loaded once: validated tables, the index series, the
reference tables, and each farmer's rows found by position rather than by search."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
import pandas as pd

from features.arrival_log import ArrivalLog, LogTables, Versions
from features.asof import instant_ns, to_ns
from features.assembly import (
    Inputs,
    Reference,
    build_features,
    build_reference,
    satellite_features,
    snapshot_applications,
)
from features.chunked import take_rows
from features.feature_store import (
    FIELD_AREAS_FILE,
    FIELD_SEASONS_FILE,
    MANIFEST_FILE,
    SERIES_FILE,
    SNAPSHOT_FILE,
    check_feature_store,
    fieldset_of,
    inputs_from_tables,
    latest_event,
    validated_tables,
)
from features.history import loan_settlements
from features.registry import ROW_COLUMNS, output_columns
from features.satellite.pipeline import satellite_unchanged_until
from features.satellite.seasons import field_season_metrics, good_observations
from features.satellite.series import build_index_series
from features.store import RECORDED_AT
from scoring.errors import NotFoundError


class FieldRecord(NamedTuple):
    """One of a farmer's fields, as the policy reads it."""

    field_id: str
    crop: str
    declared_area_ha: float


class OutstandingLoan(NamedTuple):
    """A loan applied for and not yet repaid at some as-of time."""

    contract_id: str
    amount_minor: int
    due_ns: int  # due time, ns since the epoch (UTC)


class SnapshotRow(NamedTuple):
    """Where a farmer's features sit in the snapshot, and the contract they were built for."""

    row: int
    contract_id: str


class LoanRecord(NamedTuple):
    """One of a farmer's loans, with the times that decide whether it is outstanding."""

    contract_id: str
    amount_minor: int
    applied_ns: int
    settled_ns: int  # NAT_NS while not settled
    due_ns: int


NAT_NS = np.iinfo(np.int64).min  # a missing instant, as `to_ns` gives it
# the tables of a farmer's own feed: a commit to these alone moves only its farmers' rows
FARMER_FEED = ("orders", "loans", "repayments")


@dataclass(frozen=True)
class Snapshot:
    """The farmers' features as one float matrix (columns: ROW_COLUMNS), with each farmer's
    row, the contract it was built for and the instant it was built as of, looked up
    without searching. A follower rebuilds only the rows of the farmers a commit touched,
    so rows may be of different instants; each is exactly `features build --as-of` its own
    instant (rows recorded after an instant change nothing as of it)."""

    as_of: pd.Timestamp  # the latest instant a row was built as of
    values: np.ndarray
    rows: dict[str, SnapshotRow]  # by farmer_id
    instants: np.ndarray  # each row's as-of, ns since the epoch (UTC)

    @classmethod
    def of(cls, frame: pd.DataFrame, as_of: pd.Timestamp) -> Snapshot:
        """From the snapshot table as `features build` writes it."""
        values = frame[list(ROW_COLUMNS)].to_numpy(dtype=float, na_value=np.nan)
        rows = {
            str(f): SnapshotRow(i, str(c))
            for i, (f, c) in enumerate(zip(frame["farmer_id"], frame["contract_id"], strict=True))
        }
        return cls(as_of, values, rows, np.full(len(frame), instant_ns(as_of), dtype=np.int64))

    def row_at(self, farmer_id: str, t: int) -> SnapshotRow | None:
        """The farmer's row if it was built as of instant `t` (ns)."""
        found = self.rows.get(farmer_id)
        if found is None or self.instants[found.row] != t:
            return None
        return found

    def instant_of(self, farmer_id: str) -> pd.Timestamp | None:
        """The instant the farmer's row was built as of, None without a row."""
        found = self.rows.get(farmer_id)
        if found is None:
            return None
        return pd.Timestamp(int(self.instants[found.row]), tz="UTC")

    def with_rows_of(self, newer: Snapshot) -> Snapshot:
        """This snapshot with every farmer of `newer` (built later) as `newer` has them."""
        rows = dict(self.rows)
        added = [f for f in newer.rows if f not in rows]
        values = np.concatenate([self.values, np.empty((len(added), self.values.shape[1]))])
        instants = np.concatenate([self.instants, np.empty(len(added), dtype=np.int64)])
        for i, farmer in enumerate(added):
            rows[farmer] = SnapshotRow(len(self.rows) + i, "")
        for farmer, row in newer.rows.items():
            at = rows[farmer].row
            values[at] = newer.values[row.row]
            instants[at] = newer.instants[row.row]
            rows[farmer] = SnapshotRow(at, row.contract_id)
        return Snapshot(max(self.as_of, newer.as_of), values, rows, instants)


def _snapshot(data_dir: Path) -> Snapshot | None:
    """The feature store's farmer snapshot, if one was built."""
    manifest = data_dir / "features" / MANIFEST_FILE
    if not manifest.exists():
        return None
    as_of = pd.Timestamp(json.loads(manifest.read_text())["as_of"])  # checked by load
    return Snapshot.of(pd.read_parquet(data_dir / "features" / SNAPSHOT_FILE), as_of)


def _built_snapshot(inputs: Inputs, reference: Reference, as_of: pd.Timestamp) -> Snapshot:
    """Every farmer's features as of `as_of`, exactly as `features build --as-of` makes them."""
    apps = snapshot_applications(inputs.farmers, inputs.contracts, as_of)
    return Snapshot.of(build_features(inputs, apps, reference=reference), as_of)


_SATELLITE = ["application_id", *output_columns("satellite")]
_SATELLITE_AT = [ROW_COLUMNS.index(c) for c in _SATELLITE[1:]]


def _rows_built_again(
    source: FeatureSource,
    before: Snapshot,
    farmers: list[str],
    as_of: pd.Timestamp,
    *,
    keep_satellite: bool,
) -> Snapshot:
    """`before` with the rows of `farmers` built again as of `as_of`, exactly as
    `features build --as-of` makes them. With `keep_satellite` (nothing the satellite
    features are built from has moved since `before`), a farmer whose row in `before` is
    for the same contract keeps its satellite features while `satellite_unchanged_until`
    (from that row's instant) says they stand, which saves half of a row's build."""
    inputs = source.for_farmers(farmers)
    apps = snapshot_applications(inputs.farmers, inputs.contracts, as_of)
    rows = [before.rows.get(str(f)) for f in apps["farmer_id"]]
    keep = np.zeros(len(apps), dtype=bool)
    if keep_satellite and len(apps):
        contract = apps["contract_id"].astype("str").where(apps["contract_id"].notna(), "")
        had = [_contract_of(r) for r in rows]
        same = np.array([r is not None for r in rows]) & (contract.to_numpy() == np.array(had))
        then = np.array([before.instants[r.row] if r is not None else 0 for r in rows])
        then_apps = apps.assign(as_of=pd.to_datetime(then, utc=True).as_unit("ns"))
        until = satellite_unchanged_until(inputs.series, then_apps, fields=inputs.fields,
                                          contracts=inputs.contracts)  # fmt: skip
        keep = same & (instant_ns(as_of) < until)
    kept = None
    if keep.any():
        at = [r.row for r, k in zip(rows, keep, strict=True) if k and r is not None]
        part = pd.DataFrame(before.values[np.ix_(at, _SATELLITE_AT)], columns=_SATELLITE[1:])
        part.index = np.flatnonzero(keep)
        if (~keep).any():
            fresh = satellite_features(inputs, apps[~keep].reset_index(drop=True),
                                       reference=source.reference)  # fmt: skip
            fresh.index = np.flatnonzero(~keep)
            part = pd.concat([part, fresh.drop(columns="application_id").astype(float)])
        part = part.sort_index()
        part.insert(0, "application_id", apps["application_id"].to_numpy())
        kept = {"satellite": part.reset_index(drop=True)}
    built = build_features(inputs, apps, reference=source.reference, kept=kept)
    return before.with_rows_of(Snapshot.of(built, as_of))


def _contract_of(row: SnapshotRow | None) -> str:
    """A snapshot row's contract, "" for none (a row read from the feature store's file
    says None, one built here nan)."""
    if row is None or row.contract_id in ("None", "nan", "<NA>"):
        return ""
    return row.contract_id


class CompletedSeries(NamedTuple):
    """The built index series completed with what was recorded since, and the fields that
    got observations the build did not have."""

    series: pd.DataFrame
    changed_fields: np.ndarray


def completed_series(
    data_dir: Path, tables: dict[str, pd.DataFrame], series: pd.DataFrame
) -> CompletedSeries:
    """The built index series with the zonal statistics of what was recorded since: each
    new scene over every field, each new field over the scenes seen before."""
    scenes, fields = tables["scenes"], tables["fields"]
    new_scenes = scenes[~scenes["scene_id"].isin(series["scene_id"].unique())]
    new_fields = fields[~fields["field_id"].isin(series["field_id"].unique())]
    parts = [series]
    if len(new_scenes):
        parts.append(build_index_series(data_dir, new_scenes, fieldset_of(fields)))
    old_scenes = scenes[~scenes["scene_id"].isin(new_scenes["scene_id"])]
    if len(new_fields) and len(old_scenes):
        new = new_fields.copy()
        new.attrs = fields.attrs  # the CRS
        parts.append(build_index_series(data_dir, old_scenes, fieldset_of(new)))
    added = [p for p in parts[1:] if len(p)]
    if not added:
        return CompletedSeries(series, np.array([], dtype=object))
    done = pd.concat([series, *added], ignore_index=True)
    done = done.sort_values(["field_id", "acquired_at"], kind="stable").reset_index(drop=True)
    return CompletedSeries(done, pd.unique(pd.concat([p["field_id"] for p in added]).to_numpy()))


def _spliced_seasons(
    kept: pd.DataFrame, series: pd.DataFrame, fields: pd.DataFrame, changed: np.ndarray
) -> pd.DataFrame:
    """Field season metrics `kept` with those of the `changed` fields computed again (a
    field's metrics depend on its own observations only)."""
    again = field_season_metrics(
        series[series["field_id"].isin(changed)], fields[fields["field_id"].isin(changed)]
    )
    spliced = pd.concat([kept[~kept["field_id"].isin(changed)], again], ignore_index=True)
    return spliced.astype(kept.dtypes.to_dict()).sort_values(
        ["field_id", "season"], kind="stable", ignore_index=True
    )


def _reference(
    inputs: Inputs, reuse: FeatureSource | None, stored: pd.DataFrame | None = None
) -> Reference:
    """The reference tables of `inputs`, from those of the data loaded before where they
    can be (a few ms of comparing, far less than building them): kept whole when nothing
    they are built from changed; after new scenes, only the season metrics of the fields
    those scenes cover computed again. Without data loaded before, `stored` (the feature
    store's field season metrics, completed for the fields observed since) saves
    computing every field's."""
    if reuse is None:
        return build_reference(inputs, field_seasons=stored)
    before, now = reuse.inputs, inputs
    if not all(
        getattr(before, name).equals(getattr(now, name))
        for name in ("contracts", "farmers", "fields")
    ):
        return build_reference(inputs)
    if before.series.equals(now.series):
        return reuse.reference
    kept = reuse.reference.field_seasons
    if kept is None:
        return build_reference(inputs)
    new_rows = ~now.series["scene_id"].isin(before.series["scene_id"].unique())
    old = now.series[~new_rows].reset_index(drop=True)
    if not old.equals(before.series.reset_index(drop=True)):
        return build_reference(inputs)  # not only new scenes: build it all
    covered = now.series.loc[new_rows, "field_id"].unique()
    spliced = _spliced_seasons(kept, now.series, now.fields, covered)
    return build_reference(inputs, field_seasons=spliced)


def _log_tables(
    data_dir: Path,
    as_of: pd.Timestamp | None,
    versions: Versions | None,
    reuse: FeatureSource | None,
) -> LogTables | None:
    """A store's tables at `versions` (the latest without), as of `as_of`: from those the
    data loaded before were read from where they can be; None for a directory of files."""
    if not ArrivalLog.present(data_dir):
        return None
    log = ArrivalLog(data_dir)
    versions = log.versions() if versions is None else versions
    if reuse is not None and reuse.log_tables is not None:
        return log.moved_on(reuse.log_tables, versions, recorded_before=as_of)
    return log.read_at(versions, recorded_before=as_of)


def _inputs(
    data_dir: Path,
    tables: dict[str, pd.DataFrame],
    series: pd.DataFrame | None,
    reuse: FeatureSource | None,
    measured: pd.Series | None,
) -> Inputs:
    """Inputs of the tables, keeping the field table (areas measured, counties joined) of
    the data loaded before when neither fields nor farmers moved (with the index series
    given: without one it is computed from the scenes, as they are now); else with the
    areas `measured` before (by field_id) where it has them."""
    kept = None
    if reuse is not None and series is not None:
        if _Unchanged(tables, reuse).tables(("fields", "farmers")):
            kept = reuse.inputs.fields
    return inputs_from_tables(data_dir, tables, series=series, measured=measured, fields_made=kept)


T = TypeVar("T")


class _Unchanged:
    """Which of the tables are the very frames the data loaded before were built from (a
    store's table that did not move is kept as it was read)."""

    def __init__(self, tables: dict[str, pd.DataFrame], reuse: FeatureSource | None) -> None:
        self.now = tables
        self.before = (
            reuse.log_tables.tables if reuse is not None and reuse.log_tables is not None else {}
        )
        self.reuse = reuse

    def tables(self, names: str | tuple[str, ...]) -> bool:
        names = (names,) if isinstance(names, str) else names
        return all(n in self.now and self.now[n] is self.before.get(n) for n in names)

    def or_else(
        self,
        names: str | tuple[str, ...],
        kept: Callable[[FeatureSource], T],
        build: Callable[[], T],
    ) -> T:
        """What the data loaded before had built from these tables, or it built again."""
        if self.reuse is not None and self.tables(names):
            return kept(self.reuse)
        return build()


def _touched_farmers(
    log_tables: LogTables | None, reuse: FeatureSource | None, inputs: Inputs
) -> set[str] | None:
    """The farmers whose own rows a follower's commits added, when those are all that
    moved (orders, loans, repayments and scenes, read as added rows): only their snapshot
    rows need building again, and every other row stays exact as of its own instant. Of a
    scene, the farmers whose fields it covers (a county's reference, its peak NDVI, reaches
    the others at the next refresh). None when more than that moved: contracts, farmers,
    fields, buyers, suppliers, co-ops or prices may move many farmers' rows."""
    if reuse is None or reuse.log_tables is None or log_tables is None:
        return None
    before = reuse.log_tables.tables
    moved = {n for n, frame in log_tables.tables.items() if frame is not before.get(n)}
    if set(before) != set(log_tables.tables) or not moved <= {*FARMER_FEED, "scenes"}:
        return None
    if not moved <= set(log_tables.added):
        return None  # read whole: which rows are new is not known
    farmers: set[str] = set()
    for name in moved:
        added = log_tables.added[name]
        if name == "repayments":
            loans = inputs.loans.set_index("loan_id")["farmer_id"]
            farmers.update(str(f) for f in loans.reindex(added["loan_id"]).dropna())
        elif name == "scenes":
            series = inputs.series
            covered = series.loc[series["scene_id"].isin(added["scene_id"]), "field_id"]
            fields = inputs.fields
            owners = fields.loc[fields["field_id"].isin(covered), "farmer_id"]
            farmers.update(str(f) for f in owners)
        else:
            farmers.update(str(f) for f in added["farmer_id"])
    return farmers


def _loans_by_farmer(loans: pd.DataFrame, settled: pd.Series) -> dict[str, list[LoanRecord]]:
    settled_at = loans["loan_id"].map(settled)
    out: dict[str, list[LoanRecord]] = {}
    for farmer, contract, amount, applied, settled_ns, due in zip(
        loans["farmer_id"],
        loans["contract_id"],
        loans["amount_minor"],
        to_ns(loans["applied_at"]),
        to_ns(pd.Series(pd.DatetimeIndex(settled_at))),
        to_ns(loans["due_at"]),
        strict=True,
    ):
        out.setdefault(str(farmer), []).append(
            LoanRecord(str(contract), int(amount), int(applied), int(settled_ns), int(due))
        )
    return out


def _clear_scenes_by_field(series: pd.DataFrame) -> dict[str, np.ndarray]:
    obs = good_observations(series)
    stamps = to_ns(obs["acquired_at"])
    return {
        str(field): np.sort(stamps[positions])
        for field, positions in obs.groupby("field_id", sort=False).indices.items()
    }


def last_arrivals(tables: dict[str, pd.DataFrame]) -> dict[str, pd.Timestamp]:
    """When each table last received a row (its latest `recorded_at`); a table without
    recorded times (a directory extracted by hand) is left out: its arrivals are unknown."""
    out = {}
    for name, frame in tables.items():
        if RECORDED_AT in frame and frame[RECORDED_AT].notna().any():
            out[name] = pd.Timestamp(frame[RECORDED_AT].max())
    return out


def _fields_by_farmer(fields: pd.DataFrame) -> dict[str, list[FieldRecord]]:
    """Each farmer's fields."""
    out: dict[str, list[FieldRecord]] = {}
    for farmer, field_id, crop, area in zip(
        fields["farmer_id"],
        fields["field_id"],
        fields["crop"],
        fields["declared_area_ha"],
        strict=True,
    ):
        out.setdefault(str(farmer), []).append(FieldRecord(str(field_id), str(crop), float(area)))
    return out


def _crop_areas(fields: pd.DataFrame) -> dict[str, dict[str, float]]:
    areas = fields.groupby(["crop", "farmer_id"], observed=True)["declared_area_ha"].sum()
    out: dict[str, dict[str, float]] = {}
    for (crop, farmer), area in areas.items():
        out.setdefault(str(crop), {})[str(farmer)] = float(area)
    return out


def _members_by_coop(coops: pd.DataFrame, farmers: pd.DataFrame) -> dict[str, list[str]]:
    members: dict[str, list[str]] = {str(c): [] for c in coops["coop_id"]}
    for farmer, coop in zip(farmers["farmer_id"], farmers["coop_id"], strict=True):
        if pd.notna(coop):
            members[str(coop)].append(str(farmer))
    return members


class RowsByKey:
    """Each row of a frame as a dict (column -> value) by its key, made at its first
    look-up and kept: a start does not make every row's dict (2.1 s of a 20,000-farmer
    start), and the request path looks rows up, it does not search."""

    def __init__(self, frame: pd.DataFrame, key: str) -> None:
        self._frame = frame
        self._at = {str(k): i for i, k in enumerate(frame[key])}
        self._made: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        """The row of `key`, None if there is none."""
        made = self._made.get(key)
        if made is None:
            at = self._at.get(key)
            if at is None:
                return None
            # the same values as `to_dict("records")`, one row of it
            made = self._made[key] = self._frame.iloc[[at]].to_dict("records")[0]
        return made


def _positions(frame: pd.DataFrame, column: str) -> dict[str, np.ndarray]:
    return {str(k): v for k, v in frame.groupby(column, sort=False).indices.items()}


def _orders_positions(
    orders: pd.DataFrame, reuse: FeatureSource | None, log_tables: LogTables | None
) -> dict[str, np.ndarray]:
    """Each farmer's order rows, by position: from those of the data loaded before when the
    orders are theirs and the rows a commit added, one before the other (a follower's
    load; 30 ms of grouping every order again on the demo world)."""
    if reuse is not None and orders is reuse.inputs.orders:
        return reuse._orders  # the very rows (a worker starting from prepared data)
    added = log_tables.added.get("orders") if log_tables is not None else None
    if reuse is None or added is None or not len(added):
        return _positions(orders, "farmer_id")
    kept = reuse._orders
    had = len(reuse.inputs.orders)
    if len(orders) != had + len(added):
        return _positions(orders, "farmer_id")
    # the added rows come first or last (`ArrivalLog.moved_on`); order ids are unique
    first = bool(orders["order_id"].iloc[0] == added["order_id"].iloc[0])
    out = {f: p + len(added) for f, p in kept.items()} if first else dict(kept)
    for farmer, at in _positions(added, "farmer_id").items():
        at = at if first else at + had
        before = out.get(farmer)
        out[farmer] = (
            at if before is None else np.concatenate([at, before] if first else [before, at])
        )
    return out


@dataclass
class FeatureSource:
    """Inputs of every farmer plus what a decision looks up besides features."""

    inputs: Inputs
    reference: Reference
    log_tables: LogTables | None  # the tables as read from the store's log (None: a directory)
    settlements: pd.Series  # settled_at by loan_id
    data_as_of: pd.Timestamp  # just after the latest event in the data
    last_arrivals: dict[str, pd.Timestamp]  # each table's latest recorded_at, where known
    data_seen: dict[str, str]  # the same as every answer states it (ISO 8601)
    snapshot: Snapshot | None  # every farmer's features at the feature store's as-of
    _orders: dict[str, np.ndarray]
    _series: dict[str, np.ndarray]
    _field_rows: dict[str, list[FieldRecord]]
    crop_areas: dict[str, dict[str, float]]  # crop -> farmer_id -> declared area (ha)
    _contracts: RowsByKey
    _farmers: RowsByKey
    coop_members: dict[str, list[str]]  # coop_id -> member farmer_ids (every co-op listed)
    approved_suppliers: dict[str, bool]  # supplier_id -> approved for direct payment
    buyer_grades: dict[str, str]
    _loans: dict[str, list[LoanRecord]]  # each farmer's loans
    _clear_scenes: dict[str, np.ndarray]  # each field's clear observations, sorted (ns)
    series_sha256: str | None  # of the built index series the inputs' was completed from

    @classmethod
    def load(
        cls,
        data_dir: Path | str,
        *,
        live: bool = False,
        as_of: pd.Timestamp | None = None,
        reuse: FeatureSource | None = None,
        versions: Versions | None = None,
        snapshot: Snapshot | None = None,
    ) -> FeatureSource:
        """Load DATA_DIR (a directory of files validated; a store's log read in the types
        its validated rows were committed with); the index series comes from features/ if
        built.

        `live` (a store whose arrival log grows while the service runs): the index series
        is completed for the scenes and fields recorded since it was built, and every
        farmer's snapshot is built again as of the data loaded now if the built one is of an
        earlier time, so the fast path decides from what has arrived. `as_of` (decisions as
        of the wall clock): only rows recorded before it are read, and the snapshot is built
        as of it, which is what `features build --as-of` does. `reuse` (the data loaded
        before, by a follower): its reference tables are kept when what they are built from
        (contracts, farmers, fields, the index series) has not changed, as after a batch of
        orders or repayments, and of a store, only the rows its log's commits added since
        are read, and what is built from a table that did not move is kept; when only
        orders, loans, repayments or scenes moved, only the snapshot rows of the farmers
        they touched are built again, each row keeping the instant it was built as of.
        `versions` (of a store's log, read with the instant by `settled_read`): the
        versions to read; the latest without it. `snapshot`: every farmer's rows as the
        host's follower built them from exactly these versions and `as_of`
        (scoring/decide/shared_snapshot.py), taken as they are: no row is built here.

        Raises:
            TableValidationError: with every problem, when the data are not valid.
            FeatureStoreIntegrityError: a feature store file changed after it was built.
        """
        data_dir = Path(data_dir)
        log_tables = _log_tables(data_dir, as_of, versions, reuse)
        t = validated_tables(data_dir) if log_tables is None else log_tables.tables
        same = _Unchanged(t, reuse)
        manifest = None
        if (data_dir / "features" / MANIFEST_FILE).exists():
            manifest = check_feature_store(data_dir / "features")  # before any file is read
        series_sha = None if manifest is None else manifest["sha256"].get(SERIES_FILE)
        built = data_dir / "features" / SERIES_FILE
        changed = np.array([], dtype=object)  # fields observed since the build
        if (
            live
            and reuse is not None
            and series_sha is not None
            and series_sha == reuse.series_sha256
            and same.tables(("scenes", "fields"))
        ):
            series: pd.DataFrame | None = reuse.inputs.series  # completed already, unmoved
        else:
            series = pd.read_parquet(built) if built.exists() else None
            if live and series is not None:
                series, changed = completed_series(data_dir, t, series)
        measured = None
        if reuse is None and manifest is not None and FIELD_AREAS_FILE in manifest["sha256"]:
            areas = pd.read_parquet(data_dir / "features" / FIELD_AREAS_FILE)
            measured = areas.set_index("field_id")["polygon_ha"]
        inputs = _inputs(data_dir, t, series, reuse, measured)
        settled = same.or_else(
            ("loans", "repayments"),
            lambda r: r.settlements,
            lambda: loan_settlements(inputs.loans, inputs.repayments).set_index("loan_id")[
                "settled_at"
            ],
        )
        data_as_of = latest_event(inputs) + pd.Timedelta(seconds=1)
        stored = None
        if reuse is None and manifest is not None and FIELD_SEASONS_FILE in manifest["sha256"]:
            stored = pd.read_parquet(data_dir / "features" / FIELD_SEASONS_FILE)
            if len(changed):
                stored = _spliced_seasons(stored, inputs.series, inputs.fields, changed)
        reference = _reference(inputs, reuse, stored)
        arrivals = last_arrivals(t)
        series_kept = reuse is not None and inputs.series is reuse.inputs.series
        wanted = data_as_of if as_of is None else as_of
        touched = _touched_farmers(log_tables, reuse, inputs)
        if snapshot is not None:
            touched = None  # built by the host's follower
        elif touched is not None and reuse is not None and reuse.snapshot is not None:
            snapshot = reuse.snapshot  # its touched farmers' rows: below
        else:
            touched, snapshot = None, _snapshot(data_dir)
            if (live or as_of is not None) and (snapshot is None or snapshot.as_of != wanted):
                snapshot = _built_snapshot(inputs, reference, wanted)  # the log moved on
        source = cls(
            inputs=inputs,
            reference=reference,
            log_tables=log_tables,
            settlements=settled,
            data_as_of=data_as_of,
            last_arrivals=arrivals,
            data_seen={table: at.isoformat() for table, at in arrivals.items()},
            snapshot=snapshot,
            _orders=_orders_positions(inputs.orders, reuse, log_tables),
            _series=(
                reuse._series if reuse is not None and series_kept
                else _positions(inputs.series, "field_id")
            ),
            _field_rows=same.or_else("fields", lambda r: r._field_rows,
                                     lambda: _fields_by_farmer(inputs.fields)),
            crop_areas=same.or_else("fields", lambda r: r.crop_areas,
                                    lambda: _crop_areas(inputs.fields)),
            _contracts=same.or_else("contracts", lambda r: r._contracts,
                                    lambda: RowsByKey(inputs.contracts, "contract_id")),
            _farmers=same.or_else("farmers", lambda r: r._farmers,
                                  lambda: RowsByKey(inputs.farmers, "farmer_id")),
            coop_members=same.or_else(("coops", "farmers"), lambda r: r.coop_members,
                                      lambda: _members_by_coop(t["coops"], inputs.farmers)),
            approved_suppliers=same.or_else(
                "suppliers", lambda r: r.approved_suppliers,
                lambda: dict(zip(t["suppliers"]["supplier_id"],
                                 t["suppliers"]["approved"].fillna(False).astype(bool),
                                 strict=True))),
            buyer_grades=same.or_else(
                "buyers", lambda r: r.buyer_grades,
                lambda: dict(zip(inputs.buyers["buyer_id"], inputs.buyers["grade"],
                                 strict=True))),
            _loans=same.or_else(("loans", "repayments"), lambda r: r._loans,
                                lambda: _loans_by_farmer(inputs.loans, settled)),
            _clear_scenes=(
                reuse._clear_scenes
                if reuse is not None and series_kept
                else _clear_scenes_by_field(inputs.series)
            ),
            series_sha256=series_sha,
        )  # fmt: skip
        if touched and snapshot is not None:  # a commit of the feed: only its farmers move on
            # a commit of orders, loans or repayments moves nothing of the satellite's
            unmoved = reference is getattr(reuse, "reference", None) and series_kept
            unmoved = unmoved and same.tables(("contracts", "farmers", "fields"))
            source.snapshot = _rows_built_again(source, snapshot, sorted(touched), wanted,
                                                keep_satellite=unmoved)  # fmt: skip
        return source

    def rebuilt_at(self, as_of: pd.Timestamp) -> FeatureSource:
        """The same data with every farmer's snapshot built as of `as_of` (the clock moved,
        the data did not)."""
        return replace(self, snapshot=_built_snapshot(self.inputs, self.reference, as_of))

    def farmer(self, farmer_id: str) -> dict[str, Any] | None:
        """The farmer's row (column -> value), or None if unknown."""
        return self._farmers.get(farmer_id)

    def contract(self, contract_id: str) -> dict[str, Any] | None:
        """The contract's row (column -> value), or None if unknown."""
        return self._contracts.get(contract_id)

    def known_contract(self, contract_id: str) -> dict[str, Any]:
        """The row of a contract already checked to exist.

        Raises:
            NotFoundError: it does not.
        """
        contract = self._contracts.get(contract_id)
        if contract is None:
            raise NotFoundError(f"contract {contract_id!r} is not known", field="contract_id")
        return contract

    def field_rows(self, farmer_id: str) -> list[FieldRecord]:
        """The farmer's fields as (field_id, crop, declared_area_ha), possibly none."""
        return self._field_rows.get(farmer_id, [])

    def outstanding(self, farmer_id: str, t: int) -> list[OutstandingLoan]:
        """The farmer's loans applied for and not settled before instant `t` (ns)."""
        return [
            OutstandingLoan(loan.contract_id, loan.amount_minor, loan.due_ns)
            for loan in self._loans.get(farmer_id, ())
            if loan.applied_ns != NAT_NS
            and loan.applied_ns < t
            and not (loan.settled_ns != NAT_NS and loan.settled_ns < t)
        ]

    def last_clear_scene_ns(self, field_id: str, t: int) -> int | None:
        """The field's latest clear observation before instant `t` (ns), None if none."""
        seen = self._clear_scenes.get(field_id)
        if seen is None:
            return None
        i = int(np.searchsorted(seen, t, side="left"))
        return int(seen[i - 1]) if i else None

    def for_farmers(self, farmer_ids: list[str]) -> Inputs:
        """The inputs restricted to some farmers (their contracts and co-ops' included)."""
        i = self.inputs
        farmers = i.farmers[i.farmers["farmer_id"].isin(farmer_ids)]
        fields = i.fields[i.fields["farmer_id"].isin(farmer_ids)]
        loans = i.loans[i.loans["farmer_id"].isin(farmer_ids)]
        coops = farmers["coop_id"].dropna().unique()
        empty = np.zeros(0, dtype=np.int64)
        order_pos = np.concatenate([self._orders.get(f, empty) for f in farmer_ids] or [empty])
        series_pos = np.concatenate(
            [self._series.get(str(f), empty) for f in fields["field_id"]] or [empty]
        )
        c = i.contracts
        return replace(
            i,
            farmers=farmers,
            fields=fields,
            orders=take_rows(i.orders, np.sort(order_pos)),
            contracts=c[c["farmer_id"].isin(farmer_ids) | c["coop_id"].isin(coops)],
            loans=loans,
            repayments=i.repayments[i.repayments["loan_id"].isin(loans["loan_id"])],
            series=take_rows(i.series, np.sort(series_pos)),
        )
