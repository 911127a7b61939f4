"""The ledger's database: engines with the settings its writes need, the schema's
migrations, and the one clock format every stored time uses."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def now_text() -> str:
    """The current time as the ledger stores it (ISO 8601, UTC, microseconds)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def make_engine(url: str, *, writes: bool = True) -> sa.Engine:
    """An engine; SQLite gets WAL, synchronous writes and, for the writing engine, BEGIN
    IMMEDIATE transactions (readers of a WAL database need no lock and take none)."""
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url, connect_args={"isolation_level": None, "timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    if writes:

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock up front

    return engine


def migrate(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the schema to the newest migration, or to `revision` (Alembic)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        if engine.dialect.name == "postgresql":
            conn.commit()
