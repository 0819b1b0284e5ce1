"""The dashboard in a real browser: Debian's Chromium driven by Playwright against a running
app. What a marketing person does, checked the way they would see it: counters and charts
that change without a reload, a message's timeline, replaying a dead receipt, pausing and
resuming a dispatch, a CSV download, a QR code that appears when Evolution sends one.

Screenshots of the main pages go to build/screenshots/ (TIDINGS_SCREENSHOTS moves them)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import RunningApp, wait_for
from tests.dashboard.conftest import EMAIL, PASSWORD
from tests.e2e.payloads import evolution_update
from tests.fakes.provider_apis import FakeEvolution
from tidings import user_admin

CHROMIUM = os.environ.get("TIDINGS_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("TIDINGS_SCREENSHOTS", Path(__file__).parents[2] / "build/screenshots"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/ensure-chromium (make test does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def app(running_app: RunningApp) -> RunningApp:
    user_admin.create(running_app.db, EMAIL, PASSWORD, datetime.now(UTC))
    running_app.add_connection("evolution", "main")
    return running_app


@pytest.fixture
def page(browser: Browser, app: RunningApp) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    opened.goto(app.base_url + "/")
    opened.fill("input[name=email]", EMAIL)
    opened.fill("input[name=password]", PASSWORD)
    opened.click("button[type=submit]")
    opened.wait_for_url(app.base_url + "/")
    yield opened
    context.close()


def shoot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def register(app: RunningApp, campaign: str, count: int) -> None:
    for i in range(count):
        made = app.api("POST", "/v1/messages", json={
            "connection": "main", "provider_message_id": f"{campaign}-{i}", "campaign": campaign,
            "recipient": f"+48601{i:06d}", "sent_at": "2026-12-03T10:00:00Z"})  # fmt: skip
        assert made.status_code == 201, made.text


def hook(app: RunningApp, body: str | dict[str, object]) -> int:
    answer = app.hook("evolution", "main", body if isinstance(body, str) else json.dumps(body))
    assert answer.status_code == 202, answer.text
    receipt: int = answer.json()["receipt"]
    return receipt


def stay_marker(page: Page) -> None:
    """A mark that a reload would wipe: the page must still have it after a live update."""
    page.evaluate("window.__noReload = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__noReload === true"), "the page reloaded"


def test_counters_and_chart_change_live_as_webhooks_arrive(page: Page, app: RunningApp) -> None:
    register(app, "spring", 10)
    page.goto(f"{app.base_url}/campaigns/spring")
    expect(page.locator("[data-count=sent]")).to_have_text("10")
    expect(page.locator("[data-count=delivered]")).to_have_text("0")
    before = page.locator("polyline.delivery").get_attribute("points")
    expect(page.locator("#live-state")).to_be_visible()  # the stream is open
    stay_marker(page)

    for i in range(6):
        hook(app, evolution_update(f"spring-{i}", "DELIVERY_ACK"))
    for i in range(3):
        hook(app, evolution_update(f"spring-{i}", "READ"))

    expect(page.locator("[data-count=delivered]")).to_have_text("6")
    expect(page.locator("[data-count=read]")).to_have_text("3")
    expect(page.locator("[data-rate=delivery]")).to_have_text("60.0%")
    expect(page.locator("[data-rate=read]")).to_have_text("50.0%")
    assert page.locator("polyline.delivery").get_attribute("points") != before
    assert_not_reloaded(page)
    shoot(page, "campaign")


def test_a_message_leads_to_its_timeline_and_its_receipt(page: Page, app: RunningApp) -> None:
    register(app, "autumn", 1)
    receipt = hook(app, evolution_update("autumn-0", "DELIVERY_ACK"))
    app.wait_idle()
    page.goto(f"{app.base_url}/campaigns/autumn")
    page.click("#messages a[href^='/messages/']")
    expect(page.locator("h1")).to_contain_text("Message #")
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("delivered")
    expect(timeline).to_contain_text("DELIVERY_ACK")
    assert "+48601000000" not in page.content()  # masked until revealed
    page.click("[data-reveal]")
    expect(page.locator(".revealed")).to_have_text("+48601000000")
    expect(page.locator("#message-facts")).not_to_contain_text("+48*******00")  # in its place
    stay_marker(page)
    hook(app, evolution_update("autumn-0", "READ"))
    expect(page.locator("#message-facts .state")).to_have_text("read")  # arrived live
    expect(page.locator(".revealed")).to_have_text("+48601000000")  # and stayed revealed
    assert_not_reloaded(page)
    shoot(page, "message")
    page.click(f"#timeline a[href='/receipts/{receipt}']")
    expect(page.locator("h1")).to_have_text(f"Receipt #{receipt}")


def test_a_dead_receipt_is_replayed_from_its_page(page: Page, app: RunningApp) -> None:
    dead = hook(app, '{"no_event": true}')
    wait_for(lambda: app.api("GET", f"/v1/receipts/{dead}").json()["status"] == "dead", 15)
    page.goto(f"{app.base_url}/receipts?status=dead")
    row = page.locator("#receipts tr", has_text=f"#{dead}")
    expect(row).to_contain_text("dead")
    shoot(page, "receipts")
    row.get_by_role("button", name="Replay").click()
    expect(page.locator(".notice")).to_contain_text("Replayed")
    # It was applied again (and, having no shape, is dead again after one more attempt).
    wait_for(lambda: app.api("GET", f"/v1/receipts/{dead}").json()["attempts"] == 1, 15)
    assert page.url.endswith(f"/receipts/{dead}?replayed=1")


def test_a_dispatch_is_paused_and_resumed_from_the_campaign_page(
    page: Page, app: RunningApp
) -> None:
    with FakeEvolution() as fake:
        app.add_connection("evolution", "evo", api_url=fake.url, api_key=fake.api_key)
        start_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        made = app.api("POST", "/v1/campaigns", json={
            "key": "winter", "connection": "evo", "text": "Hi {{name}}", "start_at": start_at,
            "contacts": [{"contact_ref": "c1", "recipient": "+5531980000001",
                          "name": "Ana"}]})  # fmt: skip
        assert made.status_code == 201, made.text
        page.goto(f"{app.base_url}/campaigns/winter")
        expect(page.locator("[data-dispatch-state]")).to_have_text("draft")
        page.get_by_role("button", name="Start").click()
        expect(page.locator("[data-dispatch-state]")).to_have_text("scheduled")
        page.get_by_role("button", name="Pause").click()
        expect(page.locator("[data-dispatch-state]")).to_have_text("paused")
        state = app.api("GET", "/v1/campaigns/winter").json()["dispatch"]["state"]
        assert state == "paused"
        assert fake.requests == []  # its start time had not come: nothing was sent
        page.get_by_role("button", name="Resume").click()  # resuming sends from now on
        page.wait_for_url("**/campaigns/winter?done=resume")
        stay_marker(page)  # the form's answer was a new page; what follows comes live
        expect(page.locator("[data-dispatch-state]")).to_have_text("done")
        expect(page.locator("[data-contacts]")).to_contain_text("sent 1")
        assert len(fake.requests) == 1
        assert_not_reloaded(page)


def test_a_campaigns_messages_download_as_csv(page: Page, app: RunningApp) -> None:
    register(app, "summer", 3)
    hook(app, evolution_update("summer-1", "DELIVERY_ACK"))
    app.wait_idle()
    page.goto(f"{app.base_url}/campaigns/summer?state=delivered")
    with page.expect_download() as download:
        page.click("text=Export CSV")
    text = Path(download.value.path()).read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["state"] for r in rows] == ["delivered"]
    assert rows[0]["provider_message_id"] == "summer-1"
    assert rows[0]["recipient"] != "+48601000001"  # masked unless asked for in full


def test_an_evolution_qr_code_appears_on_the_connection_page(page: Page, app: RunningApp) -> None:
    page.goto(f"{app.base_url}/connections/main")
    expect(page.locator("[data-qr]")).to_have_count(0)
    stay_marker(page)
    hook(app, {"event": "qrcode.updated", "instance": "main",
               "data": {"qrcode": {"instance": "main", "code": "2@linkme,abc=",
                                   "base64": None}}})  # fmt: skip
    expect(page.locator("[data-qr] svg")).to_be_visible()
    expect(page.locator("[data-session-state]")).to_have_text("qrcode")
    assert_not_reloaded(page)
    shoot(page, "connection")
    hook(app, {"event": "connection.update", "instance": "main",
               "data": {"instance": "main", "state": "open"}})  # fmt: skip
    expect(page.locator("[data-session-state]")).to_have_text("open")
    expect(page.locator("[data-qr]")).to_have_count(0)


def test_the_campaign_list_and_connections_render_on_a_phone(
    browser: Browser, page: Page, app: RunningApp
) -> None:
    register(app, "phone", 2)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(app.base_url + "/")
    expect(page.locator("#campaigns")).to_contain_text("phone")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide on a 390px screen"
    shoot(page, "campaigns-phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(app.base_url + "/")
    shoot(page, "campaigns")
    page.goto(app.base_url + "/connections")
    shoot(page, "connections")
