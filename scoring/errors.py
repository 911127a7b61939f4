"""Domain errors of the service: each carries the HTTP status and stable code its problem
answer gets (scoring/api/errors.py writes the answer)."""

from __future__ import annotations


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


class BadIdempotencyKeyError(ServiceError):
    """An Idempotency-Key header that cannot protect a retry (empty, or only blanks)."""

    status = 400
    code = "idempotency_key_invalid"


def checked_idempotency_key(value: str | None) -> str:
    """The Idempotency-Key as sent. It is required: without one a client's retry (a timeout,
    a dropped connection) would be decided again, a second loan; an empty one would be one
    key shared by every request.

    Raises:
        BadIdempotencyKeyError: no header, or an empty or blank one.
    """
    if value is None or not value.strip():
        raise idempotency_key_refused("missing" if value is None else "empty")
    return value


def idempotency_key_refused(how: str) -> BadIdempotencyKeyError:
    """The refusal of a `how` ("missing", "empty") Idempotency-Key."""
    return BadIdempotencyKeyError(
        f"the Idempotency-Key header is {how}: send a unique key per application (e.g. a "
        "UUID) and the same key when you retry it; a retry then gets the first decision "
        "instead of a second loan",
        field="Idempotency-Key",
    )


class JobNotFinishedError(ServiceError):
    status = 409
    code = "job_not_finished"


class NoNoticeError(ServiceError):
    """The decision has no adverse-action notice (an approval, or a co-op summary)."""

    status = 409
    code = "no_adverse_action"


class ModelRefusedError(ServiceError):
    """A model version that may not be served (ungated, or its files changed)."""

    status = 409
    code = "model_refused"


class UnauthorizedError(ServiceError):
    status = 401
    code = "unauthorized"


class ForbiddenError(ServiceError):
    status = 403
    code = "forbidden"


class LedgerUnavailableError(ServiceError):
    """The ledger cannot record or read just now: nothing was decided or written."""

    status = 503
    code = "ledger_unavailable"


class NotReadyError(ServiceError):
    status = 503
    code = "not_ready"


class InvalidBatchError(ServiceError):
    """A data batch that breaks its table's declaration or the store: every problem."""

    status = 422
    code = "invalid_batch"

    def __init__(self, message: str, problems: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.problems = problems


class InvalidFileNameError(ServiceError):
    """An uploaded file's name that could not be a scene's path in the store."""

    status = 422
    code = "invalid_file_name"


class NoArrivalLogError(ServiceError):
    """The service reads a directory of files, not a store with an arrival log."""

    status = 409
    code = "no_arrival_log"
