"""POST /v1/score and GET /v1/decisions/{id}: the lender's decisions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from scoring.deps import LenderDep, StateDep
from scoring.engine import Application, InputLine, check_application, evaluate_applications
from scoring.errors import NotFoundError
from scoring.schemas import Problem, ScoreRequest, ScoreResponse

router = APIRouter(prefix="/v1", tags=["decisions"])
ERRORS = {s: {"model": Problem} for s in (401, 403, 404, 413, 422)}


def _response(outcome, *, decision_id: str, model, policy_version: str) -> dict:
    d = outcome.decision
    reasons = [{"code": r.code, "text": r.text, "contribution": None} for r in d.policy_reasons]
    reasons += [
        {"code": r.code, "text": r.text, "contribution": round(r.contribution, 6)}
        for r in outcome.reasons
    ]
    return {
        "decision_id": decision_id,
        "application_id": outcome.application.application_id,
        "decision": d.decision,
        "probability_of_default": round(outcome.pd, 6),
        "score": outcome.points,
        "band": outcome.band,
        "limit_minor": d.limit_minor if d.decision != "decline" else 0,
        "annual_rate": d.annual_rate if d.decision != "decline" else None,
        "due_at": d.due_at.isoformat()
        if d.due_at is not None and d.decision != "decline"
        else None,
        "disbursements": outcome.disbursements,
        "reasons": reasons[:4],
        "model": {"name": model.name, "version": model.version},
        "policy_version": policy_version,
        "features_as_of": outcome.as_of.isoformat(),
        "data_quality_flags": outcome.flags,
    }


@router.post("/score", response_model=ScoreResponse, responses=ERRORS)
async def create_score(
    body: ScoreRequest,
    state: StateDep,
    key: LenderDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> dict:
    """Decide an input-loan application: approve, refer or decline, with the probability of
    default, limit, price, due date, payments to suppliers and up to four reasons."""
    # Runs on the event loop: the decision is a fraction of a millisecond of CPU, and the
    # ledger commit is awaited (group commit), so no request holds a thread.
    if idempotency_key is not None:  # a retry gets the stored decision, not a new one
        stored_id = state.ledger.replay(
            key_id=key.key_id, idempotency_key=idempotency_key, request=body.model_dump()
        )
        if stored_id is not None:
            return state.ledger.get(stored_id).body["response"]
    model = state.models.current  # one reference: this request uses this version throughout
    app = Application(
        application_id=body.application_id or f"APP-{uuid.uuid4().hex[:12]}",
        farmer_id=body.farmer_id,
        contract_id=body.contract_id,
        requested_minor=body.requested_minor,
        lines=tuple(InputLine(i.supplier_id, i.item, i.amount_minor) for i in body.inputs),
    )
    check_application(app, state.source)
    outcome = evaluate_applications(
        [app], source=state.source, model=model.bundle, policy=state.policy, as_of=state.as_of()
    )[0]
    decision_id = str(uuid.uuid4())
    response = _response(
        outcome, decision_id=decision_id, model=model, policy_version=state.policy.version
    )
    record = {
        "response": response,
        "request": body.model_dump(),
        "model_sha256": model.bundle.sha256,
        "feature_vector": outcome.features,
    }
    stored_id, written = await state.ledger.record_async(
        key_id=key.key_id,
        idempotency_key=idempotency_key,
        request=body.model_dump(),
        bodies=[(decision_id, "score", record)],
    )
    if not written:  # the same request with the same key: the decision already made
        return state.ledger.get(stored_id).body["response"]
    state.metrics.decisions.labels(outcome.decision.decision).inc()
    return JSONResponse(response)  # built to the schema above: not validated a second time


@router.get("/decisions/{decision_id}", response_model=ScoreResponse, responses=ERRORS)
def read_decision(decision_id: str, state: StateDep, key: LenderDep) -> dict:
    """A decision this key made (others' decisions are not found)."""
    stored = state.ledger.get(decision_id)
    if stored is None or stored.key_id != key.key_id:
        raise NotFoundError(f"decision {decision_id} not found", field="decision_id")
    return stored.body["response"]
