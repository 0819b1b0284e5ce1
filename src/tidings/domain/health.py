"""Connection health: how a connection that sends is doing, from its messages' outcomes. Pure.

docs/architecture.md, "Connection health". An outcome is a message that reached `delivered`
or `read` (a delivery) or is `failed` (a send the provider refused is stored as a failed
message too, so it counts like a failure after send). From a connection's outcomes, newest
first:

- the score is deliveries ÷ outcomes over the newest `WINDOW` of them, and 1.0 while there
  are fewer than `MIN_OUTCOMES` (too few to judge: a new connection is not unhealthy);
- consecutive errors are the failures before the newest delivery (a delivery resets them);
- "today" is the calendar day of `now` in the deployment's zone (`TIDINGS_TIMEZONE`).

A campaign dispatcher halves its rate while a connection is not `healthy` (score under the
threshold) and pauses after `TIDINGS_PAUSE_AFTER_ERRORS` consecutive errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum

from tidings.domain.call_times import zone_named
from tidings.domain.events import Status

__all__ = [
    "MIN_OUTCOMES",
    "OUTCOME_STATES",
    "WINDOW",
    "ConnectionHealth",
    "DayCounts",
    "Outcome",
    "assess",
    "consecutive_errors",
    "day_bounds",
    "has_health",
    "outcome_of",
    "score",
]

WINDOW = 200
MIN_OUTCOMES = 20


class Outcome(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"


# The message states that are outcomes, and which: `read` implies the message was delivered.
OUTCOME_STATES: dict[str, Outcome] = {
    Status.DELIVERED.value: Outcome.DELIVERED,
    Status.READ.value: Outcome.DELIVERED,
    Status.FAILED.value: Outcome.FAILED,
}


def outcome_of(state: str) -> Outcome | None:
    """The outcome of a message in `state`; None while it has none yet (queued, sent)."""
    return OUTCOME_STATES.get(state)


def has_health(channel: str) -> bool:
    """Whether connections of a provider with this channel send messages: all but Callyzer's
    (channel "call"), which logs phone calls."""
    return channel != "call"


def score(outcomes: Sequence[Outcome]) -> float:
    """Deliveries ÷ outcomes over the newest `WINDOW` of `outcomes` (newest first); 1.0 while
    fewer than `MIN_OUTCOMES` are known."""
    window = outcomes[:WINDOW]
    if len(window) < MIN_OUTCOMES:
        return 1.0
    delivered = sum(1 for outcome in window if outcome is Outcome.DELIVERED)
    return delivered / len(window)


def consecutive_errors(outcomes: Iterable[Outcome]) -> int:
    """How many failures come before the first delivery in `outcomes` (newest first)."""
    errors = 0
    for outcome in outcomes:
        if outcome is Outcome.DELIVERED:
            break
        errors += 1
    return errors


def day_bounds(now: datetime, zone_name: str) -> tuple[datetime, datetime]:
    """When the day of `now` starts and ends in the zone `zone_name`, as UTC datetimes.

    A zone name the tz database does not know counts as UTC, as everywhere tidings reads
    `TIDINGS_TIMEZONE`. Where a daylight-saving change skips midnight, the day starts at the
    first instant it has (zoneinfo reads the missing midnight with the offset before it)."""
    if now.tzinfo is None:
        raise ValueError("naive datetime given as now; use an aware datetime")
    zone = zone_named(zone_name) or UTC
    day = now.astimezone(zone).date()
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


@dataclass(frozen=True)
class DayCounts:
    """A connection's messages delivered (read ones included), read, and failed in one day."""

    delivered: int = 0
    read: int = 0
    failed: int = 0


@dataclass(frozen=True)
class ConnectionHealth:
    """What the API and the CLI show for a connection, and what campaign dispatch obeys.

    `outcomes` is how many outcomes the score considered (at most `WINDOW`); `healthy` is
    `score >= threshold`; `today_starts_at` is when the day the `*_today` figures count began.
    """

    delivered_today: int
    read_today: int
    failed_today: int
    consecutive_errors: int
    score: float
    outcomes: int
    healthy: bool
    today_starts_at: datetime


def assess(
    recent: Sequence[Outcome],
    today: DayCounts,
    today_starts_at: datetime,
    threshold: float,
    errors_before: int = 0,
) -> ConnectionHealth:
    """A connection's health from its newest outcomes (`recent`, newest first, `WINDOW` of
    them or all it has) and today's counts.

    `errors_before` is the run of failures just older than `recent`, counted by the caller
    only where every outcome in `recent` failed: a run of errors does not stop at the window.
    """
    window = recent[:WINDOW]
    errors = consecutive_errors(window)
    if errors == len(window) == WINDOW:
        errors += errors_before
    found = score(window)
    return ConnectionHealth(
        delivered_today=today.delivered,
        read_today=today.read,
        failed_today=today.failed,
        consecutive_errors=errors,
        score=found,
        outcomes=len(window),
        healthy=found >= threshold,
        today_starts_at=today_starts_at,
    )
