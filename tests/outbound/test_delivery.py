"""Outbound webhooks from the apply path to a real receiver that verifies with the
`standardwebhooks` package: payloads, exactly-once effect, retries on a controlled clock, dead
letters and replay, secret rotation, filters, disabling, time-outs and redirects."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import update
from standardwebhooks.webhooks import Webhook

from tests.outbound.conftest import START, Outbound
from tests.outbound.receiver import Receiver
from tidings import subscription_admin
from tidings.domain.outbound import RetryPolicy
from tidings.outbound.dispatcher import LEASE_SECONDS
from tidings.storage import deliveries as delivery_store
from tidings.storage.db import Database
from tidings.storage.schema import subscriptions
from tidings.storage.subscriptions import get_subscription

SCHEDULE = [5, 300, 1800, 7200, 18000, 36000, 36000]


def test_nothing_is_written_to_the_outbox_without_a_subscription(outbound: Outbound):
    outbound.event("m1", "delivered")
    assert outbound.events() == []


def test_events_reach_the_receiver_signed_with_the_canonical_message(
    outbound: Outbound, receiver: Receiver
):
    sub = outbound.subscribe(receiver.url)
    receiver.secrets.append(sub.secret)
    outbound.event("m1", "sent", 0, recipient="+5531999990000", metadata={"campaign": "spring"})
    outbound.event("m1", "delivered", 1)
    outbound.event("m1", "read", 2)
    totals = outbound.drain()
    assert totals.delivered == 3
    assert receiver.unverified == []
    payloads = sorted((d.payload for d in receiver.received), key=lambda p: p["data"]["sequence"])
    assert [p["type"] for p in payloads] == ["message.sent", "message.delivered", "message.read"]
    read = payloads[-1]
    assert set(read) == {"type", "timestamp", "data"}
    data = read["data"]
    assert data["state"] == "read"
    assert [p["data"]["sequence"] for p in payloads] == [1, 2, 3]
    assert data["occurred_at"] == "2024-06-03T09:02:00.000000Z"
    assert data["campaign"] == "spring"
    assert data["connection"] == "cb" and data["provider"] == "callbell"
    assert data["provider_message_id"] == "m1"
    assert data["metadata"] == {"campaign": "spring"}
    assert data["sent_at"] == "2024-06-03T09:00:00.000000Z"
    assert data["read_at"] == "2024-06-03T09:02:00.000000Z"
    assert payloads[1]["data"]["read_at"] is None  # each event carries the state it made
    # The phone number is masked: this subscriber did not ask for contact details.
    assert data["recipient"] != "+5531999990000" and data["recipient"].startswith("+55")
    assert "s3cret" not in str(read)
    assert all(d.status == "delivered" and d.attempts == 1 for d in outbound.deliveries())


def test_include_contact_sends_the_recipient_as_it_is(outbound: Outbound, receiver: Receiver):
    sub = outbound.subscribe(receiver.url, include_contact=True)
    receiver.secrets.append(sub.secret)
    outbound.event("m1", "delivered", recipient="+5531999990000")
    outbound.drain()
    [delivery] = receiver.received
    assert delivery.payload["data"]["recipient"] == "+5531999990000"


def test_an_answer_lost_after_the_effect_is_sent_again_with_the_same_id(
    outbound: Outbound, receiver: Receiver
):
    """The receiver applied the event but its answer never came back (a time-out): tidings
    sends it again with the same webhook id, so deduplicating on it applies it once."""
    sub = outbound.subscribe(receiver.url)
    receiver.secrets.append(sub.secret)
    outbound.event("m1", "delivered")
    hang = threading.Event()
    receiver.behaviour.hang = hang
    quick = outbound.settings.model_copy(update={"outbound_timeout_seconds": 0.3})
    outbound.drain(quick)
    hang.set()  # the receiver finishes: it recorded the delivery, tidings saw a time-out
    receiver.behaviour.hang = None
    [attempt] = outbound.attempts()
    assert attempt.status_code is None and "no answer within 0.3s" in attempt.error
    receiver.wait_for(1)
    outbound.clock.advance(6)
    outbound.drain()
    assert len(receiver.received) == 2
    assert receiver.received[0].webhook_id == receiver.received[1].webhook_id
    assert len(receiver.applied()) == 1
    [delivery] = outbound.deliveries()
    assert delivery.status == "delivered" and delivery.attempts == 2


def test_the_retry_schedule_is_followed_then_the_delivery_is_dead_then_replayed(
    outbound: Outbound, receiver: Receiver
):
    sub = outbound.subscribe(receiver.url)
    receiver.secrets.append(sub.secret)
    receiver.behaviour.fail_next = 100
    outbound.event("m1", "delivered")
    waits = []
    for _ in range(len(SCHEDULE) + 1):
        outbound.drain()
        [delivery] = outbound.deliveries()
        if delivery.next_attempt_at is None:
            break
        waits.append((delivery.next_attempt_at - outbound.clock()).total_seconds())
        outbound.clock.advance(1)
        assert outbound.drain().delivered + outbound.drain().failed == 0  # not due yet
        outbound.clock.to(delivery.next_attempt_at)
    assert len(waits) == len(SCHEDULE)
    for waited, planned in zip(waits, SCHEDULE, strict=True):
        assert planned <= waited <= planned * 1.1
    [delivery] = outbound.deliveries()
    assert delivery.status == "dead" and delivery.attempts == len(SCHEDULE) + 1
    attempts = outbound.attempts()
    assert len(attempts) == len(SCHEDULE) + 1
    assert all(a.status_code == 500 and a.error == "HTTP 500" for a in attempts)
    assert all(len(a.response_body) == 1024 for a in attempts)  # the first 1 KiB is kept
    # The endpoint works again; a replay sends the dead delivery with the same webhook id.
    receiver.behaviour.fail_next = 0
    assert delivery_store.replay(outbound.db, [delivery.id], outbound.clock()) == 1
    outbound.drain()
    [delivered] = receiver.received
    assert delivered.webhook_id == receiver.refused[0][0]
    [delivery] = outbound.deliveries()
    assert delivery.status == "delivered" and delivery.attempts == 1


def test_a_rotated_secret_overlaps_with_the_old_one_for_the_window(
    outbound: Outbound, receiver: Receiver
):
    sub = outbound.subscribe(receiver.url)
    old = sub.secret
    rotated = subscription_admin.rotate(outbound.db, sub.id, 3600, now=outbound.clock())
    new = rotated.secret
    assert new != old and new.startswith("whsec_")
    receiver.secrets[:] = [old, new]
    outbound.event("m1", "sent")
    outbound.drain()
    [during] = receiver.received
    assert sorted(during.verified_with) == sorted([old, new])  # either side verifies
    outbound.clock.advance(3601)
    outbound.event("m1", "delivered", 1)
    outbound.drain()
    after = receiver.received[1]
    assert after.verified_with == [new]  # only the new one, once the window ended
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    Webhook(new).verify(after.body, after.headers)


def test_filters_by_type_wildcard_connection_and_campaign(outbound: Outbound, receiver: Receiver):
    with outbound.db.write() as conn:
        from tidings.storage import connections

        other = connections.add_connection(conn, "callbell", "other", "s", {}, START)
    subs = {
        "delivered only": outbound.subscribe(
            receiver.url + "/a", event_types=["message.delivered"]
        ),
        "messages": outbound.subscribe(receiver.url + "/b", event_types=["message.*"]),
        "other connection": outbound.subscribe(receiver.url + "/c", connection="other"),
        "spring campaign": outbound.subscribe(receiver.url + "/d", campaign="spring"),
        "sessions": outbound.subscribe(receiver.url + "/e", event_types=["connection.*"]),
    }
    receiver.secrets[:] = [s.secret for s in subs.values()]
    outbound.event("m1", "sent", 0, metadata={"campaign": "spring"})
    outbound.event("m1", "delivered", 1)
    outbound.event("m2", "delivered", 1, connection=other)
    outbound.drain()
    by_sub: dict[int, list[str]] = {}
    for row in outbound.deliveries():
        by_sub.setdefault(row.subscription_id, []).append(row.event_id)
    events = {e.id: (e.data["provider_message_id"], e.type) for e in outbound.events()}
    seen = {name: sorted(events[i] for i in by_sub.get(s.id, [])) for name, s in subs.items()}
    assert seen == {
        "delivered only": [("m1", "message.delivered"), ("m2", "message.delivered")],
        "messages": [
            ("m1", "message.delivered"),
            ("m1", "message.sent"),
            ("m2", "message.delivered"),
        ],
        "other connection": [("m2", "message.delivered")],
        "spring campaign": [("m1", "message.delivered"), ("m1", "message.sent")],
        "sessions": [],
    }
    assert len(receiver.received) == 8 and receiver.unverified == []


def test_an_event_nobody_wants_is_not_written(outbound: Outbound, receiver: Receiver):
    outbound.subscribe(receiver.url, event_types=["message.read"])
    outbound.event("m1", "delivered")
    assert outbound.events() == []
    outbound.event("m1", "read", 1)
    assert [e.type for e in outbound.events()] == ["message.read"]


def test_410_gone_disables_the_endpoint_at_once(
    outbound: Outbound, receiver: Receiver, caplog: pytest.LogCaptureFixture
):
    sub = outbound.subscribe(receiver.url)
    receiver.secrets.append(sub.secret)
    receiver.behaviour.gone = True
    outbound.event("m1", "delivered")
    with caplog.at_level(logging.WARNING, logger="tidings"):
        totals = outbound.drain()
    assert totals.disabled == [sub.id]
    with outbound.db.read() as conn:
        stored = get_subscription(conn, sub.id)
    assert not stored.enabled and "410" in (stored.disabled_reason or "")
    assert any("alert.endpoint_disabled" in r.getMessage() for r in caplog.records)
    # Nothing more is sent, nor even written, while it is disabled.
    outbound.event("m1", "read", 1)
    outbound.clock.advance(10)
    outbound.drain()
    assert len(receiver.refused) == 1
    # Enabled again: the waiting delivery goes out.
    receiver.behaviour.gone = False
    subscription_admin.change(
        outbound.db, outbound.settings, sub.id, now=outbound.clock(), enabled=True
    )
    outbound.drain()
    assert [d.payload["type"] for d in receiver.received] == ["message.delivered"]


def test_an_endpoint_failing_for_the_whole_period_is_disabled(
    outbound: Outbound, receiver: Receiver, caplog: pytest.LogCaptureFixture
):
    settings = outbound.settings.model_copy(
        update={"outbound_disable_after_seconds": 3600.0, "outbound_retry_schedule": "600"}
    )
    sub = outbound.subscribe(receiver.url)
    receiver.secrets.append(sub.secret)
    receiver.behaviour.fail_next = 1000
    for minute in range(8):
        outbound.event(f"m{minute}", "delivered", minute)
        with caplog.at_level(logging.WARNING, logger="tidings"):
            totals = outbound.drain(settings)
        with outbound.db.read() as conn:
            stored = get_subscription(conn, sub.id)
        if not stored.enabled:
            break
        outbound.clock.advance(601)
    assert totals.disabled == [sub.id]
    assert stored.failing_since == START
    assert outbound.clock() - START >= timedelta(hours=1)
    assert "every attempt failed for" in (stored.disabled_reason or "")
    [alert] = [r for r in caplog.records if "alert.endpoint_disabled" in r.getMessage()]
    assert alert.levelno == logging.WARNING


def test_a_success_ends_the_failing_streak(outbound: Outbound, receiver: Receiver):
    sub = outbound.subscribe(receiver.url)
    receiver.secrets.append(sub.secret)
    receiver.behaviour.fail_next = 1
    outbound.event("m1", "delivered")
    outbound.drain()
    with outbound.db.read() as conn:
        assert get_subscription(conn, sub.id).failing_since == START
    outbound.clock.advance(10)
    outbound.drain()
    with outbound.db.read() as conn:
        assert get_subscription(conn, sub.id).failing_since is None


def test_redirects_are_not_followed(outbound: Outbound, receiver: Receiver):
    sub = outbound.subscribe(receiver.url)
    receiver.secrets.append(sub.secret)
    receiver.behaviour.redirect_to = receiver.url + "/elsewhere"
    outbound.event("m1", "delivered")
    outbound.drain()
    [attempt] = outbound.attempts()
    assert attempt.status_code == 302
    assert "redirects are not followed" in attempt.error
    assert receiver.received == [] and len(receiver.refused) == 1


def test_a_slow_answer_within_the_timeout_is_delivered(outbound: Outbound, receiver: Receiver):
    sub = outbound.subscribe(receiver.url)
    receiver.secrets.append(sub.secret)
    receiver.behaviour.delay = 0.2
    outbound.event("m1", "delivered")
    outbound.drain()
    [attempt] = outbound.attempts()
    assert attempt.status_code == 200 and attempt.latency_ms >= 200
    assert attempt.response_body == '{"ok": true}'


def test_an_unreachable_endpoint_is_a_failed_attempt(outbound: Outbound, receiver: Receiver):
    from tests.conftest import free_port

    sub = outbound.subscribe(f"http://127.0.0.1:{free_port()}/nobody")
    outbound.event("m1", "delivered")
    outbound.drain()
    [attempt] = outbound.attempts()
    assert attempt.status_code is None and attempt.error
    [delivery] = outbound.deliveries()
    assert delivery.status == "failed" and delivery.subscription_id == sub.id


def test_the_guard_refuses_at_send_time_what_is_no_longer_allowed(
    outbound: Outbound, receiver: Receiver
):
    """Allowed when subscribed, refused when sent: the check is made again at connect time
    (here: the allowance was withdrawn; DNS rebinding looks the same to the sender)."""
    outbound.subscribe(receiver.url)
    outbound.event("m1", "delivered")
    strict = outbound.settings.model_copy(update={"outbound_allowed_hosts": ""})
    outbound.drain(strict)
    [attempt] = outbound.attempts()
    assert attempt.status_code is None
    assert "refused: 127.0.0.1 is a loopback address" in attempt.error
    assert receiver.received == [] and receiver.refused == []


def test_a_host_name_resolving_to_loopback_is_refused_at_connect_time(
    outbound: Outbound, receiver: Receiver
):
    url = receiver.url.replace("127.0.0.1", "localhost")
    allowed = outbound.settings.model_copy(update={"outbound_allowed_hosts": "localhost"})
    subscription_admin.add(outbound.db, allowed, url, now=outbound.clock())
    outbound.event("m1", "delivered")
    strict = outbound.settings.model_copy(update={"outbound_allowed_hosts": ""})
    outbound.drain(strict)
    [attempt] = outbound.attempts()
    assert "refused: localhost (" in attempt.error and "loopback" in attempt.error
    assert receiver.refused == []


def test_the_retention_purge_keeps_what_is_still_being_delivered(
    outbound: Outbound, receiver: Receiver
):
    from tidings.scheduler.jobs import JobContext, purge_old_deliveries

    sub = outbound.subscribe(receiver.url)
    receiver.secrets.append(sub.secret)
    outbound.event("m1", "delivered")
    outbound.drain()
    receiver.behaviour.fail_next = 1
    outbound.event("m2", "delivered")
    outbound.drain()
    assert sorted(d.status for d in outbound.deliveries()) == ["delivered", "failed"]

    class _Worker:
        def wake(self) -> None:
            pass

    # Both events are older than the retention period (the test clock is in the past).
    assert purge_old_deliveries(JobContext(outbound.db, outbound.settings, _Worker())) == 1
    [left] = outbound.deliveries()
    assert left.status == "failed"
    assert [e.data["provider_message_id"] for e in outbound.events()] == ["m2"]
    assert {a.delivery_id for a in outbound.attempts()} == {left.id}


def test_the_retention_purge_keeps_the_newest_delivery_so_no_id_is_given_twice(
    outbound: Outbound, receiver: Receiver
):
    """SQLite numbers a new row after the largest id left: had the purge removed every
    delivery, the next one would take an id already shown (and replayable) before."""
    from tidings.scheduler.jobs import JobContext, purge_old_deliveries

    sub = outbound.subscribe(receiver.url)
    receiver.secrets.append(sub.secret)
    for message in ("m1", "m2"):
        outbound.event(message, "delivered")
    outbound.drain()
    given = [d.id for d in outbound.deliveries()]

    class _Worker:
        def wake(self) -> None:
            pass

    # Both events are older than the retention period (the test clock is in the past).
    purged = purge_old_deliveries(JobContext(outbound.db, outbound.settings, _Worker()))
    outbound.event("m3", "delivered")
    outbound.drain()
    [*_, newest] = sorted(d.id for d in outbound.deliveries())
    assert newest > max(given)
    assert purged == 1
    assert [e.data["provider_message_id"] for e in outbound.events()] == ["m2", "m3"]


def _drain_while_the_store_is_locked(
    outbound: Outbound,
    receiver: Receiver,
    db_url: str,
    answer_after: float,
    locked_for: float,
    meanwhile: Callable[[], None] = lambda: None,
) -> None:
    """Drain with a store that gives up after 0.2 s, while SQLite's lock is held from the
    moment the delivery arrives (then `meanwhile` runs) for `locked_for` seconds; the
    receiver answers after `answer_after`, so the attempt's record meets the lock."""
    sub = outbound.subscribe(receiver.url)
    receiver.secrets.append(sub.secret)
    outbound.event("m1", "delivered")
    receiver.behaviour.delay = answer_after
    impatient = Database(outbound.db.url, timeout=0.2)
    held = threading.Event()

    def hold_the_lock_once_it_arrived() -> None:
        while not receiver.arrived:
            time.sleep(0.005)
        blocker = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        meanwhile()
        held.set()
        time.sleep(locked_for)
        blocker.execute("ROLLBACK")
        blocker.close()

    holder = threading.Thread(target=hold_the_lock_once_it_arrived)
    holder.start()
    try:
        Outbound(impatient, outbound.settings, outbound.clock, outbound.connection).drain()
    finally:
        holder.join()
        impatient.dispose()
    assert held.is_set()


