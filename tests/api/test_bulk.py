"""`POST /v1/messages/bulk`: one result per item, in order; a bad item is its own error and
never spoils the others; what is created counts in its campaign like a single registration."""

from __future__ import annotations

from typing import Any

from tests.conftest import RunningApp
from tidings.api.bulk import MAX_ITEMS


def bulk(app: RunningApp, items: list[Any]) -> Any:
    response = app.api("POST", "/v1/messages/bulk", json={"items": items})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def item(pmid: str, **extra: Any) -> dict[str, Any]:
    return {"connection": "main", "provider_message_id": pmid, **extra}


def test_a_campaign_is_registered_in_one_call_and_again_changes_nothing(
    running_app: RunningApp,
) -> None:
    running_app.add_connection("evolution", "main")
    items = [item(f"M{i}", campaign="launch", recipient=f"+55319829{i:05d}") for i in range(500)]
    first = bulk(running_app, items)
    assert [r["result"] for r in first] == ["created"] * 500
    assert [r["index"] for r in first] == list(range(500))
    again = bulk(running_app, items)
    assert [(r["result"], r["id"]) for r in again] == [("exists", r["id"]) for r in first]
    campaign = running_app.api("GET", "/v1/campaigns/launch").json()
    assert campaign["counts"]["total"] == 500 and campaign["counts"]["sent"] == 500
    one = running_app.api("GET", f"/v1/messages/{first[7]['id']}").json()
    assert one["provider_message_id"] == "M7" and one["recipient"] == "+5531982900007"
    running_app.assert_no_drift()


def test_each_bad_item_is_its_own_error(running_app: RunningApp) -> None:
    running_app.add_connection("evolution", "main")
    assert running_app.api("POST", "/v1/messages", json=item("X1", campaign="a")).status_code == 201
    results = bulk(
        running_app,
        [
            item("B1"),
            item("B2", recipent="+5531982968010"),  # a typo in a field name
            item("B3", connection="nope"),
            item("B4", recipient="not a number"),
            item("X1", campaign="b"),  # already in campaign "a"
            item("B1"),  # twice in one request: the second one exists
            "not an object",
            item("B5", contact_ref="c" * 500),
        ],
    )
    summary = [(r["result"], (r["error"] or {}).get("code")) for r in results]
    assert summary == [
        ("created", None),
        ("error", "invalid_request"),
        ("error", "unknown_connection"),
        ("error", "invalid_recipient"),
        ("error", "conflict"),
        ("exists", None),
        ("error", "invalid_request"),
        ("error", "invalid_request"),
    ]
    assert "items.1.recipent" in results[1]["error"]["message"]
    assert "campaign 'a'" in results[4]["error"]["message"]
    assert "items.7.contact_ref" in results[7]["error"]["message"]
    assert results[5]["id"] == results[0]["id"]
    listed = running_app.api("GET", "/v1/messages").json()["items"]
    assert sorted(m["provider_message_id"] for m in listed) == ["B1", "X1"]


def test_more_items_than_one_call_takes_are_refused_whole(running_app: RunningApp) -> None:
    running_app.add_connection("evolution", "main")
    items = [item(f"M{i}") for i in range(MAX_ITEMS + 1)]
    response = running_app.api("POST", "/v1/messages/bulk", json={"items": items})
    assert response.status_code == 422
    assert "items" in response.json()["error"]["message"]
    assert running_app.api("GET", "/v1/messages").json()["items"] == []
