"""Crash safety of dispatch: SIGKILL `tidings serve` (as it starts by default) while it sends
a campaign, start it again, and no contact is ever sent twice; every contact ends sent, or
(at most the one being sent at the kill) with an unknown outcome that is never resent."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import TIDINGS, free_port, serving, wait_for
from tests.fakes.provider_apis import FakeEvolution

CONTACTS = 120


def _run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([TIDINGS, *args], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_sigkill_mid_dispatch_then_restart_sends_no_contact_twice(
    tmp_path: Path, db_url: str
) -> None:
    env = {**os.environ, "TIDINGS_DATABASE_URL": db_url, "TIDINGS_LOG_LEVEL": "WARNING"}
    with FakeEvolution() as fake:
        _run(env, "migrate")
        _run(env, "connection", "add", "evolution", "evo", "--secret", "s3cret",
             "--option", f"api_url={fake.url}", "--option", "api_key=evo-key")  # fmt: skip
        contacts = tmp_path / "contacts.csv"
        rows = [f"c{i},+55319{80_000_000 + i},Ana {i}" for i in range(CONTACTS)]
        contacts.write_text("contact_ref,recipient,name\n" + "\n".join(rows) + "\n")
        _run(env, "campaign", "create", "crash", "--connection", "evo", "--text",
             "Hi {{name}}", "--rate", "1200/min", "--contacts", str(contacts))  # fmt: skip
        _run(env, "campaign", "start", "crash")
        port, log = free_port(), tmp_path / "serve.log"

        with serving(env, port, log) as server:
            wait_for(lambda: len(fake.requests) >= 30, 30)
            server.send_signal(signal.SIGKILL)
            server.wait(10)
        at_kill = len(fake.requests)
        assert at_kill < CONTACTS, "the kill should leave contacts to send"

        with serving(env, port, log):

            def finished() -> bool:
                return "done" in _run(env, "campaign", "status", "crash")

            wait_for(finished, 60)
        status = _run(env, "campaign", "status", "crash")

    numbers = Counter(r.json()["number"] for r in fake.requests)
    assert max(numbers.values()) == 1, "a contact was sent twice"
    # The contact being sent at the kill (if one was) has no recorded answer: its outcome is
    # unknown, and it is not sent again. Every other contact was sent once and says so.
    contacts_line = status.split("contacts:")[1].splitlines()[0]
    unknown = int(contacts_line.split(" unknown")[0].rsplit(",", 1)[1])
    assert unknown <= 1, status
    assert f"{CONTACTS - unknown} sent" in contacts_line
    assert len(numbers) in (CONTACTS - unknown, CONTACTS)
    assert "0 pending" in contacts_line and "0 sending" in contacts_line
    assert f"{CONTACTS - unknown} sent" in status.split("messages:")[1]
