"""Campaign counters as a pure function of message states (docs/architecture.md, "Lifecycle").

A campaign's counts are the sum of what each of its messages contributes, so they change by
the difference between a message's contribution before and after an event, and `recount`
recomputes them from the messages alone.
"""

from __future__ import annotations

from collections.abc import Mapping

from tidings.domain.events import Status
from tidings.domain.lifecycle import MessageState

__all__ = ["COUNTERS", "contribution", "delta", "rates"]

COUNTERS = (
    "total",
    "queued",
    "sent",
    "delivered",
    "read",
    "failed",
    "opened",
    "clicked",
    "unsubscribed",
    "complained",
)


def contribution(state: MessageState | None) -> dict[str, int]:
    """What one message adds to its campaign's counters (all zero for no message)."""
    if state is None:
        return dict.fromkeys(COUNTERS, 0)
    status = state.status
    arrived = status in (Status.DELIVERED, Status.READ)
    return {
        "total": 1,
        "queued": int(status is Status.QUEUED),
        "sent": int(
            status in (Status.SENT, Status.DELIVERED, Status.READ)
            or (status is Status.FAILED and state.failed_after_send)
        ),
        "delivered": int(arrived),
        "read": int(status is Status.READ),
        "failed": int(status is Status.FAILED),
        "opened": int(state.opened_at is not None),
        "clicked": int(state.clicked_at is not None),
        "unsubscribed": int(state.unsubscribed_at is not None),
        "complained": int(state.complained_at is not None),
    }


def delta(before: MessageState | None, after: MessageState | None) -> dict[str, int]:
    """Non-zero counter changes when a message goes from `before` to `after`."""
    old, new = contribution(before), contribution(after)
    return {name: new[name] - old[name] for name in COUNTERS if new[name] != old[name]}


def _ratio(numerator: int, divisor: int) -> float:
    return numerator / divisor if divisor else 0.0


def rates(counts: Mapping[str, int]) -> dict[str, float]:
    """Rates as fractions, 0 when the divisor is 0."""
    return {
        "delivery": _ratio(counts["delivered"], counts["sent"]),
        "read": _ratio(counts["read"], counts["delivered"]),
        "open": _ratio(counts["opened"], counts["delivered"]),
        "click": _ratio(counts["clicked"], counts["delivered"]),
    }
