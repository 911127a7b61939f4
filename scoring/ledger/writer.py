"""The ledger's group-commit writer: one thread per process takes every request's rows,
links them onto the hash chain and commits them together, one synchronous commit for
every request waiting at that moment; between processes a file lock (SQLite) or an
advisory lock (PostgreSQL) keeps the chain one line."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import sqlalchemy as sa

from scoring.errors import IdempotencyConflictError, LedgerUnavailableError
from scoring.ledger.chain import GENESIS, canonical, link_hash
from scoring.ledger.database import now_text
from scoring.ledger.tables import decisions, idempotency
from training.signing import SigningKey

log = logging.getLogger(__name__)
_PG_LOCK = 7_246_001  # advisory lock id serialising appends to the chain
MAX_BATCH = 256  # rows: a larger submission is committed whole, alone
ROW_COLUMNS = [c.name for c in decisions.c if c.name != "seq"]
CLAIM_COLUMNS = [c.name for c in idempotency.c]


def request_hash(request: dict[str, Any]) -> str:
    """The digest a retry's body must match."""
    return hashlib.sha256(canonical(request).encode()).hexdigest()


def conflict() -> IdempotencyConflictError:
    """The refusal of a reused Idempotency-Key."""
    return IdempotencyConflictError(
        "this Idempotency-Key was used before with a different request body; use a new key "
        "for a new request",
        field="Idempotency-Key",
    )


@dataclass(frozen=True)
class Entry:
    """One request's rows as the writer takes them: encoded, ready to link and insert."""

    key_id: str
    org_id: str  # whose Idempotency-Key it is
    idempotency_key: str | None
    request_hash: str
    bodies: list[tuple[str, str, str]]  # (decision_id, kind, canonical text of the body)

    @classmethod
    def of(
        cls, *, key_id: str, org_id: str, idempotency_key: str | None,
        request: dict[str, Any], bodies: list[tuple[str, str, dict[str, Any]]],
    ) -> Entry:  # fmt: skip
        """Encode a request's decisions (decision_id, kind, body) on the caller's thread:
        the writer holds the lock between workers while it works, so it does no more than
        link rows and run the statements."""
        texts = [(decision_id, kind, canonical(body)) for decision_id, kind, body in bodies]
        return cls(key_id, org_id, idempotency_key, request_hash(request), texts)


Recorded: TypeAlias = tuple[str, bool] | Exception  # (first decision_id, written?) or why refused


@dataclass
class _Submission:
    """Entries handed to the writer together and answered by one future: the list of
    their outcomes, or with `single`, the one entry's outcome (raised if an error)."""

    entries: list[Entry]
    future: Future[Any]
    single: bool = False

    def resolve(self, outcomes: list[Recorded]) -> None:
        if not self.single:
            self.future.set_result(outcomes)
        elif isinstance(outcomes[0], Exception):
            self.future.set_exception(outcomes[0])
        else:
            self.future.set_result(outcomes[0])


