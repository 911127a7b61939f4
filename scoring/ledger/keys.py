"""API keys and roles: a key is shown once; only its SHA-256 is stored. Looked-up keys are
trusted for a short while, so a request needs no database round trip for its key.

Every key belongs to an organisation (a lender, a co-op): what a key decides, claims and
runs is its organisation's, so a rotated key's successor reads it all and its
Idempotency-Keys still protect."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from scoring.errors import ForbiddenError, UnauthorizedError
from scoring.ledger.database import now_text
from scoring.ledger.tables import api_keys, organisations

Role = Literal["lender", "coop", "scientist", "data"]
# data: a platform feed appending to the arrival log (POST /v1/data/{table})
ROLES: tuple[Role, ...] = ("lender", "coop", "scientist", "data")
PREFIX = "agk_"
# how long a worker trusts a key it has looked up: a key revoked by another process (the
# `keys revoke` command) stops working within this time; in-process revocation at once
KEY_CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class ApiKey:
    """A stored key (never the secret itself)."""

    key_id: str
    org_id: str
    name: str
    role: str
    coop_id: str | None
    revoked_at: str | None


@dataclass(frozen=True)
class Organisation:
    """A lender or a co-op: the owner of its keys' decisions."""

    org_id: str
    name: str
    created_at: str


class UnknownOrganisationError(ValueError):
    """A key asked for in an organisation that does not exist."""


def _key(row: sa.Row[Any]) -> ApiKey:
    return ApiKey(row.key_id, row.org_id, row.name, row.role, row.coop_id, row.revoked_at)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    """Keys in the ledger's database: `engine` writes, `reader` looks up."""

    def __init__(self, engine: sa.Engine, reader: sa.Engine) -> None:
        self.engine, self.reader = engine, reader
        self._cache: dict[str, tuple[ApiKey, float]] = {}

    def create(
        self, *, role: str, name: str, coop_id: str | None, secret: str, org_id: str | None
    ) -> ApiKey:
        """Store a key's hash in the organisation, or in a new one named after the key.

        Raises:
            UnknownOrganisationError: no organisation `org_id`.
        """
        key_id = str(uuid.uuid4())
        created = now_text()
        with self.engine.begin() as conn:
            if org_id is None:
                org_id = "org_" + secrets.token_hex(8)
                conn.execute(
                    organisations.insert().values(org_id=org_id, name=name, created_at=created)
                )
            elif (
                conn.execute(
                    sa.select(organisations.c.org_id).where(organisations.c.org_id == org_id)
                ).first()
                is None
            ):
                raise UnknownOrganisationError(
                    f"there is no organisation {org_id!r}: leave out --org for a new one, or "
                    "use an org_id that `agricredit keys list` shows"
                )
            conn.execute(
                api_keys.insert().values(
                    key_id=key_id,
                    org_id=org_id,
                    name=name,
                    role=role,
                    coop_id=coop_id,
                    key_hash=_digest(secret),
                    created_at=created,
                )
            )
        return ApiKey(key_id, org_id, name, role, coop_id, None)

    def get(self, key_id: str) -> ApiKey | None:
        """A stored key (active or revoked) by its key_id."""
        with self.reader.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).first()
        return None if row is None else _key(row)

    def organisations(self) -> list[Organisation]:
        """Every organisation, oldest first."""
        with self.reader.connect() as conn:
            rows = conn.execute(sa.select(organisations).order_by(organisations.c.created_at))
            return [Organisation(r.org_id, r.name, r.created_at) for r in rows]

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
        key = _key(row)
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
            return [_key(r) for r in rows]


def create_key(
    store: KeyStore,
    *,
    role: Role,
    name: str,
    coop_id: str | None = None,
    org_id: str | None = None,
) -> tuple[ApiKey, str]:
    """Make a key in the organisation `org_id` (None: a new organisation); returns the key
    and its secret. The secret is not stored and cannot be shown again.

    Raises:
        ValueError: an unknown role, a coop key without its co-op, or an unknown organisation.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    if role == "coop" and not coop_id:
        raise ValueError("a coop key needs --coop ID (the co-op whose members it may see)")
    secret = PREFIX + secrets.token_urlsafe(32)
    key = store.create(role=role, name=name, coop_id=coop_id, secret=secret, org_id=org_id)
    return key, secret


def rotate_key(store: KeyStore, key_id: str, *, keep_old: bool = False) -> tuple[ApiKey, str]:
    """A new key in the same organisation, with the same role, co-op and name; the old key
    is revoked unless `keep_old` (both work while clients move over).

    Raises:
        ValueError: no active key `key_id`.
    """
    old = store.get(key_id)
    if old is None or old.revoked_at is not None:
        raise ValueError(f"no active key {key_id}: `agricredit keys list` shows the keys")
    new, secret = create_key(
        store,
        role=old.role,  # type: ignore[arg-type]  # stored roles are ROLES
        name=old.name,
        coop_id=old.coop_id,
        org_id=old.org_id,
    )
    if not keep_old:
        store.revoke(key_id)
    return new, secret


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
