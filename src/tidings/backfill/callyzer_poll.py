"""The Callyzer verification poll: fetch the calls whose webhook may never have come.

One run, for one connection (docs/architecture.md, "The verification poll"):

1. take the connection's lease (a `backfill_runs` row; at most one run per connection at a
   time, whichever process asks);
2. ask about the active employees' numbers, for calls synced from the oldest last sync minus a
   day (an employee never polled looks back `TIDINGS_CALLYZER_POLL_LOOKBACK_DAYS`) up to now,
   every page, at most one request every two seconds;
3. judge each fetched call against what is stored: missing → inserted, a later `modified_at` →
   updated, else skipped; the inserted and updated ones enter the inbox as one receipt per page
   (source `poll`, a list of flat calls, the shape the webhook parser reads), so they are
   applied by the same path as webhooks, and a webhook arriving meanwhile changes nothing
   twice;
4. once every page is in the inbox, advance the employees' last sync and record the run as
   ok, in one transaction.

The counts are judged when the page is fetched, against the store as it is then. A key
Callyzer refuses (401/403) ends the run as `credentials_rejected` and marks the connection: no
run starts again until its api_key (or api_url) changes. A time-out, a 5xx or Callyzer's 400
database error is tried up to three times per request; still failing, the run is `failed`
and the next one starts over from the unchanged last syncs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tidings.config import Settings
from tidings.domain.errors import PayloadError, TidingsError
from tidings.domain.poll_window import PolledEmployee, Verdict, poll_window, verdict
from tidings.providers.base import DEFAULT_REGION, DEFAULT_TIMEZONE
from tidings.providers.callyzer.api import (
    CallyzerApiError,
    CallyzerClient,
    HistoryQuery,
    employee_numbers,
)
from tidings.providers.callyzer.webhook import parse_call
from tidings.storage import backfill_runs, connections, employees, inbox, poll_state
from tidings.storage.backfill_runs import LeaseLost, Outcome, RunCounts
from tidings.storage.connections import StoredConnection
from tidings.storage.db import Database, Reader
from tidings.storage.inbox import NewReceipt, ReceiptSource
from tidings.storage.writes import Writes

__all__ = [
    "LEASE",
    "BackfillUnavailable",
    "CredentialsRejected",
    "MissingApiCredentials",
    "PollResult",
    "check_pollable",
    "default_client",
    "poll",
]

PROVIDER = "callyzer"
# A run renews its lease after every page; one page takes at most about 13 minutes (three
# time-outs, backoff, and five honoured 429s of two minutes), so a live run never loses it.
LEASE = timedelta(minutes=15)


class BackfillUnavailable(TidingsError):
    """The connection's provider has no backfill in tidings yet."""


class MissingApiCredentials(TidingsError):
    """The connection has no api_url or api_key, so there is no API to poll."""


class CredentialsRejected(TidingsError):
    """Callyzer refused this connection's key; no run until the key changes."""


@dataclass(frozen=True)
class PollResult:
    run_id: int
    connection: str
    outcome: Outcome
    counts: RunCounts
    window: tuple[datetime, datetime] | None
    error: str | None = None


ClientFactory = Callable[[StoredConnection, Settings], CallyzerClient]
Progress = Callable[[RunCounts, int | None], None]  # counts so far, total Callyzer announced


def default_client(connection: StoredConnection, settings: Settings) -> CallyzerClient:
    return CallyzerClient(
        connection.options["api_url"],
        connection.options["api_key"],
        timeout=settings.callyzer_timeout_seconds,
        page_size=settings.callyzer_page_size,
    )


