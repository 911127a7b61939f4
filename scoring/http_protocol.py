"""The HTTP connection as uvicorn parses it, with two things uvicorn does not do: a
malformed request (a bad Content-Length, a broken request line) is answered with a
problem document like every other error, and a client gets a deadline for its headers and
one for its body, so half-open or trickling connections do not stay open for ever."""

from __future__ import annotations

import asyncio

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from scoring import ids
from scoring.api.errors import PROBLEM, problem
from scoring.config import get_settings


class ProblemHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with problem-document 400s and read deadlines."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        settings = get_settings()
        # from connecting (or the last response) to the end of the headers; then the body
        self.header_seconds = settings.header_timeout_seconds
        self.body_seconds = settings.body_timeout_seconds
        self._deadline: asyncio.TimerHandle | None = None
        self._arm(self.header_seconds)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        deadline = getattr(self, "_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.cycle is None or not self.cycle.response_started:
            self._send_problem(408, "Request timeout", "the request was not sent in time",
                               "request_timeout")  # fmt: skip
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.header_seconds)

    def on_headers_complete(self) -> None:
        self._arm(self.body_seconds)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._disarm()
        self._send_problem(400, "Malformed request", f"{msg}: send a well-formed HTTP/1.1 "
                           "request", "malformed_request")  # fmt: skip
        self.transport.close()

    def _send_problem(self, status: int, title: str, detail: str, code: str) -> None:
        body = orjson.dumps(problem(status, title, detail, code, ids.request_id()))
        reason = {400: b"Bad Request", 408: b"Request Timeout"}[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, PROBLEM.encode(), len(body), body)
        )
