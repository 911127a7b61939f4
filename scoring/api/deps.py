"""Dependency aliases: the service state and the caller's key, by role."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from scoring.decide.batcher import DecisionBatcher
from scoring.decide.state import ServiceState
from scoring.ledger.keys import ApiKey, authenticate


async def get_state(request: Request) -> ServiceState:
    """The state the lifespan built."""
    return request.app.state.service


StateDep = Annotated[ServiceState, Depends(get_state)]


async def get_decisions(request: Request) -> DecisionBatcher:
    """The worker's decision batcher."""
    return request.app.state.decisions


DecisionsDep = Annotated[DecisionBatcher, Depends(get_decisions)]


def _role(*roles: str):
    async def dependency(  # async: no thread hop; a key is looked up at most every few s
        state: StateDep, authorization: Annotated[str | None, Header()] = None
    ) -> ApiKey:
        return authenticate(state.ledger.keys, authorization, allowed=roles)

    return dependency


LenderDep = Annotated[ApiKey, Depends(_role("lender"))]
ScientistDep = Annotated[ApiKey, Depends(_role("scientist"))]
ReaderDep = Annotated[ApiKey, Depends(_role("lender", "scientist"))]
CoopOrLenderDep = Annotated[ApiKey, Depends(_role("lender", "coop"))]