def check_pollable(connection: StoredConnection) -> None:
    """Raise unless a poll of `connection` can start: it is a Callyzer connection with an API
    configured, whose key Callyzer has not refused."""
    if connection.provider != PROVIDER:
        raise BackfillUnavailable(
            f"backfill for {connection.provider} is not available yet (connection "
            f"{connection.name!r}); it is for callyzer connections"
        )
    missing = [key for key in ("api_url", "api_key") if not connection.options.get(key)]
    if missing:
        raise MissingApiCredentials(
            f"connection {connection.name!r} has no {' or '.join(missing)}: tidings connection "
            f"update {connection.name} --option api_url=https://api1.callyzer.co/api/v2.2 "
            "--option api_key=KEY"
        )
    if connection.credentials_rejected:
        at = connection.credentials_rejected_at
        since = f" since {at.isoformat(timespec='seconds')}" if at else ""
        raise CredentialsRejected(
            f"Callyzer rejected the API key of connection {connection.name!r}{since} "
            f"({connection.credentials_rejected_error}); nothing is polled until it changes: "
            f"tidings connection update {connection.name} --option api_key=KEY"
        )


def _utcnow() -> datetime:
    return datetime.now(UTC)


def poll(
    db: Database,
    settings: Settings,
    name: str,
    *,
    since: datetime | None = None,
    trigger: str = "manual",
    now: Callable[[], datetime] = _utcnow,
    client_factory: ClientFactory | None = None,
    progress: Progress | None = None,
    wake: Callable[[], None] | None = None,
) -> PollResult:
    """One run of the poll for the connection called `name`; its result (outcome ok, failed
    or credentials_rejected), recorded in `backfill_runs`.

    Raises (before any run starts): NotFound for an unknown connection, BackfillUnavailable
    for another provider's, MissingApiCredentials, CredentialsRejected, and AlreadyRunning
    when another run holds the connection's lease."""
    with db.read() as conn:
        connection = connections.get_connection(conn, name)
    check_pollable(connection)
    started = now()
    run_id = backfill_runs.start(db, connection.id, trigger, started, LEASE)
    run = _Run(db, settings, connection, run_id, now, progress)
    try:
        run.fetch(since, started, client_factory or default_client)
    except CallyzerApiError as error:
        return run.end_failed(error)
    except LeaseLost as error:  # another run took over: it records the outcome, not this one
        return run.result(Outcome.FAILED, str(error))
    except Exception as error:
        run.end(Outcome.FAILED, f"{type(error).__name__}: {error}")
        raise
    if wake is not None and (run.counts.inserted or run.counts.updated):
        wake()
    return run.result(Outcome.OK)


