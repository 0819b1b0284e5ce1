"""An update names only the columns an event changes, and stores what a full update would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from tidings.storage.messages import _same, _update_message

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SAO_PAULO = timezone(timedelta(hours=-3))


def _changed(row: Any, values: dict[str, Any]) -> tuple[str, ...]:
    return tuple(name for name, value in values.items() if not _same(getattr(row, name), value))


def _stored(**values: Any) -> Any:
    base = {
        "state": "sent",
        "sequence": 1,
        "sent_at": NOW,
        "delivered_at": None,
        "failed_after_send": False,
        "metadata": {"n": 1},
        "campaign_id": None,
        "updated_at": NOW,
    }
    return SimpleNamespace(**{**base, **values})


def test_only_what_differs_is_named() -> None:
    row = _stored()
    later = NOW + timedelta(seconds=30)
    values = {
        "state": "delivered",
        "sequence": 2,
        "sent_at": NOW.astimezone(SAO_PAULO),  # the same instant: stores the same UTC text
        "delivered_at": later,
        "failed_after_send": False,
        "metadata": {"n": 1},  # an equal copy: unchanged
        "campaign_id": None,
        "updated_at": later,
    }
    assert _changed(row, values) == ("state", "sequence", "delivered_at", "updated_at")


@pytest.mark.parametrize(
    ("name", "stored", "value"),
    [
        ("metadata", {"n": 1}, {"n": True}),  # equal in Python, different JSON
        ("metadata", {"n": 1}, {"n": 1, "m": 2}),
        ("failed_after_send", 0, False),  # another type: written
        ("delivered_at", None, NOW),
        ("delivered_at", NOW, None),
    ],
)
def test_anything_not_plainly_the_same_is_written(name: str, stored: Any, value: Any) -> None:
    assert _changed(_stored(**{name: stored}), {name: value}) == (name,)


def test_columns_that_never_change_are_refused() -> None:
    with pytest.raises(ValueError, match="provider_message_id"):
        _update_message(("state", "provider_message_id"))
