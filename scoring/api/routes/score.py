"""POST /v1/score, GET /v1/decisions/{id} and its notice: the lender's decisions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from scoring.api.contract import problems
from scoring.api.deps import DecisionsDep, IdempotencyKeyHeader, LenderDep, StateDep
from scoring.api.schemas import (
    CoopBatchRecord,
    MemberDecisionRecord,
    NoticePublic,
    ScoreRequest,
    ScoreResponse,
)
from scoring.decide.notice import adverse_action_notice
from scoring.decide.state import ServiceState
from scoring.errors import NoNoticeError, NotFoundError, checked_idempotency_key
from scoring.ledger.keys import ApiKey
from scoring.ledger.repo import StoredDecision

router = APIRouter(prefix="/v1", tags=["decisions"])


@router.post(
    "/score", response_model=ScoreResponse, responses=problems(400, 401, 403, 404, 413, 422, 503)
)
async def create_score(
    body: ScoreRequest,
    decisions: DecisionsDep,
    key: LenderDep,
    idempotency_key: IdempotencyKeyHeader,
) -> JSONResponse:
    """Decide an input-loan application: approve, refer or decline, with the probability of
    default, limit, price, due date, payments to suppliers and up to four reasons."""
    # Runs on the event loop: applications arriving together are decided in one batch
    # (scoring/decide/batcher.py) and each awaits the ledger's group commit, holding no thread.
    decided = await decisions.decide(
        body.to_application(),
        request=body.model_dump(),
        key=key,
        idempotency_key=checked_idempotency_key(idempotency_key),
    )
    return JSONResponse(decided)


@router.get(
    "/decisions/{decision_id}",
    response_model=ScoreResponse | MemberDecisionRecord | CoopBatchRecord,
    responses=problems(401, 403, 404),
)
def read_decision(decision_id: str, state: StateDep, key: LenderDep) -> dict[str, Any]:
    """A decision your organisation made (with any of its keys, revoked ones too), as
    recorded: an application's (as `POST /v1/score` answered it), a co-op member's
    pre-approval, or a pre-approval's co-op summary. Others' decisions are not found."""
    return decision_view(_own(state, key, decision_id))


@router.get(
    "/decisions/{decision_id}/notice",
    response_model=NoticePublic,
    responses=problems(401, 403, 404, 409),
)
def read_notice(decision_id: str, state: StateDep, key: LenderDep) -> dict[str, Any]:
    """The adverse-action notice of a declined or referred decision, in plain words: the
    decision, its principal reasons, the counteroffer and the data it used (409 for an
    approval or a co-op summary)."""
    stored = _own(state, key, decision_id)
    if stored.kind == "coop_batch":
        raise NoNoticeError(
            f"{decision_id} is a co-op summary; ask for a member's decision's notice",
            field="decision_id",
        )
    try:
        return adverse_action_notice(notice_record(stored))
    except ValueError as exc:
        raise NoNoticeError(str(exc), field="decision_id") from exc


def _own(state: ServiceState, key: ApiKey, decision_id: str) -> StoredDecision:
    stored = state.ledger.get(decision_id)
    if stored is None or stored.org_id != key.org_id:
        raise NotFoundError(f"decision {decision_id} not found", field="decision_id")
    return stored


def decision_view(stored: StoredDecision) -> dict[str, Any]:
    """The public view of a recorded decision of any kind."""
    body = stored.body
    if stored.kind == "score":
        response: dict[str, Any] = body["response"]
        return response
    common = {
        "decision_id": stored.decision_id,
        "kind": stored.kind,
        "job_id": body["job_id"],
        "coop_id": body["coop_id"],
        "contract_id": body["contract_id"],
    }
    if stored.kind == "preapproval":
        return common | {
            "member": body["member"],
            "model": body["model"],
            "policy_version": body["policy_version"],
        }
    return common | {"summary": body["summary"]}


def notice_record(stored: StoredDecision) -> dict[str, Any]:
    """A score's or a member's recorded decision in the shape the notice reads."""
    if stored.kind == "score":
        response: dict[str, Any] = stored.body["response"]
        return response
    body = stored.body
    member: dict[str, Any] = body["member"]
    return member | {
        "application_id": f"{body['job_id']}:{member['farmer_id']}",
        "features_as_of": body.get("features_as_of") or stored.created_at,
        "model": body["model"],
        "policy_version": body["policy_version"],
    }
