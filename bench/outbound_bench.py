"""`make bench`, outbound section: signed deliveries per second from `tidings serve` (embedded,
default configuration) to a local receiver, against a plain loop that POSTs each event with
httpx one at a time, as people write it by hand (`httpx.post` per event: a new client and
connection each time); both measured in the same run. The same loop with one keep-alive
`httpx.Client` is printed beside it for reference: the ratio to it says what concurrency and
pipelining add beyond connection reuse.

The receiver (`outbound_receiver.py`) verifies every delivery with the `standardwebhooks`
package and keeps a ledger of what arrived; the figures are counted from it and from the
store, never from what the sender believes: no event lost (every acknowledged webhook's event
reached the receiver), none duplicated (each webhook id arrived once), none unverified.

Added latency is from the webhook's receive time at tidings (stamped just before its 2xx) to
the delivery's arrival at the receiver, so it includes applying the webhook as well as sending.
It is measured twice. Once the burst is delivered, a steady stream of other webhooks follows
at `--outbound-steady-rate` per second (below what tidings delivers, as webhooks arrive in a
normal hour) for `--outbound-steady-seconds`: the target is read on those, the time one
delivery takes. The burst's own latencies are printed beside them; they measure the queue a
burst of that size makes at the delivery rate, and grow with the burst.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from loadgen import percentiles, run_load_blocking
from sqlalchemy import func, select

from tidings.outbound import signing
from tidings.storage import schema
from tidings.storage.db import Database

TARGET_RATE = 1000.0  # signed deliveries/s, embedded
TARGET_RATIO = 10.0  # against the hand-written loop
TARGET_P99 = 1.0  # seconds of added latency

__all__ = ["OutboundMeasured", "measure_outbound", "report_outbound"]


@dataclass
class OutboundMeasured:
    events: int
    delivered_per_s: float
    baseline_per_s: float  # httpx.post per event, as people write it by hand
    keep_alive_per_s: float  # the same loop with one keep-alive httpx.Client (reference)
    p50: float  # the steady stream's
    p99: float
    burst_p50: float
    burst_p99: float
    steady_rate: float  # webhooks/s the steady stream achieved
    burst_events: int
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return all(ok for _, ok, _ in self.checks)


def _ledger(path: Path) -> list[tuple[str, float, bool]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            rows.append((parts[0], float(parts[1]), parts[2] == "1"))
    return rows


def _start_receiver(
    bench: Any, procs: Any, name: str, port: int, secret: str, ledger: Path
) -> None:
    script = str(Path(__file__).resolve().parent / "outbound_receiver.py")
    argv = [
        sys.executable,
        script,
        "--port",
        str(port),
        "--secret",
        secret,
        "--ledger",
        str(ledger),
    ]
    procs.start(name, argv, bench.clean_env())
    deadline = time.monotonic() + 20
    while "receiver ready" not in procs.log_path(name).read_text(errors="replace"):
        procs.check_alive(name)
        if time.monotonic() > deadline:
            raise bench.BenchError(f"{name} did not start:\n{procs.log_tail(name)}")
        time.sleep(0.05)


def measure_outbound(bench: Any, args: Any, work: Path, procs: Any) -> OutboundMeasured:
    """Run both sides; `bench` is `run.py` (its helpers), `procs` its `Processes`."""
    count = args.outbound_events
    url = f"sqlite:///{work / 'outbound.db'}"
    env = bench.clean_env(
        TIDINGS_DATABASE_URL=url,
        TIDINGS_LOG_LEVEL="WARNING",
        TIDINGS_OUTBOUND_ALLOWED_HOSTS=bench.HOST,
    )
    tidings = bench.tool("tidings")

    def cli(*argv: str) -> str:
        done = subprocess.run(
            [tidings, *argv], env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise bench.BenchError(f"tidings {argv[0]} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    cli("migrate")
    cli("connection", "add", "evolution", bench.CONNECTION, "--secret", bench.SECRET)
    receiver_port = bench.free_port()
    hook = f"http://{bench.HOST}:{receiver_port}/hooks"
    secret = cli("subscription", "add", hook).strip().splitlines()[-1]
    ledger = work / "outbound-ledger.tsv"
    _start_receiver(bench, procs, "receiver", receiver_port, secret, ledger)
    port = bench.free_port()
    procs.start(
        "tidings-outbound", [tidings, "serve", "--host", bench.HOST, "--port", str(port)], env
    )
    bench.wait_http(procs, "tidings-outbound", port, "/healthz")

    steady_count = int(args.outbound_steady_rate * args.outbound_steady_seconds)
    ids, bodies = bench.evolution_bodies(count + steady_count)
    steady_ids = set(ids[count:])
    path = f"/hooks/evolution/{bench.CONNECTION}?token={bench.SECRET}"
    bench._say(f"outbound: sending {count:,} webhooks; each becomes one signed delivery")
    load = run_load_blocking(
        bench.HOST, port, path, bodies[:count], args.concurrency, timeout=args.timeout
    )
    acknowledged = load.count(200, 300)
    db = Database(url, timeout=10.0)
    try:

        def progress(expected: int) -> tuple[int, bool]:
            procs.check_alive("tidings-outbound")
            with db.read() as conn:
                delivered = conn.execute(
                    select(func.count())
                    .select_from(schema.deliveries)
                    .where(schema.deliveries.c.status == "delivered")
                ).scalar_one()
            return delivered, delivered >= expected

        finished = bench.wait_for(
            lambda: progress(acknowledged), stall=args.stall, cap=args.drain_cap
        )
        bench._say(
            f"outbound: then {steady_count:,} other webhooks at "
            f"{args.outbound_steady_rate:g}/s, for the added latency"
        )
        steady_acknowledged, steady_rate = _steady(
            bench, args, port, path, bodies[count:], args.outbound_steady_rate
        )
        acknowledged += steady_acknowledged
        steady_finished = bench.wait_for(
            lambda: progress(acknowledged), stall=args.stall, cap=args.drain_cap
        )
        finished = finished and steady_finished
        procs.stop("tidings-outbound")
        procs.stop("receiver")  # writes its ledger out
        with db.read() as conn:
            events = {
                row.webhook_id: row.data
                for row in conn.execute(
                    select(schema.outbound_events.c.webhook_id, schema.outbound_events.c.data)
                )
            }
    finally:
        db.dispose()
    arrived = _ledger(ledger)
    first_arrival: dict[str, float] = {}
    for webhook_id, at, _ok in arrived:
        first_arrival.setdefault(webhook_id, at)
    unverified = sum(1 for _, _, ok in arrived if not ok)
    duplicated = len(arrived) - len(first_arrival)
    lost = [w for w in events if w not in first_arrival]
    burst: list[float] = []
    steady: list[float] = []
    burst_ends = load.started_at
    for webhook_id, at in first_arrival.items():
        data = events.get(webhook_id)
        if data is None:
            continue
        received = data["event"]["received_at"]
        latency = at - datetime.fromisoformat(received.replace("Z", "+00:00")).timestamp()
        if data.get("provider_message_id") in steady_ids:
            steady.append(latency)
        else:
            burst.append(latency)
            burst_ends = max(burst_ends, at)
    start = load.started_at
    rate = len(burst) / (burst_ends - start) if burst_ends > start else 0.0
    quantiles = percentiles(steady, (50, 99)) if steady else {50: 0.0, 99: 0.0}
    burst_quantiles = percentiles(burst, (50, 99)) if burst else {50: 0.0, 99: 0.0}

    baseline, keep_alive = _baseline(
        bench, procs, work, [events[w] for w in list(events)[: args.outbound_baseline]]
    )
    checks = [
        ("every acknowledged webhook has its outbound event", len(events) == acknowledged,
         f"{len(events)} events for {acknowledged} acknowledged webhooks"),
        ("lost = events that never reached the receiver = 0", not lost, f"{len(lost)} lost"),
        ("duplicated = arrivals - distinct webhook ids = 0", duplicated == 0,
         f"{len(arrived)} - {len(first_arrival)} = {duplicated}"),
        ("every arrival verified (standardwebhooks)", unverified == 0, f"{unverified} unverified"),
    ]  # fmt: skip
    notes = [] if finished else ["gave up waiting for the deliveries"]
    return OutboundMeasured(
        len(events),
        rate,
        baseline,
        keep_alive,
        quantiles[50],
        quantiles[99],
        burst_quantiles[50],
        burst_quantiles[99],
        steady_rate,
        len(burst),
        checks,
        notes,
    )


def _steady(
    bench: Any, args: Any, port: int, path: str, bodies: list[bytes], rate: float
) -> tuple[int, float]:
    """Send `bodies` at `rate` per second, a tenth of a second's worth at a time on fresh
    connections; (acknowledged, acknowledged per second from the first tick to the end of
    the last one)."""
    tick = 0.1
    per_tick = max(1, round(rate * tick))
    acknowledged = 0
    started = time.monotonic()
    for n, first in enumerate(range(0, len(bodies), per_tick)):
        due = started + n * tick
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
        chunk = bodies[first : first + per_tick]
        load = run_load_blocking(
            bench.HOST, port, path, chunk, min(8, len(chunk)), timeout=args.timeout
        )
        acknowledged += load.count(200, 300)
    ticks = -(-len(bodies) // per_tick)
    spent = max(time.monotonic() - started, ticks * tick)
    return acknowledged, acknowledged / spent if spent > 0 else 0.0


def _baseline(bench: Any, procs: Any, work: Path, datas: list[Any]) -> tuple[float, float]:
    """The same events POSTed one at a time, signed as tidings signs: as people write it by
    hand (`httpx.post` per event), and with one keep-alive `httpx.Client` for reference."""
    port = bench.free_port()
    secret = signing.new_secret()
    key = signing.secret_bytes(secret)
    ledger = work / "outbound-baseline-ledger.tsv"
    _start_receiver(bench, procs, "receiver-baseline", port, secret, ledger)
    url = f"http://{bench.HOST}:{port}/hooks"
    bench._say(f"outbound baseline: {len(datas):,} events, one httpx.post at a time")

    def signed(i: int, data: Any) -> tuple[bytes, dict[str, str]]:
        body = orjson.dumps({"type": "message.delivered", "timestamp": None, "data": data})
        headers = signing.headers([key], f"base_{i}", int(time.time()), body)
        return body, {**headers, "content-type": "application/json"}

    started = time.monotonic()
    for i, data in enumerate(datas):
        body, headers = signed(i, data)
        httpx.post(url, content=body, headers=headers, timeout=5.0).raise_for_status()
    plain = len(datas) / (time.monotonic() - started)
    started = time.monotonic()
    with httpx.Client(timeout=5.0) as client:
        for i, data in enumerate(datas):
            body, headers = signed(i, data)
            client.post(url, content=body, headers=headers).raise_for_status()
    keep_alive = len(datas) / (time.monotonic() - started)
    procs.stop("receiver-baseline")
    return plain, keep_alive


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def report_outbound(measured: OutboundMeasured) -> bool:
    """Print the section; True when its ledger does not balance (the run is void)."""
    rate, base = measured.delivered_per_s, measured.baseline_per_s
    ratio = rate / base if base else 0.0
    print()
    print("outbound webhooks (embedded, default configuration)")
    print(
        f"  signed deliveries/s   {rate:10,.0f}   "
        f"(target >= {TARGET_RATE:,.0f}: {_verdict(rate >= TARGET_RATE)})"
    )
    print(
        f"  baseline loop/s       {base:10,.0f}   ratio {ratio:.1f}x "
        f"(target >= {TARGET_RATIO:.0f}x: {_verdict(ratio >= TARGET_RATIO)})"
    )
    print(
        f"  keep-alive loop/s     {measured.keep_alive_per_s:10,.0f}   "
        f"ratio {rate / measured.keep_alive_per_s if measured.keep_alive_per_s else 0:.1f}x "
        "(reference: the same loop with one httpx.Client)"
    )
    print(
        f"  added latency p50     {measured.p50 * 1000:10,.0f} ms   "
        f"(a steady {measured.steady_rate:,.0f} webhooks/s after the burst)"
    )
    print(
        f"  added latency p99     {measured.p99 * 1000:10,.0f} ms   "
        f"(target <= {TARGET_P99 * 1000:.0f} ms: {_verdict(measured.p99 <= TARGET_P99)})"
    )
    burst = f"{measured.burst_p50 * 1000:,.0f} / {measured.burst_p99 * 1000:,.0f} ms"
    print(
        f"  in the burst p50/p99  {burst}   (the queue of {measured.burst_events:,} webhooks "
        "at once, drained at the rate above)"
    )
    for name, ok, detail in measured.checks:
        print(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
    for note in measured.notes:
        print(f"  note: {note}")
    if not measured.balanced:
        print("  the outbound ledger does not balance: this section is VOID")
    return not measured.balanced
