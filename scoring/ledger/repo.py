"""The ledger's one door: open (and migrate) the database, append decisions with their
idempotency records (through the group-commit writer), read them back, and hold the keys."""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from scoring.config import Settings
from scoring.errors import IdempotencyConflictError, LedgerUnavailableError
from scoring.ledger.chain import ChainReport, verify_rows
from scoring.ledger.checkpoint import Checkpoint, CheckpointError, CheckpointFile
from scoring.ledger.database import make_engine, migrate, now_text
from scoring.ledger.keys import KeyStore
from scoring.ledger.tables import api_keys, decisions
from scoring.ledger.writer import Entry, GroupCommitWriter, Statements, conflict, request_hash
from training.signing import SigningKey

log = logging.getLogger(__name__)
VERIFY_ROWS_PER_FETCH = 1000


@dataclass(frozen=True)
class StoredDecision:
    """A decision as stored: its id, the key that made it, that key's organisation (the
    decision's owner) and the recorded body."""

    decision_id: str
    key_id: str
    org_id: str
    kind: str
    created_at: str
    body: dict[str, Any]


# a decision belongs to its key's organisation; a key_id no key row holds (the operator's
# `preapprove`) is its own owner
_OWNED = sa.select(
    decisions, sa.func.coalesce(api_keys.c.org_id, decisions.c.key_id).label("org_id")
).select_from(decisions.outerjoin(api_keys, api_keys.c.key_id == decisions.c.key_id))


def _stored(row: sa.Row[Any]) -> StoredDecision:
    return StoredDecision(
        row.decision_id, row.key_id, row.org_id, row.kind, row.created_at, json.loads(row.body)
    )


