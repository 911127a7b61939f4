"""The ledger's one door: open (and migrate) the database, append decisions with their
idempotency records in one serialised transaction, read them back, manage API keys."""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from scoring.errors import IdempotencyConflictError
from scoring.ledger.chain import GENESIS, ChainReport, canonical, link_hash, verify_rows
from scoring.ledger.tables import api_keys, decisions, idempotency

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK = 7_246_001  # advisory lock id serialising appends to the chain


def _request_hash(request: dict) -> str:
    return hashlib.sha256(canonical(request).encode()).hexdigest()


def _conflict() -> IdempotencyConflictError:
    return IdempotencyConflictError(
        "this Idempotency-Key was used before with a different request body; use a new key "
        "for a new request",
        field="Idempotency-Key",
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def make_engine(url: str) -> sa.Engine:
    """An engine; SQLite gets WAL, synchronous writes and BEGIN IMMEDIATE transactions."""
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url, connect_args={"isolation_level": None, "timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock up front

    return engine


MAX_BATCH = 256


@dataclass
class _Job:
    """One request's rows waiting for the writer."""

    key_id: str
    idempotency_key: str | None
    request_hash: str
    bodies: list[tuple[str, str, dict]]
    future: Future


@dataclass(frozen=True)
class StoredDecision:
    """A decision as stored: its id, the key that made it and the recorded body."""

    decision_id: str
    key_id: str
    kind: str
    created_at: str
    body: dict


@dataclass(frozen=True)
class ApiKey:
    """A stored key (never the secret itself)."""

    key_id: str
    name: str
    role: str
    coop_id: str | None
    revoked_at: str | None


class Ledger:
    """Decisions, idempotency records and API keys in one database."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.engine = make_engine(url)
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self._postgres = self.engine.dialect.name == "postgresql"

    def migrate(self) -> None:
        """Bring the schema to the newest migration (Alembic)."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.connect() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            if not self._postgres:
                return
            conn.commit()

    def close(self) -> None:
        """Finish pending writes, stop the writer and close every pooled connection."""
        with self._writer_lock:
            if self._writer is not None and self._writer.is_alive():
                self._queue.put(None)
                self._writer.join()
            self._writer = None
        self.engine.dispose()

    def ping(self) -> bool:
        """True when the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except sa.exc.SQLAlchemyError:
            return False

    def _lock(self, conn: sa.Connection) -> None:
        if self._postgres:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})

    def _append(
        self, conn: sa.Connection, *, key_id: str, kind: str, body: dict, decision_id: str
    ) -> None:
        head = conn.execute(
            sa.select(decisions.c.row_hash).order_by(decisions.c.seq.desc()).limit(1)
        ).scalar()
        prev = head or GENESIS
        created = _now()
        text = canonical(body)
        conn.execute(
            decisions.insert().values(
                decision_id=decision_id,
                key_id=key_id,
                kind=kind,
                created_at=created,
                body=text,
                prev_hash=prev,
                row_hash=link_hash(prev, decision_id, key_id, kind, created, text),
            )
        )

    def record(
        self,
        *,
        key_id: str,
        idempotency_key: str | None,
        request: dict,
        bodies: list[tuple[str, str, dict]],
    ) -> tuple[str, bool]:
        """Append decisions (decision_id, kind, body) and the idempotency record at once.

        Returns (the first decision_id, True) when written, or the stored decision_id and
        False when the same key already recorded the same request. Returns only after the
        transaction holding the rows has committed. Concurrent calls are committed together
        (group commit): one synchronous commit for every request waiting at that moment.

        Raises:
            IdempotencyConflictError: the key was used before with a different request.
        """
        job = _Job(
            key_id,
            idempotency_key,
            _request_hash(request),
            bodies,
            Future(),
        )
        self._start_writer()
        self._queue.put(job)
        return job.future.result()

    def _start_writer(self) -> None:
        with self._writer_lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(
                    target=self._write_batches, daemon=True, name="ledger-writer"
                )
                self._writer.start()

    def _write_batches(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            batch = [job]
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(more)
            self._commit(batch)

    def _commit(self, batch: list[_Job]) -> None:
        outcomes: list[tuple[str, bool] | Exception] = []
        try:
            with self.engine.begin() as conn:
                self._lock(conn)
                in_batch: dict[tuple[str, str], tuple[str, str]] = {}
                for job in batch:
                    outcomes.append(self._apply(conn, job, in_batch))
        except Exception as exc:  # the transaction failed: nobody's rows were written
            for job in batch:
                job.future.set_exception(exc)
            return
        for job, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Exception):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)

    def _apply(
        self, conn: sa.Connection, job: _Job, in_batch: dict[tuple[str, str], tuple[str, str]]
    ) -> tuple[str, bool] | Exception:
        """One request's rows inside the batch's transaction (or why it was refused)."""
        if job.idempotency_key is not None:
            ident = (job.key_id, job.idempotency_key)
            seen = in_batch.get(ident)
            if seen is None:
                row = conn.execute(
                    sa.select(idempotency).where(
                        idempotency.c.key_id == job.key_id,
                        idempotency.c.idempotency_key == job.idempotency_key,
                    )
                ).first()
                seen = None if row is None else (row.request_hash, row.decision_id)
            if seen is not None:
                if seen[0] != job.request_hash:
                    return _conflict()
                return seen[1], False
            in_batch[ident] = (job.request_hash, job.bodies[0][0])
        for decision_id, kind, body in job.bodies:
            self._append(conn, key_id=job.key_id, kind=kind, body=body, decision_id=decision_id)
        if job.idempotency_key is not None:
            conn.execute(
                idempotency.insert().values(
                    key_id=job.key_id,
                    idempotency_key=job.idempotency_key,
                    request_hash=job.request_hash,
                    decision_id=job.bodies[0][0],
                    created_at=_now(),
                )
            )
        return job.bodies[0][0], True

    def replay(self, *, key_id: str, idempotency_key: str, request: dict) -> str | None:
        """The decision already recorded for this key and request, if any, so a retry is
        answered without deciding again. `record` still checks inside its transaction.

        Raises:
            IdempotencyConflictError: the key was used before with a different request.
        """
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(idempotency).where(
                    idempotency.c.key_id == key_id,
                    idempotency.c.idempotency_key == idempotency_key,
                )
            ).first()
        if row is None:
            return None
        if row.request_hash != _request_hash(request):
            raise _conflict()
        return row.decision_id

    def get(self, decision_id: str) -> StoredDecision | None:
        """A stored decision, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(decisions).where(decisions.c.decision_id == decision_id)
            ).first()
        if row is None:
            return None
        return StoredDecision(
            row.decision_id, row.key_id, row.kind, row.created_at, json.loads(row.body)
        )

    def count(self) -> int:
        """Number of decision rows."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(decisions)).scalar())

    def verify(self) -> ChainReport:
        """Walk the whole chain in sequence order."""
        with self.engine.connect() as conn:
            rows = [
                dict(r._mapping)
                for r in conn.execute(sa.select(decisions).order_by(decisions.c.seq))
            ]
        return verify_rows(rows)

    # --- API keys -------------------------------------------------------------------------
    def create_key(self, *, role: str, name: str, coop_id: str | None, secret: str) -> str:
        """Store a key's hash; returns its key_id."""
        key_id = str(uuid.uuid4())
        with self.engine.begin() as conn:
            conn.execute(
                api_keys.insert().values(
                    key_id=key_id,
                    name=name,
                    role=role,
                    coop_id=coop_id,
                    key_hash=hashlib.sha256(secret.encode()).hexdigest(),
                    created_at=_now(),
                )
            )
        return key_id

    def find_key(self, secret: str) -> ApiKey | None:
        """The active key whose secret this is, or None."""
        digest = hashlib.sha256(secret.encode()).hexdigest()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.key_hash == digest)).first()
        if row is None or row.revoked_at is not None:
            return None
        return ApiKey(row.key_id, row.name, row.role, row.coop_id, row.revoked_at)

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; False if there is no such active key."""
        with self.engine.begin() as conn:
            done = conn.execute(
                api_keys.update()
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
        return done.rowcount == 1

    def list_keys(self) -> list[ApiKey]:
        """Every key, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(api_keys).order_by(api_keys.c.created_at.desc()))
            return [ApiKey(r.key_id, r.name, r.role, r.coop_id, r.revoked_at) for r in rows]
