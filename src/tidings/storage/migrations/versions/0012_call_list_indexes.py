"""The employee, type and unmatched filters of the calls list walk an index in its order.

Why: the calls list (GET /v1/calls and the dashboard) is newest first (ORDER BY id DESC). An
employee's calls were found through (employee_id, started_at), then every one of them sorted
to show a page; a type's calls by walking every call newest first; the unmatched calls, on a
SQLite store without statistics (tidings never analyzes it), through the lead index, sorted.
With (employee_id, id) and (type, id) the rows come already in the list's order and a page
stops after its rows, however many calls the store holds; the lead index now holds only
matched calls (a lead's calls still use it), so the unmatched list walks its own index.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


_MATCHED = "lead_id IS NOT NULL"


def upgrade() -> None:
    op.create_index("ix_calls_employee_id_id", "calls", ["employee_id", "id"])
    op.create_index("ix_calls_type_id", "calls", ["type", "id"])
    op.drop_index("ix_calls_lead_id_started_at", table_name="calls")
    op.create_index(
        "ix_calls_lead_id_started_at",
        "calls",
        ["lead_id", "started_at"],
        sqlite_where=sa.text(_MATCHED),
        postgresql_where=sa.text(_MATCHED),
    )


def downgrade() -> None:
    op.drop_index("ix_calls_lead_id_started_at", table_name="calls")
    op.create_index("ix_calls_lead_id_started_at", "calls", ["lead_id", "started_at"])
    op.drop_index("ix_calls_type_id", table_name="calls")
    op.drop_index("ix_calls_employee_id_id", table_name="calls")
