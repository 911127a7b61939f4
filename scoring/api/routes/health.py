"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from features import clock
from scoring.api.schemas import Health, Readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
async def read_health() -> dict[str, Any]:
    """The process is alive (touches nothing else); `worker` is its process id."""
    return {"status": "alive", "worker": os.getpid()}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def read_ready(request: Request) -> JSONResponse:
    """Model loaded, ledger reachable and able to commit, data fresh enough: ready for
    traffic (503 and the cause otherwise: after a failed commit, until a probe transaction
    succeeds). The data's as-of time and age are always given."""
    state = getattr(request.app.state, "service", None)
    model = state is not None and state.models.loaded
    ledger = state is not None and state.ledger.ping()
    cannot_commit = state.ledger.writable() if state is not None and ledger else None
    writable = ledger and cannot_commit is None
    as_of, age, fresh, stale, deciding = None, None, True, None, None
    tables: dict[str, dict[str, object]] = {}
    if state is not None:
        source = state.source
        as_of, deciding = source.data_as_of, state.as_of(source).isoformat()
        now = clock.now()
        age = (now - as_of).total_seconds()
        tables = {
            table: {"last_recorded_at": at.isoformat(), "age_seconds": (now - at).total_seconds()}
            for table, at in source.last_arrivals.items()
        }
        limit = state.settings.max_data_age_seconds
        fresh = limit is None or age <= limit
        if not fresh:
            stale = (
                f"the data are as of {as_of.isoformat()}, {age / 86_400:.1f} days ago, older "
                f"than max_data_age_seconds ({limit:g}): append what has arrived"
            )
    body = {
        "model_loaded": model,
        "ledger_reachable": ledger,
        "ledger_writable": writable,
        "data_as_of": None if as_of is None else as_of.isoformat(),
        "data_age_seconds": age,
        "data_fresh": fresh,
        "decisions_as_of": deciding,
        "tables": tables,
        "detail": "; ".join(d for d in (cannot_commit, stale) if d) or None,
    }
    return JSONResponse(body, status_code=200 if model and writable and fresh else 503)


@router.get("/metrics")
def read_metrics(request: Request) -> Response:
    """Prometheus text format."""
    return Response(request.app.state.service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
