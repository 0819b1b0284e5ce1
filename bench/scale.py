"""`make scale`: a store grown to 10k, 100k and 1M messages through the real intake, and at each
size what an operator feels: intake and applied rates, API latencies, recount, doctor and purge
times with the intake's answers while they run, memory, and disk per message.

    .venv/bin/python bench/scale.py [--sizes 10000,100000,1000000] [--keep]

Why through the intake: a store filled by hand skips the worker's own write pattern (indexes,
page splits, WAL) that the figures are about. Infobip SMS delivery reports, one per message,
1,000 campaigns named in callbackData; one report in 1,000 is a failure and one in 500 an email,
so `status=failed` and `channel=email` match few rows. Loopback only; every process it starts is
stopped before it exits; every wait is bounded.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from loadgen import percentile, run_load_blocking
from run import (
    HOST,
    BenchError,
    Processes,
    _as_ctrl_c,
    _workdir,
    clean_env,
    free_port,
    tool,
    wait_for,
    wait_http,
)
from sqlalchemy import func, select

from tidings.config import Settings
from tidings.scheduler.jobs import JobContext, purge_old_receipts
from tidings.storage import inbox, schema
from tidings.storage.db import Database
from tidings.storage.recount import recount

CONNECTION = "scale"
SECRET = "s3cret"  # noqa: S105 - a throwaway connection in a temporary store
CAMPAIGNS = 1000
CHUNK = 50_000  # bodies built and sent at a time (a million would not fit in memory well)
BACKGROUND_RATE = 150.0  # webhooks/s sent while maintenance runs, as the issue measured


def report_body(i: int) -> bytes:
    """Message i's Infobip delivery report (SMS; every 500th an email, every 1000th failed)."""
    failed = i % 1000 == 7
    email = i % 500 == 3
    group = "UNDELIVERABLE" if failed else "DELIVERED"
    result = {
        "bulkId": f"bulk{i // 1000:08d}",
        "messageId": f"scale{i:012d}",
        "to": f"person{i}@example.com" if email else f"5511{900000000 + i}",
        "sentAt": "2026-12-01T10:00:00.000+0000",
        "doneAt": "2026-12-01T10:00:02.000+0000",
        "smsCount": 1,
        "mccMnc": "72410",
        "price": {"pricePerMessage": 0.01, "currency": "EUR"},
        "status": {"groupId": 3, "groupName": group, "id": 5, "name": f"{group}_TO_HANDSET"},
        "error": {"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR", "permanent": False},
        "callbackData": json.dumps({"campaign": f"camp{i % CAMPAIGNS:04d}", "contact": str(i)}),
    }
    return json.dumps({"results": [result]}, separators=(",", ":")).encode()


@dataclass
class Background:
    """Webhooks at a steady rate from a thread (re-sent reports: new receipts, no new events),
    recording each answer's status and latency."""

    port: int
    rate: float = BACKGROUND_RATE
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        path = f"/hooks/infobip/{CONNECTION}?token={SECRET}"
        connection = http.client.HTTPConnection(HOST, self.port, timeout=10)
        i, started = 0, time.monotonic()
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                connection.request(
                    "POST", path, report_body(i), {"content-type": "application/json"}
                )
                reply = connection.getresponse()
                reply.read()
                self.statuses[reply.status] += 1
            except OSError:
                self.statuses[0] += 1
                connection.close()
                connection = http.client.HTTPConnection(HOST, self.port, timeout=10)
            self.latencies.append(time.monotonic() - sent)
            i += 1
            time.sleep(max(0.0, started + i / self.rate - time.monotonic()))
        connection.close()

    def during(self, work: Callable[[], object]) -> float:
        """Seconds `work()` took while this load ran."""
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        time.sleep(0.5)  # the load is flowing before the work starts
        started = time.monotonic()
        try:
            work()
        finally:
            took = time.monotonic() - started
            time.sleep(0.5)
            self._stop.set()
            thread.join(15)
        return took

    def summary(self) -> str:
        other = sum(n for status, n in self.statuses.items() if status != 202)
        p99 = percentile(self.latencies, 99) * 1000
        return f"{sum(self.statuses.values())} webhooks, {other} not 202, p99 {p99:.0f} ms"


