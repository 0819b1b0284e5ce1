"""`/metrics` of `tidings serve` as it starts by default (the worker in a child process): what
the worker counted is there, parsed with prometheus_client's own parser, and it matches the
store; the inbox gauges say how many receipts wait and how many are dead; the intake's group
commits are measured."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy import func, select

from tests.conftest import TIDINGS, free_port, serving, wait_for
from tests.e2e.payloads import callbell_status
from tidings.storage import inbox
from tidings.storage.db import Database
from tidings.storage.schema import events


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found: Iterable[Sample] = (
        sample for family in text_string_to_metric_families(text) for sample in family.samples
    )
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in found}


def test_metrics_count_what_the_worker_child_process_did(db_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "TIDINGS_DATABASE_URL": db_url, "TIDINGS_LOG_LEVEL": "WARNING"}
    subprocess.run([TIDINGS, "migrate"], env=env, check=True, capture_output=True)
    add = [TIDINGS, "connection", "add", "callbell", "cb", "--secret", "s"]
    subprocess.run(add, env=env, check=True, capture_output=True)
    port = free_port()
    db = Database(db_url)
    with (
        serving(env, port, tmp_path / "serve.log"),
        httpx.Client(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        bodies = [callbell_status(f"U{i}", "delivered") for i in range(40)]
        no_uuid = '{"event": "message_status_updated", "payload": {}}'  # dead at once
        bodies += [callbell_status("U1", "delivered"), no_uuid]
        for body in bodies:
            answer = client.post(
                "/hooks/callbell/cb?token=s",
                content=body,
                headers={"content-type": "application/json"},
            )
            assert answer.status_code == 202

        def pending() -> int:
            with db.read() as conn:
                return inbox.count_by_status(conn)["pending"]

        wait_for(lambda: pending() == 0, 20)

        def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            return _samples(client.get("/metrics").text)

        # the last batch is committed before it is counted: give the scrape a moment
        done = ("tidings_receipts_processed_total", (("outcome", "done"),))
        wait_for(lambda: scraped().get(done) == 41, 10)
        metrics = scraped()
    with db.read() as conn:
        statuses = inbox.count_by_status(conn)
        applied = conn.execute(select(func.count()).select_from(events)).scalar_one()
    db.dispose()
    assert statuses["done"] == 41 and statuses["dead"] == 1
    assert metrics[("tidings_receipts_processed_total", (("outcome", "dead"),))] == 1
    assert metrics[("tidings_events_applied_total", ())] == applied == 40
    assert metrics[("tidings_worker_batch_seconds_count", ())] >= 1
    assert metrics[("tidings_receipts", (("status", "done"),))] == 41
    assert metrics[("tidings_receipts", (("status", "dead"),))] == 1
    assert metrics[("tidings_receipts", (("status", "pending"),))] == 0
    answered = (("provider", "callbell"), ("status", "202"))
    assert metrics[("tidings_webhooks_received_total", answered)] == len(bodies)
    # one request at a time: each was made durable by a commit of its own, which was timed
    commits = metrics[("tidings_intake_commit_receipts_count", ())]
    assert commits == metrics[("tidings_intake_commit_receipts_sum", ())] == len(bodies)
    assert metrics[("tidings_intake_commit_receipts_bucket", (("le", "1.0"),))] == len(bodies)
    assert metrics[("tidings_intake_commit_seconds_count", ())] == commits
    assert metrics[("tidings_intake_commit_seconds_sum", ())] > 0
