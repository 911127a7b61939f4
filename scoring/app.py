"""The FastAPI app: create_app(settings) builds the service; the lifespan loads data, model,
policy and ledger once per worker (after any fork: LightGBM and fork do not mix)."""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from scoring import ids
from scoring.config import Settings, get_settings
from scoring.decisions import DecisionBatcher
from scoring.errors import PROBLEM, ServiceError, internal_error, problem
from scoring.fast_path import SCORE_PATH, ScoreFastPath, replay
from scoring.feature_source import FeatureSource
from scoring.jobs import JobRunner
from scoring.ledger.repo import Ledger
from scoring.metrics import ServiceMetrics
from scoring.model_store import ModelStore
from scoring.policy import load_policy
from scoring.routes import coops, health, models, score
from scoring.state import ServiceState

log = logging.getLogger(__name__)
# the ledger writer waits for the GIL while the event loop decides; Python's default 5 ms
# turn would add up to 5 ms to every commit's answer under load
SWITCH_INTERVAL_S = 0.0005


def _problem(
    status: int, title: str, detail: str, code: str, request: Request, field: str | None = None
) -> JSONResponse:
    body = problem(status, title, detail, code, request.state.request_id, field)
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def build_state(settings: Settings) -> ServiceState:
    """Load everything a worker serves from."""
    ledger = Ledger(settings.ledger_url)
    ledger.migrate()
    store = ModelStore(settings.model_ref)
    served = store.load()
    metrics = ServiceMetrics()
    metrics.serve_model(served.name, served.version)
    state = ServiceState(
        settings=settings,
        source=FeatureSource.load(settings.data_dir),
        models=store,
        policy=load_policy(settings.policy_path),
        ledger=ledger,
        metrics=metrics,
    )
    # the loaded data are millions of long-lived objects: keep the collector from walking
    # them on every full collection (pauses of tens of ms per request, seconds per batch)
    gc.freeze()
    return state


class BodyLimit:
    """Refuse bodies over `limit` bytes with 413 before they reach a handler; paths under
    `batch_prefix` (co-op member lists) may send up to `batch_limit`."""

    def __init__(
        self, app, limit: int, *, batch_limit: int | None = None, batch_prefix: str = "/v1/coops/"
    ) -> None:
        self.app, self.default = app, limit
        self.batch_limit, self.batch_prefix = batch_limit or limit, batch_prefix

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        batch = scope.get("path", "").startswith(self.batch_prefix)
        limit = self.batch_limit if batch else self.default
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:  # the HTTP parser holds the client to what it declared
            if length.isdigit() and int(length) > limit:
                return await self._refuse(scope, send, limit)
            return await self.app(scope, receive, send)
        # A body of unknown length (chunked) is read here first: refused while a handler
        # reads it, it would become that handler's error (FastAPI answers 400, not 413).
        messages, seen = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > limit:
                return await self._refuse(scope, send, limit)
            if not message.get("more_body", False):
                break
        return await self.app(scope, replay(messages, receive), send)

    @staticmethod
    async def _refuse(scope, send, limit: int) -> None:
        request_id = scope.get("state", {}).get("request_id", "")  # Observe's, outside this
        body = orjson.dumps(
            problem(
                413,
                "Request body too large",
                f"send at most {limit} bytes",
                "body_too_large",
                request_id,
            )
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", PROBLEM.encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


class Observe:
    """Give every request an id (echoed as x-request-id) and count it with its latency by
    route and status. Plain ASGI: no extra task or body copy per request."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        sent = next((v for n, v in scope.get("headers") or [] if n == b"x-request-id"), None)
        request_id = ids.request_id(sent)  # the first of repeated headers, as the fast path
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def sending(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            service = getattr(scope["app"].state, "service", None) if "app" in scope else None
            if service is not None:
                path = getattr(scope.get("route"), "path", "unmatched")
                method = scope["method"]
                service.metrics.observe_request(path, method, status, time.perf_counter() - started)


class ScoringAPI(FastAPI):
    """The FastAPI app, with POST /v1/score offered first to the fast path (when on), ahead
    of the middleware stack; what the fast path does not answer goes through the stack."""

    fast_path: ScoreFastPath | None = None

    async def __call__(self, scope, receive, send) -> None:
        if (
            self.fast_path is not None
            and scope["type"] == "http"
            and scope["path"] == SCORE_PATH
            and scope["method"] == "POST"
        ):
            scope["app"] = self
            return await self.fast_path(scope, receive, send, super().__call__)
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, *, state: ServiceState | None = None) -> FastAPI:
    """The service. Pass `state` to serve prepared parts (tests); otherwise the lifespan
    builds them from `settings`."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.service = state or build_state(settings)
        app.state.decisions = DecisionBatcher(app.state.service)
        app.state.runner = JobRunner(app.state.service)
        app.state.runner.start()  # resumes pre-approvals a stopped worker left unfinished
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        yield
        app.state.runner.stop()
        if state is None:
            app.state.service.ledger.close()

    app = ScoringAPI(
        title="agricredit",
        summary="Order-backed input loans for smallholder farmers: the lender's decision API.",
        version="1",
        lifespan=lifespan,
        # FastAPI's native OpenTelemetry looks up global providers on every request (14 us
        # per request under load); the service's metrics are its own Prometheus registry
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.include_router(score.router)
    app.include_router(coops.router)
    app.include_router(models.router)
    app.include_router(health.router)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return _problem(
            exc.status,
            exc.code.replace("_", " ").capitalize(),
            exc.message,
            exc.code,
            request,
            exc.field,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
            for e in exc.errors()[:10]
        )
        return _problem(422, "Invalid request", detail, "invalid_request", request, where or None)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, _exc: Exception) -> JSONResponse:
        log.exception("request %s failed", request.state.request_id)
        return JSONResponse(
            internal_error(request.state.request_id), status_code=500, media_type=PROBLEM
        )

    if settings.score_fast_path:
        app.fast_path = ScoreFastPath(limit=settings.max_body_bytes)
    app.add_middleware(
        BodyLimit, limit=settings.max_body_bytes, batch_limit=settings.max_batch_body_bytes
    )
    app.add_middleware(Observe)
    return app
