"""`tidings user …`: the people who log in to the dashboard."""

from __future__ import annotations

import click

from tidings import user_admin
from tidings.cli.common import now, settings, store
from tidings.storage import users

__all__ = ["user"]


@click.group()
def user() -> None:
    """Dashboard users (the dashboard is at / of `tidings serve`)."""


def _password(given: str | None) -> str:
    if given is not None:
        return given
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@user.command("create")
@click.argument("email")
@click.option("--password", help="The password (at least 8 characters)  [default: prompt]")
def user_create(email: str, password: str | None) -> None:
    """Create a dashboard user who logs in with EMAIL and the password."""
    with store(settings()) as db:
        created = user_admin.create(db, email, _password(password), now())
    click.echo(f"user {created.email!r} created; log in at the dashboard's /login")


@user.command("password")
@click.argument("email")
@click.option("--password", help="The new password (at least 8 characters)  [default: prompt]")
def user_password(email: str, password: str | None) -> None:
    """Give a dashboard user a new password; their open sessions end."""
    with store(settings()) as db:
        changed = user_admin.set_password(db, email, _password(password))
    click.echo(f"password of {changed.email!r} changed")


@user.command("remove")
@click.argument("email")
def user_remove(email: str) -> None:
    """Remove a dashboard user; their open sessions end at once."""
    with store(settings()) as db:
        gone = user_admin.remove(db, email)
    click.echo(f"user {gone.email!r} removed")


@user.command("list")
def user_list() -> None:
    """List dashboard users with when they last logged in."""
    with store(settings()) as db, db.read() as conn:
        found = users.list_users(conn)
    if not found:
        click.echo("no users yet: tidings user create EMAIL")
        return
    for u in found:
        last = u.last_login_at.isoformat() if u.last_login_at else "never"
        click.echo(f"{u.email}\tcreated {u.created_at.isoformat()}\tlast login {last}")
