"""Outbound webhooks: subscriptions, the outbox of forwarded events, deliveries and attempts.

Why: events are forwarded from an outbox written in the same transaction as the change they
announce, one row per event (not per subscriber), so applying a batch costs one insert per
event only while some subscription wants it; the sender fans each event out into deliveries,
one per subscription, and keeps every attempt (decision 0010). The partial index finds the
events not yet fanned out without reading the others.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WAITING = sa.text("fanned_out_at IS NULL")


def _id() -> sa.Column[int]:
    return sa.Column("id", _ID, autoincrement=True, nullable=False)


def _time(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        _id(),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("previous_secret", sa.String(length=200), nullable=True),
        _time("previous_secret_expires_at"),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("connection_id", _ID, nullable=True),
        sa.Column("campaign", sa.String(length=200), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("include_contact", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        _time("failing_since"),
        _time("created_at", nullable=False),
        _time("updated_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_subscriptions_connection_id_connections"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    op.create_table(
        "outbound_events",
        _id(),
        sa.Column("webhook_id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=60), nullable=False),
        sa.Column("connection_id", _ID, nullable=True),
        sa.Column("campaign", sa.String(length=200), nullable=True),
        sa.Column("message_id", _ID, nullable=True),
        _time("occurred_at", nullable=False),
        _time("created_at", nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        _time("fanned_out_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_events")),
    )
    op.create_index(
        "ix_outbound_events_waiting",
        "outbound_events",
        ["id"],
        sqlite_where=_WAITING,
        postgresql_where=_WAITING,
    )
    op.create_index("ix_outbound_events_created_at", "outbound_events", ["created_at"])
    op.create_table(
        "deliveries",
        _id(),
        sa.Column("event_id", _ID, nullable=False),
        sa.Column("subscription_id", _ID, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _time("next_attempt_at"),
        _time("last_attempt_at"),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _time("delivered_at"),
        _time("created_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["outbound_events.id"],
            name=op.f("fk_deliveries_event_id_outbound_events"),
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_deliveries_subscription_id_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint(
            "event_id", "subscription_id", name=op.f("uq_deliveries_event_id_subscription_id")
        ),
    )
    op.create_index(
        "ix_deliveries_status_next_attempt_at", "deliveries", ["status", "next_attempt_at"]
    )
    op.create_index("ix_deliveries_subscription_id_id", "deliveries", ["subscription_id", "id"])
    op.create_table(
        "delivery_attempts",
        _id(),
        sa.Column("delivery_id", _ID, nullable=False),
        _time("attempted_at", nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_delivery_attempts_delivery_id_deliveries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempts")),
    )
    op.create_index("ix_delivery_attempts_delivery_id", "delivery_attempts", ["delivery_id"])


def downgrade() -> None:
    op.drop_table("delivery_attempts")
    op.drop_table("deliveries")
    op.drop_table("outbound_events")
    op.drop_table("subscriptions")
