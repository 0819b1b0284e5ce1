"""`tidings subscription …` and `tidings deliveries …`: outbound webhooks from the command line,
with the same checks as the API (`subscription_admin`)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from tidings import subscription_admin
from tidings.cli.common import now, settings, store
from tidings.domain.errors import NotFound
from tidings.logging import mask_text
from tidings.storage import connections, deliveries
from tidings.storage.deliveries import DeliveryFilter, DeliveryStatus
from tidings.storage.subscriptions import StoredSubscription, list_subscriptions

__all__ = ["deliveries_group", "subscription"]

_ID = click.IntRange(1, 2**63 - 1)


def _events(value: str | None) -> list[str]:
    return [part for part in (value or "").split(",") if part.strip()]


@click.group()
def subscription() -> None:
    """Subscriptions: URLs that receive signed webhooks of what tidings learns."""


@subscription.command("add")
@click.argument("url")
@click.option(
    "--events",
    metavar="TYPES",
    help="Comma-separated event types, e.g. message.delivered,message.read or message.* "
    "(default: every event).",
)
@click.option("--connection", help="Only this connection's events.")
@click.option("--campaign", help="Only this campaign's messages.")
@click.option("--description", help="What this subscriber is, for people.")
@click.option(
    "--include-contact",
    is_flag=True,
    help="Send recipients' phone numbers and emails as they are (masked otherwise).",
)
def subscription_add(
    url: str,
    events: str | None,
    connection: str | None,
    campaign: str | None,
    description: str | None,
    include_contact: bool,
) -> None:
    """Subscribe URL; prints the signing secret alone on the last line (shown only now)."""
    config = settings()
    with store(config) as db:
        added = subscription_admin.add(
            db,
            config,
            url,
            _events(events),
            connection,
            campaign,
            description,
            include_contact,
            now=now(),
        )
    click.echo(
        f"subscription {added.id} added: {mask_text(added.url)} "
        f"(events: {','.join(added.event_types)}); verify deliveries with this secret:"
    )
    click.echo(added.secret)


def _line(sub: StoredSubscription, names: dict[int, str]) -> str:
    state = "enabled" if sub.enabled else f"disabled ({sub.disabled_reason})"
    parts = [str(sub.id), mask_text(sub.url), ",".join(sub.event_types), state]
    if sub.connection_id is not None:
        parts.append(f"connection {names.get(sub.connection_id, sub.connection_id)}")
    if sub.campaign:
        parts.append(f"campaign {sub.campaign}")
    if sub.failing_since:
        parts.append(f"failing since {sub.failing_since.isoformat()}")
    if sub.description:
        parts.append(sub.description)
    return "\t".join(parts)


@subscription.command("list")
def subscription_list() -> None:
    """List subscriptions (never their secrets)."""
    with store(settings()) as db, db.read() as conn:
        found = list_subscriptions(conn)
        names = {c.id: c.name for c in connections.list_connections(conn)}
    if not found:
        click.echo("no subscriptions yet: tidings subscription add URL")
        return
    for sub in found:
        click.echo(_line(sub, names))


@subscription.command("remove")
@click.argument("subscription_id", type=_ID)
def subscription_remove(subscription_id: int) -> None:
    """Delete a subscription and its deliveries; nothing more is sent to it."""
    with store(settings()) as db:
        removed = subscription_admin.remove(db, subscription_id)
    click.echo(f"subscription {removed.id} removed ({mask_text(removed.url)})")


@subscription.command("rotate")
@click.argument("subscription_id", type=_ID)
@click.option(
    "--overlap",
    type=click.FloatRange(min=0, max=365 * 86400),
    help="Seconds the old secret keeps signing too [default: TIDINGS_OUTBOUND_SECRET_"
    "OVERLAP_SECONDS, 24 h]; 0 retires it at once.",
)
def subscription_rotate(subscription_id: int, overlap: float | None) -> None:
    """A new signing secret, printed alone on the last line; the old one signs beside it for
    the overlap window, so the receiver can switch without losing a delivery."""
    config = settings()
    window = config.outbound_secret_overlap_seconds if overlap is None else overlap
    with store(config) as db:
        rotated = subscription_admin.rotate(db, subscription_id, window, now=now())
    until = rotated.previous_secret_expires_at
    old = f"the old secret signs too until {until.isoformat()}" if until else "old secret retired"
    click.echo(f"subscription {rotated.id}: new secret ({old}):")
    click.echo(rotated.secret)


@subscription.command("enable")
@click.argument("subscription_id", type=_ID)
def subscription_enable(subscription_id: int) -> None:
    """Send to a disabled subscription again, its waiting deliveries first."""
    config = settings()
    with store(config) as db:
        subscription_admin.change(db, config, subscription_id, now=now(), enabled=True)
    click.echo(f"subscription {subscription_id} enabled")


@subscription.command("disable")
@click.argument("subscription_id", type=_ID)
def subscription_disable(subscription_id: int) -> None:
    """Stop sending to a subscription (its deliveries wait until it is enabled)."""
    config = settings()
    with store(config) as db:
        subscription_admin.change(db, config, subscription_id, now=now(), enabled=False)
    click.echo(f"subscription {subscription_id} disabled")


@click.group("deliveries")
def deliveries_group() -> None:
    """Deliveries of outbound webhooks: list them, send them again."""


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD or ISO 8601)", param_hint="--since"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_STATUS = click.option(
    "--status", type=click.Choice([s.value for s in DeliveryStatus]), help="Only in this status."
)


@deliveries_group.command("replay")
@click.argument("delivery_ids", nargs=-1, type=_ID)
@click.option("--subscription", "subscription_id", type=_ID, help="Only this subscription's.")
@click.option("--since", help="Events recorded since this date (YYYY-MM-DD or ISO 8601).")
@_STATUS
def deliveries_replay(
    delivery_ids: tuple[int, ...],
    subscription_id: int | None,
    since: str | None,
    status: str | None,
) -> None:
    """Send deliveries again with the same webhook ids: those named, or every event since a
    date (of one subscription, or of all), optionally only those in a status (e.g. dead)."""
    if not (delivery_ids or subscription_id or since or status):
        raise click.UsageError("name deliveries or give --subscription, --since or --status")
    since_at = _since(since) or datetime(1970, 1, 1, tzinfo=UTC)
    at = now()
    with store(settings()) as db:
        if delivery_ids:
            with db.read() as conn:
                missing = [i for i in delivery_ids if deliveries.get_delivery(conn, i) is None]
            if missing:
                listed = ", ".join(map(str, missing))
                raise NotFound(f"no delivery with id {listed}; nothing replayed")
            count = deliveries.replay(db, delivery_ids, at)
        else:
            with db.read() as conn:
                subs = list_subscriptions(conn)
            if subscription_id is not None:
                subs = [s for s in subs if s.id == subscription_id]
                if not subs:
                    raise NotFound(f"no subscription with id {subscription_id}")
            wanted = DeliveryStatus(status) if status else None
            count = sum(deliveries.replay_range(db, s.id, since_at, at, at, wanted) for s in subs)
    noun = "delivery" if count == 1 else "deliveries"
    click.echo(f"{count} {noun} queued to be sent again (a running sender picks them up)")


@deliveries_group.command("list")
@click.option("--subscription", "subscription_id", type=_ID, help="Only this subscription's.")
@_STATUS
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
def deliveries_list(subscription_id: int | None, status: str | None, limit: int) -> None:
    """The newest deliveries with their status and last answer."""
    where = DeliveryFilter(subscription_id, DeliveryStatus(status) if status else None)
    with store(settings()) as db, db.read() as conn:
        rows = deliveries.list_deliveries(conn, where, None, limit)
    if not rows:
        click.echo("no deliveries")
        return
    for row in rows:
        answer = row.last_status_code or row.last_error or "-"
        click.echo(
            f"{row.id}\tsubscription {row.subscription_id}\t{row.type}\t{row.webhook_id}\t"
            f"{row.status}\tattempts {row.attempts}\tlast {answer}"
        )
