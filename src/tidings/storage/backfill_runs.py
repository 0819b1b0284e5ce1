"""Backfill runs: every run of a connection's backfill (today the Callyzer verification poll),
with its window, outcome and counts, listed by `GET /v1/connections/{name}/backfill-runs`.

The row of a run in progress is also its lease: at most one `running` row per connection (a
partial unique index), so two schedulers, or a schedule and `tidings backfill`, never poll one
account at once, in one process or several, on SQLite and PostgreSQL alike. The run renews the
lease as it goes; a run whose process died holds it only until `lease_until`, then the next run
records it as abandoned and takes over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from tidings.domain.errors import Conflict
from tidings.storage.db import Database
from tidings.storage.schema import backfill_runs
from tidings.storage.writes import Writes

__all__ = [
    "AlreadyRunning",
    "LeaseLost",
    "Outcome",
    "RunCounts",
    "finish",
    "finish_in",
    "latest_runs",
    "list_runs",
    "progress",
    "start",
]


class Outcome(StrEnum):
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    CREDENTIALS_REJECTED = "credentials_rejected"


class AlreadyRunning(Conflict):
    """Another run of this connection holds the lease; this one did not start."""


class LeaseLost(Conflict):
    """This run stalled past its lease and another took over: it must stop writing."""


@dataclass(frozen=True)
class RunCounts:
    """What a run did so far: employees asked about, pages and requests (retries and 429s
    included), calls fetched, and of those inserted (new), updated (a newer version) and
    skipped (already stored as they are)."""

    employees: int = 0
    pages: int = 0
    requests: int = 0
    retries: int = 0
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    skipped: int = 0


_RUNNING = backfill_runs.c.outcome == Outcome.RUNNING.value


def start(db: Database, connection_id: int, trigger: str, now: datetime, lease: timedelta) -> int:
    """Take the connection's lease and record a new running run; its id. A running run whose
    lease passed is recorded as abandoned first. Raises AlreadyRunning when a live run holds
    the lease (checked by the unique index, so two processes racing get one run)."""
    try:
        with db.write() as conn:
            conn.execute(
                update(backfill_runs)
                .where(backfill_runs.c.connection_id == connection_id, _RUNNING)
                .where(backfill_runs.c.lease_until < now)
                .values(
                    outcome=Outcome.FAILED.value,
                    finished_at=now,
                    lease_until=None,
                    error="abandoned: the process running it stopped before it finished",
                )
            )
            holder = conn.execute(
                select(backfill_runs.c.id, backfill_runs.c.started_at).where(
                    backfill_runs.c.connection_id == connection_id, _RUNNING
                )
            ).first()
            if holder is not None:
                raise AlreadyRunning(_held(holder.id, holder.started_at))
            result = conn.execute(
                backfill_runs.insert().values(
                    connection_id=connection_id,
                    trigger=trigger,
                    started_at=now,
                    lease_until=now + lease,
                    outcome=Outcome.RUNNING.value,
                    **asdict(RunCounts()),
                )
            )
    except IntegrityError:  # another process inserted its run between our check and insert
        raise AlreadyRunning(_held(None, None)) from None
    (run_id,) = result.inserted_primary_key or (None,)
    assert run_id is not None
    return int(run_id)


def _held(run_id: int | None, started_at: datetime | None) -> str:
    which = f"run {run_id}, started {started_at.isoformat()}" if run_id and started_at else "a run"
    return f"a backfill of this connection is already running ({which})"


def progress(
    db: Database,
    run_id: int,
    now: datetime,
    lease: timedelta,
    counts: RunCounts,
    window: tuple[datetime, datetime] | None = None,
) -> None:
    """Record the counts so far (and the window, once known) and renew the lease. Raises
    LeaseLost when the run is no longer the running one (it stalled and was taken over)."""
    values: dict[str, Any] = {"lease_until": now + lease, **asdict(counts)}
    if window is not None:
        values["window_from"], values["window_to"] = window
    with db.write() as conn:
        changed = conn.execute(
            update(backfill_runs).where(backfill_runs.c.id == run_id, _RUNNING).values(values)
        ).rowcount
    if not changed:
        raise LeaseLost(f"backfill run {run_id} stalled past its lease and was taken over")


def finish(
    conn: Connection,
    run_id: int,
    outcome: Outcome,
    now: datetime,
    counts: RunCounts,
    error: str | None = None,
) -> bool:
    """End the run with its outcome, in the caller's transaction (so what the outcome depends
    on, like advancing last syncs, commits with it). False when it was no longer running."""
    changed = conn.execute(
        update(backfill_runs)
        .where(backfill_runs.c.id == run_id, _RUNNING)
        .values(
            outcome=outcome.value,
            finished_at=now,
            lease_until=None,
            error=error[:4000] if error else None,
            **asdict(counts),
        )
    ).rowcount
    return bool(changed)


_FINISH = (
    update(backfill_runs)
    .where(backfill_runs.c.id == bindparam("run_id"), _RUNNING)
    .values(
        outcome=bindparam("new_outcome"),
        finished_at=bindparam("now"),
        lease_until=None,
        error=bindparam("new_error"),
        **{name: bindparam(f"new_{name}") for name in RunCounts.__dataclass_fields__},
    )
)


def finish_in(
    writes: Writes,
    run_id: int,
    outcome: Outcome,
    now: datetime,
    counts: RunCounts,
    error: str | None = None,
) -> None:
    """`finish`, as a write of a unit of work (with what the run's outcome depends on)."""
    row: dict[str, Any] = {
        "run_id": run_id,
        "new_outcome": outcome.value,
        "now": now,
        "new_error": error[:4000] if error else None,
        **{f"new_{name}": value for name, value in asdict(counts).items()},
    }
    writes.execute(_FINISH, [row])


def list_runs(
    conn: Connection, connection_id: int, before_id: int | None, limit: int
) -> list[Row[Any]]:
    """The connection's runs, newest first (walking the (connection_id, id) index)."""
    query = (
        select(backfill_runs)
        .where(backfill_runs.c.connection_id == connection_id)
        .order_by(backfill_runs.c.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(backfill_runs.c.id < before_id)
    return list(conn.execute(query).all())


def latest_runs(conn: Connection, connection_ids: Sequence[int]) -> dict[int, Row[Any]]:
    """Each connection's latest run, for the connections that have one."""
    if not connection_ids:
        return {}
    newest = (
        select(func.max(backfill_runs.c.id))
        .where(backfill_runs.c.connection_id.in_(list(connection_ids)))
        .group_by(backfill_runs.c.connection_id)
    )
    rows = conn.execute(select(backfill_runs).where(backfill_runs.c.id.in_(newest))).all()
    return {row.connection_id: row for row in rows}
