"""What a send's outcome means for the message it makes, and a dispatched campaign's rules:
its states, its pace, its contacts and its text. Pure: no I/O (docs/architecture.md,
"Sending").

A send is recorded before its provider is called; the message is registered from the
provider's answer (decision 0012):

    accepted          a message under the provider's id, `sent`
    refused           a message under the send's provisional id, `failed` (not after send),
                      with the provider's status, code and words
    outcome unknown   a message under the provisional id (Infobip: the id tidings chose),
                      kept `queued` with a note; never sent again blindly
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from tidings.domain.errors import Invalid
from tidings.domain.events import EventKind, NormalizedEvent

__all__ = [
    "Action",
    "Contact",
    "ContactStatus",
    "DispatchState",
    "SendOutcome",
    "SendStatus",
    "accepted_event",
    "act",
    "check_contact",
    "contact_from_mapping",
    "next_step_at",
    "placeholders",
    "provisional_id",
    "refused_event",
    "render",
    "slot_interval",
    "template_variables",
    "unknown_event",
    "unknown_placeholders",
]


class ContactStatus(StrEnum):
    """Where a campaign's contact stands: waiting, being sent, or closed with its send's
    outcome (a deferred send puts it back to pending)."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"


class SendStatus(StrEnum):
    QUEUED = "queued"  # recorded; the provider is being called
    SENT = "sent"  # the provider took it and named its id
    FAILED = "failed"  # the provider did not take it
    UNKNOWN = "unknown"  # it may have gone out; never sent again blindly
    # Nothing went out and the connection, not the message, was the trouble (rate limited,
    # provider unreachable, credentials refused): a campaign tries this contact again later.
    DEFERRED = "deferred"


@dataclass(frozen=True)
class SendOutcome:
    """How one send ended, as the store records it. `provider_message_id` is the provider's id
    (sent), or the id tidings chose before calling (Infobip), or None."""

    status: SendStatus
    provider_message_id: str | None = None
    http_status: int | None = None
    error_kind: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    permanent: bool = False


def provisional_id(idempotency_key: str) -> str:
    """The id a send's message has until (unless) the provider names one: the same for the
    same key, so a repeated request finds the message it made."""
    return "tidings-send-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]


def accepted_event(provider_message_id: str, at: datetime, http_status: int) -> NormalizedEvent:
    """The provider's answer proves the message left: `sent`, as a status webhook would."""
    return NormalizedEvent(
        provider_message_id=provider_message_id,
        kind=EventKind.SENT,
        raw_status="accepted",
        occurred_at=at,
        provider_event_id="send",
        details={"source": "send", "http_status": http_status},
    )


def refused_event(
    provisional: str,
    at: datetime,
    *,
    http_status: int | None,
    code: str | None,
    message: str,
    permanent: bool,
    kind: str,
) -> NormalizedEvent:
    """The provider did not take the message: `failed` before it was sent. The failure's code
    is the provider's own, else the HTTP status, else what went wrong."""
    return NormalizedEvent(
        provider_message_id=provisional,
        kind=EventKind.FAILED,
        raw_status="refused",
        occurred_at=at,
        provider_event_id="send",
        failure_code=code or (f"http_{http_status}" if http_status else kind),
        failure_reason=message,
        failure_permanent=permanent,
        after_send=False,
        details={"source": "send", "http_status": http_status, "error_kind": kind},
    )


def unknown_event(pmid: str, at: datetime, message: str, kind: str) -> NormalizedEvent:
    """No answer came: the message may be on its way. State unchanged (`queued`), with the
    note on its timeline."""
    return NormalizedEvent(
        provider_message_id=pmid,
        kind=EventKind.UNKNOWN,
        raw_status="send outcome unknown",
        occurred_at=at,
        provider_event_id="send-unknown",
        details={"source": "send", "error_kind": kind, "note": message},
    )


# Dispatch of a campaign that tidings sends.


class DispatchState(StrEnum):
    DRAFT = "draft"  # created, contacts being added
    SCHEDULED = "scheduled"  # started, waits for its start time
    RUNNING = "running"
    PAUSED = "paused"  # by a person, or by tidings after consecutive errors (with why)
    DONE = "done"  # every contact has an outcome
    CANCELLED = "cancelled"


