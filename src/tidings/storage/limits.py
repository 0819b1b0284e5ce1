"""The longest text each column holds, read from the schema itself (never a hand-kept copy).

SQLite would store a longer value and PostgreSQL refuse it, failing the whole transaction;
checking against these first makes a too-long value one item's note, the same on both stores.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import String, Table

__all__ = ["limits_of"]


def limits_of(table: Table, names: Iterable[str]) -> dict[str, int]:
    """The length limit of each named column of `table` that has one."""
    limits: dict[str, int] = {}
    for name in names:
        column_type = table.c[name].type
        if isinstance(column_type, String) and column_type.length is not None:
            limits[name] = column_type.length
    return limits
