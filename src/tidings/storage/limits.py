"""The longest text each column holds, read from the schema itself (never a hand-kept copy).

SQLite would store a longer value and PostgreSQL refuse it, failing the whole transaction;
checking against these first (in the API, a 422; in the worker, one item's note) makes a
too-long value the same answer on both stores.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import String, Table

__all__ = ["NO_NUL", "column_limit", "limits", "limits_of", "storable"]

# No store can compare a NUL character (PostgreSQL refuses it in any string): the pattern
# every text field the API stores is held to.
NO_NUL = r"^[^\x00]*$"


def column_limit(table: Table, column: str) -> int | None:
    """The most characters `table.column` holds, or None when it has no limit (Text, JSON,
    numbers). A column the table does not have is a KeyError: a typo must not mean "no limit"."""
    column_type = table.c[column].type
    return column_type.length if isinstance(column_type, String) else None


def limits_of(table: Table, names: Iterable[str]) -> dict[str, int]:
    """The length limit of each named column of `table` that has one."""
    found = {name: column_limit(table, name) for name in names}
    return {name: limit for name, limit in found.items() if limit is not None}


def limits(table: Table) -> dict[str, int]:
    """Every length-limited column of `table`, by name."""
    return limits_of(table, (column.name for column in table.c))


def storable(text: str) -> str:
    """A provider's text as every store keeps it: a lone surrogate (JSON's `"\\ud800"`, which
    has no UTF-8) and NUL (which PostgreSQL refuses) become `?`. Either would fail the whole
    transaction it is written in, a campaign's batch of answers or its pause."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "?")
