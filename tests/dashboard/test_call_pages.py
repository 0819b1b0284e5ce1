"""The call pages as a sales-ops person uses them: calls by adviser with masked numbers and a
reveal, filters and pages in the URL, the CSV export, calls without a lead, a lead with its calls
and messages, the team's figures, and what a bad link or no login gets.

Calls arrive as Callyzer's webhook (the employees list fixture: Asha's outgoing call to lead
L-1 and her missed call, Piotr's incoming call), through the real intake and worker."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event

from tests.conftest import RunningApp, fixture_json
from tests.dashboard.conftest import Dashboard
from tidings.config import Settings
from tidings.dashboard import call_pages, csv_export
from tidings.storage import connections, lead_messages
from tidings.storage.db import Database
from tidings.storage.messages import blank_row
from tidings.storage.schema import messages

KOLKATA = "Asia/Kolkata"
LEAD_NUMBER = "+919123456780"  # L-1's phone: Asha's outgoing call
MISSED_NUMBER = "+919123456781"  # Asha's missed call: no lead has it
POLISH_NUMBER = "+48512345678"  # Piotr's incoming call: no lead has it
ASHA_NUMBER = "+919876543210"  # Asha's own phone
SECOND_NUMBER = "+919812345670"  # L-1's second phone, in the lead page's test
NUMBERS = [LEAD_NUMBER, MISSED_NUMBER, POLISH_NUMBER, ASHA_NUMBER, SECOND_NUMBER]


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The shared fixture's, with pages in Kolkata time (TIDINGS_TIMEZONE) and the labels in
    the language a test's `locale` mark names (TIDINGS_LOCALE)."""
    marked = request.node.get_closest_marker("locale")
    return settings.model_copy(
        update={"locale": marked.args[0] if marked else "en", "timezone": KOLKATA}
    )


def hook(app: RunningApp, body: Any) -> None:
    answer = app.hook("callyzer", "cz", json.dumps(body))
    assert answer.status_code == 202, answer.text


def flat(call_id: str, **fields: Any) -> dict[str, Any]:
    return {**fixture_json("callyzer", "flat-call-built.json"), "id": call_id, **fields}


@pytest.fixture
def seeded(dashboard: Dashboard) -> Dashboard:
    """Lead L-1 with Ravi's number, then Callyzer's three calls, applied by the worker."""
    app = dashboard.app
    app.add_connection("callyzer", "cz", timezone=KOLKATA, region="IN")
    lead = {"external_id": "L-1", "name": "Ravi", "owner": "asha@example.com",
            "phones": [LEAD_NUMBER]}  # fmt: skip
    assert app.api("POST", "/v1/leads", json=lead).status_code == 201
    hook(app, fixture_json("callyzer", "employees-list-built.json"))
    app.wait_idle()
    return dashboard


def html_of(dashboard: Dashboard, path: str, status: int = 200) -> str:
    answer = dashboard.page(path)
    assert answer.status_code == status, answer.text
    return answer.text


def call_rows(html: str) -> dict[int, str]:
    """Each call row of a page, by call id."""
    return {int(i): row for i, row in re.findall(r'<tr id="call-(\d+)">(.*?)</tr>', html, re.S)}


def call_ids(app: RunningApp, **params: Any) -> dict[str, int]:
    """Call ids by Callyzer's id, from the API."""
    items = app.api("GET", "/v1/calls", params=params).json()["items"]
    return {c["provider_call_id"]: c["id"] for c in items}


def assert_no_full_number(html: str) -> None:
    for number in NUMBERS:
        assert number not in html
        assert number[3:] not in html  # nor without its country code


