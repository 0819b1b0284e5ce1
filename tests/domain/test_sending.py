"""The pure rules of sending: what a person's action does to a campaign, its pace, its text
and a contact's template variables. Plain data, no store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tidings.domain.errors import Invalid
from tidings.domain.sending import (
    Action,
    DispatchState,
    act,
    contact_from_mapping,
    next_step_at,
    placeholders,
    provisional_id,
    render,
    slot_interval,
    template_variables,
    unknown_placeholders,
)

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("state", "action", "start_at", "after"),
    [
        (DispatchState.DRAFT, Action.START, None, DispatchState.RUNNING),
        (DispatchState.DRAFT, Action.START, NOW + timedelta(hours=1), DispatchState.SCHEDULED),
        (DispatchState.DRAFT, Action.START, NOW - timedelta(hours=1), DispatchState.RUNNING),
        (DispatchState.RUNNING, Action.PAUSE, None, DispatchState.PAUSED),
        (DispatchState.SCHEDULED, Action.PAUSE, None, DispatchState.PAUSED),
        (DispatchState.PAUSED, Action.RESUME, None, DispatchState.RUNNING),
        (DispatchState.PAUSED, Action.CANCEL, None, DispatchState.CANCELLED),
        (DispatchState.DRAFT, Action.CANCEL, None, DispatchState.CANCELLED),
    ],
)
def test_what_each_action_leads_to(
    state: DispatchState, action: Action, start_at: datetime | None, after: DispatchState
) -> None:
    assert act(state, action, NOW, start_at) is after


@pytest.mark.parametrize(
    ("state", "action"),
    [
        (DispatchState.RUNNING, Action.START),
        (DispatchState.RUNNING, Action.RESUME),
        (DispatchState.PAUSED, Action.PAUSE),
        (DispatchState.DONE, Action.CANCEL),
        (DispatchState.CANCELLED, Action.RESUME),
        (DispatchState.DONE, Action.START),
    ],
)
def test_an_action_the_state_does_not_allow_is_refused_by_name(
    state: DispatchState, action: Action
) -> None:
    with pytest.raises(Invalid, match=f"cannot {action.value} a campaign that is {state.value}"):
        act(state, action, NOW, None)


@pytest.mark.parametrize(
    ("state", "action", "hint"),
    [
        (DispatchState.PAUSED, Action.START, "resume it"),
        (DispatchState.DRAFT, Action.RESUME, "start it"),
        (DispatchState.RUNNING, Action.START, "it is being sent already"),
    ],
)
def test_a_refused_action_says_what_was_likely_meant(
    state: DispatchState, action: Action, hint: str
) -> None:
    with pytest.raises(Invalid, match=f"{state.value}: {hint}$"):
        act(state, action, NOW, None)


def test_the_pace_halves_while_unhealthy_and_no_rate_means_no_wait() -> None:
    assert slot_interval(600, healthy=True) == timedelta(seconds=0.1)
    assert slot_interval(600, healthy=False) == timedelta(seconds=0.2)
    assert slot_interval(None, healthy=False) == timedelta(0)


def test_a_campaign_behind_its_clock_sends_the_missed_slots_at_twice_its_rate() -> None:
    interval = timedelta(seconds=0.1)
    on_time = NOW + timedelta(seconds=0.08)  # its next slot is still to come
    assert next_step_at(on_time, NOW, interval) == on_time
    behind = NOW - timedelta(seconds=3)  # a stall of three seconds: 30 slots missed
    assert next_step_at(behind, NOW, interval) == NOW + timedelta(seconds=0.05)
    nearly = NOW + timedelta(seconds=0.01)
    assert next_step_at(nearly, NOW, interval) == NOW + timedelta(seconds=0.05)


def test_a_campaign_on_an_unhealthy_connection_makes_up_nothing() -> None:
    halved = timedelta(seconds=0.2)  # 600 a minute, halved
    behind = NOW - timedelta(seconds=3)
    assert next_step_at(behind, NOW, halved, healthy=False) == NOW + halved


def test_the_text_uses_each_contacts_values() -> None:
    text = "Hi {{ name }}, order {{var1}} ({{var1}})"
    assert placeholders(text) == ["name", "var1"]
    assert render(text, {"name": "Ana", "var1": "1042"}) == "Hi Ana, order 1042 (1042)"


def test_template_variables_are_var1_var2_in_number_order_whatever_the_columns() -> None:
    row = {"contact_ref": "c1", "recipient": "+1555", "name": "Ana", "var2": "b",
           "city": "Porto", "var10": "j", "var1": "a"}  # fmt: skip
    contact = contact_from_mapping(row)
    assert contact.name == "Ana" and contact.contact_ref == "c1"
    assert template_variables(contact.variables) == ["a", "b", "j"]


def test_a_contact_value_that_is_not_text_is_refused() -> None:
    with pytest.raises(Invalid, match="must be text"):
        contact_from_mapping({"contact_ref": "c", "recipient": "+1", "var1": {"x": 1}})
    assert contact_from_mapping({"contact_ref": 7, "recipient": "+1"}).contact_ref == "7"


def test_the_provisional_id_is_the_same_for_the_same_key() -> None:
    assert provisional_id("k") == provisional_id("k") != provisional_id("k2")
    assert provisional_id("k").startswith("tidings-send-") and len(provisional_id("k")) < 200


def test_unknown_placeholders_are_those_no_contact_names() -> None:
    items = [
        {"contact_ref": "a", "recipient": "+1", "name": "Ana"},
        {"contact_ref": "b", "recipient": "+2", "variables": {"order": "7"}},
        "not a contact",
    ]
    text = "Hi {{name}}, {{order}} {{nmae}} {{nmae}} {{var1}}"
    assert unknown_placeholders(text, items) == ["nmae", "var1"]
    assert unknown_placeholders("Hi {{name}}", items) == []
