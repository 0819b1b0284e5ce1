"""No delivery is lost when `tidings serve` is SIGKILLed between the commit of an event and
its delivery: after a restart everything is sent, each event under the webhook id it had."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from tests.conftest import TIDINGS, free_port, serving, wait_for
from tests.e2e.payloads import callbell_status
from tests.outbound.receiver import running_receiver
from tidings.storage import deliveries
from tidings.storage.db import Database

MESSAGES = 60
STATUSES = ("sent", "delivered")


@pytest.mark.slow
def test_sigkill_between_commit_and_send_then_restart_sends_everything(
    tmp_path: Path, db_url: str
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")},
        "TIDINGS_DATABASE_URL": db_url,
        "TIDINGS_OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
        "TIDINGS_OUTBOUND_POLL_SECONDS": "0.1",
        "TIDINGS_LOG_LEVEL": "WARNING",
    }

    def cli(*args: str) -> str:
        done = subprocess.run([TIDINGS, *args], env=env, capture_output=True, text=True, check=True)
        return done.stdout

    cli("migrate")
    cli("connection", "add", "callbell", "cb", "--secret", "s3cret")
    port, log = free_port(), tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}/hooks/callbell/cb?token=s3cret"
    bodies = [callbell_status(f"m{i}", s) for i in range(MESSAGES) for s in STATUSES]
    db = Database(db_url)
    with running_receiver() as receiver:
        receiver.secrets.append(cli("subscription", "add", receiver.url).strip().splitlines()[-1])
        hang = threading.Event()
        receiver.behaviour.hang = hang  # every delivery stays in flight until released

        # 1. Events committed; some deliveries in flight, the rest waiting; then SIGKILL.
        with serving(env, port, log) as server, httpx.Client(timeout=5) as client:
            for body in bodies:
                assert client.post(url, content=body).status_code == 202
            wait_for(lambda: len(receiver.arrived) >= 10, 20)
            server.send_signal(signal.SIGKILL)
            server.wait(10)
        in_flight = set(receiver.arrived)
        with db.read() as conn:
            at_kill = deliveries.count_by_status(conn)
        assert at_kill["delivered"] == 0, at_kill
        hang.set()  # the receiver answers into a dead socket: tidings never saw those answers
        receiver.behaviour.hang = None

        # 2. Restart: every event is delivered, the ones in flight again under the same id.
        with serving(env, port, log):
            receiver.wait_for(len(bodies), 30)

            def all_delivered() -> bool:
                with db.read() as conn:
                    return deliveries.count_by_status(conn)["delivered"] == len(bodies)

            wait_for(all_delivered, 30)
        applied = receiver.applied()
        assert len(applied) == len(bodies)  # one effect per event
        kinds = sorted(
            (d.payload["data"]["provider_message_id"], d.payload["type"]) for d in applied.values()
        )
        assert kinds == sorted((f"m{i}", f"message.{s}") for i in range(MESSAGES) for s in STATUSES)
        assert in_flight <= set(applied)  # what was in flight at the kill kept its webhook id
        assert receiver.duplicates() >= len(in_flight)  # ... and was sent again after restart
        assert receiver.unverified == []
    db.dispose()
