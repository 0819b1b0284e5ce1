"""Scheduled jobs in scale-out run in exactly one place: `tidings beat` sends them, one worker
runs each; `serve --no-worker` and `tidings worker` run none by themselves. Each job runs once
per interval however many web nodes and workers there are."""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from tests.conftest import wait_for
from tests.scaleout.cluster import Cluster
from tidings.scheduler.jobs import JOBS
from tidings.storage import connections, inbox
from tidings.storage.db import Database
from tidings.storage.inbox import NewReceipt
from tidings.storage.schema import receipts

INTERVALS = {
    "retry_due_receipts": 1.0,
    "purge_old_receipts": 1.5,
    "trim_landing": 1.0,
    "match_unmatched_calls": 2.0,
    "poll_callyzer": 2.0,
    "purge_old_deliveries": 1.5,
    "dispatch_campaigns": 1.0,
}
OBSERVE_SECONDS = 6.0
RUN = re.compile(r"scheduled job (\w+) ran \(task ([\w-]+)\)")
SENT = re.compile(r"Sending due task job:(\w+) ")


@pytest.mark.slow
@pytest.mark.once  # always on PostgreSQL: the --db postgresql pass would repeat it
def test_jobs_run_only_from_beat_once_per_interval(cluster: Cluster, pg_url: str) -> None:
    assert set(INTERVALS) == {job.name for job in JOBS}, "give every job a short interval"
    cluster.env.update(
        TIDINGS_JOB_INTERVALS=",".join(f"{name}={s}" for name, s in INTERVALS.items()),
        TIDINGS_RECEIPT_RETRY_SCHEDULE="0.1,0.1,0.1",
    )
    cluster.run("migrate")
    cluster.run("connection", "add", "evolution", "evo", "--secret", "s3cret")
    webs = [cluster.web("web-1"), cluster.web("web-2")]
    workers = [cluster.worker("worker-1"), cluster.worker("worker-2")]
    cluster.wait_ready(*webs, *workers)

    # A receipt that failed once and is due for its retry: only the job retry_due_receipts
    # releases it; without beat, nothing in the cluster may run that job.
    db = Database(pg_url)
    with db.write() as conn:
        connection = connections.get_connection(conn, "evo")
        [receipt_id] = inbox.insert_receipts(
            conn,
            [
                NewReceipt(
                    connection.id,
                    "evolution",
                    datetime.now(UTC),
                    "application/json",
                    {},
                    b'{"no_event": true}',
                )
            ],
        )
        conn.execute(
            update(receipts)
            .where(receipts.c.id == receipt_id)
            .values(status="failed", attempts=1, next_attempt_at=datetime.now(UTC))
        )

    def receipt() -> tuple[str, int]:
        with db.read() as conn:
            row = conn.execute(
                select(receipts.c.status, receipts.c.attempts).where(receipts.c.id == receipt_id)
            ).one()
        return row.status, row.attempts

    time.sleep(3.0)  # thirty retry intervals, three job intervals
    assert receipt() == ("failed", 1), "a job ran although no beat was running"
    for proc in (*webs, *workers):
        assert not RUN.search(proc.text()), f"{proc.name} ran a scheduled job by itself"

    # One beat: the job runs, from a worker, and the receipt goes through its retries.
    beat = cluster.beat()
    cluster.wait_ready(beat)
    started = time.monotonic()
    # Released, it goes through the worker once: a body of no known shape is dead at once.
    wait_for(lambda: receipt() == ("dead", 2), 15)
    time.sleep(max(0.0, OBSERVE_SECONDS - (time.monotonic() - started)))
    elapsed = time.monotonic() - started
    cluster.stop(beat)
    # A SIGTERM that came during a send once left beat sending for 30 s, until it was killed
    # (worker/celery/beat.py, `stop_on_signals`): every run it sent then counted here.
    stopping = time.monotonic() - started - elapsed
    assert stopping < 10.0, f"beat took {stopping:.1f} s to stop"
    assert "beat stops at SIGTERM" in beat.text(), "tidings beat runs without its stop handler"
    time.sleep(1.0)  # let the workers finish what beat sent last
    db.dispose()

    sent = Counter(SENT.findall(beat.text()))
    runs = [m for proc in workers for m in RUN.findall(proc.text())]
    task_ids = [task for _, task in runs]
    assert len(task_ids) == len(set(task_ids)), "a scheduled run was executed twice"
    ran = Counter(name for name, _ in runs)
    for name, interval in INTERVALS.items():
        # Every run beat sent ran once (the last may have been cut short by beat's stop).
        assert sent[name] - 1 <= ran[name] <= sent[name], (dict(sent), dict(ran))
        # Once at start, then once per interval.
        expected = 1 + elapsed / interval
        # Beat's own lines (timed) say when it sent what, should a run ever be off again.
        sends = [line for line in beat.text().splitlines() if f"job:{name} " in line]
        assert expected - 2 <= ran[name] <= expected + 1, (name, ran[name], elapsed, sends)
    for proc in webs:
        assert not RUN.search(proc.text()), f"{proc.name} ran a scheduled job"
