"""`tidings backfill`: fetch from a provider's API what its webhooks should have brought (today:
a Callyzer connection's call log), by hand, with a progress bar."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from tidings.cli.common import moment, now, settings, store
from tidings.storage.backfill_runs import Outcome, RunCounts

if TYPE_CHECKING:
    from tidings.backfill.callyzer_poll import PollResult

__all__ = ["backfill"]


@click.command("backfill")
@click.option("--connection", "name", required=True, metavar="NAME", help="The connection.")
@click.option(
    "--since",
    metavar="DATE",
    help="Fetch what synced from this date on (YYYY-MM-DD or ISO 8601; without an offset, in "
    "TIDINGS_TIMEZONE). Without it: from the oldest employee's last sync minus a day.",
)
def backfill(name: str, since: str | None) -> None:
    """Fetch a Callyzer connection's call log from its API (the verification poll, run now).

    The calls go through the inbox like webhooks: a running `tidings serve` or `tidings worker`
    applies them. Exit status 1 when the run failed or Callyzer refused the key."""
    # Loaded here, not at start: the API client (httpx) would slow every other command's start.
    from tidings.backfill.callyzer_poll import poll

    config = settings()
    start = moment(since, config.timezone, "--since")
    if start is not None and start > now():
        raise click.BadParameter(f"{since!r} is in the future", param_hint="--since")
    bar = _Bar()
    with store(config) as db:
        try:
            result = poll(db, config, name, since=start, trigger="manual", progress=bar.update)
        finally:
            bar.close()
    _report(result)


class _Bar:
    """A progress bar over the calls Callyzer announced, shown once it said how many."""

    def __init__(self) -> None:
        self._bar: Any = None  # click's ProgressBar, entered by hand: it starts mid-run
        self._shown = 0

    def update(self, counts: RunCounts, total: int | None) -> None:
        if total is None or total <= 0:
            return
        if self._bar is None:
            self._bar = click.progressbar(length=total, label="fetching calls")
            self._bar.__enter__()
        self._bar.update(counts.fetched - self._shown)
        self._shown = counts.fetched

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


def _report(result: PollResult) -> None:
    counts = result.counts
    window = ""
    if result.window is not None:
        start, end = (moment.isoformat(timespec="seconds") for moment in result.window)
        window = f" synced {start} to {end}"
    summary = (
        f"fetched {counts.fetched} calls{window}: {counts.inserted} new, {counts.updated} "
        f"updated, {counts.skipped} already stored ({counts.requests} requests)"
    )
    if result.outcome is Outcome.OK:
        click.echo(f"backfill run {result.run_id} of {result.connection}: {summary}")
        if counts.inserted or counts.updated:
            click.echo("the worker of tidings serve (or tidings worker) applies them")
        return
    if result.outcome is Outcome.CREDENTIALS_REJECTED:
        raise click.ClickException(
            f"backfill run {result.run_id} of {result.connection}: {result.error}; the "
            "connection is marked and not polled until its api_key changes"
        )
    raise click.ClickException(
        f"backfill run {result.run_id} of {result.connection} failed: {result.error}"
    )
