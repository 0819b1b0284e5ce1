"""Two web nodes and two Celery workers on PostgreSQL take 2,000 Evolution and Callbell webhooks
(duplicates, each message's events shuffled), one worker is SIGKILLed midway: nothing
acknowledged is lost, every provider event applies once, and no counter drifts. Once over
Redis, once over RabbitMQ."""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import wait_for
from tests.e2e.payloads import callbell_status, evolution_update
from tests.scaleout.cluster import TIDINGS, Answer, Cluster, post_all
from tidings.storage import inbox
from tidings.storage.db import Database
from tidings.storage.schema import events, messages, receipts

CALLBELL_MESSAGES = 450  # 3 statuses each, all in campaign "scale" through Callbell metadata
EVOLUTION_MESSAGES = 150  # 3 statuses each, no campaign
DUPLICATES = 200
KILL_AT_DONE = 500


def webhooks(rng: random.Random) -> tuple[list[tuple[str, bytes]], dict[str, str], int]:
    """(provider, body) pairs, the final state each message must reach, and how many distinct
    provider events (message, kind) they carry."""
    per_message: list[list[tuple[str, bytes]]] = []
    final: dict[str, str] = {}
    for i in range(CALLBELL_MESSAGES):
        message_id = f"cb-{i}"
        per_message.append(
            [
                ("callbell", callbell_status(message_id, s, campaign="scale").encode())
                for s in ("sent", "delivered", "read")
            ]
        )
        final[message_id] = "read"
    for i in range(EVOLUTION_MESSAGES):
        message_id = f"EVO{i:05d}"
        if i % 3 == 0:  # failed, then delivered after all: delivered wins
            statuses, final[message_id] = ("SERVER_ACK", "ERROR", "DELIVERY_ACK"), "delivered"
        else:
            statuses, final[message_id] = ("SERVER_ACK", "DELIVERY_ACK", "READ"), "read"
        per_message.append(
            [("evolution", evolution_update(message_id, s).encode()) for s in statuses]
        )
    distinct_events = sum(len(group) for group in per_message)
    for group in per_message:
        rng.shuffle(group)  # each message's events in some order
    # Interleave the messages (each keeps its own shuffled order), then add exact duplicates.
    stream: list[tuple[str, bytes]] = []
    cursors = [0] * len(per_message)
    live = list(range(len(per_message)))
    while live:
        k = rng.randrange(len(live))
        group = live[k]
        stream.append(per_message[group][cursors[group]])
        cursors[group] += 1
        if cursors[group] == len(per_message[group]):
            live[k] = live[-1]
            live.pop()
    for _ in range(DUPLICATES):
        stream.insert(rng.randrange(len(stream) + 1), rng.choice(stream))
    return stream, final, distinct_events


@pytest.mark.slow
@pytest.mark.once  # always on PostgreSQL: the --db postgresql pass would repeat it
def test_two_web_nodes_two_workers_one_killed(cluster: Cluster, pg_url: str) -> None:
    cluster.run("migrate")
    cluster.run(
        "connection", "add", "callbell", "cb", "--secret", "s3cret",
        "--option", "campaign_key=campaign",
    )  # fmt: skip
    cluster.run("connection", "add", "evolution", "evo", "--secret", "s3cret")
    token = cluster.run("token", "create", "--name", "scaleout").strip().splitlines()[-1]
    env = {"TIDINGS_WORKER_BATCH_SIZE": "100"}
    webs = [cluster.web("web-1"), cluster.web("web-2")]
    workers = [cluster.worker("worker-1", **env), cluster.worker("worker-2", **env)]
    # The safety net of every scale-out deployment: a sweep for wake-ups the kill takes along.
    beat = cluster.beat(TIDINGS_SWEEP_INTERVAL_SECONDS="2")
    cluster.wait_ready(*webs, *workers, beat)

    stream, final, distinct_events = webhooks(random.Random(6))
    assert len(stream) == 2000
    paths = {
        "callbell": "/hooks/callbell/cb?token=s3cret",
        "evolution": "/hooks/evolution/evo?token=s3cret",
    }
    requests = [
        (webs[i % 2].url + paths[provider], body) for i, (provider, body) in enumerate(stream)
    ]
    db = Database(pg_url)

    def counts() -> dict[str, int]:
        with db.read() as conn:
            return inbox.count_by_status(conn)

    answers: list[Answer] = []

    def send() -> None:
        answers.extend(post_all(requests, threads=8))

    sender = threading.Thread(target=send)
    started = time.monotonic()
    sender.start()
    try:
        wait_for(lambda: counts()["done"] >= KILL_AT_DONE, 60)
        cluster.kill(workers[0])
        at_kill = counts()
    finally:
        sender.join(120)
    acknowledged_at = time.monotonic() - started
    wait_for(lambda: counts()["pending"] == 0, 90)
    applied_at = time.monotonic() - started

    assert [a.status for a in answers].count(202) == len(stream), (
        f"not every webhook was acknowledged: {sorted({a.status for a in answers})}"
    )
    assert at_kill["done"] < len(stream), f"the kill came after the work: {at_kill}"
    with db.read() as conn:
        stored = {r.id: bytes(r.body) for r in conn.execute(select(receipts.c.id, receipts.c.body))}
        statuses = inbox.count_by_status(conn)
        event_count = conn.execute(select(func.count()).select_from(events)).scalar_one()
        distinct = select(events.c.message_id, events.c.kind).distinct().subquery()
        distinct_count = conn.execute(select(func.count()).select_from(distinct)).scalar_one()
        states = dict(conn.execute(select(messages.c.provider_message_id, messages.c.state)).all())
    db.dispose()
    for answer in answers:  # every acknowledged webhook is stored, byte for byte
        assert answer.receipt is not None and stored[answer.receipt] == answer.body
    assert len(stored) == len(stream)
    assert statuses["done"] == len(stored), statuses
    assert event_count == distinct_count == distinct_events  # each provider event applied once
    assert states == final

    recount = subprocess.run(
        [TIDINGS, "recount"], env=cluster.env, capture_output=True, text=True, timeout=60
    )
    assert recount.returncode == 0, recount.stdout + recount.stderr
    campaign = httpx.get(
        f"{webs[1].url}/v1/campaigns/scale", headers={"authorization": f"Bearer {token}"}
    ).json()
    counted = {k: campaign["counts"][k] for k in ("total", "sent", "delivered", "read", "failed")}
    assert counted == dict.fromkeys(("total", "sent", "delivered", "read"), CALLBELL_MESSAGES) | {
        "failed": 0
    }
    print(
        f"{len(stream)} webhooks acknowledged in {acknowledged_at:.1f}s, "
        f"all applied in {applied_at:.1f}s; at the kill: {json.dumps(at_kill)}"
    )
