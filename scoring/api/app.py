"""The FastAPI app: create_app(settings) builds the service; the lifespan loads data, model,
policy and ledger once per worker (after any fork: LightGBM and fork do not mix)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from features.arrival_log import ArrivalLog
from scoring.api.contract import install_error_contract
from scoring.api.docs import add_docs
from scoring.api.errors import add_problem_handlers
from scoring.api.fast_path import SCORE_PATH, ScoreFastPath
from scoring.api.middleware import BodyLimit, Observe
from scoring.api.routes import coops, data, health, models, score
from scoring.config import Settings, get_settings
from scoring.decide.batcher import DecisionBatcher
from scoring.decide.follower import LogFollower
from scoring.decide.state import ServiceState
from scoring.preapproval.runner import JobRunner


class ScoringAPI(FastAPI):
    """The FastAPI app, with POST /v1/score offered first to the fast path (when on), ahead
    of the middleware stack; what the fast path does not answer goes through the stack."""

    fast_path: ScoreFastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.fast_path is not None
            and scope["type"] == "http"
            and scope["path"] == SCORE_PATH
            and scope["method"] == "POST"
        ):
            scope["app"] = self
            return await self.fast_path(scope, receive, send, super().__call__)
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    state: ServiceState | None = None,
    after_start: Callable[[], None] | None = None,
) -> FastAPI:
    """The service. Pass `state` to serve prepared parts (tests); otherwise the lifespan
    builds them from `settings`. `after_start` runs once everything is loaded (the serving
    process settles its interpreter there)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.service = state or ServiceState.build(settings)
        app.state.service.publish_data()
        app.state.decisions = DecisionBatcher(app.state.service)
        app.state.runner = JobRunner(app.state.service)
        app.state.runner.start()  # resumes pre-approvals a stopped worker left unfinished
        served = app.state.service.settings
        follower = None
        follows = ArrivalLog.present(served.data_dir) or served.clock == "now"
        if served.follow_log_seconds > 0 and follows:
            follower = LogFollower(app.state.service, poll_seconds=served.follow_log_seconds)
            follower.start()
        if after_start is not None:
            after_start()
        yield
        if follower is not None:
            follower.stop()
        app.state.runner.stop()
        app.state.decisions.close()
        if state is None:
            app.state.service.ledger.close()

    app = ScoringAPI(
        title="agricredit",
        summary="Order-backed input loans for smallholder farmers: the lender's decision API.",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # served from the package below: no CDN
        redoc_url=None,
        # FastAPI's native OpenTelemetry looks up global providers on every request (14 us
        # per request under load); the service's metrics are its own Prometheus registry
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.include_router(score.router)
    app.include_router(coops.router)
    app.include_router(models.router)
    app.include_router(data.router)
    app.include_router(health.router)
    add_docs(app)
    install_error_contract(app)

    add_problem_handlers(app)
    if settings.score_fast_path:
        app.fast_path = ScoreFastPath(limit=settings.max_body_bytes)
    app.add_middleware(
        BodyLimit,
        limit=settings.max_body_bytes,
        batch_limit=settings.max_batch_body_bytes,
        file_limit=settings.max_file_body_bytes,
    )
    app.add_middleware(Observe)
    return app
