"""Validate a data directory against the input-table declarations.

Every problem is collected — file, row, column, what was expected — before anything is
reported, so one run tells a data owner everything to fix. Nothing here writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.boundaries import read_field_boundaries
from features.problems import Problem
from features.satellite.scenes import check_scene_files
from features.store import RECORDED_AT
from features.tables import (
    FIELDS,
    FIELDS_FILE,
    TABLE_SUFFIXES,
    TABLES,
    ColumnSpec,
    TableSpec,
)
from features.versions import VERSIONED, latest_versions, successive_problems

log = logging.getLogger(__name__)

_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n"}


@dataclass
class ValidationReport:
    """The outcome of validating a data directory: typed tables and every problem."""

    data_dir: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems


def find_table_file(data_dir: Path, spec: TableSpec) -> list[Path]:
    """Return the files that hold table `spec` in `data_dir` (Parquet or CSV)."""
    if spec.name == FIELDS.name:
        path = data_dir / FIELDS_FILE
        return [path] if path.exists() else []
    return [
        data_dir / f"{spec.name}{s}"
        for s in TABLE_SUFFIXES
        if (data_dir / f"{spec.name}{s}").exists()
    ]


def read_raw_table(path: Path) -> pd.DataFrame:
    """Read a Parquet or CSV table without coercing any type."""
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


def _bad_rows(
    file: str, column: str, mask: pd.Series, raw: pd.Series, expected: str, limit: int = 1000
) -> list[Problem]:
    rows = np.flatnonzero(mask.to_numpy(dtype=bool))
    problems = [
        Problem(file, f"{expected}; got {raw.iloc[i]!r}", row=int(i) + 1, column=column)
        for i in rows[:limit]
    ]
    if len(rows) > limit:
        problems.append(
            Problem(file, f"... and {len(rows) - limit} more rows like these", column=column)
        )
    return problems


def _coerce_datetime(raw: pd.Series) -> pd.Series:
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        return raw.dt.tz_localize("UTC")
    as_text = raw.astype("string")
    return pd.to_datetime(as_text, utc=True, errors="coerce", format="ISO8601")


def _coerce_bool(raw: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(raw.dtype):
        return raw.astype("boolean")
    text = raw.astype("string").str.strip().str.lower()
    out = pd.Series(pd.NA, index=raw.index, dtype="boolean")
    out[text.isin(_TRUE).fillna(False)] = True
    out[text.isin(_FALSE).fillna(False)] = False
    return out


def coerce_column(raw: pd.Series, spec: ColumnSpec) -> pd.Series:
    """Convert `raw` to the column's declared kind; unreadable values become NA."""
    if spec.kind == "str":
        text = raw.astype("string")
        return text.mask(text.str.len() == 0)
    if spec.kind == "datetime":
        return _coerce_datetime(raw)
    if spec.kind == "bool":
        return _coerce_bool(raw)
    numbers = pd.to_numeric(raw, errors="coerce")
    if spec.kind == "int":
        whole = numbers.notna() & (numbers == np.floor(numbers))
        return numbers.where(whole).astype("Int64")
    return numbers.astype("Float64")


_EXPECTED = {
    "str": "expected text",
    "int": "expected a whole number",
    "float": "expected a number",
    "datetime": "expected an ISO 8601 timestamp such as 2024-03-01T00:00:00Z",
    "bool": "expected true or false",
}


def _check_column(file: str, raw: pd.Series, typed: pd.Series, spec: ColumnSpec) -> list[Problem]:
    problems: list[Problem] = []
    raw_present = raw.notna()
    if raw.dtype == object or isinstance(raw.dtype, pd.StringDtype):
        # only text can be present yet empty; formatting every timestamp as text is slow
        raw_present &= (raw.astype("string").str.len() > 0).fillna(False)
    problems += _bad_rows(
        file,
        spec.name,
        raw_present & typed.isna(),
        raw,
        f"{_EXPECTED[spec.kind]} ({spec.description})",
    )
    if not spec.nullable:
        problems += _bad_rows(
            file, spec.name, ~raw_present, raw, "a value is required here; fill it in"
        )
    present = typed.notna()
    if spec.allowed is not None:
        bad = present & ~typed.isin(spec.allowed).fillna(False)
        problems += _bad_rows(
            file, spec.name, bad, raw, f"expected one of {', '.join(spec.allowed)}"
        )
    if spec.min_value is not None:
        unit = f" {spec.unit}" if spec.unit else ""
        problems += _bad_rows(
            file,
            spec.name,
            present & (typed < spec.min_value).fillna(False),
            raw,
            f"must be >= {spec.min_value:g}{unit}",
        )
    if spec.max_value is not None:
        unit = f" {spec.unit}" if spec.unit else ""
        problems += _bad_rows(
            file,
            spec.name,
            present & (typed > spec.max_value).fillna(False),
            raw,
            f"must be <= {spec.max_value:g}{unit}",
        )
    return problems


