"""API keys and roles: a key is shown once; only its SHA-256 is stored."""

from __future__ import annotations

import secrets
from typing import Literal

from scoring.errors import ForbiddenError, UnauthorizedError
from scoring.ledger.repo import ApiKey, Ledger

Role = Literal["lender", "coop", "scientist"]
ROLES: tuple[Role, ...] = ("lender", "coop", "scientist")
PREFIX = "agk_"


def create_key(
    ledger: Ledger, *, role: Role, name: str, coop_id: str | None = None
) -> tuple[str, str]:
    """Make a key; returns (key_id, secret). The secret is not stored and cannot be shown again."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    if role == "coop" and not coop_id:
        raise ValueError("a coop key needs --coop ID (the co-op whose members it may see)")
    secret = PREFIX + secrets.token_urlsafe(32)
    return ledger.create_key(role=role, name=name, coop_id=coop_id, secret=secret), secret


def authenticate(ledger: Ledger, header: str | None, *, allowed: tuple[Role, ...]) -> ApiKey:
    """The key presented as `Authorization: Bearer <key>`, if it has one of the roles.

    Raises:
        UnauthorizedError: no key, or not an active key.
        ForbiddenError: a valid key of another role.
    """
    if not header or not header.startswith("Bearer "):
        raise UnauthorizedError("send your API key as `Authorization: Bearer <key>`")
    key = ledger.find_key(header.removeprefix("Bearer ").strip())
    if key is None:
        raise UnauthorizedError("this API key is not valid or has been revoked")
    if key.role not in allowed:
        raise ForbiddenError(f"this route needs a {' or '.join(allowed)} key; yours is {key.role}")
    return key
