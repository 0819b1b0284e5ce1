"""Campaign dispatch end to end: a running app (its embedded scheduler runs the dispatch
job) sends a campaign's contacts through a fake provider at the configured rate, each once,
and the provider's webhooks that follow keep the campaign's counters exact."""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import RunningApp, free_port, wait_for
from tests.e2e.payloads import evolution_update
from tests.fakes.provider_apis import Answer, FakeEvolution
from tidings.campaign_dispatch import BATCH
from tidings.domain.events import EventKind, Incoming, NormalizedEvent
from tidings.storage import connections
from tidings.storage.schema import sends
from tidings.unit_of_work import apply_events


@pytest.fixture
def fake() -> Iterator[FakeEvolution]:
    with FakeEvolution() as made:
        assert isinstance(made, FakeEvolution)
        yield made


@pytest.fixture
def app(running_app: RunningApp, fake: FakeEvolution) -> RunningApp:
    running_app.add_connection("evolution", "evo", api_url=fake.url, api_key=fake.api_key)
    return running_app


def contacts(n: int) -> list[dict[str, str]]:
    return [
        {"contact_ref": f"c{i}", "recipient": f"+5531{98_000_0000 + i}", "name": f"Ana {i}",
         "var1": f"code-{i}"}
        for i in range(n)
    ]  # fmt: skip


def create(app: RunningApp, key: str, n: int, **extra: Any) -> Any:
    body = {"key": key, "connection": "evo", "text": "Hi {{name}}, your code is {{var1}}",
            "contacts": contacts(n), **extra}  # fmt: skip
    made = app.api("POST", "/v1/campaigns", json=body)
    assert made.status_code == 201, made.text
    return made.json()


def dispatch(app: RunningApp, key: str) -> dict[str, Any]:
    found: dict[str, Any] = app.api("GET", f"/v1/campaigns/{key}").json()["dispatch"]
    return found


def test_a_campaign_at_an_unlimited_rate_sends_every_contact_once(
    app: RunningApp, fake: FakeEvolution
) -> None:
    made = create(app, "spring", 200)
    assert made["dispatch"]["state"] == "draft"
    assert made["dispatch"]["contacts"]["pending"] == 200
    started = app.api("POST", "/v1/campaigns/spring/start")
    assert started.status_code == 200 and started.json()["dispatch"]["state"] == "running"
    wait_for(lambda: dispatch(app, "spring")["state"] == "done", 60)

    numbers = [r.json()["number"] for r in fake.requests]
    assert len(numbers) == 200 and len(set(numbers)) == 200
    texts = {r.json()["number"]: r.json()["text"] for r in fake.requests}
    assert texts["5531980000007"] == "Hi Ana 7, your code is code-7"
    state = dispatch(app, "spring")
    assert state["contacts"] == {"pending": 0, "sending": 0, "sent": 200, "failed": 0,
                                 "unknown": 0}  # fmt: skip
    campaign = app.api("GET", "/v1/campaigns/spring").json()
    assert (campaign["counts"]["total"], campaign["counts"]["sent"]) == (200, 200)

    # The provider's webhooks come back: the campaign's counters follow, exactly.
    listed = app.api("GET", "/v1/messages", params={"campaign": "spring", "limit": 1000})
    ids = [m["provider_message_id"] for m in listed.json()["items"]]
    assert len(ids) == 200
    for pmid in ids[:150]:
        assert (
            app.hook("evolution", "evo", evolution_update(pmid, "DELIVERY_ACK")).status_code == 202
        )
    for pmid in ids[:50]:
        app.hook("evolution", "evo", evolution_update(pmid, "READ"))
    app.wait_idle()
    counts = app.api("GET", "/v1/campaigns/spring").json()["counts"]
    assert (counts["sent"], counts["delivered"], counts["read"]) == (200, 150, 50)
    app.assert_no_drift()


@pytest.mark.slow
def test_a_rate_of_600_a_minute_is_kept_within_five_percent(
    app: RunningApp, fake: FakeEvolution
) -> None:
    create(app, "paced", 200, rate_per_minute=600)
    app.api("POST", "/v1/campaigns/paced/start")
    wait_for(lambda: dispatch(app, "paced")["state"] == "done", 60)
    times = sorted(r.at for r in fake.requests)
    assert len(times) == 200
    achieved = (len(times) - 1) / (times[-1] - times[0]) * 60
    assert abs(achieved / 600 - 1) <= 0.05, achieved


