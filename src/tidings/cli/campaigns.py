"""`tidings campaign …`: the campaigns tidings sends. Create one (with its contacts from a
CSV), start, pause, resume or cancel it, and see where it stands."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

from tidings import campaign_admin
from tidings.cli.common import moment, now, settings, store
from tidings.domain.errors import Invalid, NotFound
from tidings.domain.sending import Action
from tidings.storage import campaigns, dispatches
from tidings.storage.db import Database

__all__ = ["campaign"]

# Contacts added per transaction: SQLite's write lock, which the intake needs, is held briefly.
CHUNK = 1000

_RATE = re.compile(r"^\s*(\d+)\s*(?:/\s*min(?:ute)?)?\s*$")


def _rate(value: str | None) -> int | None:
    if value is None:
        return None
    found = _RATE.match(value)
    if found is None:
        raise click.BadParameter(f"{value!r} is not a rate like 600/min", param_hint="--rate")
    return int(found.group(1))


def _template(file: Path) -> dict[str, Any]:
    try:
        found = json.loads(file.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise click.BadParameter(f"{file}: {error}", param_hint="--template") from None
    if not isinstance(found, dict) or not isinstance(found.get("name"), str):
        raise click.BadParameter(
            f'{file} must hold a JSON object like {{"name": "order_update", "language": "en"}}',
            param_hint="--template",
        )
    return {"name": found["name"], "language": found.get("language")}


@click.group()
def campaign() -> None:
    """Campaigns that tidings sends through a connection, at a rate."""


@campaign.command("create")
@click.argument("key")
@click.option("--connection", required=True, help="The connection to send through.")
@click.option("--text", help="The text; {{name}}, {{var1}}… are filled in per contact.")
@click.option(
    "--template",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='A JSON file naming a provider template: {"name": …, "language": …}; each '
    "contact's var1, var2… are its variables.",
)
@click.option("--rate", help="At most this many per minute, e.g. 600/min [default: no limit].")
@click.option(
    "--start-at",
    help="When to start once started: an ISO time, in TIDINGS_TIMEZONE unless it has an offset.",
)
@click.option("--name", help="A name people read.")
@click.option(
    "--contacts",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A CSV: contact_ref,recipient,name,var1,…",
)
def campaign_create(
    key: str,
    connection: str,
    text: str | None,
    template: Path | None,
    rate: str | None,
    start_at: str | None,
    name: str | None,
    contacts: Path | None,
) -> None:
    """Create a campaign (as a draft) and add its contacts; `campaign start KEY` sends it."""
    if (text is None) == (template is None):
        raise click.UsageError("give either --text or --template")
    config = settings()
    rows = _contacts(contacts) if contacts is not None else None
    with store(config) as db:
        campaign_admin.create(
            db,
            key=key,
            connection=connection,
            text=text,
            template=_template(template) if template is not None else None,
            rate_per_minute=_rate(rate),
            start_at=moment(start_at, config.timezone, "--start-at"),
            name=name,
            now=now(),
            contacts=rows[0] if rows is not None else (),
        )
        click.echo(f"created campaign {key!r} (draft) on connection {connection!r}")
        failed = _add(db, key, rows, config.default_region) if rows is not None else 0
    if failed:
        raise SystemExit(1)


@campaign.command("add-contacts")
@click.argument("key")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def campaign_add_contacts(key: str, file: Path) -> None:
    """Add contacts from a CSV (contact_ref,recipient,name,var1,…); exit 1 if any row failed."""
    config = settings()
    rows = _contacts(file)
    with store(config) as db:
        failed = _add(db, key, rows, config.default_region)
    if failed:
        raise SystemExit(1)


Rows = tuple[list[dict[str, str]], list[int]]  # the contacts, and each one's line number


def _contacts(file: Path) -> Rows:
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise click.ClickException(f"{file} is not UTF-8 text (save the CSV as UTF-8)") from None
    lines: list[int] = []
    try:
        rows = campaign_admin.read_csv(text, lines)
    except Invalid as error:
        raise click.ClickException(f"{file}: {error}") from None
    if not rows:
        raise click.ClickException(f"{file} has no contacts")
    return rows, lines


def _add(db: Database, key: str, found: Rows, region: str | None) -> int:
    """Add the rows in chunks with a progress bar; print each refused row (its CSV line)."""
    rows, lines = found
    added = 0
    problems: list[str] = []
    with click.progressbar(length=len(rows), label="adding contacts", show_pos=True) as bar:
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            for result in campaign_admin.add_contacts(db, key, chunk, region, now()):
                if result.added:
                    added += 1
                else:
                    problems.append(f"line {lines[start + result.row - 1]}: {result.error}")
            bar.update(len(chunk))
    click.echo(f"{added} {'contact' if added == 1 else 'contacts'} added to {key!r}")
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        click.echo(f"{len(problems)} of {len(rows)} rows not added", err=True)
    return len(problems)


def _act(key: str, action: Action) -> None:
    config = settings()
    with store(config) as db:
        view = campaign_admin.act(db, key, action, now())
    click.echo(f"campaign {key!r} is {view.state.value}")


def _action(action: Action, summary: str) -> None:
    """`tidings campaign ACTION KEY`, one command per action."""

    @campaign.command(action.value, help=summary)
    @click.argument("key")
    def command(key: str) -> None:
        _act(key, action)


_action(Action.START, "Start sending (at its start time, if it has one).")
_action(Action.PAUSE, "Stop sending after the contacts being sent.")
_action(Action.RESUME, "Go on where it stopped, at its rate from now.")
_action(Action.CANCEL, "Send nothing more.")


@campaign.command("status")
@click.argument("key")
def campaign_status(key: str) -> None:
    """Where a campaign stands: its dispatch, its contacts, its messages' counters."""
    config = settings()
    with store(config) as db, db.read() as conn:
        view = dispatches.get(conn, key)
        tracked = campaigns.get_campaign(conn, key)
    if tracked is None:
        raise NotFound(f"no campaign with key {key!r}")
    if view is not None:
        rate = f"{view.rate_per_minute}/min" if view.rate_per_minute else "no limit"
        click.echo(f"campaign {key!r}: {view.state.value} on {view.connection!r} ({rate})")
        if view.paused_reason:
            click.echo(f"paused: {view.paused_reason}")
        if view.waiting_reason:
            click.echo(f"waiting to try again: {view.waiting_reason}")
        click.echo("contacts: " + ", ".join(f"{n} {s}" for s, n in view.contacts.items()))
    else:
        click.echo(f"campaign {key!r}: tracked (its messages are sent elsewhere)")
    counts = tracked.counts
    click.echo(
        "messages: "
        + ", ".join(f"{counts[n]} {n}" for n in ("total", "sent", "delivered", "read", "failed"))
    )
    rates = tracked.rates
    click.echo(f"delivery rate {rates['delivery']:.1%}, read rate {rates['read']:.1%}")