@pytest.mark.sqlite_only  # the store is made unavailable by holding SQLite's file lock
def test_an_attempt_the_store_could_not_record_is_recorded_later_not_sent_again(
    outbound: Outbound, receiver: Receiver, db_url: str
):
    """The subscriber got the delivery, then the store refused the attempt's record (locked
    past its time-out): the record is tried again, so the delivery is not made a second time
    when its lease ends."""
    # The answer comes at 0.3 s: its record waits 0.2 s and fails, and is made after 0.8 s.
    _drain_while_the_store_is_locked(outbound, receiver, db_url, answer_after=0.3, locked_for=0.8)
    assert len(receiver.received) == 1
    [delivery] = outbound.deliveries()
    assert delivery.status == "delivered" and delivery.attempts == 1
    assert len(outbound.attempts()) == 1


@pytest.mark.sqlite_only  # the store is made unavailable by holding SQLite's file lock
def test_an_attempt_whose_record_comes_too_late_is_left_to_its_lease(
    outbound: Outbound, receiver: Receiver, db_url: str
):
    """The store refused the record of an attempt made more than half a lease ago: it is not
    recorded later (its delivery may be taken again meanwhile, and the stale record would undo
    the newer one's). The delivery is made again when its lease ends, with the same webhook id,
    which is how a subscriber drops it, and recorded once."""
    # Half a lease passes before the answer comes at 1 s; its record waits 0.2 s and fails.
    _drain_while_the_store_is_locked(
        outbound, receiver, db_url, answer_after=1.0, locked_for=2.5,
        meanwhile=lambda: outbound.clock.advance(LEASE_SECONDS / 2 + 1),
    )  # fmt: skip
    assert len(receiver.received) == 1
    assert outbound.attempts() == []  # left unrecorded
    outbound.clock.advance(LEASE_SECONDS)
    outbound.drain()
    first, again = receiver.received
    assert again.webhook_id == first.webhook_id
    [delivery] = outbound.deliveries()
    assert delivery.status == "delivered" and delivery.attempts == 1
    assert len(outbound.attempts()) == 1