def next_link(html: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" rel="next">', html)
    return found.group(1).replace("&amp;", "&") if found else None


def test_calls_show_the_adviser_the_type_and_a_masked_number_revealed_on_request(
    seeded: Dashboard,
) -> None:
    ids = call_ids(seeded.app)
    html = html_of(seeded, "/calls")
    rows = call_rows(html)
    assert set(rows) == set(ids.values())
    outgoing = rows[ids["6641b2f0c1a2b3d4e5f60718"]]
    assert "Asha Verma" in outgoing and "EMP-001" in outgoing
    assert "Outgoing" in outgoing
    assert "2026-07-28 10:44:41" in outgoing  # Callyzer's local time, shown in Kolkata
    assert "1:04" in outgoing  # 64 seconds
    assert '<a href="/leads/L-1">L-1</a>' in outgoing
    assert "+91********80" in outgoing
    assert "unmatched" in rows[ids["6641b2f0c1a2b3d4e5f60719"]]
    assert "Incoming" in rows[ids["6641b2f0c1a2b3d4e5f6071a"]]
    assert_no_full_number(html)

    reveal = f"/reveal/call/{ids['6641b2f0c1a2b3d4e5f60718']}"
    assert f'data-reveal="{reveal}"' in outgoing
    shown = seeded.client.get(reveal)
    assert shown.status_code == 200
    assert shown.json() == {"value": LEAD_NUMBER}
    assert seeded.client.get("/reveal/call/999999").status_code == 404


@pytest.mark.locale("pl")
def test_type_labels_follow_tidings_locale(seeded: Dashboard) -> None:
    html = html_of(seeded, "/calls")
    assert "Wychodzące" in html and "Nieodebrane" in html and "Przychodzące" in html


def test_filters_in_the_url_narrow_the_list(seeded: Dashboard) -> None:
    ids = call_ids(seeded.app)
    piotr = call_rows(html_of(seeded, "/calls?employee=EMP-002"))
    assert set(piotr) == {ids["6641b2f0c1a2b3d4e5f6071a"]}
    missed = call_rows(html_of(seeded, "/calls?type=missed"))
    assert set(missed) == {ids["6641b2f0c1a2b3d4e5f60719"]}
    # Times a person types are Kolkata's: from 10:00 on the 28th leaves Piotr's 09:15 call out.
    later = call_rows(html_of(seeded, "/calls?since=2026-07-28T10:00:00"))
    assert set(later) == {ids["6641b2f0c1a2b3d4e5f60718"], ids["6641b2f0c1a2b3d4e5f60719"]}
    day = call_rows(html_of(seeded, "/calls?since=2026-07-28&until=2026-07-28"))
    assert set(day) == set(ids.values())  # `until` includes the day it names
    before = html_of(seeded, "/calls?until=2026-07-27")
    assert call_rows(before) == {}
    assert "No calls match these filters" in before
    both = html_of(seeded, "/calls?employee=EMP-001&type=outgoing")
    assert set(call_rows(both)) == {ids["6641b2f0c1a2b3d4e5f60718"]}
    assert 'href="/calls.csv?employee=EMP-001&amp;type=outgoing"' in both


def test_the_next_page_link_continues_where_the_first_page_ended(seeded: Dashboard) -> None:
    hook(seeded.app, [flat(f"page-{i}", duration=i + 1) for i in range(55)])
    seeded.app.wait_idle()
    first = html_of(seeded, "/calls?employee=EMP-001")
    first_rows = list(call_rows(first))
    assert len(first_rows) == call_pages.PAGE
    assert first_rows == sorted(first_rows, reverse=True)  # newest first
    link = next_link(first)
    assert link is not None and "employee=EMP-001" in link  # the filter stays
    second = html_of(seeded, link)
    second_rows = list(call_rows(second))
    assert len(second_rows) == 55 + 2 - call_pages.PAGE  # Asha's 2 calls and the 55
    assert max(second_rows) < min(first_rows)
    assert next_link(second) is None
    assert html_of(seeded, "/calls?cursor=garbage", status=400).count("page link is broken") == 1


def exported(dashboard: Dashboard, path: str) -> list[dict[str, str]]:
    answer = dashboard.client.get(path)
    assert answer.status_code == 200, answer.text
    return list(csv.DictReader(io.StringIO(answer.text)))


def test_csv_export_streams_the_filtered_calls_masked_unless_full(
    seeded: Dashboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook(seeded.app, [flat(f"csv-{i}") for i in range(4)])
    seeded.app.wait_idle()
    # Chunks of 2 make the export read 4 times for Asha's 6 outgoing and missed calls: every
    # call once, none lost or repeated at a chunk's edge.
    monkeypatch.setattr(csv_export, "CHUNK", 2)
    answer = seeded.client.get("/calls.csv?employee=EMP-001")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    header, *rows = list(csv.reader(io.StringIO(answer.text)))
    assert header == call_pages.CSV_COLUMNS
    expected = sorted(call_ids(seeded.app, employee="EMP-001").values(), reverse=True)
    assert [int(r[0]) for r in rows] == expected and len(expected) == 6
    assert_no_full_number(answer.text)

    missed = exported(seeded, "/calls.csv?type=missed")
    assert [(r["type"], r["type_label"], r["client_number"]) for r in missed] == [
        ("missed", "Missed", "+91********81")
    ]
    full = exported(seeded, "/calls.csv?type=missed&full=1")
    assert [r["client_number"] for r in full] == [MISSED_NUMBER]
    assert seeded.client.get("/calls.csv?since=yesterday").status_code == 400


def test_the_unmatched_page_lists_calls_no_lead_has_and_says_how_to_fix_them(
    seeded: Dashboard,
) -> None:
    ids = call_ids(seeded.app)
    html = html_of(seeded, "/calls/unmatched")
    rows = call_rows(html)
    assert set(rows) == {ids["6641b2f0c1a2b3d4e5f60719"], ids["6641b2f0c1a2b3d4e5f6071a"]}
    assert "+91********81" in rows[ids["6641b2f0c1a2b3d4e5f60719"]]
    assert "tidings import leads FILE" in html
    assert_no_full_number(html)
    only_missed = call_rows(html_of(seeded, "/calls/unmatched?type=missed"))
    assert set(only_missed) == {ids["6641b2f0c1a2b3d4e5f60719"]}

    # Adding a lead with the missed number takes that call off the list.
    lead = {"external_id": "L-2", "phones": [MISSED_NUMBER]}
    assert seeded.app.api("POST", "/v1/leads", json=lead).status_code == 201
    assert set(call_rows(html_of(seeded, "/calls/unmatched"))) == {ids["6641b2f0c1a2b3d4e5f6071a"]}


def test_an_empty_unmatched_list_and_call_list_say_what_to_do(dashboard: Dashboard) -> None:
    assert "tidings import leads FILE" in html_of(dashboard, "/calls/unmatched")
    assert "tidings connection add callyzer" in html_of(dashboard, "/calls")


def test_a_lead_page_shows_its_phones_masked_its_calls_and_its_messages(seeded: Dashboard) -> None:
    app = seeded.app
    lead = {"external_id": "L-1", "name": "Ravi", "owner": "asha@example.com",
            "phones": [LEAD_NUMBER, SECOND_NUMBER]}  # fmt: skip
    assert app.api("POST", "/v1/leads", json=lead).status_code == 200
    app.add_connection("evolution", "wa")
    sent = (("M-1", LEAD_NUMBER), ("M-2", MISSED_NUMBER), ("M-3", SECOND_NUMBER))
    for message_id, recipient in sent:
        body = {"connection": "wa", "provider_message_id": message_id, "recipient": recipient}
        assert app.api("POST", "/v1/messages", json=body).status_code == 201
    messages = {m["provider_message_id"]: m["id"] for m in app.api("GET", "/v1/messages").json()
                ["items"]}  # fmt: skip
    ids = call_ids(app)

    html = html_of(seeded, "/leads/L-1")
    assert "Ravi" in html
    assert "asha@example.com" not in html and "a***@example.com" in html  # the owner's email
    found = re.search(r'data-reveal="(/reveal/lead/\d+)/0"', html)
    assert found, "no reveal button for the lead's first phone"
    reveal = found.group(1)  # by the lead's id in the store, never its external id
    assert f'data-reveal="{reveal}/1"' in html
    assert set(call_rows(html)) == {ids["6641b2f0c1a2b3d4e5f60718"]}
    shown = [int(i) for i in re.findall(r'href="/messages/(\d+)"', html)]
    assert shown == [messages["M-3"], messages["M-1"]]  # newest first; not another number's
    assert_no_full_number(html)

    assert seeded.client.get(f"{reveal}/0").json() == {"value": LEAD_NUMBER}
    assert seeded.client.get(f"{reveal}/1").json() == {"value": SECOND_NUMBER}
    assert seeded.client.get(f"{reveal}/2").status_code == 404
    assert seeded.client.get("/reveal/lead/999999/0").status_code == 404
    # The lead's page links to its calls' advisers, and the calls page back to the lead.
    assert 'href="/calls?employee=EMP-001"' in html
    assert 'href="/leads/L-1"' in html_of(seeded, "/calls")


def test_an_unknown_lead_is_a_404_page(dashboard: Dashboard) -> None:
    html = html_of(dashboard, "/leads/nobody", status=404)
    assert "There is no lead &#39;nobody&#39;" in html


def adviser_counts(html: str, adviser: str) -> dict[str, str]:
    row = re.search(rf'<tr data-adviser="{re.escape(adviser)}">(.*?)</tr>', html, re.S)
    assert row, html
    return dict(re.findall(r'data-count="(\w+)">([^<]*)<', row.group(1)))


def test_the_team_page_counts_each_advisers_calls_by_type(seeded: Dashboard) -> None:
    html = html_of(seeded, "/team?since=2026-07-28&until=2026-07-28")
    asha = adviser_counts(html, "EMP-001")
    counts = (asha["calls"], asha["outgoing"], asha["missed"], asha["incoming"])
    assert counts == ("2", "1", "1", "0")
    piotr = adviser_counts(html, "EMP-002")
    assert (piotr["calls"], piotr["incoming"]) == ("1", "1")
    assert 'data-day="2026-07-28"' in html
    assert 'href="/calls?employee=EMP-001&amp;since=2026-07-28&amp;until=2026-07-28"' in html
    # The same figures the API answers for the same window.
    window = {"since": "2026-07-28T00:00:00+05:30", "until": "2026-07-29T00:00:00+05:30"}
    api = seeded.app.api("GET", "/v1/calls/stats", params=window).json()
    [api_asha] = [e for e in api["employees"] if e["employee"] == "EMP-001"]
    assert int(asha["calls"]) == api_asha["calls"]
    assert f"{api_asha['answered_share'] * 100:.1f}%" in html

    outside = html_of(seeded, "/team?since=2026-08-01")
    assert 'data-adviser="' not in outside
    assert "No calls started in this window" in outside
    assert html_of(seeded, "/team?until=not-a-day", status=400).count("not a date") == 1


def test_the_team_page_shows_the_last_seven_days_by_default(seeded: Dashboard) -> None:
    now = datetime.now(ZoneInfo(KOLKATA))
    recent = now - timedelta(hours=1)
    old = now - timedelta(days=10)
    hook(seeded.app, [
        flat(f"at-{stamp:%Y%m%d%H%M}", emp_code="EMP-009", emp_name="Recent",
             call_date=f"{stamp:%Y-%m-%d}", call_time=f"{stamp:%H:%M:%S}",
             modified_at=f"{stamp:%Y-%m-%d %H:%M:%S} IST")
        for stamp in (recent, old)
    ])  # fmt: skip
    seeded.app.wait_idle()
    html = html_of(seeded, "/team")
    assert adviser_counts(html, "EMP-009")["calls"] == "1"  # not the one 10 days ago
    assert 'data-adviser="EMP-001"' not in html  # July's calls are outside the window
    first = (now - timedelta(days=6)).date().isoformat()
    assert f'name="since" value="{first}"' in html


def test_the_team_page_without_calls_says_how_calls_arrive(dashboard: Dashboard) -> None:
    html = html_of(dashboard, "/team")
    assert "tidings connection add callyzer" in html


def test_an_adviser_known_only_by_number_is_masked_too(seeded: Dashboard) -> None:
    """Callyzer gives an adviser without a code their number as the code: shown masked, and
    never put in a link."""
    hook(seeded.app, flat("no-code", emp_code="", emp_name=""))
    seeded.app.wait_idle()
    for path in ("/calls", "/team?since=2026-07-01", "/calls/unmatched", "/leads/L-1"):
        assert_no_full_number(html_of(seeded, path))


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/calls?since=yesterday", "Since: &#39;yesterday&#39; is not a date"),
        ("/calls?until=2026-13-45", "Until: &#39;2026-13-45&#39; is not a date"),
        ("/calls?type=busy", "There is no call type &#39;busy&#39;"),
        ("/calls/unmatched?since=soon", "is not a date"),
        ("/leads/L-1?since=soon", "is not a date"),
    ],
)
def test_a_bad_filter_is_a_400_page_that_says_why(
    seeded: Dashboard, path: str, message: str
) -> None:
    html = html_of(seeded, path, status=400)
    assert message in html
    assert "Traceback" not in html


