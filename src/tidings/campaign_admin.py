"""Creating the campaigns tidings sends, adding their contacts, starting, pausing, resuming
and cancelling them: the checks both the CLI and the API apply.

Contacts come as JSON objects or CSV rows (`contact_ref,recipient,name,var1…`); each is
checked alone, so one bad row is reported by its number and the others are added.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tidings.domain.errors import Invalid
from tidings.domain.recipients import InvalidRecipient, normalise_recipient
from tidings.domain.sending import (
    Action,
    Contact,
    check_contact,
    contact_from_mapping,
    placeholders,
    unknown_placeholders,
)
from tidings.providers.senders import SENDERS, SENDS_TEMPLATES
from tidings.storage import connections, dispatches
from tidings.storage.db import Database
from tidings.storage.dispatches import DispatchView
from tidings.storage.limits import limits
from tidings.storage.schema import campaign_contacts, campaign_dispatches, campaigns

__all__ = ["RowResult", "act", "add_contacts", "create", "read_csv"]

_LIMITS = {
    **limits(campaign_contacts),
    "key": limits(campaigns)["key"],
    "campaign_name": limits(campaign_dispatches)["name"],
}
# Contacts added per transaction: SQLite's write lock, which the intake needs, is held briefly.
CHUNK = 1000
MAX_RATE = 60_000  # a thousand a second: beyond any provider's documented limit


@dataclass(frozen=True)
class RowResult:
    """One contact's fate: `row` is its number (1 = the first contact), `error` None when added."""

    row: int
    contact_ref: str | None
    error: str | None

    @property
    def added(self) -> bool:
        return self.error is None


def create(
    db: Database,
    *,
    key: str,
    connection: str,
    text: str | None,
    template: Mapping[str, Any] | None,
    rate_per_minute: int | None,
    start_at: datetime | None,
    name: str | None,
    now: datetime,
    contacts: Sequence[Any] = (),
) -> DispatchView:
    """A campaign to send, in draft. Invalid for a missing or doubled text/template, a text
    using a variable none of the `contacts` about to be added has, a rate out of range, a
    connection that cannot send; NotFound for an unknown connection; Conflict for a key
    already used."""
    key = key.strip()
    if not key or len(key) > _LIMITS["key"]:
        raise Invalid(f"the campaign key must have 1 to {_LIMITS['key']} characters")
    if "/" in key:  # even as %2F, a slash splits the path of /v1/campaigns/{key}/start
        raise Invalid("the campaign key cannot contain '/': it is a segment of the API's URLs")
    if name is not None and len(name) > _LIMITS["campaign_name"]:
        raise Invalid(f"the name must have at most {_LIMITS['campaign_name']} characters")
    if (text is None) == (template is None):
        raise Invalid("a campaign sends either a text or a template (not both)")
    if text is not None and not text.strip():
        raise Invalid("the campaign's text is empty")
    unknown = unknown_placeholders(text, contacts) if text is not None and contacts else []
    if unknown:
        used = ", ".join(f"{{{{{n}}}}}" for n in unknown)
        raise Invalid(f"the text uses {used}, which none of the contacts has (a typo?)")
    if template is not None and not str(template.get("name") or "").strip():
        raise Invalid("the template needs a name")
    if rate_per_minute is not None and not 1 <= rate_per_minute <= MAX_RATE:
        raise Invalid(f"rate_per_minute must be 1 to {MAX_RATE} (leave it out for no limit)")
    if start_at is not None and start_at.tzinfo is None:
        raise Invalid("start_at needs its UTC offset")
    with db.write() as conn:
        found = connections.get_connection(conn, connection)
        if found.provider not in SENDERS:
            raise Invalid(f"tidings cannot send through {found.provider!r} connections")
        if template is not None and found.provider not in SENDS_TEMPLATES:
            raise Invalid(f"{found.provider} sends text only: give text instead of a template")
        return dispatches.create(
            conn,
            key=key,
            name=name,
            connection_id=found.id,
            text=text,
            template=dict(template) if template is not None else None,
            rate_per_minute=rate_per_minute,
            start_at=start_at,
            now=now,
        )