def type_table(raw: pd.DataFrame, spec: TableSpec, file: str) -> tuple[pd.DataFrame, list[Problem]]:
    """Check and convert a raw frame to the declared columns; report every problem."""
    problems: list[Problem] = []
    columns: dict[str, pd.Series] = {}
    for col in spec.columns:
        if col.name not in raw.columns:
            if col.required:
                problems.append(
                    Problem(
                        file,
                        f"missing column {col.name!r} ({col.kind}: {col.description}); add it",
                        column=col.name,
                    )
                )
            continue
        typed = coerce_column(raw[col.name].reset_index(drop=True), col)
        problems += _check_column(file, raw[col.name].reset_index(drop=True), typed, col)
        columns[col.name] = typed
    frame = pd.DataFrame(columns)
    key_cols = [k for k in spec.key if k in frame.columns]
    if len(key_cols) == len(spec.key) and len(frame):
        keyed = frame[key_cols]
        recorded = recorded_times(raw) if spec.name in VERSIONED else None
        versions = recorded is not None
        if recorded is not None:  # a history: each key once per recorded_at, as its versions
            keyed = keyed.assign(**{RECORDED_AT: recorded})
        dup = keyed.duplicated(keep="first")
        if dup.any():
            shown = keyed.loc[dup].astype(str).agg("/".join, axis=1)
            said = (
                "duplicate key: each key may appear once per recorded_at (one row a version)"
                if versions
                else "duplicate key: each key may appear once"
            )
            problems += _bad_rows(file, ",".join(key_cols), dup, shown.reindex(frame.index), said)
    return frame, problems


def recorded_times(raw: pd.DataFrame) -> pd.Series | None:
    """A table file's own `recorded_at` (when each row reached the product), if it has one."""
    if RECORDED_AT not in raw.columns:
        return None
    return _coerce_datetime(raw[RECORDED_AT].reset_index(drop=True))


def _rule(
    frame: pd.DataFrame, file: str, column: str, mask: pd.Series, message: str
) -> list[Problem]:
    return _bad_rows(file, column, mask.fillna(False), frame[column], message)


def _contract_rules(frame: pd.DataFrame, file: str) -> list[Problem]:
    p: list[Problem] = []
    is_farmer = frame["party_type"] == "farmer"
    is_coop = frame["party_type"] == "coop"
    p += _rule(
        frame,
        file,
        "farmer_id",
        is_farmer & frame["farmer_id"].isna(),
        "party_type is farmer, so farmer_id is required",
    )
    p += _rule(
        frame,
        file,
        "coop_id",
        is_coop & frame["coop_id"].isna(),
        "party_type is coop, so coop_id is required",
    )
    p += _rule(
        frame,
        file,
        "delivery_start",
        frame["delivery_start"] < frame["signed_at"],
        "delivery window cannot start before the contract is signed",
    )
    p += _rule(
        frame,
        file,
        "delivery_end",
        frame["delivery_end"] < frame["delivery_start"],
        "delivery_end must not be before delivery_start",
    )
    closed = frame["status"] == "closed"
    p += _rule(
        frame,
        file,
        "delivered_kg",
        closed & frame["delivered_kg"].isna(),
        "a closed contract needs delivered_kg",
    )
    p += _rule(
        frame,
        file,
        "closed_at",
        closed & frame["closed_at"].isna(),
        "a closed contract needs closed_at",
    )
    p += _rule(
        frame,
        file,
        "paid_minor",
        frame["paid_at"].notna() & frame["paid_minor"].isna(),
        "paid_at is set, so paid_minor is required",
    )
    return p


def _loan_rules(frame: pd.DataFrame, file: str) -> list[Problem]:
    p: list[Problem] = []
    p += _rule(
        frame,
        file,
        "due_at",
        frame["due_at"] <= frame["applied_at"],
        "due_at must be after applied_at",
    )
    p += _rule(
        frame,
        file,
        "disbursed_at",
        frame["disbursed_at"] < frame["applied_at"],
        "disbursed_at cannot be before applied_at",
    )
    p += _rule(
        frame,
        file,
        "defaulted",
        frame["defaulted"] != (frame["days_past_due"] >= 90),
        "defaulted must be true exactly when days_past_due >= 90",
    )
    return p


