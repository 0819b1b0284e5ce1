"""Outbound webhooks in scale-out: the `tidings.deliver` task sends what is due (in-process,
no broker), and a cluster of real processes delivers every event once per webhook id, with
retries driven by beat's outbound sweep, while one of two workers is killed."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from tests.conftest import wait_for
from tests.e2e.payloads import callbell_status
from tests.outbound.receiver import running_receiver
from tests.scaleout.cluster import Cluster, post_all
from tidings import subscription_admin
from tidings.config import Settings
from tidings.domain.events import EventKind, Incoming, NormalizedEvent
from tidings.storage import connections, deliveries
from tidings.storage.db import Database
from tidings.unit_of_work import apply_events
from tidings.worker.celery.config import close_celery, create_celery
from tidings.worker.celery.names import DELIVER

MESSAGES = 150


def test_the_deliver_task_sends_what_is_due(settings: Settings, db: Database) -> None:
    settings = settings.model_copy(
        update={"broker_url": "redis://127.0.0.1:1/0", "outbound_allowed_hosts": "127.0.0.1"}
    )
    now = datetime.now(UTC)
    with running_receiver() as receiver:
        sub = subscription_admin.add(db, settings, receiver.url, now=now)
        receiver.secrets.append(sub.secret)
        with db.write() as conn:
            source = connections.add_connection(conn, "callbell", "cb", "s", {}, now)
        events = [
            Incoming(source, NormalizedEvent(f"m{i}", EventKind.DELIVERED), None, now)
            for i in range(5)
        ]
        apply_events(db, events, now)
        app = create_celery(settings)
        try:
            assert app.tasks[DELIVER]() == 5  # run in-process: no broker involved
            assert app.tasks[DELIVER]() == 0  # nothing left
        finally:
            close_celery(app)
        assert len(receiver.applied()) == 5 and receiver.unverified == []


@pytest.mark.slow
@pytest.mark.once  # always on PostgreSQL: the --db postgresql pass would repeat it
def test_a_cluster_delivers_every_event_once_per_webhook_id(cluster: Cluster, pg_url: str) -> None:
    cluster.env.update(
        TIDINGS_OUTBOUND_ALLOWED_HOSTS="127.0.0.1",
        TIDINGS_OUTBOUND_RETRY_SCHEDULE="1,1,1,1,1",
        TIDINGS_OUTBOUND_SWEEP_SECONDS="1",
    )
    cluster.run("migrate")
    cluster.run("connection", "add", "callbell", "cb", "--secret", "s3cret")
    with running_receiver() as receiver:
        secret = cluster.run("subscription", "add", receiver.url).strip().splitlines()[-1]
        receiver.secrets.append(secret)
        receiver.behaviour.fail_next = 20  # retried by beat's outbound sweep
        web = cluster.web("web-1")
        workers = [cluster.worker("worker-1", concurrency=2), cluster.worker("worker-2")]
        beat = cluster.beat(TIDINGS_SWEEP_INTERVAL_SECONDS="2")
        cluster.wait_ready(web, *workers, beat)
        url = web.url + "/hooks/callbell/cb?token=s3cret"
        bodies = [callbell_status(f"m{i}", "delivered").encode() for i in range(MESSAGES)]
        answers = []
        sender = threading.Thread(
            target=lambda: answers.extend(post_all([(url, b) for b in bodies]))
        )
        sender.start()
        wait_for(lambda: len(receiver.arrived) >= 30, 60)
        cluster.kill(workers[0])
        sender.join(60)
        assert [a.status for a in answers].count(202) == MESSAGES
        receiver.wait_for(MESSAGES, 90)
        db = Database(pg_url)

        def all_delivered() -> bool:
            with db.read() as conn:
                return deliveries.count_by_status(conn)["delivered"] == MESSAGES

        wait_for(all_delivered, 60)
        db.dispose()
        applied = receiver.applied()
        ids = sorted(d.payload["data"]["provider_message_id"] for d in applied.values())
        assert ids == sorted(f"m{i}" for i in range(MESSAGES))
        assert receiver.unverified == []
        assert len(receiver.refused) >= 20
