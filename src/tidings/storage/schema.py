"""Tables, as SQLAlchemy Core. Alembic migrations under `migrations/` create exactly these."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)

from tidings.domain.counters import COUNTERS

__all__ = [
    "api_tokens",
    "campaign_counters",
    "campaigns",
    "connections",
    "events",
    "messages",
    "metadata",
    "receipts",
    "rejections",
    "store_settings",
    "tracking_version",
]


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, whatever the database keeps (SQLite keeps naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, one step instead of two (this type's conversion, then the impl's text
        formatting): the worker converts several datetimes per event. The text is exactly
        SQLAlchemy's SQLite DATETIME storage format (tests/storage/test_execute_many.py)."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given to the store; use an aware UTC datetime")
            return value.astimezone(UTC).isoformat(" ", "microseconds")[:26]  # no "+00:00"

        return process

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids.
Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

connections = Table(
    "connections",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("provider", String(40), nullable=False),
    Column("secret", String(200), nullable=False),
    Column("options", JSON, nullable=False, default=dict),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_event_at", UTCDateTime),
    Column("session_state", String(40)),
    Column("session_qrcode", Text),
    Column("session_updated_at", UTCDateTime),
    # Removed connections stay (their receipts and messages point at them); only a connection
    # in use owns its name, so a removed name can be given to a new one (migration 0004).
    Column("removed_at", UTCDateTime),
    Index(
        "uq_connections_name_active",
        "name",
        unique=True,
        sqlite_where=text("removed_at IS NULL"),
        postgresql_where=text("removed_at IS NULL"),
    ),
)

receipts = Table(
    "receipts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("connection_id", Id, ForeignKey("connections.id"), nullable=False),
    Column("provider", String(40), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("content_type", String(200), nullable=False, default=""),
    Column("headers", JSON, nullable=False, default=dict),
    Column("body", LargeBinary, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime),
    Column("processed_at", UTCDateTime),
    Column("error", Text),
    Column("notes", JSON),
    # The worker reads "the oldest pending" and claims "these ids, if still pending": both walk
    # this index in id order, whatever the backlog (migration 0003 says why it changed).
    Index("ix_receipts_status_id", "status", "id"),
    Index("ix_receipts_received_at", "received_at"),
)

rejections = Table(
    "rejections",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("provider", String(40), nullable=False),
    Column("connection", String(100), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("remote_addr", String(100)),
    Column("headers", JSON, nullable=False, default=dict),
    Column("body_sha256", String(64), nullable=False),
    Column("body_size", Integer, nullable=False),
    Index("ix_rejections_received_at", "received_at"),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
)

campaign_counters = Table(
    "campaign_counters",
    metadata,
    Column("campaign_id", Id, ForeignKey("campaigns.id"), primary_key=True),
    *(Column(name, BigInteger, nullable=False, default=0, server_default="0") for name in COUNTERS),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("connection_id", Id, ForeignKey("connections.id"), nullable=False),
    Column("provider_message_id", String(200), nullable=False),
    Column("campaign_id", Id, ForeignKey("campaigns.id")),
    Column("channel", String(20)),
    Column("recipient", String(320)),
    Column("contact_ref", String(200)),
    Column("metadata", JSON, nullable=False, default=dict),
    Column("state", String(20), nullable=False),
    Column("sequence", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("registered_at", UTCDateTime),
    Column("queued_at", UTCDateTime),
    Column("sent_at", UTCDateTime),
    Column("delivered_at", UTCDateTime),
    Column("read_at", UTCDateTime),
    Column("failed_at", UTCDateTime),
    Column("failed_after_send", Boolean, nullable=False, default=False),
    Column("failure_at", UTCDateTime),
    Column("failure_code", String(100)),
    Column("failure_reason", Text),
    Column("failure_permanent", Boolean),
    Column("played_at", UTCDateTime),
    Column("opened_at", UTCDateTime),
    Column("clicked_at", UTCDateTime),
    Column("unsubscribed_at", UTCDateTime),
    Column("complained_at", UTCDateTime),
    UniqueConstraint("connection_id", "provider_message_id"),
    Index("ix_messages_campaign_state", "campaign_id", "state"),
    Index("ix_messages_recipient", "recipient"),
    # The API's filters, each giving its rows in the list's id order or few enough to sort
    # (migration 0005 says why these and no more: every index costs the worker a write).
    Index("ix_messages_provider_message_id", "provider_message_id"),
    Index("ix_messages_state_id", "state", "id"),
    Index("ix_messages_channel_id", "channel", "id"),
    Index("ix_messages_created_at", "created_at"),
    Index("ix_messages_connection_id", "connection_id", "id"),
)

# One row, bumped by every transaction that changes messages or events: a SQLite worker plans a
# batch from a snapshot outside the write lock and writes it only if the version has not moved.
tracking_version = Table(
    "tracking_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("message_id", Id, ForeignKey("messages.id"), nullable=False),
    Column("dedup_key", String(300), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("raw_status", String(100), nullable=False, default=""),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("provider_time", UTCDateTime),
    Column("received_at", UTCDateTime, nullable=False),
    # No foreign key: raw receipts are purged after the retention period, the timeline stays.
    Column("receipt_id", Id),
    Column("details", JSON, nullable=False, default=dict),
    UniqueConstraint("message_id", "dedup_key"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime),
)

# What the store remembers about how tidings runs, e.g. the address `tidings serve` listens on,
# so other commands print URLs that reach it.
store_settings = Table(
    "store_settings",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
