"""A campaign's delivery and read rates over time, drawn as SVG on the server. Pure.

No chart library and nothing fetched by the browser: the page carries the drawing. Minutes
are merged into at most `MAX_POINTS` steps; at each step the rates are those of everything
that happened up to it (delivered ÷ sent, read ÷ delivered), so the last point is the
campaign's rate as its counters say. The times on its axis are in the deployment's zone
(TIDINGS_TIMEZONE), as every other time on the pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

__all__ = ["RateChart", "rate_chart"]

MAX_POINTS = 48
WIDTH, HEIGHT = 1000, 240
LEFT, RIGHT, TOP, BOTTOM = 40, 10, 10, 24  # room for the axis labels


@dataclass(frozen=True)
class RateChart:
    delivery: str  # SVG polyline points
    read: str
    x_labels: tuple[tuple[float, str], ...]
    y_labels: tuple[tuple[float, str], ...]
    last_delivery: float
    last_read: float
    width: int = WIDTH
    height: int = HEIGHT


def _minute(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def rate_chart(by_minute: dict[str, dict[str, int]], zone: tzinfo = UTC) -> RateChart | None:
    """The chart of `outcomes_by_minute`'s counts (minutes in UTC), its times shown in `zone`;
    None when nothing was sent yet."""
    minutes = sorted({m for counts in by_minute.values() for m in counts})
    if not by_minute.get("sent"):
        return None
    first, last = _minute(minutes[0]), _minute(minutes[-1])
    span_minutes = int((last - first).total_seconds() // 60) + 1
    step = max(1, -(-span_minutes // MAX_POINTS))  # minutes per point, rounded up
    points = -(-span_minutes // step)
    totals = {k: [0] * points for k in ("sent", "delivered", "read")}
    for kind, column in totals.items():
        for minute, n in by_minute.get(kind, {}).items():
            column[int((_minute(minute) - first).total_seconds() // 60) // step] += n
    sent = delivered = read = 0
    delivery: list[float] = []
    reading: list[float] = []
    for i in range(points):
        sent += totals["sent"][i]
        delivered += totals["delivered"][i]
        read += totals["read"][i]
        delivery.append(_ratio(delivered, sent))
        reading.append(_ratio(read, delivered))
    return RateChart(
        delivery=_polyline(delivery),
        read=_polyline(reading),
        x_labels=_x_labels(first, step, points, zone),
        y_labels=tuple((_y(v), f"{int(v * 100)}%") for v in (0.0, 0.5, 1.0)),
        last_delivery=delivery[-1],
        last_read=reading[-1],
    )


def _x(i: int, points: int) -> float:
    inner = WIDTH - LEFT - RIGHT
    return LEFT + (inner * i / (points - 1) if points > 1 else inner / 2)


def _y(value: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - min(max(value, 0.0), 1.0))


def _polyline(values: list[float]) -> str:
    return " ".join(f"{_x(i, len(values)):.1f},{_y(v):.1f}" for i, v in enumerate(values))


def _x_labels(
    first: datetime, step: int, points: int, zone: tzinfo
) -> tuple[tuple[float, str], ...]:
    marks = sorted({0, points // 2, points - 1})
    times = {i: (first + timedelta(minutes=step * i)).astimezone(zone) for i in marks}
    same_day = times[marks[-1]].date() == times[0].date()
    shape = "%H:%M" if same_day else "%m-%d %H:%M"
    return tuple((_x(i, points), times[i].strftime(shape)) for i in marks)
