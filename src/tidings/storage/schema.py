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
    "backfill_runs",
    "calls",
    "campaign_contacts",
    "campaign_counters",
    "campaign_dispatches",
    "campaigns",
    "connections",
    "deliveries",
    "delivery_attempts",
    "employees",
    "events",
    "inbox_progress",
    "landed",
    "landing_metadata",
    "lead_phones",
    "leads",
    "messages",
    "metadata",
    "outbound_events",
    "receipts",
    "rejections",
    "sends",
    "store_settings",
    "subscriptions",
    "tracking_version",
]


# The SQLite texts of recent UTC times. A batch's rows share a few times (the batch's `now`, a
# receipt's arrival), and formatting one costs as much as forty dictionary lookups. Only times
# in UTC itself are kept: two times in one zone that differ only in `fold` (the repeated hour
# when clocks go back) compare equal and hash alike, yet are different instants. A naive time
# is never kept, so it still reaches the check.
_TEXTS: dict[datetime, str] = {}
_TEXTS_KEPT = 4096

# The text of each recent second, to which a new time adds its microseconds: nearly every
# time not kept above (each webhook's arrival) falls in a second met already, and half of
# formatting it went to the date and the clock (about 0.4 µs a time on the intake's commit
# thread and twice that a receipt in the worker).
_SECONDS: dict[tuple[int, int, int, int, int, int], str] = {}


def _sqlite_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        return value.astimezone(UTC).isoformat(" ", "microseconds")[:26]  # no "+00:00"
    text = _TEXTS.get(value)
    if text is None:
        second = (value.year, value.month, value.day, value.hour, value.minute, value.second)
        whole = _SECONDS.get(second)
        if whole is None:
            if len(_SECONDS) >= _TEXTS_KEPT:
                _SECONDS.clear()
            whole = _SECONDS[second] = value.isoformat(" ", "seconds")[:19]
        text = f"{whole}.{value.microsecond:06d}"
        if len(_TEXTS) >= _TEXTS_KEPT:
            _TEXTS.clear()
        _TEXTS[value] = text
    return text


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
        return _sqlite_text

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(
        self, dialect: Dialect, coltype: object
    ) -> Callable[[Any], datetime | None] | None:
        """On SQLite, the stored text read as UTC in one step: `datetime.replace` alone cost
        five times the parse, and a message row holds a dozen times. Text in any other form
        takes SQLAlchemy's way, which gives the same values."""
        general = super().result_processor(dialect, coltype)
        if dialect.name != "sqlite" or general is None:
            return general

        def process(value: Any) -> datetime | None:
            if isinstance(value, str):
                try:
                    read = datetime.fromisoformat(value + "+00:00")
                except ValueError:
                    pass
                else:
                    if read.tzinfo is UTC:  # a date alone reads naive: SQLAlchemy's way
                        return read
            return general(value)

        return process


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
    # A poll whose API key was refused (401/403) stops polling until the key changes: the
    # refused key's fingerprint is kept, so any change of api_key or api_url lifts it
    # (migration 0007).
    Column("credentials_rejected_at", UTCDateTime),
    Column("credentials_rejected_key", String(64)),
    Column("credentials_rejected_error", Text),
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
    # How the body came: "webhook" (intake) or "poll" (fetched from the provider's API by the
    # verification poll); both are applied the same way (migration 0007).
    Column("source", String(20), nullable=False, server_default="webhook"),
    # The worker reads "the oldest pending" and claims "these ids, if still pending": both walk
    # this index in id order, whatever the backlog (migration 0003 says why it changed).
    Index("ix_receipts_status_id", "status", "id"),
    Index("ix_receipts_received_at", "received_at"),
)

# How far the worker has applied the landing file of a SQLite store (`storage.landing`): every
# landed receipt with an id at or below `applied_through` is in `receipts`, moved in the same
# transaction as its effects. One row; none until the first move (migration 0013).
inbox_progress = Table(
    "inbox_progress",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("applied_through", BigInteger, nullable=False),
)