def test_pause_resume_and_cancel(app: RunningApp, fake: FakeEvolution) -> None:
    create(app, "slow", 30, rate_per_minute=120)  # one every half second
    assert app.api("POST", "/v1/campaigns/slow/start").status_code == 200
    wait_for(lambda: len(fake.requests) >= 2, 10)
    paused = app.api("POST", "/v1/campaigns/slow/pause").json()["dispatch"]
    assert paused["state"] == "paused"
    time.sleep(1.5)  # a turn in flight may finish its contact
    count = len(fake.requests)
    time.sleep(1.5)
    assert len(fake.requests) == count, "a paused campaign sent"
    again = app.api("POST", "/v1/campaigns/slow/pause")
    assert again.status_code == 422 and "paused" in again.json()["error"]["message"]
    assert app.api("POST", "/v1/campaigns/slow/resume").json()["dispatch"]["state"] == "running"
    wait_for(lambda: len(fake.requests) > count, 10)
    cancelled = app.api("POST", "/v1/campaigns/slow/cancel").json()["dispatch"]
    assert cancelled["state"] == "cancelled"
    time.sleep(1.5)
    final = len(fake.requests)
    time.sleep(1.5)
    assert len(fake.requests) == final < 30
    assert app.api("POST", "/v1/campaigns/slow/resume").status_code == 422


def test_contacts_from_csv_report_each_bad_row_and_refuse_duplicates(app: RunningApp) -> None:
    made = app.api("POST", "/v1/campaigns", json={"key": "csv", "connection": "evo",
                                                   "text": "Hi {{name}}"})  # fmt: skip
    assert made.status_code == 201
    csv = (
        "contact_ref,recipient,name,var1\n"
        "a1,+5531980000001,Ana,x\n"
        "a2,not a number,Bea,y\n"
        "a1,+5531980000003,Caio,z\n"
        "a4,+5531980000004,,w\n"
        "a5,+5531980000005,Duda,v,extra\n"
    )
    answer = app.api("POST", "/v1/campaigns/csv/contacts", content=csv,
                     headers={"content-type": "text/csv"})  # fmt: skip
    assert answer.status_code == 207
    report = answer.json()
    assert (report["added"], report["errors"]) == (1, 4)
    by_row = {r["row"]: r for r in report["results"]}
    assert by_row[1]["status"] == "added"
    assert "recipient" in by_row[2]["error"]
    assert "already in this campaign" in by_row[3]["error"]
    assert "{{name}}" in by_row[4]["error"]
    assert "more values" in by_row[5]["error"]
    again = app.api("POST", "/v1/campaigns/csv/contacts", content="a1,+5531980000001\n",
                    headers={"content-type": "text/csv"})  # fmt: skip
    assert again.status_code == 422 and "contact_ref" in again.json()["error"]["message"]
    pending = app.api("GET", "/v1/campaigns/csv/contacts?status=pending").json()["items"]
    assert [c["contact_ref"] for c in pending] == ["a1"]
    assert app.api("GET", "/v1/campaigns/csv/contacts?status=sent").json()["items"] == []
    misspelled = app.api("GET", "/v1/campaigns/csv/contacts?status=pendng")
    assert misspelled.status_code == 422  # not an empty list that looks like "none pending"
    assert "pending" in misspelled.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"key": "k", "connection": "evo"}, 422, "text or a template"),
        ({"key": "k", "connection": "nope", "text": "x"}, 404, "nope"),
        ({"key": "k", "connection": "evo", "text": "x", "rate_per_minute": 0}, 422,
         "rate_per_minute"),
        ({"key": "k", "connection": "evo", "text": "x", "start_at": "2026-12-01T10:00:00"}, 422,
         "start_at"),
    ],
)  # fmt: skip
def test_a_campaign_that_cannot_be_sent_is_refused_clearly(
    app: RunningApp, body: dict[str, Any], status: int, words: str
) -> None:
    answer = app.api("POST", "/v1/campaigns", json=body)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]["message"]


def test_a_key_already_tracked_and_a_start_without_contacts_are_refused(app: RunningApp) -> None:
    app.api("POST", "/v1/messages", json={"connection": "evo", "provider_message_id": "m1",
                                          "campaign": "tracked"})  # fmt: skip
    taken = app.api("POST", "/v1/campaigns", json={"key": "tracked", "connection": "evo",
                                                    "text": "x"})  # fmt: skip
    assert taken.status_code == 409
    app.api("POST", "/v1/campaigns", json={"key": "empty", "connection": "evo", "text": "x"})
    empty = app.api("POST", "/v1/campaigns/empty/start")
    assert empty.status_code == 422 and "no contacts" in empty.json()["error"]["message"]
    assert app.api("POST", "/v1/campaigns/none/start").status_code == 404
    assert app.api("GET", "/v1/campaigns/tracked").json()["dispatch"] is None


