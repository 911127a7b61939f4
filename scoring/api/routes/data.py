"""POST /v1/data/{table}: a platform feed's batch, committed whole to the arrival log."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Path
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from features.arrival_log import ArrivalLog, Commit
from features.boundaries import feed_field_boundaries
from features.errors import TableValidationError
from features.tables import FIELDS, TABLES_BY_NAME
from scoring.api.contract import problems
from scoring.api.deps import DataDep, StateDep
from scoring.api.schemas import DataBatch, DataCommit
from scoring.errors import InvalidBatchError, NoArrivalLogError, NotFoundError

router = APIRouter(prefix="/v1/data", tags=["data"])


def _append(log: ArrivalLog, table: str, body: DataBatch, source: str) -> Commit:
    if table != FIELDS.name:
        return log.append(table, pd.DataFrame(body.rows), batch_id=body.batch_id, source=source)
    # fields: each row's polygon a GeoJSON geometry (WGS 84), read as a GeoJSON file is
    boundaries = feed_field_boundaries(body.rows, f"batch {body.batch_id} ({source})")
    if boundaries.problems:
        raise TableValidationError(boundaries.problems)
    return log.append(table, boundaries.properties, batch_id=body.batch_id, source=source,
                      geometry=boundaries.geometry, crs=boundaries.crs)  # fmt: skip


# scenes come with their rasters: `agricredit data append` takes them
WITH_FILES = ("scenes",)


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
    if table in WITH_FILES:
        raise NotFoundError(
            f"{table} come with their raster files; append them with `agricredit data append`",
            field="table",
        )
    data_dir = state.settings.data_dir
    if not ArrivalLog.present(data_dir):
        raise NoArrivalLogError(
            f"the service reads {data_dir}, a directory of files, not a store with an arrival "
            "log: `agricredit data load` it into a store and serve that"
        )
    log = ArrivalLog(data_dir)
    source = f"POST /v1/data/{table} by key {key.key_id}"  # in the commit's metadata
    try:
        commit = await run_in_threadpool(_append, log, table, body, source)
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