def test_a_subscription_removed_while_its_delivery_is_in_flight_spares_the_others(
    outbound: Outbound, receiver: Receiver
):
    """Its attempt has nothing left to record; the other subscriber's, finished at the same
    moment, is recorded (not made again when its lease ends)."""
    gone = outbound.subscribe(receiver.url + "?who=gone")
    kept = outbound.subscribe(receiver.url + "?who=kept")
    receiver.secrets += [gone.secret, kept.secret]
    receiver.behaviour.delay = 0.3
    outbound.event("m1", "delivered")

    def remove_once_both_arrived() -> None:
        while len(receiver.arrived) < 2:
            time.sleep(0.005)
        subscription_admin.remove(outbound.db, gone.id)

    remover = threading.Thread(target=remove_once_both_arrived)
    remover.start()
    try:
        totals = outbound.drain()
    finally:
        remover.join()
    assert len(receiver.received) == 2
    [delivery] = outbound.deliveries()
    assert delivery.subscription_id == kept.id
    assert delivery.status == "delivered" and delivery.attempts == 1
    assert [a.delivery_id for a in outbound.attempts()] == [delivery.id]
    assert totals.delivered >= 1


def _two_claims_failing_for_days(outbound: Outbound) -> tuple[int, list[delivery_store.Claim]]:
    """A subscription failing for two days, and two of its deliveries claimed (each claim
    holds the subscription as it stood then)."""
    sub = outbound.subscribe("http://127.0.0.1:9/hooks")
    outbound.event("m1", "delivered", 1)
    outbound.event("m2", "delivered", 2)
    now = outbound.clock()
    with outbound.db.write() as conn:
        conn.execute(
            update(subscriptions)
            .where(subscriptions.c.id == sub.id)
            .values(failing_since=now - timedelta(days=2))
        )
    assert delivery_store.fan_out(outbound.db, now, 100) == 2
    claims = delivery_store.claim(outbound.db, now, 10, LEASE_SECONDS)
    assert len(claims) == 2
    return sub.id, claims


