"""POST /v1/score without the framework's per-request machinery, for well-formed requests.

FastAPI resolves a route's dependencies, headers and body anew on every request; for the
score route that costs more CPU than deciding the application (measured with py-spy under
load, docs/scoring.md). This middleware answers a request whose JSON body validates as a
`ScoreRequest` and whose key is a lender's by the same steps as the route (the same model,
`authenticate` and `DecisionBatcher.decide`), and hands everything else, unchanged, to the
route: a body that does not parse or validate, a missing or wrong key, an application that
cannot be decided, a reused Idempotency-Key. The route alone writes every error answer, so
the two never disagree on one; neither path writes anything before it has decided.
"""

from __future__ import annotations

import orjson
from pydantic import ValidationError

from scoring.auth import authenticate
from scoring.errors import ServiceError
from scoring.schemas import MAX_IDEMPOTENCY_KEY, ScoreRequest

SCORE_PATH = "/v1/score"


class ScoreFastPath:
    """Plain-ASGI middleware in front of the router; `route` labels the requests it answers
    in metrics as the route would be labelled."""

    def __init__(self, app, route) -> None:
        self.app = app
        self.route = route

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != SCORE_PATH:
            return await self.app(scope, receive, send)
        messages, body = [], b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        answer = await self._answer(scope, body) if messages[-1]["type"] == "http.request" else None
        if answer is None:
            return await self.app(scope, _replay(messages, receive), send)
        scope["route"] = self.route
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(answer)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    async def _answer(self, scope, body: bytes) -> bytes | None:
        """The decision's JSON, or None when the route should answer instead."""
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)  # the first of repeated headers, as the route
        if headers.get(b"content-type", b"").split(b";")[0].strip() != b"application/json":
            return None
        idempotency_key = headers.get(b"idempotency-key")
        if idempotency_key is not None and len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
            return None
        try:
            request = ScoreRequest.model_validate(orjson.loads(body))
        except (orjson.JSONDecodeError, ValidationError):
            return None
        app = scope["app"]
        service = app.state.service
        authorization = headers.get(b"authorization")
        try:
            key = authenticate(
                service.ledger,
                authorization.decode("latin-1") if authorization is not None else None,
                allowed=("lender",),
            )
            response = await app.state.decisions.decide(
                request,
                key,
                idempotency_key.decode("latin-1") if idempotency_key is not None else None,
            )
        except ServiceError:
            return None
        service.metrics.fast_path.inc()
        return orjson.dumps(response)


def _replay(messages: list[dict], receive):
    """A receive that gives the messages already read, then the connection's own."""
    pending = list(messages)

    async def replayed() -> dict:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
