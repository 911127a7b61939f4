"""POST /v1/score without the framework's per-request machinery, for well-formed requests.

FastAPI resolves a route's dependencies, headers and body anew on every request, and each
layer of its middleware stack wraps the request again; for the score route that cost more
CPU than deciding the application (measured with py-spy under load, docs/scoring.md). The
app offers every POST /v1/score here first, ahead of the stack (`ScoringAPI`). A request
whose JSON body validates as a `ScoreRequest` and whose key is a lender's is answered here
by the same steps as the route (the same model, `caller_key` and
`DecisionBatcher.decide`), with what the stack's layers would add: the request id, the
metrics, the body limit and the generic answer to an unexpected failure. Everything else
goes, unchanged, through the stack to the route: a body that is too large, does not parse
or does not validate, a missing or wrong key, a missing, empty or reused Idempotency-Key,
an application that cannot be decided. The route alone writes those error answers, so the two never
disagree on one; neither path writes anything before it has decided.
"""

from __future__ import annotations

import logging
import time

import orjson
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from scoring import ids
from scoring.api.deps import caller_key
from scoring.api.errors import PROBLEM, internal_error
from scoring.api.middleware import read_body, replay
from scoring.api.schemas import MAX_IDEMPOTENCY_KEY, ScoreRequest
from scoring.errors import ServiceError

log = logging.getLogger(__name__)
SCORE_PATH = "/v1/score"
_JSON = b"application/json"


class ScoreFastPath:
    """Answers the POST /v1/score requests it can; `limit` is the body limit in bytes."""

    def __init__(self, *, limit: int) -> None:
        self.limit = limit

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, framework: ASGIApp
    ) -> None:
        """Answer the request, or hand it to `framework` (the app's middleware stack)."""
        started = time.perf_counter()
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)  # the first of repeated headers, as the route
        length = headers.get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.limit:
            return await framework(scope, receive, send)  # the stack refuses or reads it
        read = await read_body(receive, self.limit)
        request_id = ids.request_id(headers.get(b"x-request-id"))
        status, answer = 200, None
        if read.complete:
            try:
                answer = await self._answer(scope, headers, read.body)
            except Exception:  # the route's generic answer to what nobody foresaw
                log.exception("request %s failed", request_id)
                status, answer = 500, orjson.dumps(internal_error(request_id))
        if answer is None:
            return await framework(scope, replay(read.messages, receive), send)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", _JSON if status == 200 else PROBLEM.encode()),
                    (b"content-length", str(len(answer)).encode()),
                    (b"x-request-id", request_id.encode("latin-1")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})
        metrics = scope["app"].state.service.metrics
        metrics.observe_request(SCORE_PATH, "POST", status, time.perf_counter() - started)

    async def _answer(self, scope: Scope, headers: dict[bytes, bytes], body: bytes) -> bytes | None:
        """The decision's JSON, or None when the route should answer instead."""
        if headers.get(b"content-type", b"").split(b";")[0].strip() != _JSON:
            return None
        idempotency_key = headers.get(b"idempotency-key")
        if (
            idempotency_key is None
            or len(idempotency_key) > MAX_IDEMPOTENCY_KEY
            or not idempotency_key.strip()
        ):
            return None
        try:
            request = ScoreRequest.model_validate(orjson.loads(body))
        except (orjson.JSONDecodeError, ValidationError):
            return None
        app = scope["app"]
        service = app.state.service
        authorization = headers.get(b"authorization")
        try:
            key = await caller_key(
                service.ledger.keys,
                authorization.decode("latin-1") if authorization is not None else None,
                allowed=("lender",),
            )
            response = await app.state.decisions.decide(
                request.to_application(),
                request=request.model_dump(),
                key=key,
                idempotency_key=idempotency_key.decode("latin-1"),
            )
        except ServiceError:
            return None
        service.metrics.fast_path.inc()
        return orjson.dumps(response)
