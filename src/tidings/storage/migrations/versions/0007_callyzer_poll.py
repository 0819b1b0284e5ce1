"""The verification poll: receipts say how they came, runs are recorded, refused keys are kept.

Why: calls the Callyzer poll fetches enter the inbox like webhooks and are applied the same
way, so a receipt says which it was (`source`: webhook or poll; existing rows are webhooks).
Every run is a `backfill_runs` row with its outcome and counts; the row of a run in progress is
also its lease (one per connection, a partial unique index), so two schedulers or a scheduler
and a manual run never poll one account at once. A connection whose key Callyzer refused
keeps when and which key (a fingerprint), and is not polled again until the key changes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_RUNNING = sa.text("outcome = 'running'")


def upgrade() -> None:
    with op.batch_alter_table("receipts") as batch:
        batch.add_column(
            sa.Column("source", sa.String(length=20), nullable=False, server_default="webhook")
        )
    with op.batch_alter_table("connections") as batch:
        batch.add_column(
            sa.Column("credentials_rejected_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("credentials_rejected_key", sa.String(length=64)))
        batch.add_column(sa.Column("credentials_rejected_error", sa.Text()))
    op.create_table(
        "backfill_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "connection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("outcome", sa.String(length=30), nullable=False),
        sa.Column("window_from", sa.DateTime(timezone=True)),
        sa.Column("window_to", sa.DateTime(timezone=True)),
        sa.Column("employees", sa.Integer(), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("fetched", sa.Integer(), nullable=False),
        sa.Column("inserted", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_backfill_runs_connection_id_connections"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backfill_runs")),
    )
    op.create_index("ix_backfill_runs_connection_id_id", "backfill_runs", ["connection_id", "id"])
    op.create_index(
        "uq_backfill_runs_running",
        "backfill_runs",
        ["connection_id"],
        unique=True,
        sqlite_where=_RUNNING,
        postgresql_where=_RUNNING,
    )


def downgrade() -> None:
    op.drop_index("uq_backfill_runs_running", table_name="backfill_runs")
    op.drop_index("ix_backfill_runs_connection_id_id", table_name="backfill_runs")
    op.drop_table("backfill_runs")
    with op.batch_alter_table("connections") as batch:
        batch.drop_column("credentials_rejected_error")
        batch.drop_column("credentials_rejected_key")
        batch.drop_column("credentials_rejected_at")
    with op.batch_alter_table("receipts") as batch:
        batch.drop_column("source")