def test_a_rate_limited_provider_delays_the_campaign_and_fails_no_contact(
    app: RunningApp, fake: FakeEvolution
) -> None:
    # Four 429s in a row: the client's own retries (Retry-After 1 s) give up after three,
    # so the campaign waits and sends the contact later.
    for _ in range(4):
        fake.rate_limit("1")
    create(app, "limited", 3)
    app.api("POST", "/v1/campaigns/limited/start")
    wait_for(lambda: dispatch(app, "limited")["state"] == "done", 30)
    state = dispatch(app, "limited")
    assert state["contacts"]["sent"] == 3 and state["contacts"]["failed"] == 0
    numbers = [r.json()["number"] for r in fake.requests]
    assert len(numbers) == 7 and len(set(numbers)) == 3  # 4 turned away, 3 taken
    counts = app.api("GET", "/v1/campaigns/limited").json()["counts"]
    assert (counts["total"], counts["sent"], counts["failed"]) == (3, 3, 0)


def test_a_campaign_whose_provider_is_unreachable_says_why_it_waits(app: RunningApp) -> None:
    """It keeps running (the provider may come back), and its status says what it waits for
    instead of showing contacts pending with no reason."""
    app.add_connection("evolution", "down", api_url=f"http://127.0.0.1:{free_port()}",
                       api_key="k")  # fmt: skip
    create(app, "stranded", 2, connection="down")
    app.api("POST", "/v1/campaigns/stranded/start")
    wait_for(lambda: dispatch(app, "stranded")["waiting_reason"] is not None, 30)
    state = dispatch(app, "stranded")
    assert state["state"] == "running" and state["paused_reason"] is None
    assert "connect" in state["waiting_reason"], state["waiting_reason"]
    assert state["contacts"]["pending"] == 2 and state["contacts"]["failed"] == 0
    app.api("POST", "/v1/campaigns/stranded/cancel")
    assert dispatch(app, "stranded")["waiting_reason"] is None  # only while it runs


def test_ten_refusals_in_a_row_pause_the_campaign_and_say_why(
    app: RunningApp, fake: FakeEvolution
) -> None:
    for _ in range(10):
        fake.refuse("not_on_whatsapp")
    create(app, "refused", 15, rate_per_minute=1200)
    app.api("POST", "/v1/campaigns/refused/start")
    wait_for(lambda: dispatch(app, "refused")["state"] == "paused", 30)
    state = dispatch(app, "refused")
    assert "10 consecutive errors" in state["paused_reason"]
    assert state["contacts"]["failed"] == 10 and state["contacts"]["pending"] == 5
    failed = app.api("GET", "/v1/messages", params={"campaign": "refused", "status": "failed"})
    items = failed.json()["items"]
    assert len(items) == 10
    assert all(m["send"]["http_status"] == 400 and m["failure"]["reason"] for m in items)
    # A person looks and resumes: the rest goes out (a new refusal would pause it again).
    app.api("POST", "/v1/campaigns/refused/resume")
    wait_for(lambda: dispatch(app, "refused")["state"] == "done", 30)
    assert dispatch(app, "refused")["contacts"]["sent"] == 5
    assert len(fake.requests) == 15


@pytest.mark.parametrize("escape", [b"\\ud800", b"\\u0000"], ids=["surrogate", "nul"])
def test_a_refusal_whose_text_no_store_takes_is_recorded_with_its_batch(
    app: RunningApp, fake: FakeEvolution, escape: bytes
) -> None:
    """A provider's message with a lone surrogate (which has no UTF-8) or a NUL (which
    PostgreSQL refuses): it is stored with `?` in its place, and the batch it came in is
    recorded, every other contact `sent`; before, the store refused the whole batch."""
    message = b'{"status": 400, "error": "Bad Request", "response": {"message": ["bad %s text"]}}'
    fake.answer(Answer(400, message % escape))
    create(app, "odd", 6)
    app.api("POST", "/v1/campaigns/odd/start")
    wait_for(lambda: dispatch(app, "odd")["state"] == "done", 30)
    state = dispatch(app, "odd")
    assert (state["contacts"]["failed"], state["contacts"]["sent"]) == (1, 5)
    failed = app.api("GET", "/v1/messages", params={"campaign": "odd", "status": "failed"})
    [item] = failed.json()["items"]
    assert "bad ? text" in item["failure"]["reason"]
    assert len(fake.requests) == 6


