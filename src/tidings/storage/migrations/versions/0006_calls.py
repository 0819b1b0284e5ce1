"""Calls from Callyzer: employees, leads and their phone numbers, call records.

Why: a call is a kind of record of its own (no lifecycle, a latest version by `modified_at`),
attached to the lead whose number the client's is. `calls` is unique per connection and
Callyzer call id, so a webhook and the verification poll of one call make one row;
`lead_phones` is searched by number (E.164) when a call arrives and when a lead is added;
the partial index keeps the unmatched list and its retries to the calls still waiting.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = sa.DateTime(timezone=True)
_WAITING = sa.text("lead_id IS NULL")


def upgrade() -> None:
    op.create_table(
        "employees",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("number", sa.String(length=40), nullable=True),
        sa.Column("country_code", sa.String(length=10), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("last_synced_at", _TIME, nullable=True),
        sa.Column("connection_id", _ID, nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_employees_connection_id_connections"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_employees")),
        sa.UniqueConstraint("code", name=op.f("uq_employees_code")),
    )
    op.create_table(
        "leads",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leads")),
        sa.UniqueConstraint("external_id", name=op.f("uq_leads_external_id")),
    )
    op.create_table(
        "lead_phones",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("lead_id", _ID, nullable=False),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_lead_phones_lead_id_leads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_phones")),
        sa.UniqueConstraint("lead_id", "number", name=op.f("uq_lead_phones_lead_id_number")),
    )
    op.create_index("ix_lead_phones_number", "lead_phones", ["number"])
    op.create_table(
        "calls",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("connection_id", _ID, nullable=False),
        sa.Column("provider_call_id", sa.String(length=200), nullable=False),
        sa.Column("employee_id", _ID, nullable=True),
        sa.Column("client_name", sa.String(length=200), nullable=True),
        sa.Column("client_number", sa.String(length=40), nullable=True),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("raw_type", sa.String(length=100), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column("started_at", _TIME, nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("recording_url", sa.Text(), nullable=True),
        sa.Column("crm_status", sa.String(length=200), nullable=True),
        sa.Column("synced_at", _TIME, nullable=True),
        sa.Column("modified_at", _TIME, nullable=True),
        sa.Column("lead_id", _ID, nullable=True),
        sa.Column("match_attempts", sa.Integer(), nullable=False),
        sa.Column("last_match_attempt_at", _TIME, nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("receipt_id", _ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["connections.id"], name=op.f("fk_calls_connection_id_connections")
        ),
        sa.ForeignKeyConstraint(
            ["employee_id"], ["employees.id"], name=op.f("fk_calls_employee_id_employees")
        ),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name=op.f("fk_calls_lead_id_leads")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint(
            "connection_id",
            "provider_call_id",
            name=op.f("uq_calls_connection_id_provider_call_id"),
        ),
    )
    op.create_index("ix_calls_lead_id_started_at", "calls", ["lead_id", "started_at"])
    op.create_index("ix_calls_employee_id_started_at", "calls", ["employee_id", "started_at"])
    op.create_index("ix_calls_client_number", "calls", ["client_number"])
    op.create_index("ix_calls_started_at", "calls", ["started_at"])
    op.create_index(
        "ix_calls_unmatched", "calls", ["id"], sqlite_where=_WAITING, postgresql_where=_WAITING
    )


def downgrade() -> None:
    for name in (
        "ix_calls_unmatched",
        "ix_calls_started_at",
        "ix_calls_client_number",
        "ix_calls_employee_id_started_at",
        "ix_calls_lead_id_started_at",
    ):
        op.drop_index(name, table_name="calls")
    op.drop_table("calls")
    op.drop_index("ix_lead_phones_number", table_name="lead_phones")
    op.drop_table("lead_phones")
    op.drop_table("leads")
    op.drop_table("employees")