class Statements:
    """The writer's and the replay's SQL, prepared once in the driver's parameter style.

    The per-request path runs these on a kept DBAPI connection: through SQLAlchemy Core the
    same five statements cost about 0.5 ms of CPU per transaction, more than a decision.
    A batch's rows go in as one multi-row statement per table, not `executemany`: the driver
    gives up the GIL around every row it steps, and each time the writer takes it back it
    may wait out the event loop's turn (under load a commit waited about 1 ms in all).
    """

    ROWS_PER_STATEMENT = 256  # at most 8 columns each: far under any driver's limit

    def __init__(self, paramstyle: str) -> None:
        self.mark = "%s" if paramstyle in ("format", "pyformat") else "?"
        mark = self.mark
        self.head = "SELECT row_hash FROM decisions ORDER BY seq DESC LIMIT 1"
        self.pg_lock = f"SELECT pg_advisory_xact_lock({mark})"
        self._cache: dict[tuple[str, int], str] = {}

    def _values(self, columns: int, rows: int) -> str:
        one = f"({', '.join([self.mark] * columns)})"
        return ", ".join([one] * rows)

    def claimed_many(self, n: int) -> str:
        """The stored claims of n (org_id, idempotency_key) pairs."""
        sql = self._cache.get(("claimed", n))
        if sql is None:
            # OR of pairs, not a row-value IN: SQLite scans the table for the latter
            pair = f"(org_id = {self.mark} AND idempotency_key = {self.mark})"
            sql = self._cache["claimed", n] = (
                "SELECT org_id, idempotency_key, request_hash, decision_id FROM idempotency_claims "
                f"WHERE {' OR '.join([pair] * n)}"
            )
        return sql

    def claims(
        self, cursor: Any, pairs: list[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[Any, ...]]:
        """The stored (request_hash, decision_id) of each (org_id, idempotency_key) pair
        that has a claim, in as few statements as the parameter limit allows."""
        found: dict[tuple[str, str], tuple[Any, ...]] = {}
        step = self.ROWS_PER_STATEMENT
        for start in range(0, len(pairs), step):
            part = pairs[start : start + step]
            cursor.execute(self.claimed_many(len(part)), [v for pair in part for v in pair])
            for org_id, idempotency_key, request_hash, decision_id in cursor.fetchall():
                found[(org_id, idempotency_key)] = (request_hash, decision_id)
        return found

    def insert(self, table: str, columns: list[str], n: int) -> str:
        """INSERT of n rows in one statement."""
        sql = self._cache.get((table, n))
        if sql is None:
            sql = self._cache[table, n] = (
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES {self._values(len(columns), n)}"
            )
        return sql

    def insert_rows(
        self, cursor: Any, table: str, columns: list[str], rows: list[tuple[Any, ...]]
    ) -> None:
        """Insert rows with as few statements as the parameter limit allows."""
        step = self.ROWS_PER_STATEMENT
        for start in range(0, len(rows), step):
            part = rows[start : start + step]
            cursor.execute(self.insert(table, columns, len(part)), [v for r in part for v in r])


class _Chain:
    """Rows appended in one transaction, each linked to the one before it; all of them
    carry the transaction's time (one clock reading per commit, not per row)."""

    def __init__(self, head: str, key: SigningKey | None) -> None:
        self.head = head
        self.key = key
        self.created = now_text()
        self.rows: list[tuple[Any, ...]] = []  # in ROW_COLUMNS order

    def append(self, *, key_id: str, kind: str, text: str, decision_id: str) -> None:
        created = self.created
        row_hash = link_hash(self.head, decision_id, key_id, kind, created, text)
        mac = self.key.sign_bytes(row_hash.encode()) if self.key is not None else None
        self.rows.append((decision_id, key_id, kind, created, text, self.head, row_hash, mac))
        self.head = row_hash


def _dropped(conn: Any) -> bool:
    """Whether the database dropped this connection (worth one retry on a new one); a
    lock timeout or a full disk is not."""
    driver = getattr(conn, "driver_connection", None)
    return bool(getattr(driver, "closed", False) or getattr(driver, "broken", False))


class GroupCommitWriter:
    """The thread that commits every submission, batching what waits together."""

    def __init__(
        self,
        engine: sa.Engine,
        statements: Statements,
        *,
        lock_path: Path | None,
        key: SigningKey | None = None,
    ) -> None:
        self.engine = engine
        self._key = key
        self._sql = statements
        self._postgres = engine.dialect.name == "postgresql"
        # workers in other processes queue on this lock and wake the moment it is free;
        # SQLite's own busy wait sleeps in growing steps (long tail latencies)
        self._lock_file = open(lock_path, "a+b") if lock_path is not None else None
        self._conn: Any = None  # the writer thread's own DBAPI connection
        self._queue: queue.SimpleQueue[_Submission | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self.failing: str | None = None  # why the last commit failed, until one succeeds

    def submit(self, entries: list[Entry], *, single: bool = False) -> Future[Any]:
        """Hand entries over; the future resolves once their transaction has committed."""
        submission = _Submission(entries, Future(), single=single)
        self._start()
        self._queue.put(submission)
        return submission.future

    def close(self) -> None:
        """Finish pending writes and stop the thread."""
        with self._thread_lock:
            if self._thread is not None and self._thread.is_alive():
                self._queue.put(None)
                self._thread.join()
            self._thread = None
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _start(self) -> None:
        with self._thread_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._write_batches, daemon=True, name="ledger-writer"
                )
                self._thread.start()

    @contextmanager
    def _between_processes(self) -> Iterator[None]:
        if self._lock_file is None:
            yield
            return
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    def _write_batches(self) -> None:
        while True:
            submission = self._queue.get()
            if submission is None:
                return
            with self._between_processes():
                # what queued while another worker's commit held the lock joins this one:
                # under contention batches grow instead of commits queueing one by one
                taken = self._drain(submission)
                entries = [entry for s in taken for entry in s.entries]
                outcomes = self._commit(entries) if entries else []
            start = 0
            for s in taken:
                s.resolve(outcomes[start : start + len(s.entries)])
                start += len(s.entries)

    def _drain(self, first: _Submission) -> list[_Submission]:
        """The submissions to commit now. One whose caller has given up (its future
        cancelled, as when a request's task is cancelled) is left out and writes nothing;
        the others are marked running, so they can no longer be cancelled and are always
        answered."""
        taken = [first] if first.future.set_running_or_notify_cancel() else []
        rows = len(first.entries)
        while rows < MAX_BATCH:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is None:
                self._queue.put(None)  # stop after this batch
                break
            if more.future.set_running_or_notify_cancel():
                taken.append(more)
                rows += len(more.entries)
        return taken

    def _commit(self, batch: list[Entry]) -> list[Recorded]:
        """Each job's outcome; all of them fail alike when the transaction does.

        A transaction that failed before its COMMIT was sent wrote nothing, so it is tried
        once more on a new connection (the database dropped the old one: a restart,
        pg_terminate_backend). One that failed during COMMIT may have committed, so it is
        not repeated: its requests are told the ledger is unavailable, and a retry with
        the same Idempotency-Key finds what was written."""
        for attempt in (1, 2):
            committing = False
            conn = None
            try:
                conn = self._connection()
                cursor = conn.cursor()
                try:
                    outcomes = self._write(cursor, batch)
                    committing = True
                    conn.commit()
                except BaseException:
                    with contextlib.suppress(Exception):
                        conn.rollback()
                    raise
                finally:
                    with contextlib.suppress(Exception):
                        cursor.close()
                self.failing = None
                return outcomes
            except Exception as exc:  # the transaction failed: nobody's rows were written
                dropped = conn is not None and _dropped(conn)
                self._drop_connection()
                if attempt == 1 and not committing and dropped:
                    log.warning("ledger commit failed (%s); retrying on a new connection", exc)
                    continue
                self.failing = (
                    f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                )
                failure = LedgerUnavailableError(
                    f"the ledger could not confirm the record ({type(exc).__name__}): "
                    "retry with the same Idempotency-Key, which answers what was recorded"
                )
                failure.__cause__ = exc
                return [failure] * len(batch)
        raise AssertionError("unreachable")

    def _write(self, cursor: Any, batch: list[Entry]) -> list[Recorded]:
        """The batch's statements in the open transaction: lock, claims, chain rows."""
        sql = self._sql
        if self._postgres:
            cursor.execute(sql.pg_lock, (_PG_LOCK,))
        else:
            cursor.execute("BEGIN IMMEDIATE")
        known = sql.claims(
            cursor, sorted({(j.org_id, j.idempotency_key) for j in batch if j.idempotency_key})
        )
        cursor.execute(sql.head)
        head = cursor.fetchone()
        chain = _Chain(head[0] if head else GENESIS, self._key)
        claims: list[tuple[Any, ...]] = []
        outcomes = [self._apply(job, known, chain, claims) for job in batch]
        sql.insert_rows(cursor, "decisions", ROW_COLUMNS, chain.rows)
        sql.insert_rows(cursor, "idempotency_claims", CLAIM_COLUMNS, claims)
        return outcomes

    def _connection(self) -> Any:  # a DBAPI connection
        if self._conn is None:
            self._conn = self.engine.raw_connection()
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()  # a failed connection is not put back in the pool
            except Exception:  # already gone
                log.warning("could not invalidate the ledger writer's connection")
            self._conn = None

    @staticmethod
    def _apply(
        job: Entry,
        known: dict[tuple[str, str], tuple[Any, ...]],
        chain: _Chain,
        claims: list[tuple[Any, ...]],
    ) -> Recorded:
        """One request's rows inside the batch's transaction (or why it was refused);
        `known` grows with the batch's own claims, so duplicates within it are caught too."""
        first = job.bodies[0][0]
        if job.idempotency_key is not None:
            ident = (job.org_id, job.idempotency_key)
            seen = known.get(ident)
            if seen is not None:
                if seen[0] != job.request_hash:
                    return conflict()
                return seen[1], False
            known[ident] = (job.request_hash, first)
            claims.append(  # in CLAIM_COLUMNS order
                (job.org_id, job.idempotency_key, job.key_id, job.request_hash, first,
                 chain.created)
            )  # fmt: skip
        for decision_id, kind, text in job.bodies:
            chain.append(key_id=job.key_id, kind=kind, text=text, decision_id=decision_id)
        return first, True
