"""Dependency aliases: the service state and the caller's key, by role."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from scoring.api.schemas import MAX_IDEMPOTENCY_KEY
from scoring.decide.batcher import DecisionBatcher
from scoring.decide.state import ServiceState
from scoring.ledger.keys import ApiKey, KeyStore, Role, check_role, secret_of


async def get_state(request: Request) -> ServiceState:
    """The state the lifespan built."""
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]


async def get_decisions(request: Request) -> DecisionBatcher:
    """The worker's decision batcher."""
    batcher: DecisionBatcher = request.app.state.decisions
    return batcher


DecisionsDep = Annotated[DecisionBatcher, Depends(get_decisions)]


async def caller_key(store: KeyStore, header: str | None, *, allowed: tuple[Role, ...]) -> ApiKey:
    """The key presented as `Authorization: Bearer <key>`, if it has one of the roles: from
    the keys trusted a moment ago (no database, no thread), else looked up on a thread.

    Raises:
        UnauthorizedError: no key, or not an active key.
        ForbiddenError: a valid key of another role.
    """
    secret = secret_of(header)
    key = store.cached(secret)
    if key is None:
        key = await run_in_threadpool(store.find, secret)
    return check_role(key, allowed=allowed)


# declared in OpenAPI as the bearer scheme (the docs' Authorize button); missing or wrong
# keys are answered by caller_key's own 401 problem, not the scheme's
BEARER = HTTPBearer(auto_error=False, description="the API key of your organisation")


def _role(*roles: Role) -> Callable[..., Awaitable[ApiKey]]:
    async def dependency(
        state: StateDep,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)] = None,
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> ApiKey:
        return await caller_key(state.ledger.keys, authorization, allowed=roles)

    return dependency


# required: a retry without it would be decided again (a second loan); a missing one is
# answered 400 by the validation handler, like an empty one
IdempotencyKeyHeader = Annotated[
    str,
    Header(
        max_length=MAX_IDEMPOTENCY_KEY,
        description="A unique key per application or run (e.g. a UUID), the same on every "
        "retry: a retry gets the first answer, never a second decision. Keys belong to your "
        "organisation and outlive a rotated API key.",
        examples=["3f0c9a52-6d1e-4b7a-9e0b-2f4c1d8a7b60"],
    ),
]

LenderDep = Annotated[ApiKey, Depends(_role("lender"))]
ScientistDep = Annotated[ApiKey, Depends(_role("scientist"))]
ReaderDep = Annotated[ApiKey, Depends(_role("lender", "scientist"))]
CoopOrLenderDep = Annotated[ApiKey, Depends(_role("lender", "coop"))]
DataDep = Annotated[ApiKey, Depends(_role("data"))]
