"""Organisations: a lender (or a co-op) holds many keys, and its decisions, idempotency keys
and jobs belong to the organisation, so they outlive a rotated key.

Every key made before this migration becomes an organisation of its own (its org_id is its
key_id), so what each key could see and claim stays exactly as it was.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("org_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.execute(
        "INSERT INTO organisations (org_id, name, created_at) "
        "SELECT key_id, name, created_at FROM api_keys"
    )
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("org_id", sa.String(64), nullable=True))
    op.execute("UPDATE api_keys SET org_id = key_id")
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("org_id", existing_type=sa.String(64), nullable=False)
        batch.create_index("ix_api_keys_org_id", ["org_id"])

    # idempotency claims are the organisation's: a new key must not decide twice what a
    # rotated key decided. The claiming key stays recorded.
    op.create_table(
        "idempotency_claims",
        sa.Column("org_id", sa.String(64), primary_key=True),
        sa.Column("idempotency_key", sa.String(200), primary_key=True),
        sa.Column("key_id", sa.String(36), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("decision_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.execute(  # claims of keys never stored (the operator's) keep their key_id as owner
        "INSERT INTO idempotency_claims (org_id, idempotency_key, key_id, request_hash, "
        "decision_id, created_at) SELECT COALESCE(k.org_id, i.key_id), i.idempotency_key, "
        "i.key_id, i.request_hash, i.decision_id, i.created_at "
        "FROM idempotency i LEFT JOIN api_keys k ON k.key_id = i.key_id"
    )
    op.drop_table("idempotency")

    with op.batch_alter_table("preapproval_jobs") as batch:
        batch.add_column(sa.Column("org_id", sa.String(64), nullable=True))
    op.execute(
        "UPDATE preapproval_jobs SET org_id = COALESCE("
        "(SELECT org_id FROM api_keys WHERE api_keys.key_id = preapproval_jobs.key_id), key_id)"
    )
    with op.batch_alter_table("preapproval_jobs") as batch:
        batch.alter_column("org_id", existing_type=sa.String(64), nullable=False)
        batch.drop_constraint("uq_preapproval_jobs_key", type_="unique")
        batch.create_unique_constraint("uq_preapproval_jobs_org_key", ["org_id", "idempotency_key"])


def downgrade() -> None:
    with op.batch_alter_table("preapproval_jobs") as batch:
        batch.drop_constraint("uq_preapproval_jobs_org_key", type_="unique")
        batch.create_unique_constraint("uq_preapproval_jobs_key", ["key_id", "idempotency_key"])
        batch.drop_column("org_id")
    op.create_table(
        "idempotency",
        sa.Column("key_id", sa.String(36), primary_key=True),
        sa.Column("idempotency_key", sa.String(200), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("decision_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.execute(
        "INSERT INTO idempotency (key_id, idempotency_key, request_hash, decision_id, "
        "created_at) SELECT key_id, idempotency_key, request_hash, decision_id, created_at "
        "FROM idempotency_claims"
    )
    op.drop_table("idempotency_claims")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_index("ix_api_keys_org_id")
        batch.drop_column("org_id")
    op.drop_table("organisations")
