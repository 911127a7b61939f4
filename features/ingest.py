"""Ingest a data directory: validate it whole, then install it as the store atomically."""

from __future__ import annotations

from pathlib import Path

from features.errors import TableValidationError
from features.store import atomic_directory, copy_file, write_table
from features.tables import FIELDS, FIELDS_FILE, TABLES
from features.validation import ValidationReport, find_table_file, validate_dir


def load_data_dir(source: Path | str, target: Path | str) -> ValidationReport:
    """Validate `source` and, only if it is clean, install it as the store at `target`.

    Tables become typed Parquet; fields.geojson and every scene file are copied. Either
    the whole store is replaced or nothing is written.

    Raises:
        TableValidationError: with every problem found; `target` is left as it was.
    """
    source, target = Path(source), Path(target)
    report = validate_dir(source)
    if not report.ok:
        raise TableValidationError(report.problems)
    with atomic_directory(target) as staging:
        for spec in TABLES:
            if spec.name == FIELDS.name:
                for path in find_table_file(source, spec):
                    copy_file(path, staging / FIELDS_FILE)
                continue
            if spec.name in report.tables:
                write_table(report.tables[spec.name], spec, staging / f"{spec.name}.parquet")
        for rel in report.tables["scenes"].path:
            copy_file(source / rel, staging / rel)
    return report