def test_a_pause_whose_reason_quotes_text_no_store_takes_still_pauses(
    app: RunningApp, fake: FakeEvolution
) -> None:
    """Credentials refused with a lone surrogate in the provider's message: the campaign
    pauses, the reason stored with `?` (before, the pause failed to be written and every
    turn claimed the same contacts again)."""
    body = b'{"status": 401, "error": "Unauthorized", "response": {"message": "no \\ud800 key"}}'
    fake.answer(Answer(401, body))
    create(app, "oddkey", 3)
    app.api("POST", "/v1/campaigns/oddkey/start")
    wait_for(lambda: dispatch(app, "oddkey")["state"] == "paused", 30)
    state = dispatch(app, "oddkey")
    assert "credentials" in state["paused_reason"] and "no ? key" in state["paused_reason"]
    # The batch's other two went out; the refused one waits for the person who fixes the key.
    contacts = state["contacts"]
    assert (contacts["pending"], contacts["sent"], contacts["failed"]) == (1, 2, 0)


def test_a_connection_that_can_no_longer_send_pauses_the_campaign_saying_what_to_set(
    app: RunningApp, fake: FakeEvolution
) -> None:
    create(app, "keyless", 3)
    changed = app.api("PATCH", "/v1/connections/evo", json={"options": {"api_key": None}})
    assert changed.status_code == 200, changed.text
    app.api("POST", "/v1/campaigns/keyless/start")
    wait_for(lambda: dispatch(app, "keyless")["state"] == "paused", 30)
    reason = dispatch(app, "keyless")["paused_reason"]
    assert "needs the option api_key" in reason
    assert reason.count("'evo'") == 1, reason  # the connection named once
    assert fake.requests == [] and dispatch(app, "keyless")["contacts"]["pending"] == 3


def test_while_sends_succeed_a_batch_goes_out_before_the_one_before_is_recorded(
    app: RunningApp, fake: FakeEvolution
) -> None:
    """The store's work overlaps the provider's; and once the provider starts refusing, at
    most the one batch already out follows the one that pauses: it is recorded, never resent, and
    the campaign pauses once, saying why."""
    fake.accept(2 * BATCH)
    for _ in range(6 * BATCH):
        fake.refuse("not_on_whatsapp")
    create(app, "overlap", 8 * BATCH)
    app.api("POST", "/v1/campaigns/overlap/start")

    def settled() -> bool:  # paused, and the batch out after the refused one recorded
        state = dispatch(app, "overlap")
        return bool(state["state"] == "paused" and state["contacts"]["sending"] == 0)

    wait_for(settled, 30)
    state = dispatch(app, "overlap")
    assert "consecutive errors" in state["paused_reason"]
    arrived = len(fake.requests)
    assert 3 * BATCH <= arrived <= 4 * BATCH  # the refused batch, and at most one after it
    assert len({r.json()["number"] for r in fake.requests}) == arrived  # none sent twice
    contacts = state["contacts"]
    assert contacts["sending"] == 0 and contacts["unknown"] == 0  # every answer recorded
    assert (contacts["sent"], contacts["failed"]) == (2 * BATCH, arrived - 2 * BATCH)
    assert contacts["pending"] == 8 * BATCH - arrived
    with app.db.read() as conn:
        rows = conn.execute(
            sends.select()
            .order_by(sends.c.id)
            .with_only_columns(sends.c.created_at, sends.c.finished_at)
        ).all()
    batches = [rows[i : i + BATCH] for i in range(0, len(rows), BATCH)]
    overlapped = [
        later[0].created_at < earlier[-1].finished_at
        for earlier, later in itertools.pairwise(batches)
    ]
    assert overlapped[0] is False  # the first batch of a turn is recorded before the next
    assert any(overlapped), "no batch was claimed while the one before was out"
    failed = app.api(
        "GET", "/v1/messages", params={"campaign": "overlap", "status": "failed", "limit": 1000}
    )
    assert len(failed.json()["items"]) == arrived - 2 * BATCH


def test_credentials_the_provider_refuses_pause_the_campaign_and_fail_no_contact(
    app: RunningApp, fake: FakeEvolution
) -> None:
    app.api("PATCH", "/v1/connections/evo", json={"options": {"api_key": "wrong"}})
    create(app, "badkey", 3)
    app.api("POST", "/v1/campaigns/badkey/start")
    wait_for(lambda: dispatch(app, "badkey")["state"] == "paused", 30)
    state = dispatch(app, "badkey")
    assert "credentials" in state["paused_reason"]
    assert state["contacts"]["pending"] == 3 and state["contacts"]["failed"] == 0


