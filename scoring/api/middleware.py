"""The app's two layers of plain ASGI middleware, and the one body reader they and the
score fast path share: no extra task or body copy per request."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scoring import ids
from scoring.api.deps import caller_key
from scoring.api.errors import PROBLEM, problem, service_problem
from scoring.errors import ServiceError
from scoring.ledger.keys import Role

# the routes that take large bodies, and who may send one (routes/coops.py, routes/data.py)
BATCH_ROUTES: dict[str, tuple[Role, ...]] = {
    "/v1/coops/": ("lender", "coop"),
    "/v1/data/": ("data",),
}
FILE_ROUTE = "/v1/data/files/"  # a scene's raster: up to the file limit


@dataclass
class ReadBody:
    """A request body as read so far: the ASGI messages (to hand on unread) and the bytes."""

    messages: list[Message]
    body: bytes
    complete: bool  # the whole body arrived within the limit
    too_large: bool


async def read_body(receive: Receive, limit: int) -> ReadBody:
    """Read a request's body, stopping as soon as it passes `limit` bytes."""
    messages: list[Message] = []
    body = b""
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return ReadBody(messages, body, complete=False, too_large=False)
        body += message.get("body", b"")
        if len(body) > limit:
            return ReadBody(messages, body, complete=False, too_large=True)
        if not message.get("more_body", False):
            return ReadBody(messages, body, complete=True, too_large=False)


def replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that gives the messages already read, then the connection's own."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


class BodyLimit:
    """Refuse bodies over `limit` bytes with 413 before they reach a handler; paths under
    a BATCH_ROUTES prefix (co-op member lists, data batches) may send up to `batch_limit`."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        *,
        batch_limit: int | None = None,
        file_limit: int | None = None,
    ) -> None:
        self.app, self.default = app, limit
        self.batch_limit = batch_limit or limit
        self.file_limit = file_limit or self.batch_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self._limit(scope.get("path", ""))
        refused = await self._refused(scope, limit)
        if refused is not None:
            return await _send_problem(send, refused)
        if dict(scope.get("headers") or []).get(b"content-length") is not None:
            return await self.app(scope, receive, send)  # the HTTP parser holds the client to it
        # A body of unknown length (chunked) is read here first: refused while a handler
        # reads it, it would become that handler's error (FastAPI answers 400, not 413).
        read = await read_body(receive, limit)
        if read.too_large:
            return await _send_problem(send, _too_large(scope, limit))
        return await self.app(scope, replay(read.messages, receive), send)

    def _limit(self, path: str) -> int:
        if path.startswith(FILE_ROUTE):
            return self.file_limit
        batch = any(path.startswith(prefix) for prefix in BATCH_ROUTES)
        return self.batch_limit if batch else self.default

    async def _refused(self, scope: Scope, limit: int) -> dict[str, Any] | None:
        """The problem answer for a request refused before its body is read, or None."""
        path = scope.get("path", "")
        roles = next((r for prefix, r in BATCH_ROUTES.items() if path.startswith(prefix)), None)
        if roles is not None and limit > self.default:
            # who may send a large body is known before any of it is read: an unknown
            # sender's 16 MiB is refused unread, not parsed
            refused = await _unauthorised(scope, roles)
            if refused is not None:
                return refused
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return _too_large(scope, limit)
        if length is None and path.startswith(FILE_ROUTE) and scope.get("method") == "PUT":
            # a raster is streamed to disk, never held here: its length must be declared
            request_id = scope.get("state", {}).get("request_id", "")
            return problem(411, "Length required", "send the file with a Content-Length header",
                           "length_required", request_id)  # fmt: skip
        return None


def _too_large(scope: Scope, limit: int) -> dict[str, Any]:
    request_id = scope.get("state", {}).get("request_id", "")  # Observe's, outside this
    return problem(
        413, "Request body too large", f"send at most {limit} bytes", "body_too_large", request_id
    )


async def _unauthorised(scope: Scope, roles: tuple[Role, ...]) -> dict[str, Any] | None:
    """The problem answer for a request without a key of the route's roles, or None."""
    service = getattr(scope["app"].state, "service", None) if "app" in scope else None
    if service is None:
        return None  # not started yet: the route answers 503
    header = dict(scope.get("headers") or []).get(b"authorization")
    try:
        await caller_key(service.ledger.keys, header.decode("latin-1") if header else None,
                         allowed=roles)  # fmt: skip
    except ServiceError as exc:
        return service_problem(exc, scope.get("state", {}).get("request_id", ""))
    return None


async def _send_problem(send: Send, body: dict[str, Any]) -> None:
    text = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": body["status"],
            "headers": [
                (b"content-type", PROBLEM.encode()),
                (b"content-length", str(len(text)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": text})


class Observe:
    """Give every request an id (echoed as x-request-id) and count it with its latency by
    route and status. Plain ASGI: no extra task or body copy per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        sent = next((v for n, v in scope.get("headers") or [] if n == b"x-request-id"), None)
        request_id = ids.request_id(sent)  # the first of repeated headers, as the fast path
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
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