def read_csv(text: str, lines: list[int] | None = None) -> list[dict[str, str]]:
    """The rows of a contacts CSV as objects by header (blank lines left out; `lines`, when
    given, gets each row's line number). Invalid when the header lacks `contact_ref` or
    `recipient` (naming what it has)."""
    text = text.lstrip("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","  # a spreadsheet's export
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in ("contact_ref", "recipient") if name not in header]
    if missing:
        raise Invalid(
            f"the CSV header must name {', '.join(missing)} "
            f"(contact_ref,recipient,name,var1,...); it has: {', '.join(header) or 'nothing'}"
        )
    reader.fieldnames = header
    rows: list[dict[str, str]] = []
    try:
        for row in reader:
            extra = row.pop(None, None)  # values beyond the header
            item = {k: v for k, v in row.items() if k}
            if extra:
                item["__extra__"] = ",".join(str(v) for v in extra)
            rows.append(item)
            if lines is not None:
                lines.append(reader.line_num)
    except csv.Error as error:
        raise Invalid(f"line {reader.line_num} of the CSV: {error}") from None
    return rows


def add_contacts(
    db: Database,
    key: str,
    items: Sequence[Mapping[str, Any]],
    default_region: str | None,
    now: datetime,
) -> list[RowResult]:
    """Check every contact alone and add those that pass: one result per item, in order."""
    with db.read() as conn:
        view = dispatches.get(conn, key)
        if view is None:
            raise dispatches.not_sent(conn, key)
    needed = placeholders(view.text) if view.text else []
    results: list[RowResult | None] = []
    good: list[tuple[int, Contact]] = []
    for index, item in enumerate(items, start=1):
        contact, error = _contact(item, needed, default_region)
        if contact is None:
            results.append(RowResult(index, _ref(item), error))
            continue
        results.append(None)
        good.append((index, contact))
    for start in range(0, len(good), CHUNK):
        chunk = good[start : start + CHUNK]
        with db.write() as conn:
            refused = dispatches.add_contacts(conn, key, [c for _, c in chunk], now)
        for (index, contact), why in zip(chunk, refused, strict=True):
            results[index - 1] = RowResult(index, contact.contact_ref, why)
    return [r for r in results if r is not None]


def _ref(item: Mapping[str, Any]) -> str | None:
    value = item.get("contact_ref") if isinstance(item, Mapping) else None
    return str(value) if value is not None else None


def _contact(
    item: Any, needed: Iterable[str], default_region: str | None
) -> tuple[Contact | None, str | None]:
    if not isinstance(item, Mapping):
        return None, "a contact must be an object with contact_ref and recipient"
    if item.get("__extra__"):
        return None, "the row has more values than the header has names"
    try:
        contact = contact_from_mapping(item)
    except Invalid as error:
        return None, str(error)
    why = check_contact(contact, list(needed), _LIMITS)
    if why is not None:
        return None, why
    try:
        recipient = normalise_recipient(contact.recipient, default_region)
    except InvalidRecipient as error:
        return None, f"recipient: {error}"
    if len(recipient) > _LIMITS["recipient"]:
        return None, f"recipient is longer than {_LIMITS['recipient']} characters"
    return Contact(contact.contact_ref, recipient, contact.name, contact.variables), None


def act(db: Database, key: str, action: Action, now: datetime) -> DispatchView:
    """Start, pause, resume or cancel. Starting needs at least one contact."""
    with db.write() as conn:
        if action is Action.START:
            view = dispatches.get(conn, key)
            if view is not None and not sum(view.contacts.values()):
                raise Invalid(f"campaign {key!r} has no contacts yet: add some, then start it")
        return dispatches.apply_action(conn, key, action, now)