class Ledger:
    """Decisions, idempotency records and API keys in one database.

    With a signing key every row carries its MAC; with a checkpoint file too, the last row
    is checkpointed outside the database every `checkpoint_seconds` while rows are written,
    and on close."""

    def __init__(
        self,
        url: str,
        *,
        key: SigningKey | None = None,
        checkpoint_path: Path | None = None,
        checkpoint_seconds: float = 5.0,
    ) -> None:
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
        self._writer = GroupCommitWriter(self.engine, self._sql, lock_path=lock_path, key=key)
        self.key = key
        self.checkpoints = (
            CheckpointFile(checkpoint_path, key)
            if key is not None and checkpoint_path is not None
            else None
        )
        self._checkpoint_seconds = checkpoint_seconds
        self._stop_checkpoints = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._local = threading.local()
        self._lookup_connections: list[Any] = []
        self._lookup_lock = threading.Lock()
        self._postgres = self.engine.dialect.name == "postgresql"

    @classmethod
    def open(cls, settings: Settings, *, create_key: bool = False) -> Ledger:
        """The service's ledger: keyed with the deployment's signing key, checkpointed.

        Raises:
            SigningKeyError: no signing key (and not asked to create one).
        """
        key = SigningKey.read(settings.signing_key_path, create=create_key)
        return cls(
            settings.ledger_url,
            key=key,
            checkpoint_path=settings.ledger_checkpoint_path,
            checkpoint_seconds=settings.ledger_checkpoint_seconds,
        )

    def migrate(self) -> None:
        """Bring the schema to the newest migration (Alembic)."""
        migrate(self.engine)

    def checkpoint(self) -> Checkpoint | None:
        """Write the last row's checkpoint outside the database now; None without rows
        (or without a checkpoint file)."""
        if self.checkpoints is None:
            return None
        with self.reader.connect() as conn:
            last = conn.execute(
                sa.select(decisions.c.seq, decisions.c.row_hash)
                .order_by(decisions.c.seq.desc())
                .limit(1)
            ).first()
        if last is None:
            return None
        point = Checkpoint(int(last.seq), str(last.row_hash), now_text())
        self.checkpoints.write(point)
        return point

    def _checkpoint_periodically(self) -> None:
        while not self._stop_checkpoints.wait(self._checkpoint_seconds):
            try:
                self.checkpoint()
            except Exception:  # the database is away: the next round tries again
                log.warning("ledger checkpoint failed; retrying", exc_info=True)

    def _start_checkpoints(self) -> None:
        if self.checkpoints is None or self._checkpointer is not None:
            return
        with self._lookup_lock:
            if self._checkpointer is None:
                self._checkpointer = threading.Thread(
                    target=self._checkpoint_periodically, daemon=True, name="ledger-checkpoint"
                )
                self._checkpointer.start()

    def close(self) -> None:
        """Finish pending writes, checkpoint, stop the writer and close every connection."""
        self._writer.close()
        if self._checkpointer is not None:
            self._stop_checkpoints.set()
            self._checkpointer.join()
            self._checkpointer = None
            try:
                self.checkpoint()
            except Exception:
                log.warning("could not write the ledger checkpoint at close", exc_info=True)
        with self._lookup_lock:
            for conn in self._lookup_connections:
                conn.close()
            self._lookup_connections.clear()
        self.engine.dispose()
        self.reader.dispose()

    def writable(self) -> str | None:
        """None when the ledger can commit, else why not. After a failed commit a probe
        transaction (the write lock taken, nothing written) must succeed before it is
        writable again: a full disk, a held lock or a lost database keeps it unwritable."""
        if self._writer.failing is None:
            return None
        try:
            conn = self.engine.raw_connection()  # as the writer commits: its own DBAPI SQL
            try:
                cursor = conn.cursor()
                if self._postgres:
                    cursor.execute(self._sql.pg_lock, (0,))
                else:
                    cursor.execute("BEGIN IMMEDIATE")  # takes the write lock
                m = self._sql.mark
                cursor.execute(  # what a commit writes, rolled back
                    "INSERT INTO idempotency_claims (org_id, idempotency_key, key_id, "
                    f"request_hash, decision_id, created_at) VALUES ({m}, {m}, {m}, {m}, {m}, {m})",
                    ("-probe-", "-probe-", "-probe-", "-", "-probe-", now_text()),
                )
                cursor.execute(
                    "INSERT INTO decisions (decision_id, key_id, kind, created_at, body, "
                    f"prev_hash, row_hash) VALUES ({m}, {m}, {m}, {m}, {m}, {m}, {m})",
                    ("-probe-", "-", "probe", now_text(), "{}", "-", "-"),
                )
                cursor.close()
            finally:
                conn.rollback()
                conn.close()
        except Exception as exc:
            return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        self._writer.failing = None
        return None

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
        org_id: str,
        idempotency_key: str | None,
        request: dict[str, Any],
        bodies: list[tuple[str, str, dict[str, Any]]],
    ) -> tuple[str, bool]:
        """Append decisions (decision_id, kind, body) and the idempotency record at once.

        Returns (the first decision_id, True) when written, or the stored decision_id and
        False when the same organisation already recorded the same request under this
        Idempotency-Key. Returns only after the
        transaction holding the rows has committed. Concurrent calls are committed together
        (group commit): one synchronous commit for every request waiting at that moment.

        Raises:
            IdempotencyConflictError: the key was used before with a different request.
        """
        recorded: tuple[str, bool] = self.submit(
            key_id=key_id,
            org_id=org_id,
            idempotency_key=idempotency_key,
            request=request,
            bodies=bodies,
        ).result()
        return recorded

    def submit(
        self,
        *,
        key_id: str,
        org_id: str,
        idempotency_key: str | None,
        request: dict[str, Any],
        bodies: list[tuple[str, str, dict[str, Any]]],
    ) -> Future[Any]:
        """`record` without waiting: the future resolves as `record` returns or raises."""
        entry = Entry.of(
            key_id=key_id,
            org_id=org_id,
            idempotency_key=idempotency_key,
            request=request,
            bodies=bodies,
        )
        self._start_checkpoints()
        return self._writer.submit([entry], single=True)

    def submit_many(self, entries: list[Entry]) -> Future[Any]:
        """Several requests' rows handed over at once (one wake-up of the writer, one
        future); the future gives each entry's outcome in order: (first decision_id,
        written?) or the exception that refused it."""
        self._start_checkpoints()
        return self._writer.submit(entries)

    def replay(self, *, org_id: str, idempotency_key: str, request: dict[str, Any]) -> str | None:
        """The decision the organisation already recorded for this Idempotency-Key and
        request, if any, so a retry is
        answered without deciding again. `record` still checks inside its transaction.

        Raises:
            IdempotencyConflictError: the key was used before with a different request.
        """
        found = self.replay_many([(org_id, idempotency_key, request)])[0]
        if isinstance(found, Exception):
            raise found
        return found

    def replay_many(
        self, requests: list[tuple[str, str, dict[str, Any]]]
    ) -> list[str | IdempotencyConflictError | None]:
        """`replay` for several (org_id, idempotency_key, request) at once, in one query:
        for each, the decision recorded for it, None, or the conflict (returned, not
        raised, so one request's conflict leaves the others answered).

        Every decision asks this, so it is prepared SQL on a connection the calling
        thread keeps, not a pooled SQLAlchemy statement.
        """
        pairs = sorted({(org_id, ident) for org_id, ident, _ in requests})
        found = self._claims(pairs)
        out: list[str | IdempotencyConflictError | None] = []
        for org_id, ident, request in requests:
            seen = found.get((org_id, ident))
            if seen is None:
                out.append(None)
            else:
                out.append(seen[1] if seen[0] == request_hash(request) else conflict())
        return out

    def _claims(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[Any, ...]]:
        # a connection the database dropped (a restart, pg_terminate_backend) is replaced
        # and the look-up asked once more; a second failure is the ledger being away
        for attempt in (1, 2):
            conn = self._lookup_connection()
            try:
                cursor = conn.cursor()
                try:
                    found = self._sql.claims(cursor, pairs)
                finally:
                    cursor.close()
                if not self._postgres:
                    conn.rollback()  # end the read so the next one sees newer commits
                return found
            except Exception as exc:
                self._drop_lookup_connection(conn)
                if attempt == 2:
                    raise LedgerUnavailableError(
                        f"the ledger cannot be read: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}; retry shortly"
                    ) from exc
        raise AssertionError("unreachable")

    def _drop_lookup_connection(self, conn: Any) -> None:
        self._local.conn = None
        with self._lookup_lock:
            if conn in self._lookup_connections:
                self._lookup_connections.remove(conn)
        try:
            conn.invalidate()
        except Exception:  # already gone
            log.debug("the dropped look-up connection could not be invalidated")

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
            row = conn.execute(_OWNED.where(decisions.c.decision_id == decision_id)).first()
        return None if row is None else _stored(row)

    def get_many(self, decision_ids: list[str]) -> dict[str, StoredDecision]:
        """Stored decisions by id (missing ids are left out), read in slices."""
        out: dict[str, StoredDecision] = {}
        with self.reader.connect() as conn:
            for start in range(0, len(decision_ids), 900):  # under SQLite's variable limit
                part = decision_ids[start : start + 900]
                rows = conn.execute(_OWNED.where(decisions.c.decision_id.in_(part)))
                for row in rows:
                    out[row.decision_id] = _stored(row)
        return out

    def count(self) -> int:
        """Number of decision rows."""
        with self.reader.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(decisions)).scalar_one())

    def verify(self) -> ChainReport:
        """Walk the whole chain in sequence order, streamed (bounded memory): every link,
        with the key every row's MAC, and the end of the ledger against its checkpoint."""
        with self.reader.connect() as conn:
            rows = conn.execution_options(yield_per=VERIFY_ROWS_PER_FETCH).execute(
                sa.select(decisions).order_by(decisions.c.seq)
            )
            report = verify_rows((r._mapping for r in rows), self.key)
            problems = list(report.problems)
            if self.checkpoints is not None:
                problems += self._against_checkpoint(conn, report)
        return replace(report, problems=problems)

    def _against_checkpoint(self, conn: sa.Connection, report: ChainReport) -> list[str]:
        assert self.checkpoints is not None
        try:
            point = self.checkpoints.read()
        except CheckpointError as exc:
            return [str(exc)]
        if point is None:
            return []
        at = conn.execute(
            sa.select(decisions.c.row_hash).where(decisions.c.seq == point.seq)
        ).scalar_one_or_none()
        if at is None:
            return [
                f"the checkpoint of {point.at} records row seq {point.seq}, but the ledger "
                f"ends at seq {report.last_seq} ({report.rows} rows): rows were deleted "
                f"from its end ({self.checkpoints.path})"
            ]
        if at != point.row_hash:
            return [
                f"row seq {point.seq} has hash {at}, the checkpoint of {point.at} recorded "
                f"{point.row_hash}: the ledger was rewritten up to there"
            ]
        return []
