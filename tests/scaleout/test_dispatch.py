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
        wait_for(lambda: "done" in cluster.run("campaign", "status", "wide"), 60)
        status = cluster.run("campaign", "status", "wide")
        times = sorted(r.at for r in fake.requests)

    numbers = Counter(r.json()["number"] for r in fake.requests)
    assert max(numbers.values()) == 1, "a contact was sent twice"
    contacts_line = status.split("contacts:")[1].splitlines()[0]
    unknown = int(contacts_line.split(" unknown")[0].rsplit(",", 1)[1])
    assert unknown <= 1, status  # the one the killed worker had in flight, if any
    assert f"{CONTACTS - unknown} sent" in contacts_line
    # One pace for the whole cluster: never faster than the rate (a worker's death may only
    # slow it). Allow the clock's catch-up of two seconds.
    assert (len(times) - 1) / (times[-1] - times[0] + 2) * 60 <= 600 * 1.05
