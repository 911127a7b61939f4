"""Pre-approval jobs: a stored request that a worker runs in chunks, each chunk's ledger rows
committed with an idempotency record, so a job interrupted by a restart resumes where its
last committed chunk ended and never writes a row twice."""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pandas as pd

from features.runners import IN_PROCESS, LocalRunner, Runner
from scoring.decide.state import ServiceState
from scoring.ledger.jobs import Job, JobStore
from scoring.preapproval.cluster import submit_chunks
from scoring.preapproval.members import (
    batch_decision_id,
    decide_chunk,
    member_decision_id,
    not_member_result,
    summarise,
)
from scoring.preapproval.plan import MemberRequest, plan_preapproval, resolve_members

log = logging.getLogger(__name__)
OPERATOR_KEY = "operator-cli"  # the key_id (and owner) the `preapprove` command records under


def requested_members(job: Job) -> list[MemberRequest] | None:
    """The members the job was asked for, or None for every member of the co-op."""
    listed = job.request.get("members")
    return None if listed is None else [MemberRequest(**m) for m in listed]


def run_job(
    job: Job,
    state: ServiceState,
    store: JobStore,
    *,
    chunk: int,
    on_chunk: Callable[[int, int], None] | None = None,
    runner: Runner = IN_PROCESS,
) -> list[dict[str, Any]]:
    """Decide every member of the job, chunk by chunk, and write the co-op level row.

    A chunk already in the ledger (an earlier, interrupted run) is read back, not decided
    again; the chunks are those of the job's first run (its stored `chunk_members`), so a
    worker with another chunk size resumes it where it stopped. On a Dask runner the chunks
    are decided on its cluster. Returns every member's result in request order,
    not-members included.
    """
    chunk = int(job.request.get("chunk_members") or chunk)
    model = state.models.current
    plan = plan_preapproval(
        state.source,
        state.policy,
        coop_id=job.coop_id,
        contract_id=job.contract_id,
        members=requested_members(job),
        as_of=pd.Timestamp(job.request["as_of"]),
    )
    context = {
        "job_id": job.job_id,
        "coop_id": job.coop_id,
        "contract_id": job.contract_id,
        "policy_version": state.policy.version,
        "features_as_of": plan.as_of.isoformat(),
    }
    chunks = [plan.members[i : i + chunk] for i in range(0, len(plan.members), chunk)]
    requests = [
        (f"job:{job.job_id}:{n}", {"job_id": job.job_id, "chunk": n}) for n in range(len(chunks))
    ]
    todo = [
        n
        for n, (ident, request) in enumerate(requests)
        if state.ledger.replay(org_id=job.org_id, idempotency_key=ident, request=request) is None
    ]
    # chunk number -> its rows here, or a future of them on a cluster
    decided: dict[int, Any]
    if isinstance(runner, LocalRunner):
        decided = {
            n: decide_chunk(
                plan, chunks[n], job_id=job.job_id, source=state.source, model=model,
                policy=state.policy, context=context,
            )
            for n in todo
        }  # fmt: skip
    else:  # every chunk a task at once; their rows are written here, in order, as they come
        decided = submit_chunks(runner, state, model, plan, {n: chunks[n] for n in todo},
                                job_id=job.job_id, context=context)  # fmt: skip
    results: list[dict[str, Any]] = []
    done = 0
    for n, part in enumerate(chunks):
        ident, request = requests[n]
        written = False
        if n in decided:
            pairs = decided[n] if isinstance(runner, LocalRunner) else decided[n].result()
            _, written = state.ledger.record(
                key_id=job.key_id,
                org_id=job.org_id,
                idempotency_key=ident,
                request=request,
                bodies=[body for _, body in pairs],
            )
        if written:
            results.extend(row for row, _ in pairs)
        else:  # written before: what the ledger holds is the answer
            ids = [member_decision_id(job.job_id, m.farmer_id) for m in part]
            stored = state.ledger.get_many(ids)
            results.extend(stored[i].body["member"] for i in ids)
        done += len(part)
        store.progress(job.job_id, done)
        if on_chunk is not None:
            on_chunk(done, len(plan.members))
    results += [not_member_result(job.coop_id, f) for f in plan.not_members]
    summary = summarise(plan, results) | {
        "model_versions": sorted({r["model_version"] for r in results if "model_version" in r}),
        "policy_version": state.policy.version,
    }
    state.ledger.record(
        key_id=job.key_id,
        org_id=job.org_id,
        idempotency_key=f"job:{job.job_id}:batch",
        request={"job_id": job.job_id, "batch": True},
        bodies=[(batch_decision_id(job.job_id), "coop_batch", context | {"summary": summary})],
    )
    store.finish(job.job_id, summary)
    return results


def stored_results(job: Job, state: ServiceState) -> list[dict[str, Any]]:
    """A finished job's member results, read back from the ledger."""
    evaluated, outside = resolve_members(
        state.source,
        coop_id=job.coop_id,
        contract_id=job.contract_id,
        members=requested_members(job),
    )
    ids = [member_decision_id(job.job_id, m.farmer_id) for m in evaluated]
    stored = state.ledger.get_many(ids)
    return [stored[i].body["member"] for i in ids] + [
        not_member_result(job.coop_id, f) for f in outside
    ]


class JobRunner:
    """A worker's thread that runs queued jobs and resumes abandoned ones; it keeps the
    results of the jobs it finished last, so their owners need not read them back."""

    def __init__(self, state: ServiceState, *, chunk: int | None = None) -> None:
        settings = state.settings
        self.state = state
        self.chunk = chunk or settings.preapproval_chunk_members
        self.store = JobStore(state.ledger, lease_seconds=settings.preapproval_lease_seconds)
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._recent: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the thread; it first resumes whatever was left unfinished."""
        self._thread = threading.Thread(target=self._loop, daemon=True, name="preapprovals")
        self._thread.start()

    def stop(self) -> None:
        """Stop after the job in hand (an unfinished one is resumed by the next worker)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def submit(self, job_id: str) -> None:
        """Queue a stored job."""
        self._queue.put(job_id)

    def run(self, job: Job) -> list[dict[str, Any]]:
        """Run a job this worker holds, now, and keep its results."""
        results = run_job(job, self.state, self.store, chunk=self.chunk)
        self._keep(job.job_id, results)
        return results

    def results(self, job: Job) -> list[dict[str, Any]]:
        """A finished job's results: kept in memory, else read from the ledger."""
        with self._lock:
            kept = self._recent.get(job.job_id)
        return kept if kept is not None else stored_results(job, self.state)

    def _keep(self, job_id: str, results: list[dict[str, Any]]) -> None:
        with self._lock:
            self._recent[job_id] = results
            while len(self._recent) > 4:
                self._recent.popitem(last=False)

    def _loop(self) -> None:
        for stored in self.store.resumable():
            self._queue.put(stored)
        while True:
            try:
                job_id = self._queue.get(timeout=self.store.lease)
            except queue.Empty:  # look for jobs a stopped worker left behind
                for found in self.store.resumable():
                    self._queue.put(found)
                continue
            if job_id is None:
                return
            if not self.store.claim(job_id):
                continue  # done, or another worker holds it
            job = self.store.get(job_id)
            if job is None:
                continue
            try:
                self.run(job)
            except Exception as exc:  # recorded on the job: its owner sees why
                log.exception("pre-approval job %s failed", job_id)
                self.store.fail(job_id, f"the job failed ({type(exc).__name__}); run it again")
