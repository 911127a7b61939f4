"""The ledger's one door: open (and migrate) the database, append decisions with their
idempotency records in one serialised transaction, read them back, manage API keys."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from scoring.errors import IdempotencyConflictError
from scoring.ledger.chain import GENESIS, ChainReport, canonical, link_hash, verify_rows
from scoring.ledger.tables import api_keys, decisions, idempotency

log = logging.getLogger(__name__)
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


def make_engine(url: str, *, writes: bool = True) -> sa.Engine:
    """An engine; SQLite gets WAL, synchronous writes and, for the writing engine, BEGIN
    IMMEDIATE transactions (readers of a WAL database need no lock and take none)."""
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url, connect_args={"isolation_level": None, "timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    if writes:

        @sa.event.listens_for(engine, "begin")
        def _begin(conn) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock up front

    return engine


MAX_BATCH = 256  # rows: a larger submission is committed whole, alone
# how long a worker trusts a key it has looked up: a key revoked by another process (the
# `keys revoke` command) stops working within this time; in-process revocation at once
KEY_CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class Entry:
    """One request's rows as the writer takes them: encoded, ready to link and insert."""

    key_id: str
    idempotency_key: str | None
    request_hash: str
    bodies: list[tuple[str, str, str]]  # (decision_id, kind, canonical text of the body)

    @classmethod
    def of(
        cls, *, key_id: str, idempotency_key: str | None, request: dict,
        bodies: list[tuple[str, str, dict]],
    ) -> Entry:  # fmt: skip
        """Encode a request's decisions (decision_id, kind, body) on the caller's thread:
        the writer holds the lock between workers while it works, so it does no more than
        link rows and run the statements."""
        texts = [(decision_id, kind, canonical(body)) for decision_id, kind, body in bodies]
        return cls(key_id, idempotency_key, _request_hash(request), texts)


Recorded = tuple[str, bool] | Exception  # (first decision_id, written?) or why refused


@dataclass
class _Submission:
    """Entries handed to the writer together and answered by one future: the list of
    their outcomes, or with `single`, the one entry's outcome (raised if an error)."""

    entries: list[Entry]
    future: Future
    single: bool = False

    def resolve(self, outcomes: list[Recorded]) -> None:
        if not self.single:
            self.future.set_result(outcomes)
        elif isinstance(outcomes[0], Exception):
            self.future.set_exception(outcomes[0])
        else:
            self.future.set_result(outcomes[0])


_ROW_COLUMNS = [c.name for c in decisions.c if c.name != "seq"]
_CLAIM_COLUMNS = [c.name for c in idempotency.c]


class _Statements:
    """The writer's and the replay's SQL, prepared once in the driver's parameter style.

    The per-request path runs these on a kept DBAPI connection: through SQLAlchemy Core the
    same five statements cost about 0.5 ms of CPU per transaction, more than a decision.
    A batch's rows go in as one multi-row statement per table, not `executemany`: the driver
    gives up the GIL around every row it steps, and each time the writer takes it back it
    may wait out the event loop's turn (under load a commit waited about 1 ms in all).
    """

    ROWS_PER_STATEMENT = 256  # at most 7 columns each: far under any driver's limit

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
        """The stored claims of n (key_id, idempotency_key) pairs."""
        sql = self._cache.get(("claimed", n))
        if sql is None:
            # OR of pairs, not a row-value IN: SQLite scans the table for the latter
            pair = f"(key_id = {self.mark} AND idempotency_key = {self.mark})"
            sql = self._cache["claimed", n] = (
                "SELECT key_id, idempotency_key, request_hash, decision_id FROM idempotency "
                f"WHERE {' OR '.join([pair] * n)}"
            )
        return sql

    def claims(self, cursor, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], tuple]:
        """The stored (request_hash, decision_id) of each (key_id, idempotency_key) pair
        that has a claim, in as few statements as the parameter limit allows."""
        found: dict[tuple[str, str], tuple] = {}
        step = self.ROWS_PER_STATEMENT
        for start in range(0, len(pairs), step):
            part = pairs[start : start + step]
            cursor.execute(self.claimed_many(len(part)), [v for pair in part for v in pair])
            for key_id, idempotency_key, request_hash, decision_id in cursor.fetchall():
                found[(key_id, idempotency_key)] = (request_hash, decision_id)
        return found

    def insert(self, table: str, columns: list[str], n: int) -> str:
        """INSERT of n rows in one statement."""
        sql = self._cache.get((table, n))
        if sql is None:
            sql = self._cache[table, n] = (
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES {self._values(len(columns), n)}"
            )
        return sql

    def insert_rows(self, cursor, table: str, columns: list[str], rows: list[tuple]) -> None:
        """Insert rows with as few statements as the parameter limit allows."""
        step = self.ROWS_PER_STATEMENT
        for start in range(0, len(rows), step):
            part = rows[start : start + step]
            cursor.execute(self.insert(table, columns, len(part)), [v for r in part for v in r])


