"""The one list of scheduled jobs and their intervals. Later capabilities add theirs here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from tidings.config import Settings
from tidings.logging import get_logger
from tidings.storage import calls, deliveries, inbox, landing
from tidings.storage.db import Database, Reader
from tidings.storage.schema import receipts
from tidings.storage.writes import Writes
from tidings.worker.wake import Wakeable

__all__ = [
    "JOBS",
    "OWN_THREAD",
    "Job",
    "JobContext",
    "dispatch_campaigns",
    "match_unmatched_calls",
    "poll_callyzer",
    "purge_old_deliveries",
    "purge_old_receipts",
    "retry_due_receipts",
    "scheduled_jobs",
    "trim_landing",
]

log = get_logger("jobs")


@dataclass(frozen=True)
class JobContext:
    db: Database
    settings: Settings
    worker: Wakeable


@dataclass(frozen=True)
class Job:
    name: str
    interval_seconds: float
    run: Callable[[JobContext], int]
    # Scale-out: a run beat sent that waited longer than this is dropped (None: the default,
    # at least a minute). A job sent many times a second sets it short, so that its runs
    # never queue up in front of the other jobs.
    expires_seconds: float | None = None


def retry_due_receipts(ctx: JobContext) -> int:
    """Failed receipts whose backoff has passed go back to pending, and the worker is woken."""
    with ctx.db.write() as conn:
        released = inbox.release_due_retries(conn, datetime.now(UTC))
    if released:
        log.info("%d failed receipts are due for another attempt", released)
        ctx.worker.wake()
    return released


PURGE_BATCH = 1000


def purge_old_receipts(ctx: JobContext) -> int:
    """Delete finished raw receipts past the retention period, then make their space usable
    again (docs/architecture.md, "Maintenance and disk"). Each batch is found from a read
    snapshot by the received_at index and deleted in a write of its own, so SQLite's write
    lock, which the intake needs for every group commit, is held for milliseconds at a time."""
    cutoff = datetime.now(UTC) - timedelta(days=ctx.settings.retention_days)
    total = 0
    after: datetime | None = None
    while True:
        with ctx.db.read() as conn:
            found = inbox.purgeable(conn, cutoff, after, PURGE_BATCH)
        if not found:
            break
        with ctx.db.write() as conn:
            total += inbox.delete_finished(conn, [row.id for row in found])
        after = found[-1].received_at
        if len(found) < PURGE_BATCH:
            break
    if total:
        pages = ctx.db.reclaim_space(receipts)
        log.info(
            "purged %d receipts older than %d days (%d free pages returned to the disk)",
            total,
            ctx.settings.retention_days,
            pages,
        )
    return total


def poll_callyzer(ctx: JobContext) -> int:
    """The verification poll of every Callyzer connection with an API configured, one after
    the other (docs/architecture.md, "The verification poll"); how many runs ended ok. A
    connection whose key was refused waits for a new key; one with a run already going (the
    other runner, or `tidings backfill`) is left to it."""
    from tidings.backfill import callyzer_poll  # only what runs the poll loads its client
    from tidings.storage import connections
    from tidings.storage.backfill_runs import AlreadyRunning, Outcome

    with ctx.db.read() as conn:
        found = [c for c in connections.active_connections(conn) if c.provider == "callyzer"]
    ok = 0
    for connection in found:
        if not connection.options.get("api_url") or not connection.options.get("api_key"):
            continue  # webhooks only: nothing to poll
        if connection.credentials_rejected:
            log.info("callyzer poll of %s waits for a new api_key", connection.name)
            continue
        try:
            result = callyzer_poll.poll(
                ctx.db, ctx.settings, connection.name, trigger="schedule", wake=ctx.worker.wake
            )
        except AlreadyRunning as error:
            log.info("callyzer poll of %s skipped: %s", connection.name, error)
            continue
        except Exception:  # one connection's failure must not stop the others' polls
            log.exception("callyzer poll of %s failed", connection.name)
            continue
        counts = result.counts
        if result.outcome is Outcome.OK:
            ok += 1
            log.info(
                "callyzer poll of %s: fetched %d, inserted %d, updated %d, skipped %d",
                connection.name,
                counts.fetched,
                counts.inserted,
                counts.updated,
                counts.skipped,
            )
        else:
            log.warning(
                "callyzer poll of %s %s (run %d): %s",
                connection.name,
                result.outcome.value,
                result.run_id,
                result.error,
            )
    return ok


def match_unmatched_calls(ctx: JobContext) -> int:
    """One more matching attempt for every call still waiting for its lead, until it has had
    `call_match_max_attempts` in all (its arrival was the first); then it waits for a
    person, or for a lead with its number (which attaches it at once). A page of calls per
    unit of work, so SQLite's write lock is held briefly. Returns the calls matched."""
    now = datetime.now(UTC)
    limit = ctx.settings.call_match_max_attempts
    after: int | None = None
    attempted = matched = 0
    while True:

        def plan(reader: Reader, writes: Writes, after: int | None = after) -> calls.Retried:
            return calls.retry_waiting(reader, writes, limit, after, now)

        page = ctx.db.apply(plan)
        attempted += page.attempted
        matched += page.matched
        if page.last_id is None:
            break
        after = page.last_id
    if attempted:
        log.info("matched %d of %d waiting calls to their leads", matched, attempted)
    return matched


