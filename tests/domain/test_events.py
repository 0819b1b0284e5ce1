"""A normalized event is a plain value: it compares, copies and pickles as one, its default
mappings included (they are shared, so they must not change)."""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, datetime

import pytest

from tidings.domain.events import EventKind, NormalizedEvent


def _pickled(event: NormalizedEvent) -> NormalizedEvent:
    loaded: NormalizedEvent = pickle.loads(pickle.dumps(event))  # noqa: S301  # our own bytes
    return loaded


def test_an_event_with_its_default_mappings_pickles_and_copies_as_itself() -> None:
    event = NormalizedEvent("m1", EventKind.SENT)
    for again in (_pickled(event), copy.deepcopy(event), copy.copy(event)):
        assert again == event
        assert again.metadata == {} and again.details == {}
        assert again.metadata is event.metadata  # the one shared empty mapping


def test_an_events_default_mappings_are_empty_and_cannot_be_changed() -> None:
    at = datetime(2026, 12, 5, tzinfo=UTC)
    event = NormalizedEvent("m1", EventKind.DELIVERED, occurred_at=at)
    assert dict(event.metadata) == {} and len(event.details) == 0 and "x" not in event.details
    with pytest.raises(KeyError):
        event.metadata["x"]
    with pytest.raises(TypeError):
        event.metadata["x"] = "1"  # type: ignore[index]


def test_an_event_with_its_own_mappings_keeps_them() -> None:
    event = NormalizedEvent("m1", EventKind.FAILED, metadata={"a": "1"}, details={"b": [1]})
    assert _pickled(event) == event
    assert event._replace(failure_code="E1").metadata == {"a": "1"}
