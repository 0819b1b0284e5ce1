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
