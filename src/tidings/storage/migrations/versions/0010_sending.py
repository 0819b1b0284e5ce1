"""Sending through the providers: sends, campaigns that tidings dispatches, their contacts.

Why: a send is recorded before its provider is called, one row per idempotency key and
connection, so a retried request or a restarted dispatch finds it instead of sending again
(decision 0012). A dispatched campaign keeps its rate limiter's clock in the store, so every
runner keeps one pace; its contacts are found by (campaign, status) in id order.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WAITING = sa.text("status = 'queued'")


def _time(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "sends",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("connection_id", _ID, nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("message_id", _ID, nullable=True),
        sa.Column("contact_id", _ID, nullable=True),
        sa.Column("registration", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("provider_message_id", sa.String(length=200), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error_kind", sa.String(length=40), nullable=True),
        sa.Column("error_code", sa.String(length=100), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        _time("created_at", nullable=False),
        _time("finished_at"),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["connections.id"], name=op.f("fk_sends_connection_id_connections")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sends")),
        sa.UniqueConstraint(
            "connection_id", "idempotency_key", name=op.f("uq_sends_connection_id_idempotency_key")
        ),
    )
    op.create_index("ix_sends_message_id", "sends", ["message_id"])
    op.create_index(
        "ix_sends_waiting",
        "sends",
        ["created_at"],
        sqlite_where=_WAITING,
        postgresql_where=_WAITING,
    )
    op.create_table(
        "campaign_dispatches",
        sa.Column("campaign_id", _ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("connection_id", _ID, nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("template", sa.JSON(), nullable=True),
        sa.Column("rate_per_minute", sa.Integer(), nullable=True),
        _time("start_at"),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("paused_reason", sa.Text(), nullable=True),
        _time("next_slot_at"),
        _time("created_at", nullable=False),
        _time("updated_at", nullable=False),
        _time("finished_at"),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_dispatches_campaign_id_campaigns"),
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_campaign_dispatches_connection_id_connections"),
        ),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_campaign_dispatches")),
    )
    op.create_index("ix_campaign_dispatches_state", "campaign_dispatches", ["state"])
    op.create_table(
        "campaign_contacts",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("campaign_id", _ID, nullable=False),
        sa.Column("contact_ref", sa.String(length=200), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("message_id", _ID, nullable=True),
        _time("claimed_at"),
        sa.Column("error", sa.Text(), nullable=True),
        _time("updated_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_contacts_campaign_id_campaigns"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_contacts")),
        sa.UniqueConstraint(
            "campaign_id", "contact_ref", name=op.f("uq_campaign_contacts_campaign_id_contact_ref")
        ),
    )
    op.create_index(
        "ix_campaign_contacts_campaign_id_status",
        "campaign_contacts",
        ["campaign_id", "status", "id"],
    )
    op.create_index(
        "ix_campaign_contacts_campaign_id_id", "campaign_contacts", ["campaign_id", "id"]
    )


def downgrade() -> None:
    op.drop_table("campaign_contacts")
    op.drop_table("campaign_dispatches")
    op.drop_table("sends")
