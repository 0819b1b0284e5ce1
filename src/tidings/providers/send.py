"""What every provider API client shares: the request to send, its result, the one error a
send can end in, the `Sender` contract and a connection's settings for sending. Pure: no I/O.

A send ends in one of three ways, and the caller must be able to tell them apart:

    SendResult                    the provider accepted the message and named its id
    SendError(outcome_unknown=False)  the provider did not take the message (refused, the
                                  credentials were wrong, it was busy, nothing could connect):
                                  no message went out; `permanent` says whether sending the
                                  same message again can ever succeed
    SendError(outcome_unknown=True)   the request went out but no answer came back (a time-out,
                                  a dropped connection, an answer without an id): the message
                                  may be on its way, so sending it again blindly may send it
                                  twice; the next status webhook or a de-duplicated retry tells

`SendError.kind` says which failure it was (`SendFailure`), so a campaign can pause on
credentials, slow down on rate limits and record a refusal against the contact.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from tidings.domain.errors import TidingsError
from tidings.logging import get_logger, mask_text

__all__ = [
    "Answer",
    "RetryPolicy",
    "SendError",
    "SendFailure",
    "SendRequest",
    "SendResult",
    "Sender",
    "SenderConfig",
    "answer_to_error",
    "callback_fields",
]

_log = get_logger("sending")


class SendFailure(StrEnum):
    """Why a send failed. Only the last four leave the outcome unknown."""

    REFUSED = "refused"  # the provider looked at this message and said no
    INVALID = "invalid"  # the request is malformed (ours or the provider's validation)
    AUTH = "auth"  # the connection's credentials were refused
    CONFIG = "config"  # the connection lacks what sending needs (an option, a known URL)
    RATE_LIMITED = "rate_limited"  # too many requests; `retry_after` says when to try again
    UNAVAILABLE = "unavailable"  # the provider could not be reached or answered 5xx
    TIMEOUT = "timeout"  # sent, no answer in time: outcome unknown
    CONNECTION_LOST = "connection_lost"  # sent, connection dropped before the answer: unknown
    BAD_ANSWER = "bad_answer"  # a 2xx answer without a message id: outcome unknown
    INTERRUPTED = "interrupted"  # tidings' send process stopped with it out: unknown


def _rebuilt(cls: type[SendError], message: str, attributes: dict[str, Any]) -> SendError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(attributes)
    return error


class SendError(TidingsError):
    """A send that did not end in a provider message id; see the module docstring.

    `str(error)` is masked (phone numbers, emails, secrets), so it can be logged as it is;
    the attributes keep the provider's words unmasked for the message's stored failure.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        kind: SendFailure,
        http_status: int | None = None,
        code: str | None = None,
        provider_message: str | None = None,
        permanent: bool = False,
        outcome_unknown: bool = False,
        retry_after: float | None = None,
        provider_message_id: str | None = None,
        raw: Any = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.kind = kind
        self.http_status = http_status
        self.code = code
        self.provider_message = provider_message
        self.permanent = permanent
        self.outcome_unknown = outcome_unknown
        self.retry_after = retry_after
        # Known before the answer only where tidings chose the id itself (Infobip's
        # messageId): with it, an unknown outcome is settled by the next status webhook.
        self.provider_message_id = provider_message_id
        self.raw = raw

    def __str__(self) -> str:
        return mask_text(super().__str__())

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled whole (a campaign's answers come back from its send process): the
        default would call the class with the message alone."""
        return _rebuilt, (type(self), self.args[0], dict(self.__dict__))

    @property
    def reason(self) -> str:
        """One line for the message's failure: what the provider said, or what happened."""
        return self.provider_message or super().__str__()


def _invalid(message: str) -> SendError:
    # Found before any provider is involved, hence no provider name.
    return SendError(message, provider="", kind=SendFailure.INVALID, permanent=True)


@dataclass(frozen=True)
class SendRequest:
    """One message to send: plain `text`, or a provider `template` with its `language` and
    `variables` (positional, or named where the provider supports names).

    `campaign`, `contact_ref` and `metadata` travel with the message where the provider echoes
    data back in its webhooks (Callbell `metadata`, Meta `biz_opaque_callback_data`, Infobip
    `callbackData`). `idempotency_key` makes the provider id deterministic where tidings may
    choose it (Infobip), so a retried send names the same message.
    """

    recipient: str
    text: str | None = None
    template: str | None = None
    language: str | None = None
    variables: Sequence[str] | Mapping[str, str] = ()
    subject: str | None = None  # email only
    campaign: str | None = None
    contact_ref: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None

    def __post_init__(self) -> None:
        if not self.recipient or not self.recipient.strip():
            raise _invalid("a send needs a recipient")
        if (self.text is None) == (self.template is None):
            raise _invalid("a send needs either text or a template, not both and not neither")
        if self.text is not None and not self.text.strip():
            raise _invalid("the text to send is empty")
        if self.template is not None and not self.template.strip():
            raise _invalid("the template name is empty")

    @property
    def positional(self) -> list[str]:
        """The variables in order (a mapping's values in its order)."""
        if isinstance(self.variables, Mapping):
            return [str(v) for v in self.variables.values()]
        return [str(v) for v in self.variables]


@dataclass(frozen=True)
class SendResult:
    """The provider accepted the message: its id, its first status in the provider's words,
    and the decoded answer (kept for diagnosis)."""

    provider_message_id: str
    status: str | None
    raw: Any
    http_status: int


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one send tries before it gives up, as data.

    A retry is made only when the earlier attempt cannot have sent anything: the connection
    never opened (no byte of the request left), or the provider answered with a status its
    client lists as refused-without-effect (429, some 503s) together with a `Retry-After`
    no longer than `max_wait`. A longer wait is handed to the caller as
    `SendError(kind=RATE_LIMITED, retry_after=...)`, so a campaign waits without a thread.
    """

    attempts: int = 3  # tries in all, the first included
    max_wait: float = 30.0  # longest Retry-After waited for in-process (seconds)
    connect_backoff: float = 0.5  # wait before the n-th reconnect: n x this (seconds)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SenderConfig:
    """What a client needs of a connection: its name (Evolution's default instance), its
    options (`api_url`, `api_key`, `from`, ...), its secret (Twilio's auth token), the URL its
    provider should post statuses to (its intake URL, given by the caller), and how long to
    wait. `sleep` and `clock` are injected so tests never wait for real time."""

    connection: str
    options: Mapping[str, str] = field(default_factory=dict)
    secret: str | None = None
    callback_url: str | None = None
    timeout: float = 10.0
    retry: RetryPolicy = RetryPolicy()
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], datetime] = _utc_now

    def option(self, key: str) -> str | None:
        value = self.options.get(key)
        return value.strip() if value and value.strip() else None


class Sender(Protocol):
    """A provider API client for one connection."""

    provider: str

    def send(self, request: SendRequest) -> SendResult:
        """Send one message; SendResult with the provider's id, or SendError."""
        ...


def callback_fields(request: SendRequest, config: SenderConfig) -> dict[str, str]:
    """Campaign and contact under the keys the connection reads back from callback data
    (`campaign_key`, `contact_ref_key`; "campaign" and "contact_ref" when unset), then the
    request's own metadata. The values a provider echoes in its webhooks."""
    fields: dict[str, str] = {}
    if request.campaign:
        fields[config.option("campaign_key") or "campaign"] = request.campaign
    if request.contact_ref:
        fields[config.option("contact_ref_key") or "contact_ref"] = request.contact_ref
    for key, value in request.metadata.items():
        fields.setdefault(str(key), str(value))
    return fields


# What a send came to: the provider's message id, or the SendError; and the HTTP status.
Answer = tuple[SendError | str, int | None]


def answer_to_error(provider: str, error: Exception) -> Answer:
    """A send that raised: a SendError as it is; anything else a client raises (a bug, an
    answer it cannot read) happened after the request may have left, so it is an unknown
    outcome, never a reason to send again."""
    if isinstance(error, SendError):
        return error, error.http_status
    _log.error("send through %s ended unexpectedly", provider, exc_info=error)
    unknown = SendError(
        f"{provider}: the send ended unexpectedly ({type(error).__name__}); "
        "the message may have been sent",
        provider=provider,
        kind=SendFailure.BAD_ANSWER,
        outcome_unknown=True,
    )
    return unknown, None
