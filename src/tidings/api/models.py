"""Request and response shapes of the JSON API (they are what `/openapi.json` documents)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from tidings.domain.message_changes import Registration
from tidings.providers.registry import get_provider
from tidings.storage import schema
from tidings.storage.limits import NO_NUL, column_limit, limits

__all__ = [
    "BackfillRunOut",
    "BackfillStateOut",
    "CampaignOut",
    "ConnectionHealthOut",
    "ConnectionOut",
    "DispatchOut",
    "ErrorOut",
    "EventOut",
    "FailureOut",
    "MessageDetail",
    "MessageOut",
    "Page",
    "ReceiptDetail",
    "ReceiptOut",
    "RegisterMessage",
    "RejectionOut",
    "SendOut",
    "TemplateIn",
]

T = TypeVar("T")


# What each registered field is stored in: a longer value is refused here (422), not by the
# store (PostgreSQL would fail the insert; SQLite would keep it).
_MESSAGE = limits(schema.messages)
_CONNECTION_NAME = column_limit(schema.connections, "name")
_CAMPAIGN_KEY = column_limit(schema.campaigns, "key")


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    """Every API error: `{"error": {"code", "message"}}`."""

    error: ErrorDetail


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null at the end."
    )


_TEXT = 4096  # WhatsApp's longest text; SMS providers split longer ones themselves


class TemplateIn(BaseModel):
    """A provider template: its name, language and variables (positional, or by name where
    the provider supports names)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=512, pattern=NO_NUL)
    language: str | None = Field(default=None, max_length=20, pattern=NO_NUL)
    variables: list[str] | dict[str, str] = Field(default_factory=list)


class RegisterMessage(BaseModel):
    """Register a message sent elsewhere (idempotent on connection + provider_message_id)."""

    # A misspelt field ("recipent") must not be dropped silently: it is refused by name.
    model_config = ConfigDict(extra="forbid")

    connection: str = Field(max_length=_CONNECTION_NAME, pattern=NO_NUL)
    provider_message_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=_MESSAGE["provider_message_id"],
        pattern=NO_NUL,
        description="The provider's id of a message sent elsewhere (required unless `send`).",
    )
    campaign: str | None = Field(default=None, max_length=_CAMPAIGN_KEY, pattern=NO_NUL)
    recipient: str | None = Field(
        default=None,
        max_length=_MESSAGE["recipient"],
        pattern=NO_NUL,
        description="A phone number (stored in E.164; without a country code it is read in "
        "the configured default region) or an email address (domain stored lower-case).",
    )
    contact_ref: str | None = Field(
        default=None, max_length=_MESSAGE["contact_ref"], pattern=NO_NUL
    )
    metadata: dict[str, Any] | None = None
    channel: str | None = Field(default=None, max_length=_MESSAGE["channel"], pattern=NO_NUL)
    sent_at: AwareDatetime | None = Field(
        default=None, description="When it was sent, with its UTC offset (default: now)."
    )
    send: bool = Field(
        default=False,
        description="Send it through the connection's provider API (with `text` or "
        "`template`, and a `recipient`); the provider's id is registered from its answer. "
        "An `Idempotency-Key` header makes a retried request send once.",
    )
    text: str | None = Field(default=None, min_length=1, max_length=_TEXT, pattern=NO_NUL)
    template: TemplateIn | None = None
    subject: str | None = Field(
        default=None, max_length=998, pattern=NO_NUL, description="Email only."
    )

    @field_validator("sent_at")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        """Stored in UTC: a time with no UTC equivalent (year 1 ahead of UTC, year 9999 behind
        it) is refused by name here, not failed with a 500 when it is converted."""
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("out of range once converted to UTC") from None

    @model_validator(mode="after")
    def _send_or_register(self) -> RegisterMessage:
        if self.send:
            if self.provider_message_id is not None:
                raise ValueError(
                    "a send gets its provider_message_id from the provider: leave it out"
                )
            if self.text is None and self.template is None:
                raise ValueError("a send needs text or a template")
            if self.text is not None and self.template is not None:
                raise ValueError("a send takes text or a template, not both")
            if self.recipient is None:
                raise ValueError("a send needs a recipient")
        else:
            if self.provider_message_id is None:
                raise ValueError(
                    "provider_message_id is required to register a message sent elsewhere "
                    '(or set "send": true to send it through the connection)'
                )
            if self.text is not None or self.template is not None:
                raise ValueError('text and template are sent only with "send": true')
        return self

    def registration(self, recipient: str | None, provider: str) -> Registration:
        """What the unit of work registers: the recipient as normalised, the provider's channel
        when none is named, `sent_at` in UTC. A send registers under the id its provider
        returns (`provider_message_id` is filled in then)."""
        return Registration(
            provider_message_id=self.provider_message_id or "",
            campaign=self.campaign,
            recipient=recipient,
            contact_ref=self.contact_ref,
            metadata=self.metadata,
            channel=self.channel or get_provider(provider).channel,
            sent_at=self.sent_at.astimezone(UTC) if self.sent_at else None,
        )


class FailureOut(BaseModel):
    code: str | None
    reason: str | None
    permanent: bool | None


class EventOut(BaseModel):
    kind: str
    raw_status: str
    occurred_at: datetime
    received_at: datetime
    receipt: int | None
    details: dict[str, Any]


