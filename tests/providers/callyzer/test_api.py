"""The history API client against a real fake Callyzer server: paging, the two-second rule,
429s, retries of what may pass, and one clear error for what cannot."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import free_port
from tests.fakes.callyzer_api import FakeCallyzer, FakeClock, flat_call, running_fake
from tidings.providers.callyzer.api import (
    CallyzerApiError,
    CallyzerClient,
    HistoryQuery,
    RateLimiter,
    Retry,
    _history_of,
    _retry_after,
    employee_number,
    employee_numbers,
)

KEY = "cz-secret-key-123"
NOW = datetime(2026, 7, 28, 12, 0, tzinfo=UTC)
QUERY = HistoryQuery(NOW - timedelta(days=1), NOW, ("91-9876543210",))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeCallyzer]:
    with running_fake(KEY, clock) as server:
        yield server


def client(fake: FakeCallyzer, clock: FakeClock, **kwargs: object) -> CallyzerClient:
    kwargs.setdefault("timeout", 2.0)
    return CallyzerClient(
        fake.url,
        str(kwargs.pop("api_key", KEY)),
        limiter=RateLimiter(2.0, clock),
        rng=lambda: 0.0,
        **kwargs,  # type: ignore[arg-type]
    )


def add_calls(fake: FakeCallyzer, count: int, synced: datetime = NOW - timedelta(hours=1)) -> None:
    for i in range(count):
        fake.add_call(flat_call(f"c{i:04d}"), int(synced.timestamp()) + i % 60)


def test_pages_until_every_announced_call_is_fetched(fake: FakeCallyzer, clock: FakeClock) -> None:
    add_calls(fake, 250)
    with client(fake, clock) as api:
        pages = list(api.history(QUERY))
    assert [len(p.calls) for p in pages] == [100, 100, 50]
    assert [p.total_records for p in pages] == [250, 250, 250]
    assert len({c["id"] for p in pages for c in p.calls}) == 250
    bodies = [r.body for r in fake.history_requests]
    assert [b["page_no"] for b in bodies] == [1, 2, 3]
    assert {b["page_size"] for b in bodies} == {100}
    assert bodies[0]["synced_from"] == int((NOW - timedelta(days=1)).timestamp())
    assert bodies[0]["synced_to"] == int(NOW.timestamp())
    assert bodies[0]["emp_numbers"] == ["91-9876543210"]
    assert {r.authorization for r in fake.history_requests} == {f"Bearer {KEY}"}


def test_requests_are_two_seconds_apart_on_the_clock(fake: FakeCallyzer, clock: FakeClock) -> None:
    add_calls(fake, 30)
    with client(fake, clock, page_size=10) as api:
        assert sum(len(p.calls) for p in api.history(QUERY)) == 30
    times = [r.at for r in fake.history_requests]
    assert len(times) == 3
    assert all(later - earlier >= 2.0 for earlier, later in itertools.pairwise(times))
    assert all(r.status == 200 for r in fake.history_requests)  # the fake never had to refuse


def test_a_page_shorter_than_asked_ends_the_history_without_a_total(clock: FakeClock) -> None:
    calls = [flat_call("a"), flat_call("b")]
    assert _history_of(httpx.Response(200, json={"message": "Success", "result": calls})) == (
        calls,
        None,
    )


def test_an_empty_history_is_one_request(fake: FakeCallyzer, clock: FakeClock) -> None:
    with client(fake, clock) as api:
        pages = list(api.history(QUERY))
    assert [(p.calls, p.total_records) for p in pages] == [([], 0)]


def test_a_429_is_honoured_for_as_long_as_retry_after_says(
    fake: FakeCallyzer, clock: FakeClock
) -> None:
    add_calls(fake, 3)
    fake.retry_after = "7"
    fake.fail_next("429")
    with client(fake, clock) as api:
        [page] = list(api.history(QUERY))
        assert (api.requests, api.retries) == (2, 1)
    assert len(page.calls) == 3
    first, second = fake.history_requests
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 7.0


def test_requests_too_close_get_a_429_that_the_client_waits_out(
    fake: FakeCallyzer, clock: FakeClock
) -> None:
    """Two clients of one account, each with its own limiter (two processes): the second is
    refused by the server and waits as told instead of failing."""
    add_calls(fake, 1)
    with client(fake, clock) as one, client(fake, clock) as other:
        assert len(one.history_page(QUERY, 1).calls) == 1
        assert len(other.history_page(QUERY, 1).calls) == 1
        assert other.retries == 1
    assert [r.status for r in fake.history_requests] == [200, 429, 200]


def test_429s_past_their_budget_are_a_transient_error(fake: FakeCallyzer, clock: FakeClock) -> None:
    fake.fail_next(*["429"] * 10)
    with (
        client(fake, clock, retry=Retry(rate_limited_waits=2)) as api,
        pytest.raises(CallyzerApiError) as raised,
    ):
        api.history_page(QUERY, 1)
    assert raised.value.kind == "transient"
    assert raised.value.status == 429
    assert len(fake.history_requests) == 3


def test_a_wrong_key_is_credentials_rejected_at_once(fake: FakeCallyzer, clock: FakeClock) -> None:
    with client(fake, clock, api_key="wrong-key") as api, pytest.raises(CallyzerApiError) as raised:
        api.history_page(QUERY, 1)
    error = raised.value
    assert error.kind == "credentials_rejected" and error.credentials_rejected
    assert error.status == 401
    assert "Invalid access token" in str(error)
    assert "wrong-key" not in str(error)
    assert len(fake.history_requests) == 1  # never retried: it cannot pass by itself


@pytest.mark.parametrize("failure", ["db400", "500"])
def test_what_may_pass_is_tried_again_with_backoff(
    fake: FakeCallyzer, clock: FakeClock, failure: str
) -> None:
    add_calls(fake, 2)
    fake.fail_next(failure, failure)  # type: ignore[arg-type]
    with client(fake, clock) as api:
        page = api.history_page(QUERY, 1)
        assert (api.requests, api.retries, page.requests) == (3, 2, 3)
    assert len(page.calls) == 2
    # Backoff 2 s then 4 s (no jitter here), both longer than the rate limit's spacing.
    assert clock.sleeps == [2.0, 4.0]


def test_the_database_error_three_times_is_a_transient_error_with_its_tries(
    fake: FakeCallyzer, clock: FakeClock
) -> None:
    fake.fail_next("db400", "db400", "db400")
    with client(fake, clock) as api, pytest.raises(CallyzerApiError) as raised:
        api.history_page(QUERY, 1)
    assert (raised.value.kind, raised.value.status, raised.value.tries) == ("transient", 400, 3)
    assert "database" in str(raised.value) and "tried 3 times" in str(raised.value)


def test_a_time_out_twice_then_success_takes_three_tries(
    fake: FakeCallyzer, clock: FakeClock
) -> None:
    add_calls(fake, 1)
    fake.fail_next("hang", "hang")
    with client(fake, clock, timeout=0.3) as api:
        page = api.history_page(QUERY, 1)
        assert (api.requests, api.retries) == (3, 2)
    assert len(page.calls) == 1


def test_a_time_out_three_times_says_so(fake: FakeCallyzer, clock: FakeClock) -> None:
    fake.fail_next("hang", "hang", "hang")
    with client(fake, clock, timeout=0.2) as api, pytest.raises(CallyzerApiError) as raised:
        api.history_page(QUERY, 1)
    assert raised.value.kind == "transient"
    assert raised.value.tries == 3
    assert "time-out" in str(raised.value) and "0.2s" in str(raised.value)


def test_another_refusal_is_not_retried(fake: FakeCallyzer, clock: FakeClock) -> None:
    fake.fail_next("bad400")
    with client(fake, clock) as api, pytest.raises(CallyzerApiError) as raised:
        api.history_page(QUERY, 1)
    assert (raised.value.kind, raised.value.status) == ("other", 400)
    assert "invalid number format" in str(raised.value)
    assert len(fake.history_requests) == 1


def test_an_answer_that_is_not_json_is_an_error(fake: FakeCallyzer, clock: FakeClock) -> None:
    fake.fail_next("not_json")
    with client(fake, clock) as api, pytest.raises(CallyzerApiError) as raised:
        api.history_page(QUERY, 1)
    assert raised.value.kind == "other"
    assert "not JSON" in str(raised.value)


def test_an_answer_that_cannot_be_decoded_is_retried_then_said(
    fake: FakeCallyzer, clock: FakeClock
) -> None:
    """A body that is not the gzip its header says (a proxy in the way) is tried again like a
    time-out, and after the last try the error says what happened instead of a traceback."""
    add_calls(fake, 1)
    fake.fail_next("bad_gzip")
    with client(fake, clock) as api:
        assert len(api.history_page(QUERY, 1).calls) == 1
        assert api.retries == 1
    fake.fail_next("bad_gzip", "bad_gzip", "bad_gzip")
    with client(fake, clock) as api, pytest.raises(CallyzerApiError) as raised:
        api.history_page(QUERY, 1)
    assert (raised.value.kind, raised.value.tries) == ("transient", 3)
    assert "could not be decoded" in str(raised.value)


def test_a_wrong_api_url_says_how_it_should_look(fake: FakeCallyzer, clock: FakeClock) -> None:
    with (
        CallyzerClient(
            fake.url.rsplit("/api", 1)[0] + "/nothing", KEY, limiter=RateLimiter(2.0, clock)
        ) as api,
        pytest.raises(CallyzerApiError) as raised,
    ):
        api.history_page(QUERY, 1)
    assert (raised.value.kind, raised.value.status) == ("other", 404)
    assert "api_url" in str(raised.value)


def test_nobody_listening_is_transient(clock: FakeClock) -> None:
    url = f"http://127.0.0.1:{free_port()}/api/v2.2"
    with (
        CallyzerClient(url, KEY, limiter=RateLimiter(2.0, clock)) as api,
        pytest.raises(CallyzerApiError) as raised,
    ):
        api.history_page(QUERY, 1)
    assert raised.value.kind == "transient"
    assert raised.value.tries == 3
    assert "could not reach Callyzer" in str(raised.value)


@pytest.mark.parametrize(
    ("document", "calls", "total"),
    [
        ({"message": "Success", "result": [{"id": "1"}], "total_records": 1}, [{"id": "1"}], 1),
        ({"message": "Success", "data": [{"id": "1"}], "total": "1"}, [{"id": "1"}], 1),
        ({"message": "Success", "result": [], "total_records": "0"}, [], 0),
        ({"message": "No Data Found", "result": None}, [], None),
        ({"message": "No Data Found"}, [], None),
        ([{"id": "1"}, {"id": "2"}], [{"id": "1"}, {"id": "2"}], None),
    ],
)
def test_every_history_shape_seen_is_read(
    document: object, calls: list[object], total: int | None
) -> None:
    assert _history_of(httpx.Response(200, json=document)) == (calls, total)


@pytest.mark.parametrize("document", [{"result": {"id": "1"}}, "Success", 12])
def test_a_history_without_a_list_of_calls_is_an_error(document: object) -> None:
    with pytest.raises(CallyzerApiError) as raised:
        _history_of(httpx.Response(200, json=document))
    assert raised.value.kind == "other"


def test_retry_after_is_read_in_seconds_or_as_a_date() -> None:
    assert _retry_after(httpx.Response(429, headers={"retry-after": "3"}), 2.0) == 3.0
    assert _retry_after(httpx.Response(429), 2.0) == 2.0
    assert _retry_after(httpx.Response(429, headers={"retry-after": "soon"}), 2.0) == 2.0
    assert _retry_after(httpx.Response(429, headers={"retry-after": "-1"}), 2.0) == 2.0
    # Repeated, httpx joins the values ("3, 9"): the first is the wait, as for every sender.
    repeated = httpx.Response(429, headers=[("retry-after", "3"), ("retry-after", "9")])
    assert _retry_after(repeated, 2.0) == 3.0
    later = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 25 <= _retry_after(httpx.Response(429, headers={"retry-after": later}), 2.0) <= 31


def test_employee_numbers_are_written_with_a_hyphen_after_the_country_code() -> None:
    assert employee_number("+919876543210") == "91-9876543210"
    assert employee_number("+48601234567") == "48-601234567"
    assert employee_number("919876543210") == "91-9876543210"
    assert employee_number("not a number") == ""
    assert employee_numbers(["+919876543210", "+919876543210", "+48601234567"]) == (
        "48-601234567",
        "91-9876543210",
    )


def test_a_page_size_callyzer_refuses_is_refused_here() -> None:
    with pytest.raises(ValueError, match="page_size"):
        CallyzerClient("http://127.0.0.1:9/api", KEY, page_size=101)
