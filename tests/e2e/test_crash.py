"""Crash safety: SIGKILL `tidings serve` while it applies a large backlog and takes new webhooks,
start it again, and every acknowledged webhook is applied exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import TIDINGS, free_port, serving, wait_for
from tests.e2e.payloads import callbell_status
from tidings.storage import inbox
from tidings.storage.db import Database
from tidings.storage.recount import find_drift
from tidings.storage.schema import events, messages, receipts

MESSAGES = 600
STATUSES = ("sent", "delivered", "read")


@pytest.mark.slow
def test_sigkill_mid_batch_then_restart_applies_everything_once(
    tmp_path: Path, db_url: str
) -> None:
    env = {
        **os.environ,
        "TIDINGS_DATABASE_URL": db_url,
        "TIDINGS_WORKER_BATCH_SIZE": "500",
        "TIDINGS_LOG_LEVEL": "WARNING",
    }
    subprocess.run([TIDINGS, "migrate"], env=env, check=True, capture_output=True)
    subprocess.run(
        [
            TIDINGS,
            "connection",
            "add",
            "callbell",
            "cb",
            "--secret",
            "s3cret",
            "--option",
            "campaign_key=campaign",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    bodies = [
        callbell_status(f"m{i}", s, campaign="crash") for i in range(MESSAGES) for s in STATUSES
    ]
    random.Random(7).shuffle(bodies)
    backlog, live = bodies[:1200], bodies[1200:]
    port, log = free_port(), tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}/hooks/callbell/cb?token=s3cret"
    acknowledged: list[tuple[int, str]] = []
    unsent: list[str] = []

    local = threading.local()
    clients: list[httpx.Client] = []

    def post(body: str) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=5)
            clients.append(local.client)
        try:
            r = local.client.post(url, content=body)
        except httpx.HTTPError:
            unsent.append(body)
            return
        if r.status_code == 202:
            acknowledged.append((r.json()["receipt"], body))
        else:
            unsent.append(body)

    db = Database(db_url)

    def counts() -> dict[str, int]:
        with db.read() as conn:
            return inbox.count_by_status(conn)

    # 1. Intake only: a backlog of 1,200 receipts waits in the inbox.
    with serving(env, port, log, "--no-worker"), ThreadPoolExecutor(8) as pool:
        list(pool.map(post, backlog))
    assert counts()["pending"] == len(backlog)

    # 2. The worker starts on the backlog in batches of 500 while new webhooks arrive; kill it
    #    after the first batch committed and before the backlog is through.
    with serving(env, port, log) as server, ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(post, b) for b in live]
        wait_for(lambda: counts()["done"] >= 500, 30)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        for f in futures:
            f.result()
    at_kill = counts()
    assert at_kill["pending"] > 0, f"the kill should leave work behind: {at_kill}"

    # 3. Restart: the rest is applied, and the webhooks refused during the crash are sent again.
    with serving(env, port, log):
        retry, unsent[:] = list(unsent), []
        for body in retry:
            post(body)
        assert unsent == []
        wait_for(lambda: counts()["pending"] == 0, 60)

    with db.read() as conn:
        stored = {
            r.id: bytes(r.body).decode()
            for r in conn.execute(select(receipts.c.id, receipts.c.body))
        }
        final = inbox.count_by_status(conn)
        event_count = conn.execute(select(func.count()).select_from(events)).scalar_one()
        distinct = select(events.c.message_id, events.c.kind).distinct().subquery()
        distinct_count = conn.execute(select(func.count()).select_from(distinct)).scalar_one()
        states = dict(conn.execute(select(messages.c.provider_message_id, messages.c.state)).all())
        drift = find_drift(conn)
    db.dispose()
    for client in clients:
        client.close()
    assert len(acknowledged) == len(bodies)
    # A webhook committed just before the kill but never answered was sent again: two receipts
    # for one body are allowed (the provider would retry too); its events still apply once.
    assert len(stored) >= len(bodies)
    for receipt_id, body in acknowledged:
        assert stored[receipt_id] == body  # every acknowledged webhook, byte for byte
    assert final["done"] == len(stored)
    assert event_count == distinct_count == len(bodies)  # each provider event applied once
    assert len(states) == MESSAGES and set(states.values()) == {"read"}
    assert drift == []
