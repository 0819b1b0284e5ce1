"""What every dashboard list shares: its page in the URL (`cursor`), a page of rows read one
longer than shown (so "Next" appears only when there is more), and objects kept per app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request

from tidings.api.support import ApiError, decode_cursor
from tidings.dashboard.rendering import PageError

__all__ = ["PAGE", "cursor_of", "kept", "page_of"]

PAGE = 50  # rows a list shows
T = TypeVar("T")


def cursor_of(request: Request) -> int | None:
    """The id the URL's page starts after; a cursor this dashboard did not write is a 400."""
    try:
        return decode_cursor(request.query_params.get("cursor"))
    except ApiError:
        raise PageError(400, "That page link is broken; start from the first page.") from None


def page_of(rows: list[Any], limit: int = PAGE) -> tuple[list[Any], int | None]:
    """The rows to show, and the id the next page starts after (None on the last page)."""
    return rows[:limit], rows[limit - 1].id if len(rows) > limit else None


def kept(request: Request, name: str, make: Callable[[], T]) -> T:
    """One object per app (a cache, a watcher), made on first use."""
    state = request.app.state
    found: T | None = getattr(state, name, None)
    if found is None:
        found = make()
        setattr(state, name, found)
    return found
