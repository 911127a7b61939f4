"""POST /v1/coops/{coop_id}/preapprovals and GET /v1/preapprovals/{job_id}: co-op bulk
pre-approval. A co-op key sees its own co-op only; anything else is not found, so a key
learns nothing of other co-ops."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from scoring.api.contract import problems
from scoring.api.deps import CoopOrLenderDep, IdempotencyKeyHeader, StateDep
from scoring.api.schemas import PreapprovalJob, PreapprovalRequest
from scoring.errors import JobNotFinishedError, NotFoundError, checked_idempotency_key
from scoring.ledger.jobs import Job
from scoring.ledger.keys import ApiKey
from scoring.preapproval.members import results_csv
from scoring.preapproval.plan import MemberRequest, resolve_members

router = APIRouter(prefix="/v1", tags=["co-op pre-approval"])


def _own_coop(key: ApiKey, coop_id: str) -> None:
    if key.role == "coop" and key.coop_id != coop_id:
        raise NotFoundError(f"co-op {coop_id!r} is not known", field="coop_id")


def _visible(job: Job | None, key: ApiKey, job_id: str) -> Job:
    if job is None or not (
        job.org_id == key.org_id or (key.role == "coop" and key.coop_id == job.coop_id)
    ):
        raise NotFoundError(f"pre-approval {job_id} not found", field="job_id")
    return job


def _json(
    body: dict[str, Any], status_code: int = 200, headers: dict[str, Any] | None = None
) -> Response:
    # a co-op's result can hold 100,000 members: orjson writes it several times faster
    return Response(orjson.dumps(body), status_code, headers, media_type="application/json")


def _body(job: Job, members: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "status": job.status,
        "coop_id": job.coop_id,
        "contract_id": job.contract_id,
        "progress": {"done": job.done, "total": job.total},
        "summary": job.summary,
        "members": members,
        "error": job.error,
    }


@router.post(
    "/coops/{coop_id}/preapprovals",
    response_model=PreapprovalJob,
    responses=problems(400, 401, 403, 404, 413, 422, 503)
    | {202: {"model": PreapprovalJob, "description": "Accepted as a job: follow Location"}},
)
async def create_preapproval(
    coop_id: Annotated[str, Path(examples=["C015"])],
    body: PreapprovalRequest,
    state: StateDep,
    key: CoopOrLenderDep,
    request: Request,
    idempotency_key: IdempotencyKeyHeader,
) -> Response:
    """Pre-approve input loans for a co-op's members under one of its contracts. Up to
    `preapproval_sync_members` members are answered at once (200, with every member's
    result); larger requests become a job (202): follow `GET /v1/preapprovals/{job_id}`."""
    _own_coop(key, coop_id)
    listed = None if body.members is None else [m.model_dump() for m in body.members]
    # refuse a wrong co-op, contract or member list now, not in the job
    chosen, _ = resolve_members(
        state.source,
        coop_id=coop_id,
        contract_id=body.contract_id,
        members=None if listed is None else [MemberRequest(**m) for m in listed],
    )
    as_of = state.as_of()
    runner = request.app.state.runner
    run_now = len(chosen) <= state.settings.preapproval_sync_members
    job, created = await run_in_threadpool(
        runner.store.create,
        key_id=key.key_id,
        org_id=key.org_id,
        idempotency_key=checked_idempotency_key(idempotency_key),
        coop_id=coop_id,
        contract_id=body.contract_id,
        request={
            "contract_id": body.contract_id,
            "members": listed,
            "as_of": as_of.isoformat(),
            "chunk_members": runner.chunk,
        },
        total=len(chosen),
        run_now=run_now,
    )
    if created and run_now:
        results = await run_in_threadpool(runner.run, job)
        finished = await run_in_threadpool(runner.store.get, job.job_id)
        return _json(_body(finished, results))
    if created:
        runner.submit(job.job_id)
    if job.status == "done":  # a retry of a finished request
        results = await run_in_threadpool(runner.results, job)
        return _json(_body(job, results))
    return _json(
        _body(job, None),
        status_code=202,
        headers={"Location": f"/v1/preapprovals/{job.job_id}"},
    )


@router.get(
    "/preapprovals/{job_id}",
    response_model=PreapprovalJob,
    responses=problems(401, 403, 404, 409)
    | {200: {"content": {"text/csv": {}}, "description": "The job, or its members as CSV"}},
)
async def read_preapproval(
    job_id: str,
    key: CoopOrLenderDep,
    request: Request,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    """A pre-approval's status and progress; once done, the summary and every member's
    result, as JSON or, with `Accept: text/csv`, as CSV (one row per member)."""
    runner = request.app.state.runner
    job = _visible(await run_in_threadpool(runner.store.get, job_id), key, job_id)
    wants_csv = accept is not None and "text/csv" in accept
    if job.status != "done":
        if wants_csv:
            raise JobNotFinishedError(
                f"pre-approval {job_id} is {job.status}: {job.done} of {job.total} "
                "members decided; ask again when it is done",
                field="job_id",
            )
        return _json(_body(job, None))
    results = await run_in_threadpool(runner.results, job)
    if wants_csv:
        return Response(results_csv(results), media_type="text/csv")
    return _json(_body(job, results))
