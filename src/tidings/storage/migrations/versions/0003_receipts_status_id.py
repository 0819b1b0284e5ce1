"""Receipts indexed by (status, id) instead of (status, next_attempt_at, id).

Why: the worker asks for the oldest pending receipts (status = 'pending' ORDER BY id) and
claims a batch (status = 'pending' AND id IN ...). With next_attempt_at between status and id,
SQLite answered the first by sorting every pending receipt, bodies included, and the second by
scanning all of them: each batch cost time in proportion to the backlog. With (status, id) both
walk the index in order and stop after the batch. Retries (status = 'failed' AND
next_attempt_at <= now) are few and still found through the status prefix.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_receipts_status_id", "receipts", ["status", "id"])
    op.drop_index("ix_receipts_status_next", table_name="receipts")


def downgrade() -> None:
    op.create_index("ix_receipts_status_next", "receipts", ["status", "next_attempt_at", "id"])
    op.drop_index("ix_receipts_status_id", table_name="receipts")
