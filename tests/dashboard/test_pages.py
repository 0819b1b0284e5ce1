"""Dashboard pages as the server renders them: what they show, what they never show (a phone
number in full), filters and pages in the URL, forms that change things, the live stream."""

from __future__ import annotations

import csv
import io
import json
import time

import httpx
import pytest

from tests.conftest import wait_for
from tests.dashboard.conftest import Dashboard
from tests.e2e.payloads import evolution_update

NUMBER = "+48601234567"


def register(d: Dashboard, campaign: str, count: int, first: int = 0) -> None:
    items = [{"connection": "main", "provider_message_id": f"{campaign}-{i}", "campaign": campaign,
              "recipient": f"+48601{i:06d}"} for i in range(first, first + count)]  # fmt: skip
    answer = d.app.api("POST", "/v1/messages/bulk", json={"items": items})
    assert answer.status_code == 200, answer.text


def hook(d: Dashboard, body: str | dict[str, object]) -> int:
    answer = d.app.hook("evolution", "main", body if isinstance(body, str) else json.dumps(body))
    assert answer.status_code == 202, answer.text
    receipt: int = answer.json()["receipt"]
    return receipt


def setup(d: Dashboard) -> None:
    d.app.add_connection("evolution", "main")


def test_a_phone_number_stays_masked_in_every_page(dashboard: Dashboard) -> None:
    setup(dashboard)
    made = dashboard.app.api("POST", "/v1/messages", json={
        "connection": "main", "provider_message_id": "p1", "campaign": "spring",
        "recipient": NUMBER})  # fmt: skip
    receipt = hook(dashboard, {"event": "messages.update", "instance": "main", "data": {
        "keyId": "p1", "fromMe": True, "status": "DELIVERY_ACK",
        "remoteJid": "48601234567@s.whatsapp.net"}})  # fmt: skip
    dashboard.app.wait_idle()
    message_id = made.json()["id"]
    for path in ("/campaigns/spring", f"/messages/{message_id}", f"/receipts/{receipt}",
                 "/campaigns/spring/messages.csv"):  # fmt: skip
        html = dashboard.page(path).text
        assert "48601234567" not in html, path
        assert "601234567" not in html, path
    assert "+48*******67" in dashboard.page("/campaigns/spring").text
    revealed = dashboard.client.get(f"/reveal/message/{message_id}")
    assert revealed.json() == {"value": NUMBER}


def test_reveal_needs_a_login(dashboard: Dashboard) -> None:
    with httpx.Client(base_url=dashboard.app.base_url) as stranger:
        assert stranger.get("/reveal/message/1").status_code == 401
        assert stranger.get("/live").status_code == 401


def test_the_campaign_page_filters_and_pages_through_the_url(dashboard: Dashboard) -> None:
    setup(dashboard)
    register(dashboard, "big", 60)
    for i in range(3):
        hook(dashboard, evolution_update(f"big-{i}", "ERROR"))
    dashboard.app.wait_idle()
    first = dashboard.page("/campaigns/big").text
    assert first.count('href="/messages/') == 50
    cursor = first.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
    second = dashboard.page(cursor.replace("&amp;", "&")).text
    assert second.count('href="/messages/') == 10
    failed = dashboard.page("/campaigns/big?state=failed").text
    assert failed.count('href="/messages/') == 3
    assert "Failures by reason" in failed and "WhatsApp reported ERROR" in failed
    one = dashboard.page(f"/campaigns/big?recipient={'%2B48601000001'}").text
    assert one.count('href="/messages/') == 1


