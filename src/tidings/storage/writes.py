"""What one unit of work will write, collected before anything is written.

Store modules describe their writes here instead of executing them, and `Database.apply` runs
them in one transaction. That is what lets SQLite plan a batch from a snapshot and hold its
one write lock only to write (docs/architecture.md, "The store"): nothing outside `storage.db`
knows how or when the rows reach the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table
from sqlalchemy.sql.dml import UpdateBase

__all__ = ["AddTo", "Execute", "Insert", "Writes"]

Rows = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Insert:
    """New rows of a table. Rows that carry an `id` use one reserved by `Reader.reserve_ids`."""

    table: Table
    rows: Rows


@dataclass(frozen=True)
class Execute:
    """One INSERT or UPDATE statement run once per row (every row has the same keys)."""

    statement: UpdateBase
    rows: Rows


@dataclass(frozen=True)
class AddTo:
    """Numbers added to the row whose `key` column matches (`x = x + d`), the row created if
    missing: concurrent writers never lose an addition."""

    table: Table
    key: str
    rows: Rows


Write = Insert | Execute | AddTo


class Writes:
    """Writes in the order they are added (so rows are written after the rows they refer to)."""

    def __init__(self) -> None:
        self.items: list[Write] = []

    def insert(self, table: Table, rows: Rows) -> None:
        if rows:
            self.items.append(Insert(table, rows))

    def execute(self, statement: UpdateBase, rows: Rows) -> None:
        if rows:
            self.items.append(Execute(statement, rows))

    def add_to(self, table: Table, key: str, rows: Rows) -> None:
        if rows:
            # In key order, so two PostgreSQL workers lock the same rows in the same order.
            self.items.append(AddTo(table, key, sorted(rows, key=lambda row: row[key])))

    def __bool__(self) -> bool:
        return bool(self.items)