class _Run:
    """The state of one run while it fetches: counts, window, and how to record its end."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        connection: StoredConnection,
        run_id: int,
        now: Callable[[], datetime],
        progress: Progress | None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.connection = connection
        self.run_id = run_id
        self.now = now
        self.on_progress = progress
        self.counts = RunCounts()
        self.window: tuple[datetime, datetime] | None = None
        # The connection's options as the worker parses its receipts with them.
        self.options = {
            DEFAULT_TIMEZONE: settings.timezone,
            DEFAULT_REGION: settings.default_region or "",
            **connection.options,
        }

    def fetch(self, since: datetime | None, started: datetime, factory: ClientFactory) -> None:
        with self.db.read() as conn:
            active = employees.active_employees(conn, self.connection.id)
            known = bool(active) or poll_state.knows_employees(conn, self.connection.id)
        polled = [PolledEmployee(e.code, e.number, e.active, e.last_synced_at) for e in active]
        lookback = timedelta(days=self.settings.callyzer_poll_lookback_days)
        self.window = poll_window(polled, started, lookback, since)
        numbers = employee_numbers([e.number for e in active if e.number])
        self.counts = replace(self.counts, employees=len(numbers))
        self._record_progress(None)
        if known and not numbers:
            # Employees are known, but none is active with a number: nobody to ask about.
            # (With none known at all, the whole account is asked: the first poll of a new
            # connection finds its employees in the calls.)
            self.end(Outcome.OK, None, advance=[])
            return
        seen: dict[str, datetime | None] = {}
        client = factory(self.connection, self.settings)
        try:
            for page in client.history(HistoryQuery(*self.window, numbers)):
                to_apply, judged = self._judge(page.calls, seen)
                if to_apply:
                    receipt = NewReceipt(
                        self.connection.id,
                        PROVIDER,
                        self.now(),
                        "application/json",
                        {},
                        json.dumps(to_apply, ensure_ascii=False).encode(),
                    )
                    inbox.append(self.db, [receipt], ReceiptSource.POLL)
                self.counts = replace(
                    self.counts,
                    pages=self.counts.pages + 1,
                    requests=client.requests,
                    retries=client.retries,
                    fetched=self.counts.fetched + len(page.calls),
                    inserted=self.counts.inserted + judged[Verdict.INSERT],
                    updated=self.counts.updated + judged[Verdict.UPDATE],
                    skipped=self.counts.skipped + judged[Verdict.SKIP],
                )
                self._record_progress(page.total_records)
        finally:
            self.counts = replace(self.counts, requests=client.requests, retries=client.retries)
            client.close()
        # Every page is in the inbox: only now do the employees' last syncs move.
        self.end(Outcome.OK, None, advance=[e.id for e in active if e.number])

    def _judge(
        self, fetched: Sequence[Any], seen: dict[str, datetime | None]
    ) -> tuple[list[Any], dict[Verdict, int]]:
        """The calls of a page to apply (new ones, newer versions, and the unreadable ones,
        whose receipt notes will say why), and how many of each verdict."""
        readable: list[tuple[Any, str, datetime | None]] = []
        to_apply: list[Any] = []
        for call in fetched:
            try:
                if not isinstance(call, dict):
                    raise PayloadError("not an object")
                record = parse_call(call, self.options)
            except PayloadError:
                to_apply.append(call)
                continue
            readable.append((call, record.call_id, record.modified_at))
        with self.db.read() as conn:
            stored = poll_state.stored_versions(
                conn, self.connection.id, [call_id for _, call_id, _ in readable]
            )
        judged = dict.fromkeys(Verdict, 0)
        for call, call_id, modified in readable:
            if call_id in seen:  # twice in one run (pages shift while calls sync)
                said = verdict(modified, seen[call_id], known=True)
            else:
                said = verdict(modified, stored.get(call_id), known=call_id in stored)
            judged[said] += 1
            if said is not Verdict.SKIP:
                to_apply.append(call)
                seen[call_id] = modified
            else:
                seen.setdefault(call_id, stored.get(call_id))
        return to_apply, judged

    def _record_progress(self, total: int | None) -> None:
        backfill_runs.progress(self.db, self.run_id, self.now(), LEASE, self.counts, self.window)
        if self.on_progress is not None:
            self.on_progress(self.counts, total)

    def end(self, outcome: Outcome, error: str | None, advance: Sequence[int] = ()) -> None:
        """Record the run's end; with `advance`, those employees' last syncs move to the
        window's end in the same transaction."""
        at = self.now()

        def plan(reader: Reader, writes: Writes) -> None:
            if advance and self.window is not None:
                employees.advance_last_sync(writes, advance, self.window[1])
            backfill_runs.finish_in(writes, self.run_id, outcome, at, self.counts, error)

        self.db.apply(plan)

    def end_failed(self, error: CallyzerApiError) -> PollResult:
        outcome = Outcome.CREDENTIALS_REJECTED if error.credentials_rejected else Outcome.FAILED
        with self.db.write() as conn:
            backfill_runs.finish(conn, self.run_id, outcome, self.now(), self.counts, str(error))
            if error.credentials_rejected:
                connections.mark_credentials_rejected(conn, self.connection, str(error), self.now())
        return self.result(outcome, str(error))

    def result(self, outcome: Outcome, error: str | None = None) -> PollResult:
        return PollResult(
            self.run_id, self.connection.name, outcome, self.counts, self.window, error
        )
