"""Ledger tables (SQLAlchemy Core). The schema itself is created by Alembic migrations."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("decision_id", sa.String(36), nullable=False, unique=True),
    sa.Column("key_id", sa.String(36), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # score | preapproval | batch
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # canonical JSON of the whole record
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("row_hash", sa.String(64), nullable=False),
    # HMAC of row_hash with the signing key (kept outside the database): only the service
    # can append a row that verifies, or re-hash the chain after an edit
    sa.Column("row_mac", sa.String(64), nullable=True),
)

# an Idempotency-Key is the organisation's (it outlives a rotated key); key_id made the claim
idempotency = sa.Table(
    "idempotency_claims",
    metadata,
    sa.Column("org_id", sa.String(64), primary_key=True),
    sa.Column("idempotency_key", sa.String(200), primary_key=True),
    sa.Column("key_id", sa.String(36), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("decision_id", sa.String(36), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
)

organisations = sa.Table(
    "organisations",
    metadata,
    sa.Column("org_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(36), primary_key=True),
    sa.Column("org_id", sa.String(64), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("coop_id", sa.String(64), nullable=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("revoked_at", sa.String(32), nullable=True),
)

preapproval_jobs = sa.Table(
    "preapproval_jobs",
    metadata,
    sa.Column("job_id", sa.String(36), primary_key=True),
    sa.Column("key_id", sa.String(36), nullable=False),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("coop_id", sa.String(64), nullable=False, index=True),
    sa.Column("contract_id", sa.String(64), nullable=False),
    sa.Column("request", sa.Text, nullable=False),  # canonical JSON of the request
    sa.Column("status", sa.String(16), nullable=False),  # queued | running | done | failed
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("done", sa.Integer, nullable=False),
    sa.Column("summary", sa.Text, nullable=True),  # canonical JSON, once done
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),  # unix seconds: who runs it, until
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
    sa.UniqueConstraint("org_id", "idempotency_key", name="uq_preapproval_jobs_org_key"),
)