def test_an_unhealthy_connection_gets_half_the_rate(app: RunningApp, fake: FakeEvolution) -> None:
    """20 failed outcomes: the score is 0, under the threshold (0.8), so 1,200/min becomes
    600/min; nothing refused during the campaign, so it does not pause."""
    now = datetime.now(UTC)
    with app.db.read() as conn:
        evo = connections.get_connection(conn, "evo")
    failed = [
        Incoming(evo, NormalizedEvent(f"old-{i}", EventKind.FAILED, failure_code="x"), None, now)
        for i in range(20)
    ]
    apply_events(app.db, failed, now)
    create(app, "halved", 30, rate_per_minute=1200)
    app.api("POST", "/v1/campaigns/halved/start")
    wait_for(lambda: dispatch(app, "halved")["state"] == "done", 30)
    times = sorted(r.at for r in fake.requests)
    # The pace between sends, by the median gap: one stall of a loaded machine (the whole
    # suite runs beside it) must not read as a wrong rate; 1,200/min would be 0.05 s.
    gap = statistics.median(b - a for a, b in itertools.pairwise(times))
    assert 0.1 * 0.9 <= gap <= 0.1 * 1.1, gap
    health = app.api("GET", "/v1/connections/evo").json()["health"]
    assert health["score"] < 0.8


def test_the_campaign_list_shows_the_dispatch_of_those_tidings_sends(app: RunningApp) -> None:
    create(app, "listed", 2)
    app.api("POST", "/v1/messages", json={"connection": "evo", "provider_message_id": "m1",
                                          "campaign": "tracked"})  # fmt: skip
    items = {c["key"]: c for c in app.api("GET", "/v1/campaigns").json()["items"]}
    assert items["listed"]["dispatch"]["contacts"]["pending"] == 2
    assert items["listed"]["counts"]["total"] == 0
    assert items["tracked"]["dispatch"] is None and items["tracked"]["counts"]["total"] == 1


def test_a_campaign_started_before_its_start_time_waits_for_it(
    app: RunningApp, fake: FakeEvolution
) -> None:
    start_at = datetime.now(UTC) + timedelta(seconds=2)
    create(app, "later", 3, start_at=start_at.isoformat())
    started = app.api("POST", "/v1/campaigns/later/start").json()["dispatch"]
    assert started["state"] == "scheduled"
    time.sleep(1.0)
    assert fake.requests == []
    wait_for(lambda: dispatch(app, "later")["state"] == "done", 15)
    assert len(fake.requests) == 3
    sent = app.api("GET", "/v1/messages", params={"campaign": "later"}).json()["items"]
    earliest = min(datetime.fromisoformat(m["sent_at"]) for m in sent)
    assert earliest >= start_at


def test_sends_that_get_no_answer_in_a_row_pause_the_campaign(
    app: RunningApp, fake: FakeEvolution
) -> None:
    for _ in range(10):
        fake.drop()  # the connection closes after the request: the outcome is unknown
    create(app, "silent", 12, rate_per_minute=1200)
    app.api("POST", "/v1/campaigns/silent/start")
    wait_for(lambda: dispatch(app, "silent")["state"] == "paused", 30)
    state = dispatch(app, "silent")
    assert "10 sends in a row got no answer" in state["paused_reason"]
    assert state["contacts"]["unknown"] == 10 and state["contacts"]["pending"] == 2
    assert len(fake.requests) == 10  # none of them sent again


def test_contacts_given_with_the_campaign_are_reported_row_by_row(app: RunningApp) -> None:
    body = {"key": "withrows", "connection": "evo", "text": "Hi {{name}}",
            "contacts": [{"contact_ref": "a", "recipient": "+5531980000001", "name": "Ana"},
                         {"contact_ref": "b", "recipient": "nope", "name": "Bea"}]}  # fmt: skip
    made = app.api("POST", "/v1/campaigns", json=body)
    assert made.status_code == 207, made.text
    report = made.json()["contacts"]
    assert (report["added"], report["errors"]) == (1, 1)
    assert report["results"][1]["row"] == 2 and "recipient" in report["results"][1]["error"]
    assert made.json()["dispatch"]["contacts"]["pending"] == 1


def test_a_text_whose_variable_no_contact_has_is_refused_before_the_campaign_exists(
    app: RunningApp,
) -> None:
    """As `tidings campaign create` refuses it: a typo in the text, not 207 with every contact
    refused and an empty draft left behind."""
    body = {"key": "typo", "connection": "evo", "text": "Hi {{nmae}}", "contacts": contacts(2)}
    answer = app.api("POST", "/v1/campaigns", json=body)
    assert answer.status_code == 422, answer.text
    assert "{{nmae}}, which none of the contacts has" in answer.json()["error"]["message"]
    assert app.api("GET", "/v1/campaigns/typo").status_code == 404
