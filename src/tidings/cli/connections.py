"""`tidings connection …`: add, list, update and remove the provider accounts that send webhooks."""

from __future__ import annotations

from typing import Any

import click

from tidings import connection_admin
from tidings.cli.common import intake_base, now, settings, store
from tidings.domain.health import ConnectionHealth, has_health
from tidings.providers.registry import PROVIDERS, get_provider
from tidings.storage import connections, health


def _intake_url(*args: Any, **kwargs: Any) -> str:
    """`api.routes.intake_url`, imported only by the commands that print one: the API (and
    FastAPI with it) would add a fifth of a second to every command's start, doctor's too."""
    from tidings.api.routes import intake_url

    return intake_url(*args, **kwargs)


__all__ = ["connection"]

_OPTION = click.option(
    "--option", "options", multiple=True, metavar="KEY=VALUE", help="Repeatable."
)


def _parse(options: tuple[str, ...]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--option")
        parsed[key.strip()] = value
    return parsed


@click.group()
def connection() -> None:
    """Connections: one per provider account that sends webhooks."""


@connection.command("add")
@click.argument("provider", type=click.Choice(sorted(PROVIDERS)))
@click.argument("name")
@click.option("--secret", help="Shared secret; Meta: the App Secret; Twilio: the auth token. "
              "Generated when omitted for providers that sign nothing.")  # fmt: skip
@_OPTION
def connection_add(provider: str, name: str, secret: str | None, options: tuple[str, ...]) -> None:
    """Add a connection; prints its intake URL on the last line."""
    parsed = _parse(options)
    config = settings()
    with store(config) as db:
        added = connection_admin.add(db, provider, name, secret, parsed, now())
        base = intake_base(config, db)
    click.echo(f"added {provider} connection {name!r} ({get_provider(provider).auth_scheme})")
    if added.secret_generated:
        click.echo(f"generated secret: {added.connection.secret}")
    click.echo(_intake_url(base, added.connection, with_secret=True))


def _health(found: ConnectionHealth | None) -> str:
    """One connection's health as `tidings connection list` shows it (none for callyzer)."""
    if found is None:
        return ""
    state = "healthy" if found.healthy else "UNHEALTHY"
    return (
        f"\thealth: {state}, score {found.score:.2f} of {found.outcomes} outcomes, "
        f"consecutive errors: {found.consecutive_errors}, today: {found.delivered_today} "
        f"delivered, {found.read_today} read, {found.failed_today} failed"
    )


@connection.command("list")
def connection_list() -> None:
    """List connections with their intake URL and auth scheme (never their secrets), and the
    health of those that send: score, consecutive errors and today's counts."""
    config = settings()
    with store(config) as db:
        with db.read() as conn:
            found = connections.active_connections(conn)
            ids = [c.id for c in found if has_health(get_provider(c.provider).channel)]
            healths = health.connections_health(
                conn, ids, now(), config.timezone, config.health_threshold
            )
        base = intake_base(config, db)
    if not found:
        click.echo("no connections yet: tidings connection add PROVIDER NAME")
        return
    for c in found:
        url = _intake_url(base, c, with_secret=False)
        last = c.last_event_at.isoformat() if c.last_event_at else "never"
        scheme = get_provider(c.provider).auth_scheme
        rejected = ""
        if c.credentials_rejected:
            at = c.credentials_rejected_at.isoformat() if c.credentials_rejected_at else "?"
            rejected = f"\tcredentials rejected since {at}: polling waits for a new api_key"
        shown = _health(healths.get(c.id))
        click.echo(f"{c.name}\t{c.provider}\t{url}\t{scheme}\tlast event: {last}{rejected}{shown}")


@connection.command("update")
@click.argument("name")
@click.option("--secret", help="The new secret.")
@_OPTION
@click.option("--unset-option", "unset", multiple=True, metavar="KEY", help="Repeatable.")
def connection_update(
    name: str, secret: str | None, options: tuple[str, ...], unset: tuple[str, ...]
) -> None:
    """Change a connection's secret or options; prints its intake URL on the last line.

    A running server takes the change within a second."""
    parsed = _parse(options)
    if secret is None and not parsed and not unset:
        raise click.UsageError("give --secret, --option KEY=VALUE or --unset-option KEY")
    config = settings()
    with store(config) as db:
        changed = connection_admin.change(db, name, secret, parsed, unset)
        base = intake_base(config, db)
    keys = ", ".join(sorted(changed.options)) or "none"
    click.echo(f"updated {changed.provider} connection {name!r} (options: {keys})")
    click.echo(_intake_url(base, changed, with_secret=True))


@connection.command("remove")
@click.argument("name")
def connection_remove(name: str) -> None:
    """Remove a connection: its intake URL answers 404 from now on; its messages and receipts
    stay, and the name can be given to a new connection."""
    with store(settings()) as db:
        removed = connection_admin.remove(db, name, now())
    click.echo(
        f"removed {removed.provider} connection {name!r}: its intake URL now answers 404; "
        "its messages and receipts stay"
    )
