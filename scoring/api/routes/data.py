"""POST /v1/data/{table}: a platform feed's batch, committed whole to the arrival log; PUT
/v1/data/files/{name}: a scene's raster, uploaded for a scenes batch to name."""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from pathlib import Path as FilePath
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from features.arrival_log import ArrivalLog, Commit
from features.boundaries import feed_field_boundaries
from features.errors import TableValidationError
from features.ingest import append_scenes
from features.tables import FIELDS, TABLES_BY_NAME
from scoring.api.contract import problems
from scoring.api.deps import DataDep, StateDep
from scoring.api.schemas import DataBatch, DataCommit, DataFile
from scoring.errors import (
    InvalidBatchError,
    InvalidFileNameError,
    NoArrivalLogError,
    NotFoundError,
)

router = APIRouter(prefix="/v1/data", tags=["data"])


def _append(log: ArrivalLog, table: str, body: DataBatch, source: str, files: FilePath) -> Commit:
    if table == "scenes":  # their rasters uploaded before (PUT /v1/data/files/...)
        commit = append_scenes(
            log, pd.DataFrame(body.rows), files, batch_id=body.batch_id, source=source
        )
        if commit.written:
            for row in body.rows:
                (files / str(row.get("path"))).unlink(missing_ok=True)
        return commit
    if table != FIELDS.name:
        return log.append(table, pd.DataFrame(body.rows), batch_id=body.batch_id, source=source)
    # fields: each row's polygon a GeoJSON geometry (WGS 84), read as a GeoJSON file is
    boundaries = feed_field_boundaries(body.rows, f"batch {body.batch_id} ({source})")
    if boundaries.problems:
        raise TableValidationError(boundaries.problems)
    return log.append(table, boundaries.properties, batch_id=body.batch_id, source=source,
                      geometry=boundaries.geometry, crs=boundaries.crs)  # fmt: skip


# uploaded rasters wait here, one directory per data key, until a scenes batch names them
INCOMING_DIR = "incoming"
# a relative path of plain segments, a GeoTIFF: the scene's path in the store
FILE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*\.tiff?")


def _incoming(data_dir: FilePath, key_id: str) -> FilePath:
    return FilePath(data_dir) / INCOMING_DIR / key_id


@router.post(
    "/{table}",
    response_model=DataCommit,
    status_code=201,
    responses=problems(401, 403, 404, 409, 413, 422)
    | {200: {"model": DataCommit, "description": "The batch had been committed before"}},
)
async def append_batch(
    table: Annotated[str, Path(examples=["orders"])],
    body: DataBatch,
    state: StateDep,
    key: DataDep,
) -> JSONResponse:
    """Append a batch of rows to an input table: validated against the table's
    declaration and the store as it is, and committed whole (201), or refused with every
    problem by row and column (422) and nothing written. A batch id commits once: the same
    batch again is answered with its first commit (200)."""
    if table not in TABLES_BY_NAME:
        raise NotFoundError(
            f"no input table {table!r}; tables: {', '.join(TABLES_BY_NAME)}", field="table"
        )
    log = _store(state.settings.data_dir)
    source = f"POST /v1/data/{table} by key {key.key_id}"  # in the commit's metadata
    try:
        files = _incoming(log.data_dir, key.key_id)
        commit = await run_in_threadpool(_append, log, table, body, source, files)
    except TableValidationError as exc:
        found: list[dict[str, object]] = [
            {"row": p.row, "column": p.column, "message": p.message} for p in exc.problems
        ]
        raise InvalidBatchError(
            f"the batch has {len(found)} problem(s); nothing was written (first: "
            f"{exc.problems[0]})",
            found,
        ) from exc
    answer: dict[str, Any] = {
        "table": commit.table,
        "batch_id": commit.batch_id,
        "version": commit.version,
        "rows": commit.rows,
        "recorded_at": commit.recorded_at.isoformat(),
        "written": commit.written,
    }
    return JSONResponse(answer, status_code=201 if commit.written else 200)


def _store(data_dir: FilePath) -> ArrivalLog:
    if not ArrivalLog.present(data_dir):
        raise NoArrivalLogError(
            f"the service reads {data_dir}, a directory of files, not a store with an arrival "
            "log: `agricredit data load` it into a store and serve that"
        )
    return ArrivalLog(data_dir)


@router.put(
    "/files/{name:path}",
    response_model=DataFile,
    status_code=201,
    responses=problems(401, 403, 409, 411, 413, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload_file(
    name: Annotated[str, Path(examples=["scenes/kiambu/S2_20261201.tif"])],
    request: Request,
    state: StateDep,
    key: DataDep,
) -> DataFile:
    """Upload a scene's GeoTIFF (the body, with its Content-Length) for a scenes batch to
    name: `POST /v1/data/scenes` rows whose `path` is `name` take it into the store when
    the batch commits; until then it is kept for the key that sent it, and a file sent
    again under the same name replaces it."""
    if not FILE_NAME.fullmatch(name):
        raise InvalidFileNameError(
            f"{name!r} cannot be a scene's path: give a relative path of letters, digits, "
            "'_', '-' and '.' (no segment starting with '.') ending in .tif or .tiff",
            field="name",
        )
    target = _incoming(_store(state.settings.data_dir).data_dir, key.key_id) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    digest, size = hashlib.sha256(), 0
    try:
        with open(partial, "wb") as out:
            async for chunk in request.stream():  # to disk as it arrives, never whole
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return DataFile(name=name, bytes=size, sha256=digest.hexdigest())
