"""Pre-approval jobs: a stored request that a worker runs in chunks, each chunk's ledger rows
committed with an idempotency record, so a job interrupted by a restart resumes where its
last committed chunk ended and never writes a row twice."""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from scoring.errors import IdempotencyConflictError
from scoring.ledger.chain import canonical
from scoring.ledger.repo import Ledger, _now
from scoring.ledger.tables import preapproval_jobs
from scoring.preapproval import (
    MemberRequest,
    batch_decision_id,
    evaluate_members,
    member_decision_id,
    not_member_result,
    plan_preapproval,
    resolve_members,
    summarise,
)
from scoring.state import ServiceState

log = logging.getLogger(__name__)
OPERATOR_KEY = "operator-cli"  # the key_id the `preapprove` command records under


@dataclass(frozen=True)
class Job:
    """A stored pre-approval job."""

    job_id: str
    key_id: str
    coop_id: str
    contract_id: str
    request: dict  # contract_id, members (or None: all), as_of
    status: str  # queued | running | done | failed
    total: int
    done: int
    summary: dict | None
    error: str | None

    def members(self) -> list[MemberRequest] | None:
        """The requested members, or None for every member of the co-op."""
        listed = self.request.get("members")
        return None if listed is None else [MemberRequest(**m) for m in listed]


def _job(row) -> Job:
    return Job(
        row.job_id,
        row.key_id,
        row.coop_id,
        row.contract_id,
        json.loads(row.request),
        row.status,
        row.total,
        row.done,
        None if row.summary is None else json.loads(row.summary),
        row.error,
    )


def _unheld(now: float):
    """Unfinished jobs whose lease has run out, or that nobody has held."""
    jobs = preapproval_jobs.c
    return sa.and_(
        jobs.status.in_(("queued", "running")),
        sa.or_(jobs.lease_until.is_(None), jobs.lease_until < now),
    )


class JobStore:
    """Jobs in the ledger's database."""

    def __init__(self, ledger: Ledger, *, lease_seconds: float = 30.0) -> None:
        self.engine, self.reader = ledger.engine, ledger.reader
        self.lease = lease_seconds  # a job whose runner has not renewed this long is taken over

    def create(
        self,
        *,
        key_id: str,
        idempotency_key: str | None,
        coop_id: str,
        contract_id: str,
        request: dict,
        total: int,
        run_now: bool,
    ) -> tuple[Job, bool]:
        """Store a new job, or return the one this key already made for this request.

        `run_now`: the caller runs it at once (status running, leased to the caller).

        Raises:
            IdempotencyConflictError: the key made a job for another request before.
        """
        text = canonical(request)
        digest = hashlib.sha256(text.encode()).hexdigest()
        if idempotency_key is not None:
            existing = self._by_key(key_id, idempotency_key)
            if existing is not None:
                return self._same(existing, digest), False
        now = _now()
        job_id = str(uuid.uuid4())
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    preapproval_jobs.insert().values(
                        job_id=job_id,
                        key_id=key_id,
                        idempotency_key=idempotency_key,
                        request_hash=digest,
                        coop_id=coop_id,
                        contract_id=contract_id,
                        request=text,
                        status="running" if run_now else "queued",
                        total=total,
                        done=0,
                        lease_until=time.time() + self.lease if run_now else None,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except sa.exc.IntegrityError:  # the same key, concurrently: the first one stands
            existing = self._by_key(key_id, idempotency_key)
            if existing is None:
                raise
            return self._same(existing, digest), False
        return self.get(job_id), True

    def _by_key(self, key_id: str, idempotency_key: str):
        with self.reader.connect() as conn:
            return conn.execute(
                sa.select(preapproval_jobs).where(
                    preapproval_jobs.c.key_id == key_id,
                    preapproval_jobs.c.idempotency_key == idempotency_key,
                )
            ).first()

    @staticmethod
    def _same(row, digest: str) -> Job:
        if row.request_hash != digest:
            raise IdempotencyConflictError(
                "this Idempotency-Key was used before with a different request body; use a "
                "new key for a new request",
                field="Idempotency-Key",
            )
        return _job(row)

    def get(self, job_id: str) -> Job | None:
        """A job, or None."""
        with self.reader.connect() as conn:
            row = conn.execute(
                sa.select(preapproval_jobs).where(preapproval_jobs.c.job_id == job_id)
            ).first()
        return None if row is None else _job(row)

    def claim(self, job_id: str) -> bool:
        """Take an unfinished job whose lease has run out (or that nobody holds)."""
        now = time.time()
        with self.engine.begin() as conn:
            done = conn.execute(
                preapproval_jobs.update()
                .where(preapproval_jobs.c.job_id == job_id, _unheld(now))
                .values(status="running", lease_until=now + self.lease, updated_at=_now())
            )
        return done.rowcount == 1

    def progress(self, job_id: str, done: int) -> None:
        """Record progress and renew the lease."""
        self._update(job_id, done=done, lease_until=time.time() + self.lease)

    def finish(self, job_id: str, summary: dict) -> None:
        """Mark done with its co-op level summary."""
        self._update(job_id, status="done", summary=canonical(summary), lease_until=None)

    def fail(self, job_id: str, error: str) -> None:
        """Mark failed (the error is shown to whoever asks)."""
        self._update(job_id, status="failed", error=error, lease_until=None)

    def _update(self, job_id: str, **values) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                preapproval_jobs.update()
                .where(preapproval_jobs.c.job_id == job_id)
                .values(**values, updated_at=_now())
            )

    def resumable(self) -> list[str]:
        """Unfinished jobs nobody holds: queued, or left running by a stopped worker."""
        with self.reader.connect() as conn:
            rows = conn.execute(
                sa.select(preapproval_jobs.c.job_id)
                .where(_unheld(time.time()))
                .order_by(preapproval_jobs.c.created_at)
            )
            return [r.job_id for r in rows]