class MessageOut(BaseModel):
    id: int
    connection: str
    provider: str
    provider_message_id: str
    campaign: str | None
    channel: str | None
    recipient: str | None
    contact_ref: str | None
    metadata: dict[str, Any]
    state: str
    sequence: int
    created_at: datetime
    registered_at: datetime | None
    queued_at: datetime | None
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None
    failure: FailureOut | None
    played_at: datetime | None
    opened_at: datetime | None
    clicked_at: datetime | None
    unsubscribed_at: datetime | None
    complained_at: datetime | None
    send: SendOut | None = Field(
        default=None, description="Present when tidings sent the message itself."
    )


class SendOut(BaseModel):
    """How tidings sent this message: the provider's answer, or why it did not take it."""

    status: str = Field(description="queued, sent, failed, unknown or deferred")
    idempotency_key: str
    http_status: int | None
    error_kind: str | None
    error_code: str | None
    error_message: str | None
    created_at: datetime
    finished_at: datetime | None


class MessageDetail(MessageOut):
    events: list[EventOut]


class DispatchOut(BaseModel):
    """Where a campaign that tidings sends stands."""

    state: str = Field(description="draft, scheduled, running, paused, done or cancelled")
    name: str | None
    connection: str
    text: str | None
    template: dict[str, Any] | None
    rate_per_minute: int | None
    start_at: datetime | None
    paused_reason: str | None
    waiting_reason: str | None = Field(
        default=None,
        description="While running: why contacts wait to be tried again (the provider "
        "unreachable or rate limiting), from the last one put back.",
    )
    contacts: dict[str, int] = Field(
        description="Contacts by status: pending, sending, sent, failed, unknown "
        "(unknown: no answer came, never sent again blindly)."
    )
    finished_at: datetime | None


class CampaignOut(BaseModel):
    key: str
    created_at: datetime
    counts: dict[str, int]
    rates: dict[str, float]
    dispatch: DispatchOut | None = Field(
        default=None, description="For a campaign tidings sends; null for one it tracks."
    )


class ReceiptOut(BaseModel):
    id: int
    connection: str | None
    provider: str
    received_at: datetime
    status: str
    attempts: int
    next_attempt_at: datetime | None
    processed_at: datetime | None
    error: str | None
    notes: list[str] | None
    source: str = Field(
        default="webhook", description="`webhook`, or `poll`: fetched by the verification poll."
    )


class ReceiptDetail(ReceiptOut):
    content_type: str
    headers: dict[str, str]
    body: str = Field(description="The raw body as received (UTF-8; undecodable bytes replaced).")


class BackfillRunOut(BaseModel):
    """One run of a connection's backfill (the Callyzer verification poll)."""

    id: int
    connection: str
    trigger: str = Field(description="`schedule` or `manual` (tidings backfill).")
    started_at: datetime
    finished_at: datetime | None
    outcome: str = Field(description="`running`, `ok`, `failed` or `credentials_rejected`.")
    window_from: datetime | None = Field(description="Calls synced from this time on...")
    window_to: datetime | None = Field(description="...up to this time were asked for.")
    employees: int = Field(description="Employees whose calls were asked for (0: all).")
    pages: int
    requests: int = Field(description="HTTP requests sent, retries and 429s included.")
    retries: int
    fetched: int
    inserted: int = Field(description="Fetched calls tidings did not have.")
    updated: int = Field(description="Fetched calls with a later modified_at than stored.")
    skipped: int = Field(description="Fetched calls already stored as they are.")
    error: str | None


class BackfillStateOut(BaseModel):
    credentials_rejected: bool = Field(
        description="The provider refused the connection's api_key; nothing is polled until "
        "it changes."
    )
    credentials_rejected_at: datetime | None
    credentials_rejected_error: str | None
    last_run: BackfillRunOut | None


class ConnectionHealthOut(BaseModel):
    """How a connection that sends is doing (README "Connection health")."""

    delivered_today: int = Field(
        description="Messages delivered today (read ones included), in TIDINGS_TIMEZONE."
    )
    read_today: int = Field(description="Messages read today.")
    failed_today: int = Field(description="Messages that failed today and are still failed.")
    consecutive_errors: int = Field(
        description="Failures (send errors and failures after send) since the newest delivery."
    )
    score: float = Field(
        description="Delivered ÷ (delivered + failed) over the last 200 outcomes; 1.0 while "
        "there are fewer than 20."
    )
    outcomes: int = Field(description="How many outcomes the score counts (at most 200).")
    healthy: bool = Field(description="Whether the score reaches TIDINGS_HEALTH_THRESHOLD.")
    today_starts_at: datetime = Field(description="When the day the `*_today` figures count began.")


class ConnectionOut(BaseModel):
    name: str
    provider: str
    auth_scheme: str
    intake_url: str
    options: dict[str, str]
    created_at: datetime | None
    last_event_at: datetime | None
    session_state: str | None
    session_qrcode: str | None
    session_updated_at: datetime | None
    backfill: BackfillStateOut | None = Field(
        default=None, description="Backfill state, for providers that have one (callyzer)."
    )
    health: ConnectionHealthOut | None = Field(
        default=None,
        description="Health of a connection that sends; null for callyzer, which logs calls.",
    )


class RejectionOut(BaseModel):
    id: int
    received_at: datetime
    provider: str
    connection: str
    status_code: int
    reason: str
    remote_addr: str | None
    headers: dict[str, str]
    body_sha256: str
    body_size: int
