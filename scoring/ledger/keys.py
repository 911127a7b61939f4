"""API keys and roles: a key is shown once; only its SHA-256 is stored. Looked-up keys are
trusted for a short while, so a request needs no database round trip for its key."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

from scoring.errors import ForbiddenError, UnauthorizedError
from scoring.ledger.database import now_text
from scoring.ledger.tables import api_keys

Role = Literal["lender", "coop", "scientist"]
ROLES: tuple[Role, ...] = ("lender", "coop", "scientist")
PREFIX = "agk_"
# how long a worker trusts a key it has looked up: a key revoked by another process (the
# `keys revoke` command) stops working within this time; in-process revocation at once
KEY_CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class ApiKey:
    """A stored key (never the secret itself)."""

    key_id: str
    name: str
    role: str
    coop_id: str | None
    revoked_at: str | None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    """Keys in the ledger's database: `engine` writes, `reader` looks up."""

    def __init__(self, engine: sa.Engine, reader: sa.Engine) -> None:
        self.engine, self.reader = engine, reader
        self._cache: dict[str, tuple[ApiKey, float]] = {}

    def create(self, *, role: str, name: str, coop_id: str | None, secret: str) -> str:
        """Store a key's hash; returns its key_id."""
        key_id = str(uuid.uuid4())
        with self.engine.begin() as conn:
            conn.execute(
                api_keys.insert().values(
                    key_id=key_id,
                    name=name,
                    role=role,
                    coop_id=coop_id,
                    key_hash=_digest(secret),
                    created_at=now_text(),
                )
            )
        return key_id

    def cached(self, secret: str) -> ApiKey | None:
        """The key whose secret this is, if it was looked up within KEY_CACHE_SECONDS;
        never touches the database (the event loop may ask)."""
        found = self._cache.get(_digest(secret))
        if found is not None and found[1] > time.monotonic():
            return found[0]
        return None

    def find(self, secret: str) -> ApiKey | None:
        """The active key whose secret this is, or None (see KEY_CACHE_SECONDS)."""
        cached = self.cached(secret)
        if cached is not None:
            return cached
        digest = _digest(secret)
        with self.reader.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.key_hash == digest)).first()
        if row is None or row.revoked_at is not None:
            self._cache.pop(digest, None)
            return None
        key = ApiKey(row.key_id, row.name, row.role, row.coop_id, row.revoked_at)
        self._cache[digest] = (key, time.monotonic() + KEY_CACHE_SECONDS)
        return key

    def revoke(self, key_id: str) -> bool:
        """Revoke a key; False if there is no such active key."""
        with self.engine.begin() as conn:
            done = conn.execute(
                api_keys.update()
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now_text())
            )
        self._cache.clear()
        return done.rowcount == 1

    def list(self) -> list[ApiKey]:
        """Every key, newest first."""
        with self.reader.connect() as conn:
            rows = conn.execute(sa.select(api_keys).order_by(api_keys.c.created_at.desc()))
            return [ApiKey(r.key_id, r.name, r.role, r.coop_id, r.revoked_at) for r in rows]


def create_key(
    store: KeyStore, *, role: Role, name: str, coop_id: str | None = None
) -> tuple[str, str]:
    """Make a key; returns (key_id, secret). The secret is not stored and cannot be shown again."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    if role == "coop" and not coop_id:
        raise ValueError("a coop key needs --coop ID (the co-op whose members it may see)")
    secret = PREFIX + secrets.token_urlsafe(32)
    return store.create(role=role, name=name, coop_id=coop_id, secret=secret), secret


def secret_of(header: str | None) -> str:
    """The key presented as `Authorization: Bearer <key>`.

    Raises:
        UnauthorizedError: no key.
    """
    if not header or not header.startswith("Bearer "):
        raise UnauthorizedError("send your API key as `Authorization: Bearer <key>`")
    return header.removeprefix("Bearer ").strip()


def check_role(key: ApiKey | None, *, allowed: tuple[Role, ...]) -> ApiKey:
    """The key, if it is active and has one of the roles.

    Raises:
        UnauthorizedError: not an active key.
        ForbiddenError: a valid key of another role.
    """
    if key is None:
        raise UnauthorizedError("this API key is not valid or has been revoked")
    if key.role not in allowed:
        raise ForbiddenError(f"this route needs a {' or '.join(allowed)} key; yours is {key.role}")
    return key
