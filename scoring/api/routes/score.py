"""POST /v1/score and GET /v1/decisions/{id}: the lender's decisions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from scoring.api.deps import DecisionsDep, LenderDep, StateDep
from scoring.api.schemas import MAX_IDEMPOTENCY_KEY, Problem, ScoreRequest, ScoreResponse
from scoring.errors import NotFoundError

router = APIRouter(prefix="/v1", tags=["decisions"])
ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": Problem} for s in (401, 403, 404, 413, 422)}


@router.post("/score", response_model=ScoreResponse, responses=ERRORS)
async def create_score(
    body: ScoreRequest,
    decisions: DecisionsDep,
    key: LenderDep,
    idempotency_key: Annotated[str | None, Header(max_length=MAX_IDEMPOTENCY_KEY)] = None,
) -> JSONResponse:
    """Decide an input-loan application: approve, refer or decline, with the probability of
    default, limit, price, due date, payments to suppliers and up to four reasons."""
    # Runs on the event loop: applications arriving together are decided in one batch
    # (scoring/decide/batcher.py) and each awaits the ledger's group commit, holding no thread.
    decided = await decisions.decide(
        body.to_application(), request=body.model_dump(), key=key, idempotency_key=idempotency_key
    )
    return JSONResponse(decided)


@router.get("/decisions/{decision_id}", response_model=ScoreResponse, responses=ERRORS)
def read_decision(decision_id: str, state: StateDep, key: LenderDep) -> dict[str, Any]:
    """A decision this key made (others' decisions are not found)."""
    stored = state.ledger.get(decision_id)
    if stored is None or stored.key_id != key.key_id:
        raise NotFoundError(f"decision {decision_id} not found", field="decision_id")
    response: dict[str, Any] = stored.body["response"]
    return response