def _scene_rules(frame: pd.DataFrame, file: str) -> list[Problem]:
    clear = frame["mask_clear_values"].dropna()
    ok = clear.str.fullmatch(r"\s*-?\d+(\s*,\s*-?\d+)*\s*")
    bad = pd.Series(False, index=frame.index)
    bad[ok.index[~ok.fillna(False).to_numpy(dtype=bool)]] = True
    p = _rule(
        frame,
        file,
        "mask_clear_values",
        bad,
        "expected comma-separated whole numbers such as '1' or '4,5,6'",
    )
    p += _rule(
        frame,
        file,
        "mask_clear_values",
        frame["mask_band"].notna() & frame["mask_clear_values"].isna(),
        "mask_band is set, so say which mask values are clear",
    )
    # a raster is read from, and copied to, its path under a directory: it must stay inside
    parts = frame["path"].astype("string").str.replace("\\", "/", regex=False)
    escapes = parts.str.startswith("/") | parts.str.contains(r"(?:^|/)\.\.(?:/|$)", regex=True)
    p += _rule(
        frame,
        file,
        "path",
        escapes,
        "a scene's path is relative to the data directory and stays inside it: no leading '/' "
        "and no '..' segment",
    )
    return p


_ROW_RULES: dict[str, Callable[[pd.DataFrame, str], list[Problem]]] = {
    "contracts": _contract_rules,
    "loans": _loan_rules,
    "scenes": _scene_rules,
}


def row_problems(spec: TableSpec, frame: pd.DataFrame, file: str) -> list[Problem]:
    """The rules across a typed table's columns (a contract's parties and dates, a loan's
    amounts, a scene's band roles); none for tables without such rules."""
    rule = _ROW_RULES.get(spec.name)
    return [] if rule is None else rule(frame, file)


def _foreign_key_problems(tables: dict[str, pd.DataFrame], files: dict[str, str]) -> list[Problem]:
    problems: list[Problem] = []
    for spec in TABLES:
        frame = tables.get(spec.name)
        if frame is None:
            continue
        for fk in spec.foreign_keys:
            ref = tables.get(fk.ref_table)
            if ref is None or fk.column not in frame or fk.ref_column not in ref:
                continue
            values = frame[fk.column]
            dangling = values.notna() & ~values.isin(ref[fk.ref_column].dropna())
            problems += _bad_rows(
                files[spec.name],
                fk.column,
                dangling,
                values,
                f"refers to no {fk.ref_column} in {files[fk.ref_table]}",
            )
    return problems


def _validate_table(
    data_dir: Path, spec: TableSpec, report: ValidationReport, files: dict[str, str]
) -> None:
    found = find_table_file(data_dir, spec)
    expected = FIELDS_FILE if spec.name == FIELDS.name else f"{spec.name}.parquet or .csv"
    if not found:
        if spec.required:
            report.problems.append(
                Problem(
                    expected, f"table {spec.name} is missing: add {expected} ({spec.description})"
                )
            )
        return
    if len(found) > 1:
        names = " and ".join(p.name for p in found)
        report.problems.append(Problem(names, f"table {spec.name} is given twice; keep one"))
        return
    path = found[0]
    files[spec.name] = path.name
    if spec.name == FIELDS.name:
        boundaries = read_field_boundaries(path)
        report.problems.extend(boundaries.problems)
        raw = boundaries.properties
    else:
        try:
            raw = read_raw_table(path)
        except Exception as exc:  # any unreadable file is reported, never raised
            report.problems.append(
                Problem(path.name, f"cannot be read ({exc}); re-export it as Parquet or UTF-8 CSV")
            )
            return
    frame, problems = type_table(raw, spec, path.name)
    report.problems.extend(problems)
    if not problems:
        report.problems.extend(row_problems(spec, frame, path.name))
    recorded = recorded_times(raw) if spec.name in VERSIONED else None
    if recorded is not None and not problems:  # a history of versions: read as the latest
        report.problems.extend(successive_problems(spec.name, frame, recorded, path.name))
        latest = latest_versions(spec.name, spec.key, frame.assign(**{RECORDED_AT: recorded}))
        frame = latest[list(frame.columns)]  # a directory is read by its dates
    if spec.name == FIELDS.name:
        frame["geometry"] = boundaries.geometry
        frame.attrs["crs"] = boundaries.crs
    report.tables[spec.name] = frame


def validate_dir(data_dir: Path | str, *, check_rasters: bool = True) -> ValidationReport:
    """Validate every input table, the field boundaries and the scene files in `data_dir`.

    Args:
        data_dir: directory holding the tables (Parquet or CSV), fields.geojson and scenes.
        check_rasters: open and fully read every scene file (slow for big archives).

    Returns:
        A report with the typed tables and every problem found; nothing is written.
    """
    data_dir = Path(data_dir)
    report = ValidationReport(data_dir)
    if not data_dir.is_dir():
        report.problems.append(
            Problem(
                str(data_dir),
                "is not a directory; pass the data "
                "directory written by `agricredit simulate` or your "
                "own export",
            )
        )
        return report
    files: dict[str, str] = {}
    for spec in TABLES:
        _validate_table(data_dir, spec, report, files)
    report.problems.extend(_foreign_key_problems(report.tables, files))
    scenes = report.tables.get("scenes")
    if check_rasters and scenes is not None:
        report.problems.extend(check_scene_files(data_dir, scenes, files["scenes"]))
    log.info("validated %s: %d problem(s)", data_dir, len(report.problems))
    return report