def _record(outbound: Outbound, claim: delivery_store.Claim, status: int) -> list[int]:
    """Record one attempt answered `status`; the subscriptions it disabled."""
    now = outbound.clock()
    policy = RetryPolicy(outbound.settings.outbound_retry_delays)
    attempt = delivery_store.Attempt(claim, now, 5, status_code=status)
    recorded = delivery_store.record(
        outbound.db, [attempt], now, policy, timedelta(days=1), lambda: 0.5
    )
    return [gone.id for gone, _reason in recorded.disabled]


def test_an_endpoint_disabled_by_two_recordings_is_announced_once(outbound: Outbound) -> None:
    """Two batches of failed attempts recorded one after the other, each claimed while the
    subscription had been failing for the whole period: the first disables it and reports
    it, the second finds it disabled already and reports nothing (one alert, not two)."""
    sub_id, claims = _two_claims_failing_for_days(outbound)
    assert _record(outbound, claims[0], 500) == [sub_id]
    assert _record(outbound, claims[1], 500) == []
    with outbound.db.read() as conn:
        stored = get_subscription(conn, sub_id)
    assert not stored.enabled and stored.disabled_reason is not None
    assert "every attempt failed for 1 days" in stored.disabled_reason


def test_a_success_recorded_first_spares_an_endpoint_from_a_stale_claim(
    outbound: Outbound,
) -> None:
    """Of two deliveries claimed while the subscription had been failing for days, the first
    succeeds: its failing time is cleared, so the second one's failure starts a new period
    instead of disabling it on the claim's stale view."""
    sub_id, claims = _two_claims_failing_for_days(outbound)
    assert _record(outbound, claims[0], 200) == []
    assert _record(outbound, claims[1], 500) == []
    with outbound.db.read() as conn:
        stored = get_subscription(conn, sub_id)
    assert stored.enabled and stored.failing_since == outbound.clock()
