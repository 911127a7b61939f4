"""Every error answer is a problem document (RFC 9457) naming the request it answers:
domain errors by their status and code, invalid bodies by the fields at fault, and
anything unforeseen as a generic 500 whose detail goes to the log only."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from scoring.errors import ServiceError, idempotency_key_refused

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


def problem(
    status: int, title: str, detail: str, code: str, request_id: str, field: str | None = None
) -> dict[str, Any]:
    """The body of an error answer (RFC 9457), naming the request it answers."""
    return {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "field": field,
        "request_id": request_id,
    }


def service_problem(exc: ServiceError, request_id: str) -> dict[str, Any]:
    """The problem document of a domain error: its status, stable code and field."""
    title = exc.code.replace("_", " ").capitalize()
    body = problem(exc.status, title, exc.message, exc.code, request_id, exc.field)
    problems = getattr(exc, "problems", None)
    if problems is not None:  # a data batch's every problem (RFC 9457 extension member)
        body["problems"] = problems
    return body


def internal_error(request_id: str) -> dict[str, Any]:
    """What an unexpected failure answers: no detail beyond the request id to quote."""
    return problem(
        500, "Internal error", "the service failed; quote the request id", "internal_error",
        request_id,
    )  # fmt: skip


def _answer(
    status: int, title: str, detail: str, code: str, request: Request, field: str | None = None
) -> JSONResponse:
    body = problem(status, title, detail, code, request.state.request_id, field)
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    # the request's own spelling of a field: inputs[0].supplier_id
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_FRAMEWORK = {
    400: ("malformed_body", "the body is not a JSON document this service can read: send "
          "UTF-8 JSON, numbers of at most 4300 digits, nested at most a few hundred deep"),
    404: ("not_found", "no such route; /docs lists every route"),
    405: ("method_not_allowed", "this route does not take that method; the Allow header "
          "names those it takes"),
}  # fmt: skip


def _missing_idempotency_key(error: dict[str, Any]) -> bool:
    return error.get("type") == "missing" and tuple(error.get("loc", ())) == (
        "header",
        "idempotency-key",
    )


def add_problem_handlers(app: FastAPI) -> None:
    """Answer domain errors, invalid bodies and unexpected failures with problem bodies."""

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        body = service_problem(exc, request.state.request_id)
        return JSONResponse(body, status_code=exc.status, media_type=PROBLEM)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        if any(_missing_idempotency_key(e) for e in exc.errors()):
            refused = idempotency_key_refused("missing")  # 400, as for an empty one
            body = service_problem(refused, request.state.request_id)
            return JSONResponse(body, status_code=refused.status, media_type=PROBLEM)
        first = exc.errors()[0] if exc.errors() else {}
        where = _field(first.get("loc", ()))
        detail = "; ".join(f"{_field(e.get('loc', ())) or 'body'}: {e.get('msg')}"
                           for e in exc.errors()[:10])  # fmt: skip
        return _answer(422, "Invalid request", detail, "invalid_request", request, where or None)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # the framework's own answers: unknown path, wrong method, a body it cannot parse
        code, detail = _FRAMEWORK.get(exc.status_code, ("http_error", str(exc.detail)))
        body = problem(exc.status_code, str(exc.detail), detail, code, request.state.request_id)
        return JSONResponse(body, exc.status_code, headers=exc.headers, media_type=PROBLEM)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, _exc: Exception) -> JSONResponse:
        log.exception("request %s failed", request.state.request_id)
        return JSONResponse(
            internal_error(request.state.request_id), status_code=500, media_type=PROBLEM
        )
