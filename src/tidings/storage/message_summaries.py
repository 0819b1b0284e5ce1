"""Messages summed up for the dashboard: a campaign's outcomes minute by minute (its chart)
and failures grouped by reason.

Both read only one campaign's messages (the (campaign_id, state) index bounds them) or only
failed ones (the (state, id) index), never the whole table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, case, func, select

from tidings.storage.schema import connections, messages

__all__ = ["GROUPS", "FailureGroup", "failure_groups", "outcomes_by_minute"]

# The outcome columns the chart follows, in the order the lifecycle reaches them.
OUTCOMES = ("sent", "delivered", "read", "failed")


def _minute(conn: Connection, column: Any) -> Any:
    """The minute a time falls in, as text `YYYY-MM-DD HH:MM` (UTC) on either store."""
    if conn.dialect.name == "sqlite":
        return func.substr(column, 1, 16)  # SQLite keeps UTC times as ISO text
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24:MI")


def outcomes_by_minute(conn: Connection, campaign_id: int) -> dict[str, dict[str, int]]:
    """For each outcome, how many of the campaign's messages reached it in each minute."""
    found: dict[str, dict[str, int]] = {}
    for outcome in OUTCOMES:
        column = messages.c[f"{outcome}_at"]
        minute = _minute(conn, column).label("minute")
        query = (
            select(minute, func.count().label("n"))
            .where(messages.c.campaign_id == campaign_id, column.is_not(None))
            .group_by(minute)
        )
        found[outcome] = {row.minute: int(row.n) for row in conn.execute(query)}
    return found


@dataclass(frozen=True)
class FailureGroup:
    code: str | None
    reason: str | None
    count: int
    permanent: bool  # at least one of the group's failures is permanent


GROUPS = 200  # the largest groups shown; the page says when there are more


def failure_groups(
    conn: Connection, campaign_id: int | None, connection_name: str | None, limit: int = GROUPS
) -> list[FailureGroup]:
    """Failed messages counted by (code, reason), largest group first."""
    query = (
        select(
            messages.c.failure_code,
            messages.c.failure_reason,
            func.count().label("n"),
            func.max(case((messages.c.failure_permanent, 1), else_=0)).label("permanent"),
        )
        .where(messages.c.state == "failed")
        .group_by(messages.c.failure_code, messages.c.failure_reason)
        .order_by(func.count().desc(), messages.c.failure_reason)
        .limit(limit)
    )
    if campaign_id is not None:
        query = query.where(messages.c.campaign_id == campaign_id)
    if connection_name is not None:
        ids = select(connections.c.id).where(connections.c.name == connection_name)
        query = query.where(messages.c.connection_id.in_(ids))
    return [
        FailureGroup(r.failure_code, r.failure_reason, int(r.n), bool(r.permanent))
        for r in conn.execute(query)
    ]
