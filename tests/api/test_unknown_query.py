"""A misspelled query parameter is a 422 naming it and what the route takes, never a list
that silently ignores the filter."""

from __future__ import annotations

from tests.conftest import RunningApp


def test_a_misspelled_filter_is_refused_by_name(running_app: RunningApp) -> None:
    answer = running_app.api("GET", "/v1/messages", params={"campain": "spring"})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "unknown_parameter"
    assert "unknown query parameter 'campain'" in error["message"]
    assert "campaign" in error["message"]
    assert running_app.api("GET", "/v1/messages", params={"campaign": "spring"}).status_code == 200


def test_every_declared_parameter_is_still_taken(running_app: RunningApp) -> None:
    """Parameters declared by a route's dependencies count as declared too (paging)."""
    params = {"campaign": "spring", "status": "delivered", "limit": "5"}
    assert running_app.api("GET", "/v1/messages", params=params).status_code == 200
    assert running_app.api("GET", "/v1/calls", params={"limit": "5"}).status_code == 200


def test_a_short_list_takes_the_paging_every_list_takes(running_app: RunningApp) -> None:
    """Connections, tokens and subscriptions come in one page; `limit` and `cursor` are still
    taken, as by every list, so one paging client works on all of them."""
    for path in ("/v1/connections", "/v1/tokens", "/v1/subscriptions"):
        answer = running_app.api("GET", path, params={"limit": "1000"})
        assert answer.status_code == 200, (path, answer.text)
        assert answer.json()["next_cursor"] is None
