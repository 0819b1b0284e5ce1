"""What every list route takes and gives: page size, cursor, a time window, and the page.

A page is read one row longer than asked, so `next_cursor` is set only when another page
exists (a last page that happens to be full ends the list too).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import AfterValidator

from tidings.api.support import encode_cursor

__all__ = ["Cursor", "Limit", "Since", "Until", "as_utc", "fetch_size", "page"]


def _as_utc(value: datetime | None) -> datetime | None:
    """A time without a UTC offset is UTC; one with an offset is converted to UTC (a time
    that falls outside the years a datetime holds once converted is refused, not a 500)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range once converted to UTC") from None


as_utc = _as_utc  # for bodies that carry a time, as query parameters do

_WINDOW = "ISO 8601 date-time, e.g. 2024-07-16T17:26:54-03:00; without an offset, UTC."

Limit = Annotated[int, Query(ge=1, le=1000, description="Page size (default 100, at most 1000).")]
Cursor = Annotated[str | None, Query(description="The `next_cursor` of the previous page.")]
Since = Annotated[
    datetime | None,
    Query(description=f"Only items from this time on (inclusive). {_WINDOW}"),
    AfterValidator(_as_utc),
]
Until = Annotated[
    datetime | None,
    Query(description=f"Only items before this time (exclusive). {_WINDOW}"),
    AfterValidator(_as_utc),
]


def fetch_size(limit: int) -> int:
    """How many rows to read for a page of `limit`: one more tells whether another follows."""
    return limit + 1


def page(rows: Sequence[Any], limit: int) -> tuple[list[Any], str | None]:
    """The page's rows (anything with an `id`) and its `next_cursor`, None on the last page."""
    items = list(rows[:limit])
    more = len(rows) > limit
    return items, encode_cursor(items[-1].id) if more else None