# The landing file's one table, in a metadata of its own: it lives in a file beside a SQLite
# store, which only the intake (and the Callyzer poll) append to; created when first used, not
# by a migration. AUTOINCREMENT, so an id is never given twice, even after the rows the worker
# moved are deleted.
landing_metadata = MetaData()
landed = Table(
    "landed",
    landing_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("connection_id", Integer, nullable=False),
    Column("provider", String(40), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("content_type", String(200), nullable=False, default=""),
    Column("headers", JSON, nullable=False, default=dict),
    Column("body", LargeBinary, nullable=False),
    Column("status", String(20), nullable=False),
    Column("error", Text),
    Column("source", String(20), nullable=False, server_default="webhook"),
    sqlite_autoincrement=True,
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

# Calls (Callyzer): the advisers who make them, the business's leads and their numbers, and
# the calls themselves, each attached to the lead whose number it was (migration 0006).
employees = Table(
    "employees",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # Callyzer's emp_code, or the employee's number when the account gives no codes.
    Column("code", String(100), nullable=False, unique=True),
    Column("name", String(200)),
    Column("number", String(40)),  # E.164 when it could be read
    Column("country_code", String(10)),
    Column("tags", JSON, nullable=False, default=list),
    Column("active", Boolean, nullable=False, default=True),
    # How far the verification poll has fetched this employee's calls.
    Column("last_synced_at", UTCDateTime),
    Column("connection_id", Id, ForeignKey("connections.id")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

leads = Table(
    "leads",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("external_id", String(200), nullable=False, unique=True),
    Column("name", String(200)),
    Column("owner", String(200)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

lead_phones = Table(
    "lead_phones",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("lead_id", Id, ForeignKey("leads.id"), nullable=False),
    Column("number", String(40), nullable=False),  # E.164
    UniqueConstraint("lead_id", "number"),
    Index("ix_lead_phones_number", "number"),
)

calls = Table(
    "calls",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("connection_id", Id, ForeignKey("connections.id"), nullable=False),
    Column("provider_call_id", String(200), nullable=False),
    Column("employee_id", Id, ForeignKey("employees.id")),
    Column("client_name", String(200)),
    Column("client_number", String(40)),  # E.164 when it could be read, else as sent
    Column("type", String(20), nullable=False),
    Column("raw_type", String(100), nullable=False, default=""),
    Column("duration_seconds", Integer, nullable=False, default=0),
    Column("started_at", UTCDateTime),
    Column("note", Text),
    Column("recording_url", Text),
    Column("crm_status", String(200)),
    Column("synced_at", UTCDateTime),
    Column("modified_at", UTCDateTime),
    Column("lead_id", Id, ForeignKey("leads.id")),
    Column("match_attempts", Integer, nullable=False, default=0),
    Column("last_match_attempt_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # No foreign key: raw receipts are purged after the retention period, the call stays.
    Column("receipt_id", Id),
    UniqueConstraint("connection_id", "provider_call_id"),
    # A lead's calls and an employee's, newest first; a new lead's numbers find their
    # waiting calls; the unmatched list and its retries read only the calls still waiting.
    # The calls list (newest first by id) filtered by employee or type, and a lead's index
    # only for matched calls, so the unmatched list cannot take it and sort (migration 0012).
    Index(
        "ix_calls_lead_id_started_at",
        "lead_id",
        "started_at",
        sqlite_where=text("lead_id IS NOT NULL"),
        postgresql_where=text("lead_id IS NOT NULL"),
    ),
    Index("ix_calls_employee_id_started_at", "employee_id", "started_at"),
    Index("ix_calls_employee_id_id", "employee_id", "id"),
    Index("ix_calls_type_id", "type", "id"),
    Index("ix_calls_client_number", "client_number"),
    Index("ix_calls_started_at", "started_at"),
    Index(
        "ix_calls_unmatched",
        "id",
        sqlite_where=text("lead_id IS NULL"),
        postgresql_where=text("lead_id IS NULL"),
    ),
)

# Every backfill or verification poll run, with its outcome and counts. The row of a run in
# progress is its lease: one running row per connection at most (a partial unique index, on
# SQLite and PostgreSQL alike, across processes), renewed while the run goes on, so a run
# whose process died is taken over once `lease_until` has passed (migration 0007).
backfill_runs = Table(
    "backfill_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("connection_id", Id, ForeignKey("connections.id"), nullable=False),
    Column("trigger", String(20), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("lease_until", UTCDateTime),
    Column("outcome", String(30), nullable=False),
    Column("window_from", UTCDateTime),
    Column("window_to", UTCDateTime),
    Column("employees", Integer, nullable=False, default=0),
    Column("pages", Integer, nullable=False, default=0),
    Column("requests", Integer, nullable=False, default=0),
    Column("retries", Integer, nullable=False, default=0),
    Column("fetched", Integer, nullable=False, default=0),
    Column("inserted", Integer, nullable=False, default=0),
    Column("updated", Integer, nullable=False, default=0),
    Column("skipped", Integer, nullable=False, default=0),
    Column("error", Text),
    Index("ix_backfill_runs_connection_id_id", "connection_id", "id"),
    Index(
        "uq_backfill_runs_running",
        "connection_id",
        unique=True,
        sqlite_where=text("outcome = 'running'"),
        postgresql_where=text("outcome = 'running'"),
    ),
)


# Outbound webhooks (migration 0008, docs/architecture.md "Outbound webhooks").
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("url", String(2000), nullable=False),
    Column("secret", String(200), nullable=False),
    # After a rotation the old secret signs too, until it expires (both signatures are sent).
    Column("previous_secret", String(200)),
    Column("previous_secret_expires_at", UTCDateTime),
    Column("event_types", JSON, nullable=False),
    Column("connection_id", Id, ForeignKey("connections.id")),
    Column("campaign", String(200)),
    Column("description", Text),
    Column("include_contact", Boolean, nullable=False, default=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("disabled_reason", Text),
    # Since when every attempt failed (None after a success); long enough disables it.
    Column("failing_since", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# One row per forwarded event, written in the transaction of the change it announces; the
# sender fans it out to the subscriptions that want it (`fanned_out_at` set then).
outbound_events = Table(
    "outbound_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("webhook_id", String(40), nullable=False),
    Column("type", String(60), nullable=False),
    Column("connection_id", Id),
    Column("campaign", String(200)),
    Column("message_id", Id),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("data", JSON, nullable=False),
    Column("fanned_out_at", UTCDateTime),
    Index(
        "ix_outbound_events_waiting",
        "id",
        sqlite_where=text("fanned_out_at IS NULL"),
        postgresql_where=text("fanned_out_at IS NULL"),
    ),
    Index("ix_outbound_events_created_at", "created_at"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", Id, ForeignKey("outbound_events.id"), nullable=False),
    Column("subscription_id", Id, ForeignKey("subscriptions.id"), nullable=False),
    # pending (never tried), sending (taken by a sender until next_attempt_at), failed (will
    # be retried at next_attempt_at), delivered, dead.
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime),
    Column("last_attempt_at", UTCDateTime),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("delivered_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("event_id", "subscription_id"),
    Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    Index("ix_deliveries_subscription_id_id", "subscription_id", "id"),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("delivery_id", Id, ForeignKey("deliveries.id"), nullable=False),
    Column("attempted_at", UTCDateTime, nullable=False),
    Column("status_code", Integer),
    Column("latency_ms", Integer, nullable=False),
    Column("error", Text),
    Column("response_body", Text),
    Index("ix_delivery_attempts_delivery_id", "delivery_id"),
)

# A send through a provider's API, recorded before the provider is called (decision 0012):
# one per idempotency key and connection, so a retried request or a restarted dispatch finds
# it instead of sending again. `message_id` is the message it made (no foreign key: when a
# status webhook made the message first, the two are merged into that one).
sends = Table(
    "sends",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("connection_id", Id, ForeignKey("connections.id"), nullable=False),
    Column("idempotency_key", String(200), nullable=False),
    Column("message_id", Id),
    Column("contact_id", Id),
    Column("registration", JSON, nullable=False),  # campaign, recipient, contact_ref, ...
    Column("status", String(20), nullable=False),
    Column("provider_message_id", String(200)),
    Column("http_status", Integer),
    Column("error_kind", String(40)),
    Column("error_code", String(100)),
    Column("error_message", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    UniqueConstraint("connection_id", "idempotency_key"),
    Index("ix_sends_message_id", "message_id"),
    # The few sends waiting for their answer, found every dispatch turn without reading the
    # rest (every message tidings ever sent).
    Index(
        "ix_sends_waiting",
        "created_at",
        sqlite_where=text("status = 'queued'"),
        postgresql_where=text("status = 'queued'"),
    ),
)

# A campaign that tidings sends: what, through which connection, how fast, and where its
# dispatch stands. `next_slot_at` is the rate limiter's clock, kept in the store so that
# every runner (the embedded scheduler, Celery workers) and a restart keep one pace.
campaign_dispatches = Table(
    "campaign_dispatches",
    metadata,
    Column("campaign_id", Id, ForeignKey("campaigns.id"), primary_key=True),
    Column("name", String(200)),
    Column("connection_id", Id, ForeignKey("connections.id"), nullable=False),
    Column("text", Text),
    Column("template", JSON),
    Column("rate_per_minute", Integer),
    Column("start_at", UTCDateTime),
    Column("state", String(20), nullable=False),
    Column("paused_reason", Text),
    Column("next_slot_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Index("ix_campaign_dispatches_state", "state"),
)

campaign_contacts = Table(
    "campaign_contacts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("campaign_id", Id, ForeignKey("campaigns.id"), nullable=False),
    Column("contact_ref", String(200), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("name", String(200)),
    Column("variables", JSON, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("message_id", Id),
    Column("claimed_at", UTCDateTime),
    Column("error", Text),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("campaign_id", "contact_ref"),
    Index("ix_campaign_contacts_campaign_id_status", "campaign_id", "status", "id"),
    Index("ix_campaign_contacts_campaign_id_id", "campaign_id", "id"),  # the list, in order
)

# Dashboard logins (migration 0011): people, their browser sessions and failed attempts. A
# session is found by the SHA-256 of its cookie, so a leaked database opens no session; failed
# logins are kept per email to slow guessing down on every web node alike.
users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_login_at", UTCDateTime),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_web_sessions_expires_at", "expires_at"),
)

login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False),
    Column("client", String(64), nullable=False),  # the address the attempt came from
    Column("at", UTCDateTime, nullable=False),
    Index("ix_login_failures_email_client_at", "email", "client", "at"),
    Index("ix_login_failures_client_at", "client", "at"),
    Index("ix_login_failures_at", "at"),  # the purge of what the window has left behind
)
