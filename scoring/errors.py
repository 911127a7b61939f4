"""Domain errors of the service and how each becomes an HTTP problem (RFC 9457)."""

from __future__ import annotations

PROBLEM = "application/problem+json"


def problem(
    status: int, title: str, detail: str, code: str, request_id: str, field: str | None = None
) -> dict:
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


def internal_error(request_id: str) -> dict:
    """What an unexpected failure answers: no detail beyond the request id to quote."""
    return problem(
        500, "Internal error", "the service failed; quote the request id", "internal_error",
        request_id,
    )  # fmt: skip


class ServiceError(Exception):
    """An error the client can act on: HTTP status, a stable code and a clear message."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFoundError(ServiceError):
    status = 404
    code = "not_found"


class InvalidApplicationError(ServiceError):
    status = 422
    code = "invalid_application"


class IdempotencyConflictError(ServiceError):
    status = 422
    code = "idempotency_key_reused"


class JobNotFinishedError(ServiceError):
    status = 409
    code = "job_not_finished"


class UnauthorizedError(ServiceError):
    status = 401
    code = "unauthorized"


class ForbiddenError(ServiceError):
    status = 403
    code = "forbidden"


class NotReadyError(ServiceError):
    status = 503
    code = "not_ready"
