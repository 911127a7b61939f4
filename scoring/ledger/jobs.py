"""Pre-approval jobs as stored: a request that a worker runs in chunks, with its status,
progress and a lease, so a job a stopped worker left is taken over by another."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from scoring.errors import IdempotencyConflictError
from scoring.ledger.chain import canonical
from scoring.ledger.database import now_text
from scoring.ledger.repo import Ledger
from scoring.ledger.tables import preapproval_jobs

# what the service adds to a job's request: the as-of time of its first attempt, and the
# chunk size its rows are written in (a resumed job keeps both, whoever resumes it)
SERVER_FIELDS = ("as_of", "chunk_members")


@dataclass(frozen=True)
class Job:
    """A stored pre-approval job."""

    job_id: str
    key_id: str
    org_id: str  # the owner: any key of the organisation reads the job
    coop_id: str
    contract_id: str
    request: dict[str, Any]  # contract_id, members (or None: all), as_of
    status: str  # queued | running | done | failed
    total: int
    done: int
    summary: dict[str, Any] | None
    error: str | None


def _job(row: sa.Row[Any]) -> Job:
    return Job(
        row.job_id,
        row.key_id,
        row.org_id,
        row.coop_id,
        row.contract_id,
        json.loads(row.request),
        row.status,
        row.total,
        row.done,
        None if row.summary is None else json.loads(row.summary),
        row.error,
    )


def _unheld(now: float) -> sa.ColumnElement[bool]:
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
        org_id: str,
        idempotency_key: str | None,
        coop_id: str,
        contract_id: str,
        request: dict[str, Any],
        total: int,
        run_now: bool,
    ) -> tuple[Job, bool]:
        """Store a new job, or return the one the organisation already made for this
        request under this Idempotency-Key.

        `run_now`: the caller runs it at once (status running, leased to the caller). The
        request's SERVER_FIELDS are stored but not compared: a retry that arrives later (on
        the wall clock), or at a worker with another chunk size, is still the same request,
        answered by the first job.

        Raises:
            IdempotencyConflictError: the key made a job for another request before.
        """
        text = canonical(request)
        # a retry is the same request whatever time it arrives: the as-of time the job was
        # given is the first attempt's, not part of what the client asked for
        asked = {k: v for k, v in request.items() if k not in SERVER_FIELDS}
        digest = hashlib.sha256(canonical(asked).encode()).hexdigest()
        if idempotency_key is not None:
            existing = self._by_key(org_id, idempotency_key)
            if existing is not None:
                return self._same(existing, digest), False
        now = now_text()
        job_id = str(uuid.uuid4())
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    preapproval_jobs.insert().values(
                        job_id=job_id,
                        key_id=key_id,
                        org_id=org_id,
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
            if idempotency_key is None:
                raise
            existing = self._by_key(org_id, idempotency_key)
            if existing is None:
                raise
            return self._same(existing, digest), False
        return self._stored(job_id), True

    def _stored(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job is None:
            raise LookupError(f"job {job_id} is not stored")
        return job

    def _by_key(self, org_id: str, idempotency_key: str) -> sa.Row[Any] | None:
        with self.reader.connect() as conn:
            return conn.execute(
                sa.select(preapproval_jobs).where(
                    preapproval_jobs.c.org_id == org_id,
                    preapproval_jobs.c.idempotency_key == idempotency_key,
                )
            ).first()

    @staticmethod
    def _same(row: sa.Row[Any], digest: str) -> Job:
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
                .values(status="running", lease_until=now + self.lease, updated_at=now_text())
            )
        return done.rowcount == 1

    def progress(self, job_id: str, done: int) -> None:
        """Record progress and renew the lease."""
        self._update(job_id, done=done, lease_until=time.time() + self.lease)

    def finish(self, job_id: str, summary: dict[str, Any]) -> None:
        """Mark done with its co-op level summary."""
        self._update(job_id, status="done", summary=canonical(summary), lease_until=None)

    def fail(self, job_id: str, error: str) -> None:
        """Mark failed (the error is shown to whoever asks)."""
        self._update(job_id, status="failed", error=error, lease_until=None)

    def _update(self, job_id: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                preapproval_jobs.update()
                .where(preapproval_jobs.c.job_id == job_id)
                .values(**values, updated_at=now_text())
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