def test_wrong_filters_and_unknown_things_get_a_page_that_says_so(dashboard: Dashboard) -> None:
    setup(dashboard)
    register(dashboard, "x", 1)
    wrong_state = dashboard.page("/campaigns/x?state=lost")
    assert wrong_state.status_code == 400 and "There is no state" in wrong_state.text
    wrong_number = dashboard.page("/campaigns/x?recipient=hello")
    assert wrong_number.status_code == 400 and "Recipient" in wrong_number.text
    assert dashboard.page("/campaigns/nope").status_code == 404
    assert "There is no campaign" in dashboard.page("/campaigns/nope").text
    assert dashboard.page("/messages/999999").status_code == 404
    huge = "99999999999999999999"  # no 64-bit id: not found, never a store error
    for path in (f"/messages/{huge}", f"/receipts/{huge}"):
        assert dashboard.page(path).status_code == 404, path
    assert dashboard.client.get(f"/reveal/message/{huge}").status_code == 422
    assert dashboard.client.get(f"/reveal/call/{2**63 - 1}").status_code == 404
    assert dashboard.page("/messages/abc").headers["content-type"].startswith("text/html")
    broken = dashboard.page("/campaigns/x?cursor=%%%")
    assert broken.status_code == 400 and "page link is broken" in broken.text
    assert dashboard.page("/receipts?status=lost").status_code == 400
    # The JSON API keeps answering JSON.
    assert dashboard.app.api("GET", "/v1/campaigns/nope").json()["error"]["code"] == "not_found"


def test_every_page_carries_its_security_headers(dashboard: Dashboard) -> None:
    page = dashboard.page("/")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"


def test_the_csv_export_streams_every_filtered_row(dashboard: Dashboard) -> None:
    setup(dashboard)
    register(dashboard, "export", 2500)
    with dashboard.client.stream("GET", "/campaigns/export/messages.csv") as answer:
        assert answer.status_code == 200
        assert "content-length" not in answer.headers  # streamed, not built whole
        text = answer.read().decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 2500
    assert len({r["id"] for r in rows}) == 2500
    assert all("*" in r["recipient"] for r in rows)
    full = dashboard.client.get("/campaigns/export/messages.csv?full=1&state=sent")
    numbers = {r["recipient"] for r in csv.DictReader(io.StringIO(full.text))}
    assert "+48601000007" in numbers


def test_failures_are_grouped_by_reason(dashboard: Dashboard) -> None:
    setup(dashboard)
    register(dashboard, "f", 5)
    for i in range(3):
        hook(dashboard, evolution_update(f"f-{i}", "ERROR"))
    dashboard.app.wait_idle()
    page = dashboard.page("/failures?campaign=f").text
    assert "WhatsApp reported ERROR" in page
    assert '<td class="num">3</td>' in page
    assert "No failed messages" in dashboard.page("/failures?connection=other").text


def test_replay_needs_the_csrf_token_and_then_applies_the_receipt(dashboard: Dashboard) -> None:
    setup(dashboard)
    dead = hook(dashboard, '{"no_event": true}')

    def receipt() -> dict[str, object]:
        found: dict[str, object] = dashboard.app.api("GET", f"/v1/receipts/{dead}").json()
        return found

    wait_for(lambda: receipt()["status"] == "dead", 15)
    listed = dashboard.page("/receipts?status=dead").text
    assert f"#{dead}" in listed
    forged = dashboard.client.post(f"/receipts/{dead}/replay", data={"csrf": "nope"})
    assert forged.status_code == 403
    assert receipt()["status"] == "dead"
    replayed = dashboard.post(f"/receipts/{dead}/replay")
    assert replayed.status_code == 303
    assert replayed.headers["location"] == f"/receipts/{dead}?replayed=1"
    wait_for(lambda: receipt()["status"] == "dead" and receipt()["attempts"] == 1, 15)
    assert dashboard.post("/receipts/999999/replay").status_code == 404


def test_the_connection_page_shows_the_qr_image_evolution_sent(dashboard: Dashboard) -> None:
    setup(dashboard)
    image = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    hook(dashboard, {"event": "qrcode.updated", "instance": "main",
                     "data": {"qrcode": {"base64": image, "code": "2@x"}}})  # fmt: skip
    dashboard.app.wait_idle()
    page = dashboard.page("/connections/main").text
    assert f'src="{image}"' in page