def purge_old_deliveries(ctx: JobContext) -> int:
    """Delete outbound events past the retention period whose deliveries are all finished
    (delivered or dead), with their deliveries and attempts, in short writes."""
    cutoff = datetime.now(UTC) - timedelta(days=ctx.settings.retention_days)
    total = 0
    while True:
        purged = deliveries.purge_finished(ctx.db, cutoff, PURGE_BATCH)
        total += purged
        if purged < PURGE_BATCH:
            break
    if total:
        log.info("purged %d outbound events older than %d days", total, ctx.settings.retention_days)
    return total


# When this process started: in embedded mode, a send recorded before it and never answered
# was interrupted by the previous process's end.
_STARTED_AT = datetime.now(UTC)


_DURABLE: dict[str, Database] = {}


def _durable(ctx: JobContext) -> Database:
    """The job's store with every commit synced: a contact's claim must survive a power cut
    before its provider is called, or it could be sent twice. The embedded worker's own
    store skips those syncs (decision 0006), so dispatch gets one of its own."""
    if ctx.db.durable_commits:
        return ctx.db
    url = ctx.settings.database_url
    if url not in _DURABLE:
        _DURABLE[url] = Database(url, ctx.settings.store_timeout_seconds, pool_size=2)
    return _DURABLE[url]


def trim_landing(ctx: JobContext) -> int:
    """Delete the landed receipts the worker moved into the inbox, once a synced commit holds
    how far it got (`storage.landing`): the landing file stays a few seconds of webhooks."""
    return landing.trim(_durable(ctx))


def dispatch_campaigns(ctx: JobContext) -> int:
    """One turn of campaign dispatch (docs/architecture.md, "Sending"): first close the sends
    an earlier process left unanswered (outcome unknown, never resent), then send what is
    due in the next seconds for every running campaign. Returns the messages sent."""
    from tidings import campaign_dispatch  # only what dispatches loads the send clients

    report = campaign_dispatch.dispatch_turn(_durable(ctx), ctx.settings, started_at=_STARTED_AT)
    return report.sent


JOBS: tuple[Job, ...] = (
    Job("retry_due_receipts", 5.0, retry_due_receipts),
    Job("purge_old_receipts", 3600.0, purge_old_receipts),
    Job("trim_landing", 5.0, trim_landing),
    Job("match_unmatched_calls", 900.0, match_unmatched_calls),
    Job("poll_callyzer", 3600.0, poll_callyzer),
    Job("purge_old_deliveries", 3600.0, purge_old_deliveries),
    # A turn sends what is due for up to two seconds (a stopping serve waits for it) and
    # returns; the next starts right after (an idle turn is one small read, plus the turn lock on
    # PostgreSQL).
    Job("dispatch_campaigns", 0.1, dispatch_campaigns, expires_seconds=1.0),
)

# Jobs the embedded scheduler runs on a thread of their own, so that a long job (an hour's
# Callyzer poll) never holds up a campaign's pace.
OWN_THREAD = frozenset({"dispatch_campaigns"})


def scheduled_jobs(settings: Settings, jobs: tuple[Job, ...] = JOBS) -> tuple[Job, ...]:
    """The jobs with the intervals this deployment runs them at: `JOBS`, with the intervals that
    `TIDINGS_JOB_INTERVALS` overrides. Both runners (embedded scheduler, `tidings beat`) use it.

    Raises:
        ValueError: the override names a job that does not exist.
    """
    overrides = settings.job_interval_overrides
    unknown = sorted(set(overrides) - {job.name for job in jobs})
    if unknown:
        known = ", ".join(job.name for job in jobs)
        raise ValueError(
            f"TIDINGS_JOB_INTERVALS names unknown jobs {', '.join(unknown)} (known: {known})"
        )
    return tuple(
        replace(job, interval_seconds=overrides.get(job.name, job.interval_seconds)) for job in jobs
    )
