"""How far the worker has applied a SQLite store's landing file.

Why: the intake of a SQLite store commits new receipts to a file of their own (the landing
file), so its synced commits no longer wait for the worker's write lock nor carry the worker's
pages. The worker moves them into `receipts` in the same transaction as their effects and
records here the largest id it moved (docs/decisions/0017). PostgreSQL stores keep one table
and never write this row.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbox_progress",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("applied_through", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_progress")),
    )


def downgrade() -> None:
    op.drop_table("inbox_progress")