def run_job(
    job: Job,
    state: ServiceState,
    store: JobStore,
    *,
    chunk: int,
    on_chunk: Callable[[int, int], None] | None = None,
    client=None,
) -> list[dict]:
    """Decide every member of the job, chunk by chunk, and write the co-op level row.

    A chunk already in the ledger (an earlier, interrupted run) is read back, not decided
    again. With a Dask `client` the chunks are decided on its cluster. Returns every
    member's result in request order, not-members included.
    """
    model = state.models.current
    plan = plan_preapproval(
        state.source,
        state.policy,
        coop_id=job.coop_id,
        contract_id=job.contract_id,
        members=job.members(),
        as_of=pd.Timestamp(job.request["as_of"]),
    )
    context = {
        "job_id": job.job_id,
        "coop_id": job.coop_id,
        "contract_id": job.contract_id,
        "policy_version": state.policy.version,
    }
    chunks = [plan.members[i : i + chunk] for i in range(0, len(plan.members), chunk)]
    requests = [
        (f"job:{job.job_id}:{n}", {"job_id": job.job_id, "chunk": n}) for n in range(len(chunks))
    ]
    todo = [
        n
        for n, (ident, request) in enumerate(requests)
        if state.ledger.replay(key_id=job.key_id, idempotency_key=ident, request=request) is None
    ]
    if client is None:
        decided = {
            n: decide_chunk(
                plan, chunks[n], job_id=job.job_id, source=state.source, model=model,
                policy=state.policy, context=context,
            )
            for n in todo
        }  # fmt: skip
    else:  # every chunk a task at once; their rows are written here, in order, as they come
        from scoring.distributed import submit_chunks

        decided = submit_chunks(client, state, model, plan, {n: chunks[n] for n in todo},
                                job_id=job.job_id, context=context)  # fmt: skip
    results: list[dict] = []
    done = 0
    for n, part in enumerate(chunks):
        ident, request = requests[n]
        written = False
        if n in decided:
            pairs = decided[n] if client is None else decided[n].result()
            _, written = state.ledger.record(
                key_id=job.key_id,
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
        idempotency_key=f"job:{job.job_id}:batch",
        request={"job_id": job.job_id, "batch": True},
        bodies=[(batch_decision_id(job.job_id), "coop_batch", context | {"summary": summary})],
    )
    store.finish(job.job_id, summary)
    return results


def decide_chunk(
    plan, part: list[MemberRequest], *, job_id: str, source, model, policy, context: dict
) -> list[tuple[dict, tuple[str, str, dict]]]:
    """One chunk's members decided: (result row, ledger row) each."""
    decided = evaluate_members(
        plan, part, job_id=job_id, source=source, model=model.bundle, policy=policy
    )
    out = []
    for r in decided:
        row = r.as_dict() | {"model_version": model.version}
        body = context | {
            "member": row,
            "model": {"name": model.name, "version": model.version},
            "model_sha256": model.bundle.sha256,
            "feature_vector": r.outcome.features,
        }
        out.append((row, (r.decision_id, "preapproval", body)))
    return out


def stored_results(job: Job, state: ServiceState) -> list[dict]:
    """A finished job's member results, read back from the ledger."""
    evaluated, outside = resolve_members(
        state.source, coop_id=job.coop_id, contract_id=job.contract_id, members=job.members()
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
        self._recent: OrderedDict[str, list[dict]] = OrderedDict()
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

    def run(self, job: Job) -> list[dict]:
        """Run a job this worker holds, now, and keep its results."""
        results = run_job(job, self.state, self.store, chunk=self.chunk)
        self._keep(job.job_id, results)
        return results

    def results(self, job: Job) -> list[dict]:
        """A finished job's results: kept in memory, else read from the ledger."""
        with self._lock:
            kept = self._recent.get(job.job_id)
        return kept if kept is not None else stored_results(job, self.state)

    def _keep(self, job_id: str, results: list[dict]) -> None:
        with self._lock:
            self._recent[job_id] = results
            while len(self._recent) > 4:
                self._recent.popitem(last=False)

    def _loop(self) -> None:
        for job_id in self.store.resumable():
            self._queue.put(job_id)
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
            try:
                self.run(job)
            except Exception as exc:  # recorded on the job: its owner sees why
                log.exception("pre-approval job %s failed", job_id)
                self.store.fail(job_id, f"the job failed ({type(exc).__name__}); run it again")
