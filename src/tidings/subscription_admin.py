"""Adding, changing, rotating and removing subscriptions: the checks both the CLI and the API
apply (a URL tidings may send to, event types it knows, a connection in use), so a
subscription in the store is always one the sender can serve."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tidings.config import Settings
from tidings.domain.errors import Invalid
from tidings.domain.outbound import parse_event_types
from tidings.outbound import signing
from tidings.outbound.guard import check_url
from tidings.storage import connections, subscriptions
from tidings.storage.db import Database
from tidings.storage.limits import column_limit
from tidings.storage.schema import subscriptions as table
from tidings.storage.subscriptions import StoredSubscription

__all__ = ["NOT_GIVEN", "add", "change", "remove", "rotate"]


class _NotGiven:
    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Any = _NotGiven()  # a field a change leaves as it is (None clears it)


@dataclass(frozen=True)
class _Checked:
    values: dict[str, Any]


def _text(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if "\x00" in value:
        raise Invalid(f"{name} cannot contain NUL characters")
    limit = column_limit(table, name)
    if limit is not None and len(value) > limit:
        raise Invalid(f"{name} is longer than {limit} characters")
    return value or None


def _check(
    db: Database,
    settings: Settings,
    url: Any,
    event_types: Any,
    connection: Any,
    campaign: Any,
    description: Any,
) -> _Checked:
    values: dict[str, Any] = {}
    if url is not NOT_GIVEN:
        checked = _text("url", url)
        if not checked:
            raise Invalid("url is required")
        check_url(checked, settings.outbound_policy)
        values["url"] = checked
    if event_types is not NOT_GIVEN:
        values["event_types"] = list(parse_event_types(event_types or ()))
    if connection is not NOT_GIVEN:
        if connection is None or not str(connection).strip():
            values["connection_id"] = None
        else:
            with db.read() as conn:
                found = connections.get_connection(conn, str(connection).strip())
            values["connection_id"] = found.id
    if campaign is not NOT_GIVEN:
        values["campaign"] = _text("campaign", campaign)
    if description is not NOT_GIVEN:
        values["description"] = _text("description", description)
    return _Checked(values)


def add(
    db: Database,
    settings: Settings,
    url: str,
    event_types: Iterable[str] = (),
    connection: str | None = None,
    campaign: str | None = None,
    description: str | None = None,
    include_contact: bool = False,
    *,
    now: datetime,
) -> StoredSubscription:
    """A new, enabled subscription with a generated secret (`whsec_…`).

    Raises:
        RefusedAddress: the URL is not one tidings may send to (a private address, say).
        Invalid: an unknown event type, a text too long.
        NotFound: the connection named is not in use.
    """
    checked = _check(db, settings, url, list(event_types), connection, campaign, description)
    values = checked.values
    with db.write() as conn:
        return subscriptions.add_subscription(
            conn,
            url=values["url"],
            secret=signing.new_secret(),
            event_types=values["event_types"],
            connection_id=values.get("connection_id"),
            campaign=values.get("campaign"),
            description=values.get("description"),
            include_contact=include_contact,
            now=now,
        )


def change(
    db: Database,
    settings: Settings,
    subscription_id: int,
    *,
    now: datetime,
    url: Any = NOT_GIVEN,
    event_types: Any = NOT_GIVEN,
    connection: Any = NOT_GIVEN,
    campaign: Any = NOT_GIVEN,
    description: Any = NOT_GIVEN,
    include_contact: Any = NOT_GIVEN,
    enabled: Any = NOT_GIVEN,
) -> StoredSubscription:
    """Change what is given, keep the rest. Enabling a subscription clears why it was
    disabled and its failing streak, so its waiting deliveries are sent again."""
    values = _check(db, settings, url, event_types, connection, campaign, description).values
    if include_contact is not NOT_GIVEN:
        values["include_contact"] = bool(include_contact)
    if enabled is not NOT_GIVEN:
        values["enabled"] = bool(enabled)
        if enabled:
            values["disabled_reason"] = None
            values["failing_since"] = None
        else:
            values["disabled_reason"] = "disabled by an operator"
    with db.write() as conn:
        return subscriptions.update_subscription(conn, subscription_id, values, now)


def rotate(
    db: Database, subscription_id: int, overlap_seconds: float, *, now: datetime
) -> StoredSubscription:
    """A new secret; the current one keeps signing beside it for `overlap_seconds`, so a
    receiver can switch over without losing a delivery."""
    if overlap_seconds < 0:
        raise Invalid("overlap_seconds cannot be negative")
    with db.write() as conn:
        current = subscriptions.get_subscription(conn, subscription_id)
        return subscriptions.update_subscription(
            conn,
            subscription_id,
            {
                "secret": signing.new_secret(),
                "previous_secret": current.secret if overlap_seconds else None,
                "previous_secret_expires_at": (
                    now + timedelta(seconds=overlap_seconds) if overlap_seconds else None
                ),
            },
            now,
        )


def remove(db: Database, subscription_id: int) -> StoredSubscription:
    """Delete a subscription, its deliveries and their attempts."""
    with db.write() as conn:
        return subscriptions.remove_subscription(conn, subscription_id)