class Api:
    """GET requests, timed, on a keep-alive connection per query."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.headers = {"authorization": f"Bearer {token}"}

    def timed(self, query: dict[str, str], times: int = 30) -> tuple[float, float]:
        """Median and p95 of `times` GET /v1/messages?query, in ms (the first, which opens
        the connection, not counted)."""
        path = "/v1/messages?" + urlencode({**query, "limit": "50"})
        connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
        latencies = []
        try:
            for _ in range(times + 1):
                started = time.monotonic()
                connection.request("GET", path, headers=self.headers)
                reply = connection.getresponse()
                body = reply.read()
                latencies.append(time.monotonic() - started)
                if reply.status != 200:
                    raise BenchError(f"GET {path}: {reply.status} {body[:200]!r}")
        finally:
            connection.close()
        return percentile(latencies[1:], 50) * 1000, percentile(latencies[1:], 95) * 1000


def tidings_cli(env: dict[str, str], *args: str, ok: tuple[int, ...] = (0,)) -> str:
    done = subprocess.run(
        [tool("tidings"), *args], env=env, capture_output=True, text=True, timeout=3600, check=False
    )
    if done.returncode not in ok:
        raise BenchError(f"tidings {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def timed_cli(env: dict[str, str], *args: str) -> float:
    """Seconds `tidings args` takes (the CLI's start-up, for `--version`)."""
    started = time.monotonic()
    tidings_cli(env, *args)
    return time.monotonic() - started


def rss_mib(leader: int) -> float:
    """Resident memory of the server and every process of its group (the worker child)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != leader:
                continue
            status = (entry / "status").read_text()
        except (OSError, ProcessLookupError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def grow(port: int, db: Database, start: int, stop: int, stall: float) -> tuple[float, float]:
    """Send reports for messages [start, stop) and wait until all are applied: (acknowledged/s
    over the sends, applied/s from the first send to the last receipt done)."""
    acked, sending = 0, 0.0
    first = time.time()
    for low in range(start, stop, CHUNK):
        bodies = [report_body(i) for i in range(low, min(stop, low + CHUNK))]
        load = run_load_blocking(HOST, port, f"/hooks/infobip/{CONNECTION}?token={SECRET}", bodies)
        acked += load.count(200, 300)
        sending += load.duration
        if load.count(200, 300) != len(bodies):
            raise BenchError(f"{len(bodies) - load.count(200, 300)} reports not acknowledged")

    def progress() -> tuple[int, bool]:
        with db.read() as conn:
            pending = inbox.count_by_status(conn)["pending"]  # landed ones included
        return -pending, pending == 0

    if not wait_for(progress, stall=stall, cap=3600):
        raise BenchError("the worker stopped applying")
    with db.read() as conn:
        last = conn.execute(select(func.max(schema.receipts.c.processed_at))).scalar_one()
    return acked / sending, (stop - start) / (last.timestamp() - first)


def measure(args: argparse.Namespace, work: Path, procs: Processes) -> list[list[str]]:
    url = f"sqlite:///{work / 'scale.db'}"
    env = clean_env(TIDINGS_DATABASE_URL=url, TIDINGS_LOG_LEVEL="WARNING")
    tidings_cli(env, "migrate")
    tidings_cli(
        env,
        "connection",
        "add",
        "infobip",
        CONNECTION,
        "--secret",
        SECRET,
        "--option",
        "campaign_key=campaign",
    )
    token = tidings_cli(env, "token", "create", "--name", "scale").strip().splitlines()[-1]
    port = free_port()
    server = procs.start(
        "tidings", [tool("tidings"), "serve", "--host", HOST, "--port", str(port)], env
    )
    wait_http(procs, "tidings", port, "/healthz")
    db = Database(url, timeout=10.0)
    api = Api(port, token)
    rows: list[list[str]] = []
    done = 0
    try:
        for size in args.sizes:
            _say(f"growing the store to {size:,} messages")
            intake, applied = grow(port, db, done, size, args.stall)
            done = size
            procs.check_alive("tidings")
            row = [f"{size:,}", f"{intake:,.0f}", f"{applied:,.0f}", f"{rss_mib(server.pid):.0f}"]
            probe = size // 2
            for query in (
                {"provider_message_id": f"scale{probe:012d}"},
                {"status": "failed"},
                {"channel": "email"},
                {"recipient": f"5511{900000000 + probe}"},
                {"since": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()},
                {"campaign": "camp0042"},
            ):
                median, p95 = api.timed(query)
                row.append(f"{median:.1f}/{p95:.1f}")
            load = Background(port)
            took = load.during(lambda: recount(db, fix=True, now=datetime.now(UTC)))
            row.append(f"{took:.2f} s ({load.summary()})")
            startup = timed_cli(env, "--version")
            load = Background(port)
            took = load.during(lambda: tidings_cli(env, "doctor"))
            row.append(f"{took:.2f} s, `tidings --version` {startup:.2f} s ({load.summary()})")
            row.extend(purge(port, db, url, size))
            rows.append(row)
            print_table(rows)
    finally:
        db.dispose()
        procs.stop("tidings")
    return rows


class _NoWake:
    """The purge needs no worker woken: the server's own applies what arrives."""

    def wake(self) -> None:
        return None


def purge(port: int, db: Database, url: str, size: int) -> list[str]:
    """Bytes per message, then every finished receipt purged by the scheduler's own job under a
    steady intake, then bytes per message without the raw receipts."""
    store, _ = db.disk_usage()
    settings = Settings(database_url=url).model_copy(update={"retention_days": 0})
    load = Background(port)
    purged: list[int] = []
    took = load.during(
        lambda: purged.append(purge_old_receipts(JobContext(db, settings, _NoWake())))
    )
    after, wal = db.disk_usage()
    return [
        f"{store / size:,.0f}",
        f"{purged[0]:,} in {took:.1f} s ({load.summary()})",
        f"{after / size:,.0f} (WAL {wal / 2**20:.0f} MiB)",
    ]


HEADERS = [
    "messages",
    "ack/s",
    "applied/s",
    "RSS MiB",
    "pmid ms p50/p95",
    "status=failed",
    "channel=email",
    "recipient",
    "since (1 s)",
    "campaign",
    "recount",
    "doctor",
    "bytes/msg",
    "purge",
    "bytes/msg after purge",
]


def print_table(rows: list[list[str]]) -> None:
    """One block per size: the figures are too many for one line."""
    for row in rows[-1:]:
        print()
        for name, value in zip(HEADERS, row, strict=True):
            print(f"  {name:<24} {value}")
    sys.stdout.flush()


def _say(text: str) -> None:
    print(f"[scale] {text}", flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--sizes",
        default="10000,100000,1000000",
        help="store sizes to measure at, ascending (messages)",
    )
    parser.add_argument(
        "--stall",
        type=float,
        default=120.0,
        help="give up after this many seconds without the worker progressing",
    )
    parser.add_argument("--keep", action="store_true", help="keep the store and the logs")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",")]
    if args.sizes != sorted(args.sizes) or args.sizes[0] < 1000:
        parser.error("--sizes must be ascending, each at least 1000")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _as_ctrl_c)
    try:
        with _workdir(args.keep) as work, Processes(work) as procs:
            measure(args, work, procs)
    except BenchError as error:
        print(f"scale: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("scale: interrupted; every process it started has been stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
