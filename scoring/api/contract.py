"""What the OpenAPI document promises for errors: every status a route answers, each error
as `application/problem+json` with the Problem schema (never the framework's own
validation schema), and the answers every route can give (a request deadline, a failure)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from scoring.api.schemas import Problem

PROBLEM_MEDIA = "application/problem+json"
WHAT = {
    400: "Malformed request, or a missing or empty Idempotency-Key",
    401: "No API key, or one that is not valid or has been revoked",
    403: "A valid key of a role this route does not take",
    404: "Not found, or not yours (another organisation's)",
    408: "The request's headers or body did not arrive in time",
    409: "Conflicts with the current state (see the problem's code)",
    411: "A file sent without its Content-Length",
    413: "The body is larger than the service takes",
    422: "The body does not validate, or the Idempotency-Key was used with another body",
    500: "The service failed; quote the request id",
    503: "The ledger cannot record the request now; retry with the same Idempotency-Key",
}
EVERY_ROUTE = (408, 500)  # the HTTP protocol's deadlines and an unexpected failure


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=` for the error statuses it answers."""
    return {s: {"model": Problem, "description": WHAT[s]} for s in statuses}


def install_error_contract(app: FastAPI) -> None:
    """Build the app's OpenAPI document once, with errors as problem documents."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        problem_ref = {"$ref": "#/components/schemas/Problem"}
        for operations in spec.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for status in EVERY_ROUTE:
                    responses.setdefault(
                        str(status),
                        {"description": WHAT[status], "content": {"application/json": {}}},
                    )
                for status, response in responses.items():
                    if int(status) < 400:
                        continue
                    content = response.get("content", {})
                    schema = content.get("application/json", {}).get("schema", problem_ref)
                    if schema.get("$ref", "").endswith(("/Problem", "/HTTPValidationError")):
                        response["content"] = {PROBLEM_MEDIA: {"schema": problem_ref}}
                        response["description"] = WHAT.get(int(status), response["description"])
        schemas = spec.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
