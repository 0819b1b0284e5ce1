"""`make bench`'s verdicts on issue 19: tidings and the limit are measured in pairs, and each
target is judged on the median of the pairs' ratios. What a user reads there must follow
from the measurements, including when one side acknowledged nothing."""

from __future__ import annotations

import importlib.util
import math
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

_BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load_bench() -> ModuleType:
    """bench/run.py under a name of its own. Its sibling modules (loadgen, cpu_time, …) are
    found through bench/ on the path while it loads; the path is put back after."""
    sys.path.insert(0, str(_BENCH))
    try:
        spec = importlib.util.spec_from_file_location("tidings_bench_run", _BENCH / "run.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up as it loads
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(_BENCH))


run = _load_bench()
LoadResult = run.LoadResult
Reply = sys.modules["loadgen"].Reply  # loaded by run.py, beside it


def measured(
    name: str, answered: int, seconds: float, latency: float, status: int = 202
) -> run.Measured:
    """A side that answered `answered` webhooks with `status` in `seconds`, each after
    `latency`, and (when 2xx) applied them all by the end of the load."""
    replies: list[Reply | None] = [Reply(status, b"{}", latency) for _ in range(answered)]
    load = LoadResult(
        sent=answered,
        status_counts=Counter({status: answered}),
        latencies=[latency] * answered,
        started_at=1000.0,
        finished_at=1000.0 + seconds,
        errors=0,
        replies=replies,
    )
    applied = answered if 200 <= status < 300 else 0
    return run.Measured(name, load, applied, load.finished_at, True, 0, 0, [])


def pair(tidings_rate: float, limit_rate: float) -> run.Pair:
    return (
        measured("tidings", int(tidings_rate), 1.0, 0.004),
        measured("limit", int(limit_rate), 1.0, 0.002),
    )


def test_a_pairs_ratios_are_tidings_over_the_limit() -> None:
    ack, applied, p99 = run._limit_ratios(pair(12_000, 20_000))
    assert ack == pytest.approx(0.6)
    assert applied == pytest.approx(0.6)
    assert p99 == pytest.approx(2.0)


def test_the_table_shows_the_pair_with_the_median_acknowledged_ratio() -> None:
    pairs = [pair(10_000, 20_000), pair(14_000, 20_000), pair(12_000, 20_000),
             pair(8_000, 20_000), pair(16_000, 20_000)]  # fmt: skip
    assert run.median_pair(pairs) is pairs[2]  # 0.6 of 0.4, 0.5, 0.6, 0.7, 0.8
    assert run.median_pair(pairs[:4]) is pairs[0]  # an even count: the lower middle one


def test_a_tidings_that_acknowledged_nothing_has_the_worst_ratios_not_nan() -> None:
    refused = (measured("tidings", 500, 1.0, 0.001, status=503), pair(0, 20_000)[1])
    ack, applied, p99 = run._limit_ratios(refused)
    assert (ack, applied, p99) == (0.0, 0.0, math.inf)
    # Judged with four good pairs, the median is still a measured figure, and the failed
    # pair is the worst of each.
    pairs = [pair(13_000, 20_000), refused, pair(12_000, 20_000), pair(14_000, 20_000),
             pair(11_000, 20_000)]  # fmt: skip
    medians = run._print_pairs(pairs, pairs[0])
    assert medians[0] == pytest.approx(0.6)
    assert all(math.isfinite(m) for m in medians)
    # Alone, it is not met, and says so without a "nan".
    alone = run._print_pairs([refused], refused)
    assert alone[0] < run.TARGET_LIMIT_ACK and not alone[2] <= run.TARGET_LIMIT_P99
    assert run._times(alone[2]) == "n/a"


def test_a_limit_that_acknowledged_nothing_stops_the_run_with_its_log() -> None:
    silent = measured("limit", 20, 1.0, 0.001, status=500).load
    with pytest.raises(run.BenchError) as stopped:
        run.require_acknowledged(silent, "the limit", "Traceback: disk full")
    text = str(stopped.value)
    assert "the limit acknowledged none of the 20 webhooks" in text
    assert "500" in text and "disk full" in text
    run.require_acknowledged(pair(1, 1)[1].load, "the limit", "")  # one answer is enough


def test_ratios_without_a_reference_print_as_not_available() -> None:
    assert run._times(run._ratio(5.0, 0.0)) == "n/a"
    assert run._times(run._ratio(3.0, 2.0)) == "1.50x"
    assert run._fmt_ms(math.nan) == "n/a"  # the p50 and p99 of no 2xx at all
    assert run._fmt_ms(0.0123) == "12.3"