class Action(StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"


_ALLOWED: Mapping[Action, frozenset[DispatchState]] = {
    Action.START: frozenset({DispatchState.DRAFT}),
    Action.PAUSE: frozenset({DispatchState.SCHEDULED, DispatchState.RUNNING}),
    Action.RESUME: frozenset({DispatchState.PAUSED}),
    Action.CANCEL: frozenset(
        {DispatchState.DRAFT, DispatchState.SCHEDULED, DispatchState.RUNNING, DispatchState.PAUSED}
    ),
}


# What a person most likely meant, where an action does not apply.
_INSTEAD: Mapping[tuple[Action, DispatchState], str] = {
    (Action.START, DispatchState.PAUSED): ": resume it",
    (Action.RESUME, DispatchState.DRAFT): ": start it",
    (Action.START, DispatchState.RUNNING): ": it is being sent already",
    (Action.RESUME, DispatchState.RUNNING): ": it is being sent already",
}


def act(
    state: DispatchState, action: Action, now: datetime, start_at: datetime | None
) -> DispatchState:
    """The state a person's action leads to; Invalid naming the state when it cannot apply
    (e.g. resuming a campaign that is not paused)."""
    if state not in _ALLOWED[action]:
        hint = _INSTEAD.get((action, state), "")
        raise Invalid(f"cannot {action.value} a campaign that is {state.value}{hint}")
    if action is Action.PAUSE:
        return DispatchState.PAUSED
    if action is Action.CANCEL:
        return DispatchState.CANCELLED
    if action is Action.START and start_at is not None and start_at > now:
        return DispatchState.SCHEDULED
    return DispatchState.RUNNING


def slot_interval(rate_per_minute: int | None, healthy: bool) -> timedelta:
    """Time between two sends of one campaign; halved rate (double interval) while its
    connection's health is under the threshold. No rate: as fast as the provider takes them."""
    if not rate_per_minute:
        return timedelta(0)
    seconds = 60.0 / rate_per_minute
    return timedelta(seconds=seconds * (1 if healthy else 2))


def next_step_at(
    following: datetime, now: datetime, interval: timedelta, healthy: bool = True
) -> datetime:
    """When a paced campaign claims its next contact: at its next slot, or, while it is
    behind its clock (the process stalled, the store was slow), half an interval from now, so
    the slots it missed are sent at twice its rate until it is on time again, never in a
    burst. Not while its connection is unhealthy: then it keeps its halved rate and makes up
    nothing (the clock restarts once it is `CATCH_UP` behind)."""
    return max(following, now + (interval / 2 if healthy else interval))


_VAR = re.compile(r"var(\d+)")


def template_variables(variables: Mapping[str, str]) -> list[str]:
    """A contact's template variables in order: `var1`, `var2`, … by their numbers, whatever
    the order of the columns (other columns, `name` included, are not variables)."""
    numbered = [(int(m.group(1)), key) for key in variables if (m := _VAR.fullmatch(key))]
    return [variables[key] for _, key in sorted(numbered)]


_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def placeholders(text: str) -> list[str]:
    """The `{{name}}` variables a campaign's text uses, in order of first use."""
    seen: list[str] = []
    for name in _PLACEHOLDER.findall(text):
        if name not in seen:
            seen.append(name)
    return seen


def unknown_placeholders(text: str, items: Sequence[Any]) -> list[str]:
    """The variables the text uses that no contact has at all: a typo in the text or in the
    CSV's header, to refuse before the campaign exists rather than on every row after."""
    named: set[str] = set()
    for item in items:
        if isinstance(item, Mapping):
            nested = item.get("variables")
            inner = nested.keys() if isinstance(nested, Mapping) else ()
            named.update(str(key).strip() for key in [*item.keys(), *inner])
    return [name for name in placeholders(text) if name not in named]


def render(text: str, variables: Mapping[str, str]) -> str:
    """The text with each `{{name}}` replaced by the contact's value (checked when the contact
    was added, so a missing one is a bug: KeyError)."""
    return _PLACEHOLDER.sub(lambda found: variables[found.group(1)], text)


@dataclass(frozen=True)
class Contact:
    """One contact of a dispatched campaign, as given (JSON item or CSV row): `variables`
    holds `name` and the extra columns (`var1`, ...) by name, in their order."""

    contact_ref: str
    recipient: str
    name: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)


def check_contact(contact: Contact, needed: Sequence[str], limits: Mapping[str, int]) -> str | None:
    """Why this contact cannot be sent to, or None: a missing reference or recipient, a
    value longer than the store holds, a variable the text uses and the contact lacks."""
    if not contact.contact_ref.strip():
        return "contact_ref is empty"
    if not contact.recipient.strip():
        return "recipient is empty"
    for name, value in (("contact_ref", contact.contact_ref), ("name", contact.name or "")):
        limit = limits.get(name)
        if limit is not None and len(value) > limit:
            return f"{name} is longer than {limit} characters"
    missing = [name for name in needed if not contact.variables.get(name)]
    if missing:
        return (
            "the text uses "
            + ", ".join(f"{{{{{n}}}}}" for n in missing)
            + " but this contact has none"
        )
    return None


def contact_from_mapping(item: Mapping[str, Any]) -> Contact:
    """A contact from a JSON object or a CSV row: `contact_ref`, `recipient`, `name`, and every
    other key as a variable (`variables` may also be given as an object). Invalid when a
    value is not text."""
    values: dict[str, str] = {}
    nested = item.get("variables")
    if nested is not None and not isinstance(nested, Mapping):
        raise Invalid("variables must be an object of texts")
    for key, value in [*item.items(), *((nested or {}).items())]:
        if key == "variables" or value is None:
            continue
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise Invalid(f"{key} must be text")
        values[str(key).strip()] = str(value).strip()
    ref = values.pop("contact_ref", "")
    recipient = values.pop("recipient", "")
    name = values.get("name") or None
    return Contact(contact_ref=ref, recipient=recipient, name=name, variables=values)
