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


SENT_ELSEWHERE = "bulk registers messages sent elsewhere; send one message with POST /v1/messages"


def test_an_item_that_asks_to_send_is_refused_and_the_others_are_applied(
    running_app: RunningApp,
) -> None:
    """Bulk never sends: a send item would be stored without a provider id, and a second one
    would collide with the first, failing the whole request."""
    running_app.add_connection("evolution", "main")
    for attempt in range(3):
        results = bulk(
            running_app,
            [
                item(f"BK{attempt}", recipient="+5531982968010"),
                {"connection": "main", "send": True, "recipient": "+5531982968079", "text": "hi"},
            ],
        )
        assert [r["result"] for r in results] == ["created", "error"]
        assert results[1]["id"] is None
        assert results[1]["error"]["code"] == "invalid_request"
        assert SENT_ELSEWHERE in results[1]["error"]["message"]
    listed = running_app.api("GET", "/v1/messages").json()["items"]
    assert sorted(m["provider_message_id"] for m in listed) == ["BK0", "BK1", "BK2"]


def test_items_shaped_for_a_send_are_refused_with_the_same_reason(
    running_app: RunningApp,
) -> None:
    """Whatever makes an item a send (or not a registration) gets the reason bulk has, not the
    single route's advice to set "send": true; no item body makes the request answer 500."""
    running_app.add_connection("evolution", "main")
    sends = [
        {"connection": "main", "send": True, "recipient": "+5531982968079", "text": "hi"},
        {"connection": "main", "send": "true", "recipient": "+5531982968079", "text": "hi"},
        {"connection": "main", "send": 1, "recipient": "+5531982968079", "template": {"name": "t"}},
        item("S1", send=True, recipient="+5531982968079", text="hi"),
        item("S2", send=True),
        {"connection": "main", "recipient": "+5531982968079"},  # no provider_message_id
        {"connection": "main", "provider_message_id": None},
        item("S3", text="hi"),
        item("S4", template={"name": "t"}),
        item("S5", subject="Hello"),
        item("S6", send=True, recipent="+5531982968079"),  # a send with a typo
        {"send": True},
    ]
    others = [
        (item("R1", send=False), "created"),
        (item("R2", send="false"), "created"),
        (item("R3", text=None, template=None, subject=None), "created"),
        (item(""), "invalid_request"),
        (item("R4", send=None), "invalid_request"),
        (item("R5", send="maybe"), "invalid_request"),
        (item("R6", sent_at="0001-01-01T00:00:00+14:00"), "invalid_request"),  # before UTC began
        (None, "invalid_request"),
        ([], "invalid_request"),
    ]
    for again in (False, True):
        results = bulk(running_app, sends + [body for body, _ in others])
        for result in results[: len(sends)]:
            assert result["error"]["code"] == "invalid_request", result
            assert SENT_ELSEWHERE in result["error"]["message"], result
        expected = [("exists" if again else "created") if r == "created" else r for _, r in others]
        outcomes = [r["result"] if r["result"] != "error" else r["error"]["code"] for r in results]
        assert outcomes[len(sends) :] == expected
    listed = running_app.api("GET", "/v1/messages").json()["items"]
    assert sorted(m["provider_message_id"] for m in listed) == ["R1", "R2", "R3"]
