"""The campaign chart: rates over time from counts per minute (pure)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from tidings.dashboard.charts import MAX_POINTS, rate_chart


def _points(line: str) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in line.split()]  # type: ignore[misc]


def test_nothing_sent_draws_no_chart() -> None:
    assert rate_chart({"sent": {}, "delivered": {}, "read": {}, "failed": {}}) is None


def test_the_last_point_is_the_campaigns_rate_so_far() -> None:
    chart = rate_chart({
        "sent": {"2026-12-01 10:00": 10},
        "delivered": {"2026-12-01 10:01": 4, "2026-12-01 10:03": 4},
        "read": {"2026-12-01 10:05": 2},
        "failed": {},
    })  # fmt: skip
    assert chart is not None
    assert chart.last_delivery == 0.8
    assert chart.last_read == 0.25
    delivery = _points(chart.delivery)
    assert len(delivery) == 6  # one point a minute, 10:00 to 10:05
    heights = [y for _, y in delivery]
    assert heights[0] > heights[1] > heights[3]  # higher rate, smaller y: rising, then flat
    assert heights[3] == heights[5]


def test_a_long_campaign_is_merged_into_at_most_max_points() -> None:
    sent = {f"2026-12-{d:02d} {h:02d}:00": 5 for d in range(1, 11) for h in range(24)}
    chart = rate_chart({"sent": sent, "delivered": sent, "read": {}, "failed": {}})
    assert chart is not None
    assert len(_points(chart.delivery)) <= MAX_POINTS
    assert chart.last_delivery == 1.0
    assert chart.x_labels[0][1] == "12-01 00:00"  # spans days: labels carry the date


def test_rates_never_leave_the_frame() -> None:
    # More delivered than sent (a sent webhook lost): the rate is capped at the top edge.
    chart = rate_chart({"sent": {"2026-12-01 10:00": 1}, "delivered": {"2026-12-01 10:00": 3},
                        "read": {}, "failed": {}})  # fmt: skip
    assert chart is not None
    assert all(y >= 0 for _, y in _points(chart.delivery))


def test_the_times_are_shown_in_the_deployments_zone() -> None:
    sent = {"2026-12-01 23:30": 1, "2026-12-02 00:10": 1}  # UTC, across midnight
    utc = rate_chart({"sent": sent, "delivered": {}, "read": {}, "failed": {}})
    sao_paulo = rate_chart(
        {"sent": sent, "delivered": {}, "read": {}, "failed": {}}, ZoneInfo("America/Sao_Paulo")
    )
    assert utc is not None and sao_paulo is not None
    assert [label for _, label in utc.x_labels] == ["12-01 23:30", "12-01 23:50", "12-02 00:10"]
    assert [label for _, label in sao_paulo.x_labels] == ["20:30", "20:50", "21:10"]  # UTC-3
