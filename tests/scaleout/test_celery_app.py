"""The Celery app's parts, in-process and quick: the beat schedule comes from `JOBS`, the tasks
apply the inbox without needing a message, web nodes' wake-ups reach a real broker or fail
quietly, and the `worker`/`beat` commands explain what they need."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis
from celery.app.utils import find_app
from celery.beat import Service
from click.testing import CliRunner
from pydantic import ValidationError

from tests.conftest import serve_in_thread, wait_for
from tests.e2e.payloads import callbell_status
from tests.scaleout.cluster import dead_broker_url, redis_database
from tidings.cli import main
from tidings.config import Settings
from tidings.scheduler.jobs import JOBS, scheduled_jobs
from tidings.storage import connections, inbox
from tidings.storage.db import Database
from tidings.storage.inbox import NewReceipt
from tidings.worker.celery.beat import StartNowScheduler, beat_schedule, stop_on_signals
from tidings.worker.celery.config import (
    BrokerNotConfigured,
    broker_url,
    close_celery,
    create_celery,
)
from tidings.worker.celery.names import (
    APPLY_PENDING,
    DELIVER,
    INBOX_QUEUE,
    JOBS_QUEUE,
    OUTBOUND_QUEUE,
    RUN_JOB,
    SWEEP,
)
from tidings.worker.celery.waker import BrokerWaker

COMMAND_LINE = "tidings.worker.celery.command_line"


@pytest.fixture
def redis_url() -> Iterator[str]:
    yield from redis_database()


def test_beat_schedule_is_built_from_jobs_plus_the_sweep() -> None:
    settings = Settings(broker_url="redis://127.0.0.1:6379/0", sweep_interval_seconds=7)
    schedule = beat_schedule(settings)
    assert set(schedule) == {f"job:{job.name}" for job in JOBS} | {"sweep", "outbound"}
    for job in JOBS:
        entry = schedule[f"job:{job.name}"]
        assert entry["task"] == RUN_JOB and entry["args"] == (job.name,)
        assert entry["schedule"] == timedelta(seconds=job.interval_seconds)
        assert entry["options"]["queue"] == JOBS_QUEUE
    assert schedule["sweep"]["task"] == SWEEP
    assert schedule["sweep"]["schedule"] == timedelta(seconds=7)
    assert schedule["sweep"]["options"]["queue"] == INBOX_QUEUE
    assert schedule["outbound"]["task"] == DELIVER
    assert schedule["outbound"]["options"]["queue"] == OUTBOUND_QUEUE


def test_beat_stops_at_a_signal_even_when_what_it_was_doing_swallows_the_exit(
    redis_url: str,
) -> None:
    """SIGTERM during a send: Celery's own handler closed the broker connection under it, the
    send failed, the failure swallowed the exit, and beat went on sending until it was killed
    (seen in tests/scaleout/test_schedule.py, beat killed 30 s later). Beat now ends at its
    next turn whatever became of the exit."""
    app = create_celery(Settings(broker_url=redis_url))
    service = Service(app, scheduler_cls=StartNowScheduler)  # tidings' own: it writes no file
    ticks = 0

    def tick() -> float:
        nonlocal ticks
        ticks += 1
        assert ticks < 50, "beat went on after SIGTERM"
        if ticks == 1:
            # The exit is swallowed, as the interrupted send did with it.
            with contextlib.suppress(BaseException):
                os.kill(os.getpid(), signal.SIGTERM)  # handled at once, in this thread
                time.sleep(1.0)
        return 0.01

    kept = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        stop_on_signals(service)
        service.scheduler.tick = tick
        service.start()
    finally:
        for number, handler in kept.items():
            signal.signal(number, handler)
    assert ticks == 1


def test_dispatch_runs_that_waited_are_dropped_so_they_never_hold_up_the_other_jobs() -> None:
    """Beat sends a dispatch turn ten times a second and a turn lasts up to two seconds: the
    runs that wait behind it must expire within a second, not queue for a minute in front of
    retry_due_receipts and the others."""
    schedule = beat_schedule(Settings(broker_url="redis://127.0.0.1:6379/0"))
    assert schedule["job:dispatch_campaigns"]["options"]["expires"] <= 1.0
    assert schedule["job:retry_due_receipts"]["options"]["expires"] >= 60.0


def test_job_intervals_override_both_runners() -> None:
    first = JOBS[0].name
    settings = Settings(job_intervals=f"{first}=0.5")
    assert {j.name: j.interval_seconds for j in scheduled_jobs(settings)}[first] == 0.5
    schedule = beat_schedule(settings.model_copy(update={"broker_url": "redis://x"}))
    assert schedule[f"job:{first}"]["schedule"] == timedelta(seconds=0.5)
    with pytest.raises(ValueError, match="unknown jobs nightly"):
        scheduled_jobs(Settings(job_intervals="nightly=5"))
    for bad in ("soon", f"{first}=0", f"{first}=-1", f"{first}=x", "=3"):
        with pytest.raises(ValueError, match="NAME=SECONDS"):
            Settings(job_intervals=bad)


def test_broker_url_is_required_and_checked() -> None:
    with pytest.raises(BrokerNotConfigured, match="TIDINGS_BROKER_URL is not set"):
        broker_url(Settings())
    with pytest.raises(ValueError, match=r"has scheme 'kafka'.*supports redis://"):
        Settings(broker_url="kafka://localhost:9092")  # refused by every command, doctor too
    with pytest.raises(ValueError, match="has no scheme"):
        Settings(broker_url="redis-host")
    with pytest.raises(ValidationError) as refused:
        Settings(broker_url="http://:hunter2@broker.internal:6379/0")
    assert "hunter2" not in refused.value.errors()[0]["msg"]  # what the CLI prints
    assert broker_url(Settings(broker_url="amqp://guest:guest@localhost:5672//"))
    assert Settings(broker_url="  ").embedded


def _pending_receipts(db: Database, count: int) -> None:
    now = datetime.now(UTC)
    with db.write() as conn:
        connection = connections.add_connection(
            conn, "callbell", "cb", "s3cret", {"campaign_key": "campaign"}, now
        )
        inbox.insert_receipts(
            conn,
            [
                NewReceipt(
                    connection.id,
                    "callbell",
                    now,
                    "application/json",
                    {},
                    callbell_status(f"m{i}", "delivered", campaign="c").encode(),
                )
                for i in range(count)
            ],
        )


def test_sweep_applies_pending_receipts_without_any_wake_up(
    settings: Settings, db: Database
) -> None:
    _pending_receipts(db, 7)
    app = create_celery(settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"}))
    try:
        assert app.tasks[SWEEP]() == 7  # run in-process: no broker involved
        assert app.tasks[APPLY_PENDING]() == 0  # nothing left
    finally:
        close_celery(app)
    with db.read() as conn:
        assert inbox.count_by_status(conn)["done"] == 7


def test_run_job_runs_a_job_of_jobs_by_name(settings: Settings, db: Database) -> None:
    app = create_celery(settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"}))
    try:
        run_job = app.tasks[RUN_JOB]
        assert run_job("purge_old_receipts") == 0
        assert run_job("no_such_job") == 0  # an unknown name is logged, never raised
    finally:
        close_celery(app)


def test_wake_ups_reach_the_broker_coalesced(redis_url: str) -> None:
    waker = BrokerWaker(Settings(broker_url=redis_url))
    waker.start()
    try:
        for _ in range(200):
            waker.wake()  # a burst of commits
        wait_for(lambda: waker.sent >= 1, 10)
        time.sleep(0.3)
    finally:
        waker.stop()
    with redis.Redis.from_url(redis_url) as client:
        queued = client.llen(INBOX_QUEUE)
    assert 1 <= queued == waker.sent <= 10
    assert waker.failed == 0


def test_web_node_answers_at_once_while_the_broker_is_down(
    settings: Settings, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    with db.write() as conn:
        connections.add_connection(conn, "callbell", "cb", "s3cret", {}, datetime.now(UTC))
    down = settings.model_copy(update={"broker_url": dead_broker_url("redis")})
    with caplog.at_level(logging.WARNING, logger="tidings.broker"):
        for base_url, _server in serve_in_thread(down, run_worker=False):
            started = time.monotonic()
            for i in range(20):
                response = httpx.post(
                    f"{base_url}/hooks/callbell/cb?token=s3cret",
                    content=callbell_status(f"m{i}", "sent"),
                )
                assert response.status_code == 202
            assert time.monotonic() - started < 5
            wait_for(lambda: "broker unreachable" in caplog.text, 10)
    with db.read() as conn:
        assert inbox.count_by_status(conn)["pending"] == 20


def test_worker_and_beat_explain_what_they_need(
    monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    cli = CliRunner()
    monkeypatch.setenv("TIDINGS_DATABASE_URL", db_url)
    monkeypatch.delenv("TIDINGS_BROKER_URL", raising=False)
    for command in ("worker", "beat"):
        result = cli.invoke(main, [command])
        assert result.exit_code == 1 and "TIDINGS_BROKER_URL is not set" in result.output
    monkeypatch.setenv("TIDINGS_BROKER_URL", "kafka://localhost:9092")
    assert "amqp://" in cli.invoke(main, ["beat"]).output
    monkeypatch.setenv("TIDINGS_BROKER_URL", "redis://127.0.0.1:1/0")
    unmigrated = cli.invoke(main, ["worker"])
    assert unmigrated.exit_code == 1 and "run tidings migrate" in unmigrated.output
    bad_queue = cli.invoke(main, ["worker", "--queues", "celery"])
    assert bad_queue.exit_code == 2 and "tidings.inbox" in bad_queue.output
    monkeypatch.setenv("TIDINGS_JOB_INTERVALS", "nightly=5")
    unknown_job = cli.invoke(main, ["beat"])
    assert unknown_job.exit_code == 1 and "unknown jobs nightly" in unknown_job.output
    serve = cli.invoke(main, ["serve", "--no-worker"])
    assert serve.exit_code == 1 and "unknown jobs nightly" in serve.output


def test_celerys_command_line_finds_an_app_built_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    """What `celery -A tidings.worker.celery.command_line inspect ping` loads."""
    monkeypatch.setenv("TIDINGS_DATABASE_URL", db_url)
    monkeypatch.setenv("TIDINGS_BROKER_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("TIDINGS_SWEEP_INTERVAL_SECONDS", "7")
    sys.modules.pop(COMMAND_LINE, None)  # import it anew, in this environment
    app = find_app(COMMAND_LINE)
    try:
        assert {APPLY_PENDING, SWEEP, RUN_JOB} <= set(app.tasks)
        assert app.conf.broker_url == "redis://127.0.0.1:1/0"
        assert app.conf.beat_schedule["sweep"]["schedule"] == timedelta(seconds=7)
    finally:
        close_celery(app)
        sys.modules.pop(COMMAND_LINE, None)


def test_tidings_never_imports_the_command_line_app() -> None:
    """Importing the command line, the app or any other worker module builds no Celery app
    from the environment."""
    script = f"""
import importlib, pkgutil, sys
import tidings.app, tidings.cli, tidings.worker
for module in pkgutil.walk_packages(tidings.worker.__path__, "tidings.worker."):
    if module.name != {COMMAND_LINE!r}:
        importlib.import_module(module.name)
sys.exit({COMMAND_LINE!r} in sys.modules)
"""
    env = {"PATH": "/usr/bin:/bin", "TIDINGS_BROKER_URL": "kafka://nowhere"}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
