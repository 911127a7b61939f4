"""The data directory as a store: tables written typed, directories replaced atomically.

Writers build the new directory beside the target and swap it in with renames, so a
failure at any point leaves the previous store untouched and no half-written one behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.tables import TableSpec

_ARROW_TYPES = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "datetime": pa.timestamp("us", tz="UTC"),
    "bool": pa.bool_(),
}


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks (feature store files, model bundles)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_directory(target: Path | str) -> Iterator[Path]:
    """Yield a fresh staging directory that replaces `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    staging = target.parent / f".{target.name}.staging-{token}"
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.exists():
        retired = target.parent / f".{target.name}.retired-{token}"
        target.rename(retired)
        staging.rename(target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(target)


def arrow_schema(spec: TableSpec, columns: list[str]) -> pa.Schema:
    """Arrow schema of `spec` restricted to `columns`, in declaration order."""
    return pa.schema(
        [
            pa.field(c.name, _ARROW_TYPES[c.kind], nullable=c.nullable)
            for c in spec.columns
            if c.name in columns
        ]
    )


RECORDED_AT = "recorded_at"  # any table may say when each row reached the product


def write_table(frame: pd.DataFrame, spec: TableSpec, path: Path) -> None:
    """Write the declared columns of `frame` (and its `recorded_at`, if it has one) as
    typed Parquet, atomically."""
    columns = [c.name for c in spec.columns if c.name in frame.columns]
    schema = arrow_schema(spec, columns)
    if RECORDED_AT in frame.columns:
        columns.append(RECORDED_AT)
        schema = schema.append(pa.field(RECORDED_AT, pa.timestamp("us", tz="UTC")))
    table = pa.Table.from_pandas(frame[columns], schema=schema, preserve_index=False)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def copy_file(src: Path, dst: Path) -> None:
    """Copy `src` to `dst` (a hard link when both are on one file system)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)  # same file system: free and exact
    except OSError:
        shutil.copy2(src, dst)