def test_a_qr_code_that_is_not_an_image_is_drawn_never_run(dashboard: Dashboard) -> None:
    setup(dashboard)
    hook(dashboard, {"event": "qrcode.updated", "instance": "main",
                     "data": {"qrcode": {"code": '"><script>alert(1)</script>'}}})  # fmt: skip
    dashboard.app.wait_idle()
    page = dashboard.page("/connections/main").text
    assert "<script>alert" not in page
    assert "<svg" in page


def test_empty_pages_say_what_to_do_next(dashboard: Dashboard) -> None:
    assert "tidings campaign create" in dashboard.page("/").text
    assert "tidings connection add" in dashboard.page("/connections").text
    assert "tidings subscription add" in dashboard.page("/deliveries").text


def test_the_live_stream_says_change_after_a_webhook_is_applied(dashboard: Dashboard) -> None:
    setup(dashboard)
    register(dashboard, "live", 1)
    with dashboard.client.stream("GET", "/live", timeout=10) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        time.sleep(1.5)  # the watcher's first look at the store
        hook(dashboard, evolution_update("live-0", "DELIVERY_ACK"))
        deadline = time.monotonic() + 10
        for line in lines:
            if line == "event: change":
                break
            assert time.monotonic() < deadline, "no change event"


def test_a_dispatch_is_paused_and_resumed_from_the_campaign_list(dashboard: Dashboard) -> None:
    from datetime import UTC, datetime, timedelta

    from tests.fakes.provider_apis import FakeEvolution

    with FakeEvolution() as fake:
        dashboard.app.add_connection("evolution", "evo", api_url=fake.url, api_key=fake.api_key)
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        made = dashboard.app.api("POST", "/v1/campaigns", json={
            "key": "later", "connection": "evo", "text": "Hi", "start_at": later,
            "contacts": [{"contact_ref": "c1", "recipient": "+5531980000001"}]})  # fmt: skip
        assert made.status_code == 201, made.text
        assert dashboard.app.api("POST", "/v1/campaigns/later/start").status_code == 200
        listed = dashboard.page("/").text
        assert "0/1 sent" in listed and 'action="/campaigns/later/pause"' in listed
        paused = dashboard.post("/campaigns/later/pause")
        assert paused.status_code == 303
        state = dashboard.app.api("GET", "/v1/campaigns/later").json()["dispatch"]
        assert state["state"] == "paused"
        assert 'action="/campaigns/later/resume"' in dashboard.page("/").text
        refused = dashboard.post("/campaigns/later/pause")  # paused already
        assert refused.status_code == 409 and "paused" in refused.text
        assert dashboard.post("/campaigns/later/explode").status_code == 404
        assert fake.requests == []


def test_numbers_and_emails_anywhere_in_a_message_stay_masked(dashboard: Dashboard) -> None:
    """Not only the recipient: a failure reason, a contact reference, an email with a
    non-ASCII domain can hold one too."""
    from datetime import UTC, datetime

    from tidings.domain.events import EventKind, Incoming, NormalizedEvent
    from tidings.storage import connections
    from tidings.unit_of_work import apply_events

    setup(dashboard)
    made = dashboard.app.api("POST", "/v1/messages", json={
        "connection": "main", "provider_message_id": "p1", "campaign": "masks",
        "recipient": "jürgen@müller.de", "contact_ref": "jane.doe@example.com"})  # fmt: skip
    assert made.status_code == 201, made.text
    with dashboard.app.db.read() as conn:
        source = connections.get_connection(conn, "main")
    now = datetime.now(UTC)
    failed = NormalizedEvent(
        provider_message_id="p1",
        kind=EventKind.FAILED,
        raw_status="x",
        failure_reason="number +4915112345111 is not on WhatsApp",
    )
    apply_events(dashboard.app.db, [Incoming(source, failed, None, now)], now)
    message_id = made.json()["id"]
    for path in ("/campaigns/masks", f"/messages/{message_id}", "/failures",
                 "/failures?campaign=masks", "/campaigns/masks?state=failed",
                 "/campaigns/masks/messages.csv"):  # fmt: skip
        html = dashboard.page(path).text
        for secret in ("4915112345111", "jürgen@", "jane.doe@", "rgen@m"):
            assert secret not in html, (path, secret)
    assert "j***@müller.de" in dashboard.page("/campaigns/masks").text
    full = dashboard.client.get("/campaigns/masks/messages.csv?full=1").text
    assert "jürgen@müller.de" in full and "+4915112345111" in full


