"""The ledger's one door: open (and migrate) the database, append decisions with their
idempotency records (through the group-commit writer), read them back, and hold the keys."""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from scoring.errors import IdempotencyConflictError
from scoring.ledger.chain import ChainReport, verify_rows
from scoring.ledger.database import make_engine, migrate
from scoring.ledger.keys import KeyStore
from scoring.ledger.tables import decisions
from scoring.ledger.writer import Entry, GroupCommitWriter, Statements, conflict, request_hash


@dataclass(frozen=True)
class StoredDecision:
    """A decision as stored: its id, the key that made it and the recorded body."""

    decision_id: str
    key_id: str
    kind: str
    created_at: str
    body: dict[str, Any]


class Ledger:
    """Decisions, idempotency records and API keys in one database."""

    def __init__(self, url: str) -> None:
        lock_path = None
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            path.parent.mkdir(parents=True, exist_ok=True)
            lock_path = path.with_name(path.name + ".write-lock")
        self.url = url
        self.engine = make_engine(url)
        sqlite = url.startswith("sqlite")
        self.reader = make_engine(url, writes=False) if sqlite else self.engine
        self.keys = KeyStore(self.engine, self.reader)
        self._sql = Statements(self.engine.dialect.paramstyle)
        self._writer = GroupCommitWriter(self.engine, self._sql, lock_path=lock_path)
        self._local = threading.local()
        self._lookup_connections: list[Any] = []
        self._lookup_lock = threading.Lock()
        self._postgres = self.engine.dialect.name == "postgresql"

    def migrate(self) -> None:
        """Bring the schema to the newest migration (Alembic)."""
        migrate(self.engine)

    def close(self) -> None:
        """Finish pending writes, stop the writer and close every pooled connection."""
        self._writer.close()
        with self._lookup_lock:
            for conn in self._lookup_connections:
                conn.close()
            self._lookup_connections.clear()
        self.engine.dispose()
        self.reader.dispose()

    def ping(self) -> bool:
        """True when the database answers."""
        try:
            with self.reader.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except sa.exc.SQLAlchemyError:
            return False

    def record(
        self,
        *,
        key_id: str,
        idempotency_key: str | None,
        request: dict[str, Any],
        bodies: list[tuple[str, str, dict[str, Any]]],
    ) -> tuple[str, bool]:
        """Append decisions (decision_id, kind, body) and the idempotency record at once.

        Returns (the first decision_id, True) when written, or the stored decision_id and
        False when the same key already recorded the same request. Returns only after the
        transaction holding the rows has committed. Concurrent calls are committed together
        (group commit): one synchronous commit for every request waiting at that moment.

        Raises:
            IdempotencyConflictError: the key was used before with a different request.
        """
        recorded: tuple[str, bool] = self.submit(
            key_id=key_id, idempotency_key=idempotency_key, request=request, bodies=bodies
        ).result()
        return recorded

    def submit(
        self,
        *,
        key_id: str,
        idempotency_key: str | None,
        request: dict[str, Any],
        bodies: list[tuple[str, str, dict[str, Any]]],
    ) -> Future[Any]:
        """`record` without waiting: the future resolves as `record` returns or raises."""
        entry = Entry.of(
            key_id=key_id, idempotency_key=idempotency_key, request=request, bodies=bodies
        )
        return self._writer.submit([entry], single=True)

    def submit_many(self, entries: list[Entry]) -> Future[Any]:
        """Several requests' rows handed over at once (one wake-up of the writer, one
        future); the future gives each entry's outcome in order: (first decision_id,
        written?) or the exception that refused it."""
        return self._writer.submit(entries)

    def replay(self, *, key_id: str, idempotency_key: str, request: dict[str, Any]) -> str | None:
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
        self, requests: list[tuple[str, str, dict[str, Any]]]
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
                out.append(seen[1] if seen[0] == request_hash(request) else conflict())
        return out

    def _lookup_connection(self) -> Any:  # a DBAPI connection this thread keeps
        conn: Any = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.reader.raw_connection()
            if self._postgres:
                conn.driver_connection.autocommit = True  # each look-up sees the latest
            with self._lookup_lock:
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
            return int(conn.execute(sa.select(sa.func.count()).select_from(decisions)).scalar_one())

    def verify(self) -> ChainReport:
        """Walk the whole chain in sequence order."""
        with self.reader.connect() as conn:
            rows = [
                dict(r._mapping)
                for r in conn.execute(sa.select(decisions).order_by(decisions.c.seq))
            ]
        return verify_rows(rows)
