"""Calls as the API reads them: filtered pages, a lead's latest, and the facts statistics are
computed from (`domain.call_stats`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, literal_column, select

from tidings.domain.call_stats import CallFact
from tidings.storage.schema import calls, connections, employees, leads

__all__ = ["CallFilter", "call_facts", "latest_calls", "list_calls"]


@dataclass(frozen=True)
class CallFilter:
    employee: str | None = None  # code
    lead: str | None = None  # external id
    type: str | None = None
    since: datetime | None = None  # started at or after (aware)
    until: datetime | None = None  # started before (aware)
    waiting: bool = False  # only calls no lead has taken yet


def _call_query() -> Any:
    return (
        select(
            calls,
            connections.c.name.label("connection_name"),
            employees.c.code.label("employee_code"),
            employees.c.name.label("employee_name"),
            leads.c.external_id.label("lead_external_id"),
        )
        .join(connections, connections.c.id == calls.c.connection_id)
        .outerjoin(employees, employees.c.id == calls.c.employee_id)
        .outerjoin(leads, leads.c.id == calls.c.lead_id)
    )


def _where(query: Any, where: CallFilter, dialect: str) -> Any:
    # A lead's calls are few: with a lead named, the other filters must not lead SQLite (which
    # has no statistics to tell) to walk their own index through every call of an employee or
    # a type in id order; PostgreSQL's statistics tell it.
    lead_first = where.lead is not None and dialect == "sqlite"
    if where.employee is not None:
        employee = select(employees.c.id).where(employees.c.code == where.employee)
        query = query.where(
            _unindexed(calls.c.employee_id, lead_first) == employee.scalar_subquery()
        )
    if where.lead is not None:
        query = query.where(leads.c.external_id == where.lead)
    if where.type is not None:
        query = query.where(_unindexed(calls.c.type, lead_first) == where.type)
    if where.since is not None:
        query = query.where(calls.c.started_at >= where.since)
    if where.until is not None:
        query = query.where(calls.c.started_at < where.until)
    if where.waiting:
        query = query.where(calls.c.lead_id.is_(None))
    return query


def _unindexed(column: ColumnElement[Any], hidden: bool) -> ColumnElement[Any]:
    """The column, or, `hidden`, SQLite's `+column`: the same value, which its planner does
    not look up through an index (SQLite only: PostgreSQL has no unary plus for text)."""
    if not hidden:
        return column
    return literal_column(f"+{calls.name}.{column.name}", type_=column.type)


def list_calls(
    conn: Connection, where: CallFilter, after_id: int | None, limit: int
) -> list[Row[Any]]:
    """A page, newest first (by id), of the calls matching every filter given."""
    query = _where(_call_query(), where, conn.dialect.name).order_by(calls.c.id.desc())
    query = query.limit(limit)
    if after_id is not None:
        query = query.where(calls.c.id < after_id)
    return list(conn.execute(query).all())


def latest_calls(conn: Connection, lead_id: int, limit: int) -> list[Row[Any]]:
    """A lead's latest calls by when they started (those without a start time last)."""
    query = (
        _call_query()
        .where(calls.c.lead_id == lead_id)
        .order_by(calls.c.started_at.desc().nulls_last(), calls.c.id.desc())
        .limit(limit)
    )
    return list(conn.execute(query).all())


def call_facts(
    conn: Connection,
    employee_id: int | None,
    since: datetime | None,
    until: datetime | None,
) -> list[tuple[int | None, CallFact]]:
    """(employee id, facts) of the calls that started in the window (every call when no
    window is given), of one employee or of all."""
    query = select(calls.c.employee_id, calls.c.type, calls.c.duration_seconds, calls.c.started_at)
    if employee_id is not None:
        query = query.where(calls.c.employee_id == employee_id)
    if since is not None:
        query = query.where(calls.c.started_at >= since)
    if until is not None:
        query = query.where(calls.c.started_at < until)
    return [
        (row.employee_id, CallFact(row.type, row.duration_seconds, row.started_at))
        for row in conn.execute(query)
    ]