class _Chain:
    """Rows appended in one transaction, each linked to the one before it; all of them
    carry the transaction's time (one clock reading per commit, not per row)."""

    def __init__(self, head: str) -> None:
        self.head = head
        self.created = _now()
        self.rows: list[tuple] = []  # in _ROW_COLUMNS order

    def append(self, *, key_id: str, kind: str, text: str, decision_id: str) -> None:
        created = self.created
        row_hash = link_hash(self.head, decision_id, key_id, kind, created, text)
        self.rows.append((decision_id, key_id, kind, created, text, self.head, row_hash))
        self.head = row_hash


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
        self._write_lock_file = None
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            path.parent.mkdir(parents=True, exist_ok=True)
            # workers in other processes queue on this lock and wake the moment it is
            # free; SQLite's own busy wait sleeps in growing steps (long tail latencies)
            self._write_lock_file = open(path.with_name(path.name + ".write-lock"), "a+b")
        self.url = url
        self.engine = make_engine(url)
        sqlite = url.startswith("sqlite")
        self.reader = make_engine(url, writes=False) if sqlite else self.engine
        self._keys: dict[str, tuple[ApiKey, float]] = {}
        self._local = threading.local()
        self._lookup_connections: list = []
        self._sql = _Statements(self.engine.dialect.paramstyle)
        self._wconn = None  # the writer thread's own connection
        self._queue: queue.SimpleQueue[_Submission | None] = queue.SimpleQueue()
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
            if self._wconn is not None:
                self._wconn.close()
                self._wconn = None
            for conn in self._lookup_connections:
                conn.close()
            self._lookup_connections.clear()
        self.engine.dispose()
        self.reader.dispose()
        if self._write_lock_file is not None:
            self._write_lock_file.close()
            self._write_lock_file = None

    def ping(self) -> bool:
        """True when the database answers."""
        try:
            with self.reader.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except sa.exc.SQLAlchemyError:
            return False

    @contextmanager
    def _between_processes(self) -> Iterator[None]:
        if self._write_lock_file is None:
            yield
            return
        fcntl.flock(self._write_lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._write_lock_file, fcntl.LOCK_UN)

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
        return self.submit(
            key_id=key_id, idempotency_key=idempotency_key, request=request, bodies=bodies
        ).result()

    def submit(
        self,
        *,
        key_id: str,
        idempotency_key: str | None,
        request: dict,
        bodies: list[tuple[str, str, dict]],
    ) -> Future:
        """`record` without waiting: the future resolves as `record` returns or raises."""
        entry = Entry.of(
            key_id=key_id, idempotency_key=idempotency_key, request=request, bodies=bodies
        )
        return self._hand_over(_Submission([entry], Future(), single=True))

    def submit_many(self, entries: list[Entry]) -> Future:
        """Several requests' rows handed over at once (one wake-up of the writer, one
        future); the future gives each entry's outcome in order: (first decision_id,
        written?) or the exception that refused it."""
        return self._hand_over(_Submission(entries, Future()))

    def _hand_over(self, submission: _Submission) -> Future:
        self._start_writer()
        self._queue.put(submission)
        return submission.future

    def _start_writer(self) -> None:
        with self._writer_lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(
                    target=self._write_batches, daemon=True, name="ledger-writer"
                )
                self._writer.start()

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
        """Each job's outcome; all of them fail alike when the transaction does."""
        try:
            conn = self._writer_connection()
            cursor = conn.cursor()
            try:
                outcomes = self._write(cursor, batch)
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            finally:
                cursor.close()
        except Exception as exc:  # the transaction failed: nobody's rows were written
            self._drop_writer_connection()
            return [exc] * len(batch)
        return outcomes

    def _write(self, cursor, batch: list[Entry]) -> list[Recorded]:
        """The batch's statements in the open transaction: lock, claims, chain rows."""
        sql = self._sql
        if self._postgres:
            cursor.execute(sql.pg_lock, (_PG_LOCK,))
        else:
            cursor.execute("BEGIN IMMEDIATE")
        known = sql.claims(
            cursor, sorted({(j.key_id, j.idempotency_key) for j in batch if j.idempotency_key})
        )
        cursor.execute(sql.head)
        head = cursor.fetchone()
        chain = _Chain(head[0] if head else GENESIS)
        claims: list[tuple] = []
        outcomes = [self._apply(job, known, chain, claims) for job in batch]
        sql.insert_rows(cursor, "decisions", _ROW_COLUMNS, chain.rows)
        sql.insert_rows(cursor, "idempotency", _CLAIM_COLUMNS, claims)
        return outcomes

    def _writer_connection(self):
        if self._wconn is None:
            self._wconn = self.engine.raw_connection()
        return self._wconn

    def _drop_writer_connection(self) -> None:
        if self._wconn is not None:
            try:
                self._wconn.invalidate()  # a failed connection is not put back in the pool
            except Exception:  # already gone
                log.warning("could not invalidate the ledger writer's connection")
            self._wconn = None

    @staticmethod
    def _apply(
        job: Entry, known: dict[tuple[str, str], tuple], chain: _Chain, claims: list[tuple]
    ) -> Recorded:
        """One request's rows inside the batch's transaction (or why it was refused);
        `known` grows with the batch's own claims, so duplicates within it are caught too."""
        first = job.bodies[0][0]
        if job.idempotency_key is not None:
            ident = (job.key_id, job.idempotency_key)
            seen = known.get(ident)
            if seen is not None:
                if seen[0] != job.request_hash:
                    return _conflict()
                return seen[1], False
            known[ident] = (job.request_hash, first)
            claims.append((job.key_id, job.idempotency_key, job.request_hash, first, chain.created))
        for decision_id, kind, text in job.bodies:
            chain.append(key_id=job.key_id, kind=kind, text=text, decision_id=decision_id)
        return first, True

    def replay(self, *, key_id: str, idempotency_key: str, request: dict) -> str | None:
        """The decision already recorded for this key and request, if any, so a retry is
        answered without deciding again. `record` still checks inside its transaction.

        Raises:
            IdempotencyConflictError: the key was used before with a different request.
        """
        found = self.replay_many([(key_id, idempotency_key, request)])[0]
        if isinstance(found, Exception):
            raise found
        return found

    def replay_many(
        self, requests: list[tuple[str, str, dict]]
    ) -> list[str | IdempotencyConflictError | None]:
        """`replay` for several (key_id, idempotency_key, request) at once, in one query:
        for each, the decision recorded for it, None, or the conflict (returned, not
        raised, so one request's conflict leaves the others answered).

        Every decision asks this, so it is prepared SQL on a connection the calling
        thread keeps, not a pooled SQLAlchemy statement.
        """
        pairs = sorted({(key_id, ident) for key_id, ident, _ in requests})
        conn = self._lookup_connection()
        cursor = conn.cursor()
        try:
            found = self._sql.claims(cursor, pairs)
        finally:
            cursor.close()
        if not self._postgres:
            conn.rollback()  # end the read so the next one sees newer commits
        out: list[str | IdempotencyConflictError | None] = []
        for key_id, ident, request in requests:
            seen = found.get((key_id, ident))
            if seen is None:
                out.append(None)
            else:
                out.append(seen[1] if seen[0] == _request_hash(request) else _conflict())
        return out

    def _lookup_connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.reader.raw_connection()
            if self._postgres:
                conn.driver_connection.autocommit = True  # each look-up sees the latest
            with self._writer_lock:
                self._lookup_connections.append(conn)
        return conn

    def get(self, decision_id: str) -> StoredDecision | None:
        """A stored decision, or None."""
        with self.reader.connect() as conn:
            row = conn.execute(
                sa.select(decisions).where(decisions.c.decision_id == decision_id)
            ).first()
        if row is None:
            return None
        return StoredDecision(
            row.decision_id, row.key_id, row.kind, row.created_at, json.loads(row.body)
        )

    def get_many(self, decision_ids: list[str]) -> dict[str, StoredDecision]:
        """Stored decisions by id (missing ids are left out), read in slices."""
        out: dict[str, StoredDecision] = {}
        with self.reader.connect() as conn:
            for start in range(0, len(decision_ids), 900):  # under SQLite's variable limit
                part = decision_ids[start : start + 900]
                rows = conn.execute(sa.select(decisions).where(decisions.c.decision_id.in_(part)))
                for row in rows:
                    out[row.decision_id] = StoredDecision(
                        row.decision_id, row.key_id, row.kind, row.created_at, json.loads(row.body)
                    )
        return out

    def count(self) -> int:
        """Number of decision rows."""
        with self.reader.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(decisions)).scalar())

    def verify(self) -> ChainReport:
        """Walk the whole chain in sequence order."""
        with self.reader.connect() as conn:
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
        """The active key whose secret this is, or None (see KEY_CACHE_SECONDS)."""
        digest = hashlib.sha256(secret.encode()).hexdigest()
        cached = self._keys.get(digest)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        with self.reader.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.key_hash == digest)).first()
        if row is None or row.revoked_at is not None:
            self._keys.pop(digest, None)
            return None
        key = ApiKey(row.key_id, row.name, row.role, row.coop_id, row.revoked_at)
        self._keys[digest] = (key, time.monotonic() + KEY_CACHE_SECONDS)
        return key

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; False if there is no such active key."""
        with self.engine.begin() as conn:
            done = conn.execute(
                api_keys.update()
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
        self._keys.clear()
        return done.rowcount == 1

    def list_keys(self) -> list[ApiKey]:
        """Every key, newest first."""
        with self.reader.connect() as conn:
            rows = conn.execute(sa.select(api_keys).order_by(api_keys.c.created_at.desc()))
            return [ApiKey(r.key_id, r.name, r.role, r.coop_id, r.revoked_at) for r in rows]
