"""What every provider's fuzz tests share: JSON documents made from a provider's own words, and
the one promise checked on whatever `parse` returns."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC

from hypothesis import strategies as st

from tidings.domain.calls import CallRecord
from tidings.domain.errors import PayloadError
from tidings.domain.events import BadItem, Ignored, NormalizedEvent, ParsedItem, SessionUpdate

Parse = Callable[[bytes, Mapping[str, str]], list[ParsedItem]]


def json_values(
    keys: Sequence[str] | st.SearchStrategy[str], words: Sequence[str], max_leaves: int = 25
) -> st.SearchStrategy[object]:
    """Arbitrary JSON whose object keys and strings are often the provider's own vocabulary,
    so generated documents reach past the first shape check."""
    key = keys if isinstance(keys, st.SearchStrategy) else st.sampled_from(list(keys))
    leaves = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=20)
        | st.sampled_from(list(words))
    )
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(key | st.text(max_size=8), children, max_size=6)
        ),
        max_leaves=max_leaves,
    )


def parsed_or_payload_error(
    parse: Parse, body: bytes, headers: Mapping[str, str] | None = None
) -> list[ParsedItem] | None:
    """Parse `body`: PayloadError (None here) or well-formed items, never another exception.

    Items are the five kinds, bad items carry their position, event times are UTC and metadata
    values are text."""
    try:
        items = parse(body, headers or {})
    except PayloadError:
        return None
    assert isinstance(items, list)
    for item in items:
        assert isinstance(item, NormalizedEvent | SessionUpdate | CallRecord | Ignored | BadItem)
        if isinstance(item, CallRecord):
            times = (item.started_at, item.synced_at, item.modified_at)
            assert all(t is None or t.tzinfo is UTC for t in times)
            assert item.call_id and item.duration_seconds >= 0
        if isinstance(item, NormalizedEvent):
            assert item.occurred_at is None or item.occurred_at.tzinfo is UTC
            assert all(isinstance(value, str) for value in item.metadata.values())
    return items
