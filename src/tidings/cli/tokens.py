"""`tidings token …`: the API tokens for /v1; their secrets are shown once, at creation."""

from __future__ import annotations

import click

from tidings.cli.common import now, settings, store
from tidings.storage import tokens

__all__ = ["token"]


@click.group()
def token() -> None:
    """API tokens for the /v1 JSON API."""


@token.command("create")
@click.option("--name", help="Unique name to list and revoke it by  [default: default, default-2…]")
def token_create(name: str | None) -> None:
    """Create an API token; prints it alone on the last line (it is not shown again)."""
    if name is not None and not name.strip():
        raise click.ClickException(
            "a token's name cannot be empty: give --name NAME, or leave it out for 'default'"
        )
    with store(settings()) as db, db.write() as conn:
        name = name.strip() if name is not None else tokens.unused_name(conn, "default")
        new = tokens.create_token(conn, name, now())
    click.echo(f"token {name!r} created; use it as 'Authorization: Bearer <token>':")
    click.echo(new)


@token.command("list")
def token_list() -> None:
    """List tokens by name with when they were created and last used (never the tokens)."""
    with store(settings()) as db, db.read() as conn:
        found = tokens.list_tokens(conn)
    if not found:
        click.echo("no tokens yet: tidings token create --name NAME")
        return
    for t in found:
        used = t.last_used_at.isoformat() if t.last_used_at else "never"
        click.echo(f"{t.name}\tcreated {t.created_at.isoformat()}\tlast used {used}")


@token.command("revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    """Revoke a token: the API refuses it from now on, running servers included."""
    with store(settings()) as db, db.write() as conn:
        tokens.revoke_token(conn, name)
    click.echo(f"token {name!r} revoked")