@pytest.mark.parametrize("path", ["/calls", "/calls.csv", "/calls/unmatched", "/leads/L-1",
                                  "/team?since=2026-07-01"])  # fmt: skip
def test_without_a_login_each_page_sends_the_browser_to_login(
    running_app: RunningApp, path: str
) -> None:
    answer = running_app.client.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=")


def test_without_a_login_nothing_is_revealed(running_app: RunningApp) -> None:
    assert running_app.client.get("/reveal/call/1").status_code == 401
    assert running_app.client.get("/reveal/lead/1/0").status_code == 401


def test_a_leads_messages_are_read_through_the_recipient_index(db: Database) -> None:
    """Among thousands of messages, a lead's are found by `ix_messages_recipient` on both
    stores, not by walking every message newest first."""
    now = datetime.now(UTC)
    with db.write() as conn:
        wa = connections.add_connection(conn, "evolution", "wa", "s", {}, now)
        rows = []
        for i in range(3000):
            row = blank_row(wa.id, f"P{i}", now)
            row["recipient"] = f"+1555{i % 1500:07d}"
            rows.append(row)
        conn.execute(messages.insert(), rows)
        conn.exec_driver_sql("ANALYZE")
    captured: list[tuple[str, Any]] = []

    def capture(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    with db.read() as conn:
        event.listen(db.engine, "before_cursor_execute", capture)
        try:
            found = lead_messages.messages_to(conn, ["+15550000007", "+15550000008"])
        finally:
            event.remove(db.engine, "before_cursor_execute", capture)
        [(statement, parameters)] = captured
        prefix = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN "
        plan = " / ".join(
            str(r[-1]) for r in conn.exec_driver_sql(prefix + statement, parameters).all()
        )
    assert [r.id for r in found] == [1509, 1508, 9, 8]
    assert "ix_messages_recipient" in plan, plan
