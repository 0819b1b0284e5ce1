"""The broker is down while two web nodes take webhooks: they still answer 202 at once (the inbox
is durable and wake-ups go from a thread of their own) and log that the broker is unreachable.
Then the workers catch up. With Redis the broker itself comes back on the same port: the web
nodes notice and deliver their wake-up, and workers on it apply everything. With RabbitMQ
(which cannot be started twice here) the workers run against the machine's working broker."""

from __future__ import annotations

import random
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from sqlalchemy import func, select

from tests.conftest import wait_for
from tests.e2e.payloads import callbell_status
from tests.scaleout.cluster import Cluster, broker_kind, dead_broker_url, post_all
from tidings.storage import inbox
from tidings.storage.db import Database
from tidings.storage.recount import find_drift
from tidings.storage.schema import events, messages
from tidings.worker.celery.names import INBOX_QUEUE

MESSAGES = 150
STATUSES = ("sent", "delivered", "read")


@contextmanager
def redis_returns(url: str, directory: Path) -> Iterator[None]:
    """A Redis server of this test's own on the port of `url`, stopped afterwards."""
    server = shutil.which("redis-server")
    assert server, "redis-server is needed (scripts/ensure-services uses it too)"
    port = str(urlsplit(url).port)
    process = subprocess.Popen(
        [server, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis.from_url(url)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_for(up, 10)
        client.close()
        yield
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.slow
@pytest.mark.once  # always on PostgreSQL: the --db postgresql pass would repeat it
def test_web_nodes_accept_while_the_broker_is_down(
    cluster: Cluster, pg_url: str, broker_url: str, tmp_path: Path
) -> None:
    cluster.run("migrate")
    cluster.run(
        "connection", "add", "callbell", "cb", "--secret", "s3cret",
        "--option", "campaign_key=campaign",
    )  # fmt: skip
    kind = broker_kind(broker_url)
    down = dead_broker_url(kind)
    webs = [cluster.web(f"web-{n}", TIDINGS_BROKER_URL=down) for n in (1, 2)]
    cluster.wait_ready(*webs)

    bodies = [
        callbell_status(f"m{i}", s, campaign="outage").encode()
        for i in range(MESSAGES)
        for s in STATUSES
    ]
    random.Random(3).shuffle(bodies)
    hooks = [f"{web.url}/hooks/callbell/cb?token=s3cret" for web in webs]
    answers = post_all([(hooks[i % 2], body) for i, body in enumerate(bodies)], threads=8)
    assert [a.status for a in answers] == [202] * len(bodies)
    slowest = max(a.seconds for a in answers)
    assert slowest < 1.5, f"a webhook waited {slowest:.2f}s for the broker"

    db = Database(pg_url)

    def counts() -> dict[str, int]:
        with db.read() as conn:
            return inbox.count_by_status(conn)

    assert counts()["pending"] == len(bodies)  # durable in the inbox, nothing applied yet
    wait_for(lambda: all("broker unreachable" in web.text() for web in webs), 10)

    with redis_returns(down, tmp_path) if kind == "redis" else nullcontext():
        if kind == "redis":
            # The broker is back: each web node notices and delivers the wake-up it owes.
            wait_for(lambda: all("broker reachable again" in w.text() for w in webs), 15)
            with redis.Redis.from_url(down) as client:
                assert client.llen(INBOX_QUEUE) >= 1
            worker_broker = down
        else:
            worker_broker = broker_url
        workers = [cluster.worker(f"worker-{n}", TIDINGS_BROKER_URL=worker_broker) for n in (1, 2)]
        cluster.wait_ready(*workers)
        wait_for(lambda: counts()["pending"] == 0, 60)
        cluster.stop(*workers)
    for web in webs:  # the web nodes took no harm
        assert web.alive()

    with db.read() as conn:
        statuses = inbox.count_by_status(conn)
        event_count = conn.execute(select(func.count()).select_from(events)).scalar_one()
        states = set(conn.execute(select(messages.c.state)).scalars())
        drift = find_drift(conn)
    db.dispose()
    assert statuses["done"] == len(bodies), statuses
    assert event_count == len(bodies)  # each provider event applied once
    assert states == {"read"}
    assert drift == []
