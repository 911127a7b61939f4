"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from scoring.api.schemas import Health, Readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
async def read_health() -> dict[str, Any]:
    """The process is alive (touches nothing else); `worker` is its process id."""
    return {"status": "alive", "worker": os.getpid()}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def read_ready(request: Request) -> JSONResponse:
    """Model loaded, ledger reachable and able to commit: ready for traffic (503 and the
    cause otherwise: after a failed commit, until a probe transaction succeeds)."""
    state = getattr(request.app.state, "service", None)
    model = state is not None and state.models.loaded
    ledger = state is not None and state.ledger.ping()
    cannot_commit = state.ledger.writable() if state is not None and ledger else None
    writable = ledger and cannot_commit is None
    body = {
        "model_loaded": model,
        "ledger_reachable": ledger,
        "ledger_writable": writable,
        "detail": cannot_commit,
    }
    return JSONResponse(body, status_code=200 if model and writable else 503)


@router.get("/metrics")
def read_metrics(request: Request) -> Response:
    """Prometheus text format."""
    return Response(request.app.state.service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
