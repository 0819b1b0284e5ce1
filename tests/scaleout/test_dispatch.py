"""Campaign dispatch in scale-out: beat sends the dispatch job to two Celery workers; one
turn runs at a time across the cluster, the campaign keeps its rate, and each contact is
sent once (counted at a fake provider) even when one worker is killed mid-campaign."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.fakes.provider_apis import FakeEvolution
from tests.scaleout.cluster import Cluster

CONTACTS = 60


@pytest.mark.slow
@pytest.mark.once  # always on PostgreSQL: the --db postgresql pass would repeat it
def test_a_cluster_dispatches_each_contact_once_at_its_rate(
    cluster: Cluster, tmp_path: Path
) -> None:
    with FakeEvolution() as fake:
        cluster.run("migrate")
        cluster.run("connection", "add", "evolution", "evo", "--secret", "s",
                    "--option", f"api_url={fake.url}", "--option", "api_key=evo-key")  # fmt: skip
        contacts = tmp_path / "contacts.csv"
        rows = [f"c{i},+55319{80_000_000 + i},Ana" for i in range(CONTACTS)]
        contacts.write_text("contact_ref,recipient,name\n" + "\n".join(rows) + "\n")
        cluster.run("campaign", "create", "wide", "--connection", "evo", "--text",
                    "Hi {{name}}", "--rate", "600/min", "--contacts", str(contacts))  # fmt: skip
        cluster.run("campaign", "start", "wide")
        workers = [cluster.worker("worker-1", concurrency=2),
                   cluster.worker("worker-2", concurrency=2)]  # fmt: skip
        beat = cluster.beat()
        cluster.wait_ready(*workers, beat)
        wait_for(lambda: len(fake.requests) >= 15, 30)
        cluster.kill(workers[0])

        def contacts() -> dict[str, int]:
            line = cluster.run("campaign", "status", "wide").split("contacts: ")[1]
            pairs = (part.split(" ") for part in line.splitlines()[0].split(", "))
            return {status: int(n) for n, status in pairs}

        wait_for(lambda: contacts()["pending"] == 0 and contacts()["sent"] >= CONTACTS - 1, 60)
        found = contacts()
        times = sorted(r.at for r in fake.requests)

    numbers = Counter(r.json()["number"] for r in fake.requests)
    assert max(numbers.values()) == 1, "a contact was sent twice"
    # The contact the killed worker had in flight, if any, waits with its send unanswered
    # until TIDINGS_SEND_STALE_SECONDS close it as unknown (tests/sending/test_recovery.py);
    # it is never sent again.
    assert found["sending"] + found["unknown"] <= 1, found
    assert found["sent"] + found["sending"] + found["unknown"] == CONTACTS
    # One pace for the whole cluster: never faster than the rate (a worker's death may only
    # slow it). Allow the clock's catch-up of two seconds.
    assert (len(times) - 1) / (times[-1] - times[0] + 2) * 60 <= 600 * 1.05