def test_a_nul_byte_in_a_link_or_a_form_is_a_clear_400(dashboard: Dashboard) -> None:
    setup(dashboard)
    register(dashboard, "n", 1)
    for path in ("/campaigns/spr%00ing", "/campaigns/n?reason=a%00b",
                 "/campaigns/n?recipient=a%00b@x.com", "/failures?campaign=%00",
                 "/failures?connection=%00", "/connections/%00", "/leads/%00",
                 "/calls?employee=%00", "/calls/unmatched?employee=%00",
                 "/campaigns/n/messages.csv?reason=%00", "/calls.csv?employee=%00"):  # fmt: skip
        answer = dashboard.page(path)
        assert answer.status_code == 400, (path, answer.status_code)
        assert "cannot be stored" in answer.text
    assert dashboard.client.get("/reveal/message/1?x=%00").status_code == 400
    forged = dashboard.client.post("/campaigns/n/pause", data={"csrf": dashboard.csrf,
                                                                "x": "a\x00b"})  # fmt: skip
    assert forged.status_code == 400
    with httpx.Client(base_url=dashboard.app.base_url) as stranger:
        form = stranger.get("/login")
        token = form.text.split('name="csrf" value="')[1].split('"')[0]
        login = stranger.post("/login", data={"csrf": token, "email": "r@b.co\x00",
                                              "password": "whatever"})  # fmt: skip
    assert login.status_code == 400


def test_a_campaign_key_with_a_slash_has_a_page_its_csv_and_its_actions(
    dashboard: Dashboard,
) -> None:
    setup(dashboard)
    register(dashboard, "q4/promo #1", 2)
    listed = dashboard.page("/").text
    assert 'href="/campaigns/q4%2Fpromo%20%231"' in listed
    page = dashboard.page("/campaigns/q4%2Fpromo%20%231")
    assert page.status_code == 200 and "q4/promo #1" in page.text
    csv_rows = dashboard.client.get("/campaigns/q4%2Fpromo%20%231/messages.csv").text
    assert len(csv_rows.strip().splitlines()) == 3
    refused = dashboard.post("/campaigns/q4%2Fpromo%20%231/pause")  # tracked, not sent by us
    assert refused.status_code in (404, 409)


def test_a_change_between_the_page_and_its_stream_is_not_missed(dashboard: Dashboard) -> None:
    setup(dashboard)
    register(dashboard, "gap", 1)
    page = dashboard.page("/campaigns/gap").text
    live_url = page.split('data-live="')[1].split('"')[0].replace("&amp;", "&")
    assert live_url.startswith("/live?seen=")
    hook(dashboard, evolution_update("gap-0", "DELIVERY_ACK"))  # applied before the stream opens
    dashboard.app.wait_idle()
    with dashboard.client.stream("GET", live_url, timeout=10) as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        assert next(lines) == ""
        assert next(lines) == "event: change"  # at once, not at the next change
    same = dashboard.page("/campaigns/gap").text.split('data-live="')[1].split('"')[0]
    quiet = httpx.Timeout(10, read=2.5)
    with dashboard.client.stream("GET", same.replace("&amp;", "&"), timeout=quiet) as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        assert next(lines) == ""
        # Nothing changed since this page was drawn: nothing more is said for a while.
        with pytest.raises(httpx.ReadTimeout):
            next(lines)
