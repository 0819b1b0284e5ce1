"""`make bench`: tidings embedded, the machine's durable limit, the hand-built Flask + Celery
baseline, and tidings scaled out (2 web nodes + 2 Celery workers + beat on PostgreSQL), in one
run; then outbound webhooks and campaign dispatch, each against its hand-written loop.

    .venv/bin/python bench/run.py [--requests 20000] [--concurrency 64] [--skip-scaleout]
        [--outbound-events 20000] [--outbound-steady-rate 200] [--outbound-steady-seconds 10]
        [--skip-outbound | --only-outbound]
        [--dispatch-contacts 5000] [--dispatch-baseline 500] [--dispatch-rate-contacts 300]
        [--skip-dispatch | --only-dispatch]

`--only-outbound` and `--only-dispatch` run just those sections (both: both).

Why one run and ratios: the machine is shared and noisy, so absolute figures drift between runs;
the ratio of two configurations measured minutes apart on the same machine does not drift as
much. Why a ledger counted from the store: a fast answer means nothing unless what was answered
is there afterwards, exactly once (docs/architecture.md, "Measuring"). A run whose ledger does
not balance is void and exits 1; targets missed are printed but do not change the exit status.

Exit status: 0 ledgers balanced; 1 a ledger does not balance; 2 the environment is not ready
(Redis or PostgreSQL down, a tool missing); 3 a run could not complete (a process died or
never came up); 130 interrupted. Every process started here is stopped, and the scale-out
database dropped, before it exits, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import os
import platform
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any

from cpu_time import CpuSnapshot, snapshot
from dispatch_bench import measure_dispatch, report_dispatch
from loadgen import LoadResult, percentiles, run_load, run_load_blocking
from outbound_bench import measure_outbound, report_outbound
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from tidings.storage import inbox, schema
from tidings.storage.db import Database

HOST = "127.0.0.1"  # everything listens on loopback only
BENCH_DIR = Path(__file__).resolve().parent
BASELINE_DIR = BENCH_DIR / "baseline"
LIMIT_APP = BENCH_DIR / "limit" / "app.py"
BIN = Path(sys.executable).parent
CONNECTION = "bench"
SECRET = "s3cret"  # noqa: S105 - a throwaway connection in a temporary store
REDIS_PORT = 6379
REDIS_DB = 5
SCALEOUT_REDIS_DB = 6  # the scale-out broker: not the baseline's database, flushed before/after
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SCALEOUT_WEB = 2
SCALEOUT_WORKERS = 2
BASELINE_QUEUE = "email-webhook"
RECEIPT_STATES = ("done", "pending", "failed", "dead", "quarantined")

TARGET_ACK = 10.0
TARGET_APPLIED = 15.0
TARGET_P99 = 0.3
# Issue 19: tidings as it starts by default against the durable limit measured in the same run.
TARGET_LIMIT_ACK = 0.6
TARGET_LIMIT_APPLIED = 0.55
TARGET_LIMIT_P99 = 3.0
TARGET_ACK_19 = 12.0
TARGET_APPLIED_19 = 20.0

EXIT_UNBALANCED = 1
EXIT_NOT_READY = 2
EXIT_FAILED = 3
EXIT_INTERRUPTED = 130


class BenchError(Exception):
    """The run could not complete; the message says why."""

    exit_code = EXIT_FAILED


class NotReady(BenchError):
    exit_code = EXIT_NOT_READY


# ---------------------------------------------------------------------------------------------
# Processes


class Processes:
    """Starts servers in their own process groups and stops every one of them on exit."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._running: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}
        self._log_paths: dict[str, Path] = {}

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_all()

    def start(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        cwd: Path | None = None,
        log_dir: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """`log_dir`: where `{name}.log` goes, if not the run's own directory (each pair's
        servers log in the pair's directory, so `--keep` keeps every pair's logs)."""
        path = (log_dir or self.log_dir) / f"{name}.log"
        self._log_paths[name] = path
        log = path.open("wb")
        self._logs[name] = log
        process = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._running[name] = process
        return process

    def pid(self, name: str) -> int:
        return self._running[name].pid

    def check_alive(self, name: str) -> None:
        process = self._running[name]
        if process.poll() is not None:
            raise BenchError(
                f"{name} exited with status {process.returncode}:\n{self.log_tail(name)}"
            )

    def log_path(self, name: str) -> Path:
        """Where the server started as `name` logs (the last one, if started more than once)."""
        return self._log_paths.get(name, self.log_dir / f"{name}.log")

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.log_path(name)
        if not path.exists():
            return "(no log)"
        text = path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(f"    {line}" for line in text) or "    (empty log)"

    def stop(self, name: str, grace: float = 15.0) -> None:
        """SIGTERM to the process, then SIGKILL to its whole group if anything lingers."""
        process = self._running.pop(name, None)
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                _kill_group(process.pid)
                process.wait(5)
        _kill_group(process.pid)  # children left behind by a leader that exited
        log = self._logs.pop(name, None)
        if log is not None:
            log.close()

    def stop_all(self) -> None:
        for name in reversed(list(self._running)):
            self.stop(name)


def _kill_group(pgid: int) -> None:
    """SIGKILL what is left of a group this script created (its id is the leader's pid)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _as_ctrl_c(_signum: int, _frame: FrameType | None) -> None:
    """SIGTERM and SIGHUP take Ctrl-C's path, which asyncio's runner already handles cleanly."""
    signal.raise_signal(signal.SIGINT)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(procs: Processes, name: str, port: int, path: str, timeout: float = 60.0) -> None:
    """Until GET path answers 200, the process dies, or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs.check_alive(name)
        connection = http.client.HTTPConnection(HOST, port, timeout=2)
        try:
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.1)
    raise BenchError(f"{name} did not answer GET {path} within {timeout:.0f}s")


def wait_for(
    progress: Callable[[], tuple[int, bool]], stall: float, cap: float, every: float = 0.2
) -> bool:
    """Poll `progress` (a counter, finished?) until finished; False after `stall` seconds
    without the counter moving or `cap` seconds in all."""
    started = last_move = time.monotonic()
    last_value = -1
    while True:
        value, finished = progress()
        if finished:
            return True
        now = time.monotonic()
        if value != last_value:
            last_value, last_move = value, now
        if now - last_move > stall or now - started > cap:
            return False
        time.sleep(every)


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any TIDINGS_* setting, so runs are reproducible."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        raise NotReady(
            f"{path} not found: install the bench's packages into this environment "
            "(pip install -e '.[bench]', as `make bench` does)"
        )
    return str(path)


# ---------------------------------------------------------------------------------------------
# Bodies


def evolution_bodies(count: int) -> tuple[list[str], list[bytes]]:
    """`count` Evolution v2 `messages.update` webhooks, one per distinct WhatsApp message id."""
    instance_id = str(uuid.uuid4())
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    ids = [f"3EB0{i:016X}" for i in range(count)]
    bodies = [
        json.dumps(
            {
                "event": "messages.update",
                "instance": CONNECTION,
                "data": {
                    "keyId": message_id,
                    "remoteJid": f"5511{900000000 + i % 100000000}@s.whatsapp.net",
                    "fromMe": True,
                    "status": "DELIVERY_ACK",
                    "instanceId": instance_id,
                    "messageId": f"cm{i:022x}",
                },
                "destination": f"http://{HOST}/hooks/evolution/{CONNECTION}",
                "date_time": now,
                "sender": "5511900000000@s.whatsapp.net",
                "server_url": "http://127.0.0.1:8080",
                "apikey": None,
            },
            separators=(",", ":"),
        ).encode()
        for i, message_id in enumerate(ids)
    ]
    return ids, bodies


def infobip_bodies(count: int) -> tuple[list[str], list[bytes]]:
    """`count` Infobip email delivery reports, each with one result for a distinct message."""
    ids = [f"bench{i:015x}" for i in range(count)]
    bodies = [
        json.dumps(
            {
                "results": [
                    {
                        "bulkId": f"bulk{i // 100:08d}",
                        "price": {"pricePerMessage": 0.001, "currency": "BRL"},
                        "status": {
                            "id": 5,
                            "groupId": 3,
                            "groupName": "DELIVERED",
                            "name": "DELIVERED_TO_HANDSET",
                            "description": "Message delivered to handset",
                        },
                        "error": {
                            "id": 0,
                            "name": "NO_ERROR",
                            "description": "No Error",
                            "groupId": 0,
                            "groupName": "OK",
                            "permanent": False,
                        },
                        "messageId": message_id,
                        "doneAt": "2024-07-16T17:26:54.966-0300",
                        "smsCount": 1,
                        "sentAt": "2024-07-16T17:26:52.880-0300",
                        "browserLink": "",
                        "callbackData": json.dumps({"contact_id": i}),
                        "to": f"person{i}@example.com",
                    }
                ]
            },
            separators=(",", ":"),
        ).encode()
        for i, message_id in enumerate(ids)
    ]
    return ids, bodies


# ---------------------------------------------------------------------------------------------
# Measurements


@dataclass(frozen=True)
class Check:
    """One line of a ledger: an identity that must hold, and the figures behind it."""

    what: str
    ok: bool
    detail: str


@dataclass
class Measured:
    name: str
    load: LoadResult
    completed: int  # applied (tidings) or stored (baseline)
    last_completed_at: float | None
    finished: bool  # everything acknowledged was completed before the wait gave up
    lost: int
    duplicated: int
    ledger: list[Check]
    notes: list[str] = field(default_factory=list)
    info: str = ""  # what ran, for the header (e.g. the PostgreSQL version)
    cpu: dict[str, float] = field(default_factory=dict)  # us of CPU per 2xx, by process
    cpu_note: str = ""  # why `cpu` is empty
    commits: tuple[float, float, float] | None = None  # intake group commits, receipts, seconds
    commits_note: str = ""  # why `commits` is None

    @property
    def acknowledged(self) -> int:
        return self.load.count(200, 300)

    @property
    def ack_per_s(self) -> float:
        return self.acknowledged / self.load.duration if self.load.duration > 0 else 0.0

    @property
    def ack_latencies(self) -> list[float]:
        return [r.latency for r in self.load.replies if r is not None and 200 <= r.status < 300]

    @property
    def completed_per_s(self) -> float:
        if self.last_completed_at is None:
            return 0.0
        elapsed = self.last_completed_at - self.load.started_at
        return self.completed / elapsed if elapsed > 0 else 0.0

    @property
    def balanced(self) -> bool:
        return all(check.ok for check in self.ledger)


def sent_checks(load: LoadResult, intended: int) -> list[Check]:
    """Every request went out, and every one sent is accounted for by its answer (or none)."""
    ok2xx, bad = load.count(200, 300), load.count(400, 401)
    other = sum(load.status_counts.values()) - ok2xx - bad + load.unanswered
    cut = " (the load hit --timeout)" if load.timed_out else ""
    return [
        Check("every request was sent", load.sent == intended, f"{load.sent} of {intended}{cut}"),
        Check(
            "sent = 2xx + 400 + other",
            load.sent == ok2xx + bad + other,
            f"{load.sent} = {ok2xx} + {bad} + {other}"
            f" (other: {_other_statuses(load)}, unanswered {load.unanswered})",
        ),
    ]


def _other_statuses(load: LoadResult) -> str:
    found = sorted(
        (status, n)
        for status, n in load.status_counts.items()
        if not (200 <= status < 300 or status == 400)
    )
    return ", ".join(f"{n} x {status}" for status, n in found) or "none"


def measure_tidings(args: argparse.Namespace, work: Path, procs: Processes) -> Measured:
    url = f"sqlite:///{work / 'tidings.db'}"
    # As it starts by default: no line per request there either (TIDINGS_ACCESS_LOG is off),
    # like gunicorn, which has no access log by default.
    env = clean_env(TIDINGS_DATABASE_URL=url)
    tidings = tool("tidings")
    subprocess.run([tidings, "migrate"], env=env, capture_output=True, check=True)
    added = subprocess.run(
        [tidings, "connection", "add", "evolution", CONNECTION, "--secret", SECRET],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if added.returncode != 0:
        raise BenchError(f"tidings connection add failed:\n{added.stdout}{added.stderr}")
    port = free_port()
    procs.start(
        "tidings", [tidings, "serve", "--host", HOST, "--port", str(port)], env, log_dir=work
    )
    wait_http(procs, "tidings", port, "/healthz")
    # A service that has started: its worker child too, as the scale-out run waits for its
    # workers. Otherwise the child's start (imports, about a second) counts as applying time.
    wait_log(procs, "tidings", "worker process ready")

    ids, bodies = evolution_bodies(args.requests)
    _say(f"tidings: sending {len(bodies):,} webhooks on {args.concurrency} connections")
    cpu_before = snapshot(procs.pid("tidings"))
    load = run_load_blocking(
        HOST,
        port,
        f"/hooks/evolution/{CONNECTION}?token={SECRET}",
        bodies,
        args.concurrency,
        timeout=args.timeout,
    )
    procs.check_alive("tidings")
    _say(
        f"tidings: {load.count(200, 300):,} acknowledged in {load.duration:.1f}s; "
        "waiting for the worker to apply them"
    )
    db = Database(url, timeout=10.0)
    try:

        def progress() -> tuple[int, bool]:
            procs.check_alive("tidings")
            states = _receipt_states(db)
            total = sum(states.values())
            pending = states.get("pending", 0)
            return total - pending, pending == 0 and total >= load.count(200, 300)

        finished = wait_for(progress, stall=args.stall, cap=args.drain_cap)
        cpu_after = snapshot(procs.pid("tidings"))  # the worker's applying included
        result = _tidings_ledger(db, load, ids, finished)
    finally:
        db.dispose()
    result.commits, result.commits_note = _intake_commits(port)
    procs.stop("tidings")
    result.cpu, result.cpu_note = _cpu_per_webhook(
        load, cpu_before, cpu_after, "intake (serve)", "worker process"
    )
    if not finished:
        result.cpu, result.cpu_note = {}, "the worker did not finish applying"
    return result


Pair = tuple[Measured, Measured]  # tidings, then the limit, one right after the other


def measure_pairs(args: argparse.Namespace, work: Path, procs: Processes) -> list[Pair]:
    """tidings and the limit, one after the other, `--pairs` times, each on fresh files. The
    machine is shared: a burst of someone else's work can slow one side of a pair and not
    the other, so one pair's ratio can be off by a tenth either way; the median of several
    pairs is not moved by one such burst."""
    pairs: list[Pair] = []
    for number in range(1, args.pairs + 1):
        place = work / f"pair-{number}"
        place.mkdir()
        if args.pairs > 1:
            _say(f"pair {number} of {args.pairs}")
        pairs.append((measure_tidings(args, place, procs), measure_limit(args, place, procs)))
    return pairs


def median_pair(pairs: list[Pair]) -> Pair:
    """The pair whose tidings ÷ limit acknowledged/s is the median (the lower of the two
    middle ones for an even count, as `statistics.median_low`): the table shows one real
    pair, not figures mixed from several."""
    ranked = sorted(pairs, key=lambda pair: _ratio(pair[0].ack_per_s, pair[1].ack_per_s))
    return ranked[(len(ranked) - 1) // 2]


def require_acknowledged(load: LoadResult, who: str, log_tail: str) -> None:
    """A reference that acknowledged nothing leaves nothing to compare with: the run stops
    here, saying so, instead of printing ratios of nothing."""
    if load.count(200, 300) == 0:
        raise BenchError(
            f"{who} acknowledged none of the {load.sent:,} webhooks sent "
            f"({_other_statuses(load) or 'no answers'}); its log ends:\n{log_tail}"
        )


def _limit_ratios(pair: Pair) -> tuple[float, float, float]:
    """tidings ÷ limit: acknowledged/s, applied/s end to end, p99 acknowledgement (the limit
    always acknowledged some: `require_acknowledged`). A tidings that acknowledged nothing
    has the worst of each: 0, 0, and a p99 of infinity (none came back)."""
    t, lim = pair
    lp = percentiles(lim.ack_latencies, (99,))
    latencies = t.ack_latencies
    p99 = _ratio(percentiles(latencies, (99,))[99], lp[99]) if latencies else math.inf
    return (
        _ratio(t.ack_per_s, lim.ack_per_s),
        _ratio(t.completed_per_s, lim.completed_per_s),
        p99,
    )


def _print_pairs(pairs: list[Pair], shown: Pair) -> tuple[float, float, float]:
    """Each pair's ratios, and their medians (what the issue-19 targets are judged on)."""
    each = [_limit_ratios(pair) for pair in pairs]
    # Each ratio's own median; the lower middle one for an even count, so that each is a
    # figure some pair measured (and the acknowledged/s one is the table's pair's).
    medians = (
        statistics.median_low(r[0] for r in each),
        statistics.median_low(r[1] for r in each),
        statistics.median_low(r[2] for r in each),
    )
    if len(pairs) == 1:
        return medians
    print()
    print(f"tidings against the limit, pair by pair ({len(pairs)} pairs, in the order run):")
    for number, (pair, ratios) in enumerate(zip(pairs, each, strict=True), start=1):
        t, lim = pair
        mark = "  <- the table's pair" if pair[0] is shown[0] else ""
        print(
            f"  pair {number}: acknowledged/s {_fmt_rate(t.ack_per_s)} / "
            f"{_fmt_rate(lim.ack_per_s)} = {_times(ratios[0])}, applied/s {_times(ratios[1])}, "
            f"p99 {_times(ratios[2])}{mark}"
        )
    print(
        f"  median: acknowledged/s {_times(medians[0])}, applied/s {_times(medians[1])}, "
        f"p99 {_times(medians[2])}"
    )
    return medians


def _intake_commits(port: int) -> tuple[tuple[float, float, float] | None, str]:
    """The intake's group commits since it started, from its /metrics: (commits, receipts,
    seconds), or None and why not."""
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        answer = connection.getresponse()
        text = answer.read().decode()
    except (OSError, http.client.HTTPException, UnicodeDecodeError) as error:
        return None, f"/metrics could not be read: {error!r}"
    finally:
        connection.close()
    if answer.status != 200:
        return None, f"/metrics answered {answer.status}"
    try:
        found = {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name.startswith("tidings_intake_commit_") and not sample.labels
        }
    except ValueError as error:
        return None, f"/metrics could not be parsed: {error}"
    try:
        commits = found["tidings_intake_commit_receipts_count"]
        receipts = found["tidings_intake_commit_receipts_sum"]
        seconds = found["tidings_intake_commit_seconds_sum"]
    except KeyError as missing:
        return None, f"/metrics has no {missing}"
    if not commits:
        return None, "no commit was measured"
    return (commits, receipts, seconds), ""


def _cpu_per_webhook(
    load: LoadResult,
    before: CpuSnapshot | None,
    after: CpuSnapshot | None,
    server: str,
    children: str | None,
) -> tuple[dict[str, float], str]:
    """µs of CPU per acknowledged webhook: the server process, its child processes (named
    `children`, when counted) and the load generator; or nothing, and why."""
    acknowledged = load.count(200, 300)
    if before is None:
        return {}, f"the {server} process could not be read"
    if after is None:
        return {}, f"the {server} process was gone before the end"
    if not acknowledged:
        return {}, "nothing was acknowledged"
    if children is not None and after.lost_since(before):
        return {}, "a child process exited during the run, and its CPU is not counted"
    itself, below = after.since(before)
    spent = {server: itself}
    if children is not None:
        spent[children] = below
    spent["load generator"] = load.cpu_seconds
    return {name: seconds / acknowledged * 1e6 for name, seconds in spent.items()}, ""


def measure_limit(args: argparse.Namespace, work: Path, procs: Processes) -> Measured:
    """The bare durable limit (bench/limit/app.py) under the same load as tidings."""
    path = work / "limit.db"
    port = free_port()
    procs.start(
        "limit",
        [sys.executable, str(LIMIT_APP), "--host", HOST, "--port", str(port), "--db", str(path)],
        clean_env(),
        log_dir=work,
    )
    wait_http(procs, "limit", port, "/healthz")
    _, bodies = evolution_bodies(args.requests)
    _say(f"limit: sending {len(bodies):,} webhooks on {args.concurrency} connections")
    cpu_before = snapshot(procs.pid("limit"))
    load = run_load_blocking(HOST, port, "/hooks", bodies, args.concurrency, timeout=args.timeout)
    cpu_after = snapshot(procs.pid("limit"))
    procs.check_alive("limit")
    procs.stop("limit")
    require_acknowledged(load, "the limit", procs.log_tail("limit"))
    with contextlib.closing(sqlite3.connect(path)) as db:
        stored = [bytes(row[0]) for row in db.execute("SELECT body FROM inbox ORDER BY id")]
    acknowledged = load.count(200, 300)
    kept = Counter(stored)
    answered = [
        bodies[i] for i, reply in enumerate(load.replies) if reply and 200 <= reply.status < 300
    ]
    lost = sum(1 for body in answered if body not in kept)
    duplicated = sum(n - 1 for n in kept.values() if n > 1)
    ledger = [
        *sent_checks(load, len(bodies)),
        Check(
            "every acknowledged body is stored",
            lost == 0 and len(stored) >= acknowledged,
            f"{len(stored):,} stored for {acknowledged:,} acknowledged, {lost} lost",
        ),
        Check("no body stored twice", duplicated == 0, f"{duplicated} duplicated"),
    ]
    # Committed before it is acknowledged: the last answer is the last body stored.
    measured = Measured(
        "limit", load, len(stored), load.finished_at, True, lost, duplicated, ledger
    )
    measured.cpu, measured.cpu_note = _cpu_per_webhook(load, cpu_before, cpu_after, "server", None)
    return measured


def _receipt_states(db: Database) -> Counter[str]:
    """Receipts by status as tidings counts them: those landed and not yet applied are
    pending (docs/decisions/0017)."""
    with db.read() as conn:
        return Counter(inbox.count_by_status(conn))


def _tidings_ledger(
    db: Database, load: LoadResult, ids: list[str], finished: bool, name: str = "tidings"
) -> Measured:
    receipts, events, messages = schema.receipts, schema.events, schema.messages
    with db.read() as conn:
        rows = conn.execute(select(receipts.c.id, receipts.c.status))
        stored: dict[int, str] = {row.id: row.status for row in rows}
        last_done = conn.execute(
            select(func.max(receipts.c.processed_at)).where(receipts.c.status == "done")
        ).scalar()
        event_count = conn.execute(select(func.count()).select_from(events)).scalar() or 0
        distinct_events = (
            conn.execute(
                select(func.count()).select_from(
                    select(events.c.message_id, events.c.kind).distinct().subquery()
                )
            ).scalar()
            or 0
        )
        message_count = conn.execute(select(func.count()).select_from(messages)).scalar() or 0

    states = Counter(stored.values())
    ok2xx, bad = load.count(200, 300), load.count(400, 401)
    answered: set[int] = set()
    lost_2xx = lost_400 = 0
    for reply in load.replies:
        if reply is None or not (200 <= reply.status < 300 or reply.status == 400):
            continue
        receipt_id = _receipt_id(reply.body)
        if receipt_id is not None:
            answered.add(receipt_id)
        if reply.status == 400:
            lost_400 += receipt_id is None or stored.get(receipt_id) != "quarantined"
        else:
            lost_2xx += receipt_id not in stored
    other = load.sent - ok2xx - bad
    beyond = len(stored) - len(answered & stored.keys())
    breakdown = " + ".join(f"{s} {states.get(s, 0)}" for s in RECEIPT_STATES)
    unknown = {s: n for s, n in states.items() if s not in RECEIPT_STATES}
    duplicated = event_count - distinct_events
    ledger = [
        *sent_checks(load, len(ids)),
        Check(
            "every 2xx has its receipt",
            lost_2xx == 0,
            f"{ok2xx - lost_2xx} of {ok2xx} found in the store (lost {lost_2xx})",
        ),
        Check(
            "every 400 has a quarantined receipt",
            lost_400 == 0,
            f"{bad - lost_400} of {bad} found (lost {lost_400})",
        ),
        Check(
            "receipts = done + pending + failed + dead + quarantined",
            not unknown,
            f"{len(stored)} = {breakdown}" + (f" + unknown {unknown}" if unknown else ""),
        ),
        Check(
            "receipts no one was answered for <= other answers",
            0 <= beyond <= other,
            f"{beyond} <= {other}",
        ),
        Check(
            "duplicated = events - distinct (message, kind) = 0",
            duplicated == 0,
            f"{event_count} - {distinct_events} = {duplicated}",
        ),
    ]
    notes = []
    if not finished:
        notes.append(f"gave up waiting: {states.get('pending', 0)} receipts still pending")
    if states.get("failed", 0) or states.get("dead", 0):
        notes.append(
            f"{states.get('failed', 0)} failed and {states.get('dead', 0)} dead "
            f"receipts: see the {name} logs"
        )
    if message_count != len(ids):
        notes.append(f"{message_count} messages in the store for {len(ids)} distinct ids sent")
    last = last_done.timestamp() if last_done is not None else None
    return Measured(
        name,
        load,
        states.get("done", 0),
        last,
        finished,
        lost_2xx + lost_400,
        duplicated,
        ledger,
        notes,
    )


# ---------------------------------------------------------------------------------------------
# Scale-out: 2 web nodes + 2 Celery workers + beat on PostgreSQL, Redis as the broker


def postgres_admin() -> Any:
    """An autocommit connection to the local server's `postgres` database; NotReady if down."""
    import psycopg

    try:
        return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.Error as error:
        raise NotReady(
            f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({error}); the scale-out run "
            "needs it. Start it, or pass --skip-scaleout."
        ) from None


@contextlib.contextmanager
def scratch_database() -> Iterator[tuple[str, str]]:
    """A fresh `tidings_bench_<random>` database (its URL and the server version), dropped
    afterwards WITH (FORCE) whatever happened."""
    import psycopg

    name = f"tidings_bench_{uuid.uuid4().hex[:12]}"
    with contextlib.closing(postgres_admin()) as admin:
        version = str(admin.execute("SHOW server_version").fetchone()[0]).split(" ")[0]
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", version
    finally:
        try:
            with contextlib.closing(postgres_admin()) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except (NotReady, psycopg.Error) as error:
            print(f"[bench] could not drop the database {name}: {error}", file=sys.stderr)


def _tidings_cli(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [tool("tidings"), *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"tidings {' '.join(args[:2])} failed:\n{done.stdout}{done.stderr}")


def wait_log(procs: Processes, name: str, text: str, timeout: float = 60.0) -> None:
    """Until `text` appears in the process's log, the process dies, or the timeout passes."""
    path = procs.log_path(name)

    def ready() -> tuple[int, bool]:
        procs.check_alive(name)
        return 0, path.exists() and text in path.read_text(errors="replace")

    if not wait_for(ready, stall=timeout, cap=timeout):
        raise BenchError(f"{name} did not get ready within {timeout:.0f}s:\n{procs.log_tail(name)}")


def run_split_load(
    ports: list[int], path: str, bodies: list[bytes], concurrency: int, timeout: float
) -> tuple[LoadResult, list[LoadResult]]:
    """One load generator per port, all at once on one event loop: port i gets the i-th
    share of the bodies and of the connections. The merged result (replies in body order)
    and each part."""
    n = len(ports)
    bounds = [len(bodies) * i // n for i in range(n + 1)]
    shares = [max(1, concurrency * (i + 1) // n - concurrency * i // n) for i in range(n)]

    async def together() -> list[LoadResult]:
        return list(
            await asyncio.gather(
                *(
                    run_load(
                        HOST,
                        port,
                        path,
                        bodies[bounds[i] : bounds[i + 1]],
                        shares[i],
                        timeout=timeout,
                    )
                    for i, port in enumerate(ports)
                )
            )
        )

    try:
        import uvloop
    except ImportError:
        parts = asyncio.run(together())
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            parts = runner.run(together())
    merged = LoadResult(
        sent=sum(part.sent for part in parts),
        status_counts=sum((part.status_counts for part in parts), Counter()),
        latencies=[latency for part in parts for latency in part.latencies],
        started_at=min(part.started_at for part in parts),
        finished_at=max(part.finished_at for part in parts),
        errors=sum(part.errors for part in parts),
        replies=[reply for part in parts for reply in part.replies],
        timed_out=any(part.timed_out for part in parts),
    )
    return merged, parts


def measure_scaleout(args: argparse.Namespace, procs: Processes) -> Measured:
    import redis

    broker = redis_client(SCALEOUT_REDIS_DB)
    broker.flushdb()
    started: list[str] = []
    try:
        with scratch_database() as (url, version):
            try:
                result = _run_scaleout(args, procs, url, started)
            finally:  # every process is gone before its database is dropped
                for name in reversed(started):
                    procs.stop(name)
            result.info = f"PostgreSQL {version}"
            return result
    finally:
        with contextlib.suppress(redis.RedisError):
            broker.flushdb()
        broker.close()


def _run_scaleout(
    args: argparse.Namespace, procs: Processes, url: str, started: list[str]
) -> Measured:
    env = clean_env(
        TIDINGS_DATABASE_URL=url,
        TIDINGS_BROKER_URL=f"redis://{HOST}:{REDIS_PORT}/{SCALEOUT_REDIS_DB}",
        TIDINGS_LOG_LEVEL="WARNING",
    )
    tidings = tool("tidings")
    _tidings_cli(env, "migrate")
    _tidings_cli(env, "connection", "add", "evolution", CONNECTION, "--secret", SECRET)
    # Workers and beat log at INFO: their "ready" lines are how the bench knows they are up.
    # They then log a line per (coalesced) wake-up task, never one per webhook.
    chatty = {**env, "TIDINGS_LOG_LEVEL": "INFO"}
    ready_lines: dict[str, str] = {}
    for i in range(1, SCALEOUT_WORKERS + 1):
        name = f"scaleout-worker{i}"
        started.append(name)
        procs.start(name, [tidings, "worker", "--concurrency", "1"], chatty)
        ready_lines[name] = "tidings worker ready"
    started.append("scaleout-beat")
    procs.start("scaleout-beat", [tidings, "beat"], chatty)
    ready_lines["scaleout-beat"] = "beat: Starting..."
    webs: dict[str, int] = {}
    for i in range(1, SCALEOUT_WEB + 1):
        name, port = f"scaleout-web{i}", free_port()
        started.append(name)
        procs.start(
            name, [tidings, "serve", "--no-worker", "--host", HOST, "--port", str(port)], env
        )
        webs[name] = port
    for name, port in webs.items():
        wait_http(procs, name, port, "/healthz")
    for name, line in ready_lines.items():
        wait_log(procs, name, line)

    def check_all() -> None:
        for name in started:
            procs.check_alive(name)

    ids, bodies = evolution_bodies(args.requests)
    _say(
        f"scale-out: sending {len(bodies):,} webhooks to {len(webs)} web nodes "
        f"on {args.concurrency} connections in all"
    )
    load, parts = run_split_load(
        list(webs.values()),
        f"/hooks/evolution/{CONNECTION}?token={SECRET}",
        bodies,
        args.concurrency,
        args.timeout,
    )
    check_all()
    _say(
        f"scale-out: {load.count(200, 300):,} acknowledged in {load.duration:.1f}s; "
        "waiting for the workers to apply them"
    )
    db = Database(url, timeout=10.0)
    try:

        def progress() -> tuple[int, bool]:
            check_all()
            states = _receipt_states(db)
            total = sum(states.values())
            pending = states.get("pending", 0)
            return total - pending, pending == 0 and total >= load.count(200, 300)

        finished = wait_for(progress, stall=args.stall, cap=args.drain_cap)
        result = _tidings_ledger(db, load, ids, finished, name="scale-out")
    finally:
        db.dispose()
    split = ", ".join(
        f"{name} {part.count(200, 300):,} acknowledged in {part.duration:.2f}s"
        for name, part in zip(webs, parts, strict=True)
    )
    result.notes.append(f"per web node: {split}")
    return result


def _receipt_id(body: bytes) -> int | None:
    try:
        found = json.loads(body).get("receipt")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, int) else None


def redis_client(db: int = REDIS_DB) -> Any:
    """A Redis database (the baseline's by default); NotReady when Redis does not answer."""
    import redis

    client = redis.Redis(host=HOST, port=REDIS_PORT, db=db, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        raise NotReady(
            f"Redis is not reachable on {HOST}:{REDIS_PORT} ({error}); the baseline and the "
            "scale-out run need it. Start it (e.g. `redis-server --bind 127.0.0.1`) and run again."
        ) from None
    return client


def measure_baseline(args: argparse.Namespace, work: Path, procs: Processes) -> Measured:
    broker = redis_client()
    broker.flushdb()
    db_path = work / "baseline.db"
    ready = work / "celery.ready"
    env = clean_env(
        BASELINE_BROKER_URL=f"redis://{HOST}:{REDIS_PORT}/{REDIS_DB}",
        BASELINE_DATABASE_URL=f"sqlite:///{db_path}",
        BASELINE_READY_FILE=str(ready),
    )
    procs.start(
        "celery",
        [
            tool("celery"),
            "--workdir",
            str(BASELINE_DIR),
            "-A",
            "tasks",
            "worker",
            "-Q",
            BASELINE_QUEUE,
            "--concurrency",
            "2",
            "--pool",
            "prefork",
            "--loglevel",
            "WARNING",
            "--hostname",
            f"bench{os.getpid()}@%h",
        ],
        env,
        cwd=BASELINE_DIR,
    )
    port = free_port()
    procs.start(
        "gunicorn",
        [
            tool("gunicorn"),
            "--workers",
            "2",
            "--worker-class",
            "sync",
            "--bind",
            f"{HOST}:{port}",
            "--chdir",
            str(BASELINE_DIR),
            "--log-level",
            "warning",
            "app:app",
        ],
        env,
        cwd=BASELINE_DIR,
    )
    wait_http(procs, "gunicorn", port, "/healthz")

    def worker_ready() -> tuple[int, bool]:
        procs.check_alive("celery")
        return 0, ready.exists()

    if not wait_for(worker_ready, stall=60, cap=60):
        raise BenchError(f"the Celery worker did not get ready:\n{procs.log_tail('celery')}")

    ids, bodies = infobip_bodies(args.requests)
    _say(f"baseline: sending {len(bodies):,} reports on {args.concurrency} connections")
    load = run_load_blocking(HOST, port, "/email", bodies, args.concurrency, timeout=args.timeout)
    require_acknowledged(load, "the baseline", procs.log_tail("gunicorn"))
    _say(
        f"baseline: {load.count(200, 300):,} acknowledged in {load.duration:.1f}s; "
        "waiting for Celery to store them"
    )

    def progress() -> tuple[int, bool]:
        procs.check_alive("celery")
        rows, _ = _baseline_rows(db_path)
        return rows, rows >= load.count(200, 300)

    finished = wait_for(progress, stall=args.stall, cap=args.drain_cap, every=0.5)
    left_in_redis = int(broker.llen(BASELINE_QUEUE))
    procs.stop("gunicorn")
    procs.stop("celery")
    return _baseline_ledger(db_path, load, ids, finished, left_in_redis)


def _baseline_rows(db_path: Path) -> tuple[int, float | None]:
    """Rows stored and when the last one was, read with the standard library's sqlite3."""
    if not db_path.exists():
        return 0, None
    with contextlib.closing(sqlite3.connect(db_path, timeout=10)) as conn:
        try:
            count, last = conn.execute(
                "SELECT count(*), max(stored_at) FROM email_reports"
            ).fetchone()
        except sqlite3.OperationalError:  # the worker has not created the table yet
            return 0, None
    if last is None:
        return count, None
    return count, datetime.fromisoformat(last).replace(tzinfo=UTC).timestamp()


def _baseline_ledger(
    db_path: Path, load: LoadResult, ids: list[str], finished: bool, left_in_redis: int
) -> Measured:
    _, last = _baseline_rows(db_path)
    with contextlib.closing(sqlite3.connect(db_path, timeout=10)) as conn:
        stored = Counter(row[0] for row in conn.execute("SELECT message_id FROM email_reports"))
    acknowledged = {
        ids[i]
        for i, reply in enumerate(load.replies)
        if reply is not None and 200 <= reply.status < 300
    }
    sent = set(ids)
    lost = len(acknowledged - stored.keys())
    strays = sum(n for message_id, n in stored.items() if message_id not in sent)
    rows = sum(stored.values())
    duplicated = rows - len(stored)
    ledger = [
        *sent_checks(load, len(ids)),
        Check("every stored row was sent", strays == 0, f"{strays} rows from nowhere"),
        Check(
            "acknowledged = stored + lost",
            True,
            f"{len(acknowledged)} = {len(acknowledged) - lost} + {lost}",
        ),
    ]
    notes = [f"duplicated: {rows} rows - {len(stored)} distinct message ids = {duplicated}"]
    if not finished:
        notes.append(
            f"gave up waiting: {lost} acknowledged reports never stored, "
            f"{left_in_redis} task messages still in Redis"
        )
    elif lost:
        notes.append(f"{lost} acknowledged reports were never stored (see celery.log)")
    return Measured("baseline", load, rows, last, finished, lost, duplicated, ledger, notes)


# ---------------------------------------------------------------------------------------------
# Report


def _ratio(a: float, b: float) -> float:
    """a ÷ b; nan when b is 0 (nothing to compare with), which `_times` prints as n/a."""
    return a / b if b else float("nan")


def _times(ratio: float) -> str:
    return f"{ratio:.2f}x" if math.isfinite(ratio) else "n/a"


def _fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def _fmt_ms(seconds: float) -> str:
    """Milliseconds; n/a for a latency of nothing (no 2xx came back)."""
    return f"{seconds * 1000:,.1f}" if math.isfinite(seconds) else "n/a"


def report(
    args: argparse.Namespace,
    command: str,
    t: Measured,
    lim: Measured,
    b: Measured,
    s: Measured | None = None,
    pairs: list[Pair] | None = None,
) -> list[str]:
    """Print the table, the targets and the ledgers; the ledgers that do not balance. `t`
    and `lim` are the median one of `pairs` (`median_pair`)."""
    pairs = pairs or [(t, lim)]
    pct = {id(m): percentiles(m.ack_latencies, (50, 99)) for m in (t, lim, b, s) if m is not None}
    tp, bp = pct[id(t)], pct[id(b)]

    def count(x: float) -> str:
        return f"{x:,.0f}"

    def secs(x: float) -> str:
        return f"{x:.2f}"

    # (label, figure, format, whether a ratio is meaningful)
    metrics: list[tuple[str, Callable[[Measured], float], Callable[[float], str], bool]] = [
        ("requests sent", lambda m: m.load.sent, count, False),
        ("acknowledged (2xx)", lambda m: m.acknowledged, count, False),
        ("load duration (s)", lambda m: m.load.duration, secs, False),
        ("acknowledged/s", lambda m: m.ack_per_s, _fmt_rate, True),
        ("ack latency p50 (ms)", lambda m: pct[id(m)][50], _fmt_ms, True),
        ("ack latency p99 (ms)", lambda m: pct[id(m)][99], _fmt_ms, True),
        ("applied / stored", lambda m: m.completed, count, False),
        ("applied/s vs stored/s (end to end)", lambda m: m.completed_per_s, _fmt_rate, True),
        ("lost", lambda m: m.lost, count, False),
        ("duplicated", lambda m: m.duplicated, count, False),
        ("connection errors", lambda m: m.load.errors, count, False),
    ]
    header = ["", "tidings", "limit", "tidings/limit", "baseline", "tidings/baseline"]
    if s is not None:
        header += ["scale-out", "scale-out/embedded"]
    rows: list[list[str]] = []
    for label, figure, fmt, has_ratio in metrics:
        tv, lv, bv = figure(t), figure(lim), figure(b)
        row = [label, fmt(tv), fmt(lv), _times(_ratio(tv, lv)) if has_ratio else ""]
        row += [fmt(bv), _times(_ratio(tv, bv)) if has_ratio else ""]
        if s is not None:
            sv = figure(s)
            row += [fmt(sv), _times(_ratio(sv, tv)) if has_ratio else ""]
        rows.append(row)
    print()
    print(f"tidings bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"command:   {command}")
    print(
        f"machine:   {os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )
    print(
        f"load:      {args.requests:,} distinct webhooks per configuration, "
        f"{args.concurrency} keep-alive connections, loopback"
    )
    print(
        "tidings:   embedded: `tidings serve` as it starts by default (intake + worker, one "
        "process), SQLite WAL, Evolution messages.update"
    )
    print(
        "limit:     bench/limit/app.py: bare ASGI app on uvicorn + uvloop + httptools, each body "
        "committed to SQLite WAL synchronous=FULL with group commit, then 202; nothing else"
    )
    print(
        "baseline:  Flask under gunicorn (2 sync workers) -> Celery over Redis "
        "(concurrency 2) -> SQLAlchemy ORM -> SQLite, Infobip email report"
    )
    if s is not None:
        print(
            f"scale-out: {SCALEOUT_WEB} x `tidings serve --no-worker` (each gets half the "
            f"webhooks and connections) + {SCALEOUT_WORKERS} x `tidings worker --concurrency 1`"
            f" + `tidings beat`, {s.info}, Redis broker (db {SCALEOUT_REDIS_DB}), "
            "Evolution messages.update"
        )
    print()
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            f"  {row[0]:<{widths[0]}}  "
            + "  ".join(f"{cell:>{widths[i + 1]}}" for i, cell in enumerate(row[1:]))
        )
    print(
        "  (acknowledged/s = 2xx answers / load duration; end to end = first request sent ->"
        " last event applied / last row stored)"
    )

    _print_cpu(t, lim)
    _print_commits(t, args.concurrency)

    ack, applied, p99 = (
        _ratio(t.ack_per_s, b.ack_per_s),
        _ratio(t.completed_per_s, b.completed_per_s),
        _ratio(tp[99], bp[99]),
    )
    targets = [
        (f"acknowledged/s >= {TARGET_ACK:g}x baseline", _times(ack), ack >= TARGET_ACK),
        (
            f"applied/s >= {TARGET_APPLIED:g}x baseline stored/s",
            _times(applied),
            applied >= TARGET_APPLIED,
        ),
        (f"p99 acknowledgement <= {TARGET_P99:g}x baseline", _times(p99), p99 <= TARGET_P99),
        ("0 lost", f"{t.lost}", t.lost == 0),
        ("0 duplicated", f"{t.duplicated}", t.duplicated == 0),
        ("ledger balanced", "yes" if t.balanced else "no", t.balanced),
    ]
    print()
    print("targets (issue 4, ratios within this run):")
    _print_targets(targets)
    of_limit = _print_pairs(pairs, (t, lim))
    print()
    against = "the limit (median of the pairs)" if len(pairs) > 1 else "the limit"
    print(f"targets (issue 19, the default configuration against {against} and the baseline):")
    _print_targets(
        [
            (
                f"acknowledged/s >= {TARGET_LIMIT_ACK:g} x limit",
                _times(of_limit[0]),
                of_limit[0] >= TARGET_LIMIT_ACK,
            ),
            (
                f"applied/s >= {TARGET_LIMIT_APPLIED:g} x limit",
                _times(of_limit[1]),
                of_limit[1] >= TARGET_LIMIT_APPLIED,
            ),
            (
                f"p99 acknowledgement <= {TARGET_LIMIT_P99:g} x limit's",
                _times(of_limit[2]),
                of_limit[2] <= TARGET_LIMIT_P99,
            ),
            (f"acknowledged/s >= {TARGET_ACK_19:g}x baseline", _times(ack), ack >= TARGET_ACK_19),
            (
                f"applied/s >= {TARGET_APPLIED_19:g}x baseline stored/s",
                _times(applied),
                applied >= TARGET_APPLIED_19,
            ),
        ]
    )

    void: list[str] = []
    ledgers = [
        (t, "counted from the tidings store"),
        (lim, "counted from the limit's SQLite file"),
        (b, "counted from the baseline's SQLite file"),
    ]
    if s is not None:
        ledgers.append((s, "counted from PostgreSQL"))
    others = [(number, m) for number, pair in enumerate(pairs, 1) if pair[0] is not t
              for m in pair]  # fmt: skip
    for measured, source in ledgers:
        print()
        print(f"{measured.name} ledger ({source}):")
        for check in measured.ledger:
            print(f"  {'ok  ' if check.ok else 'FAIL'}  {check.what}: {check.detail}")
            if not check.ok:
                void.append(f"{measured.name}: {check.what} ({check.detail})")
        for note in measured.notes:
            print(f"  note  {note}")
    if others:
        print()
        print("the other pairs' ledgers (counted the same way):")
        for number, measured in others:
            failed = [check for check in measured.ledger if not check.ok]
            print(f"  {'ok  ' if not failed else 'FAIL'}  pair {number}, {measured.name}: "
                  + ("; ".join(f"{c.what}: {c.detail}" for c in failed) or "balanced"))  # fmt: skip
            void += [f"pair {number}, {measured.name}: {c.what} ({c.detail})" for c in failed]
    print()
    if void:
        print("LEDGER DOES NOT BALANCE, this run is void:")
        for line in void:
            print(f"  {line}")
    else:
        print("ledgers balanced.")
    return void


def _print_cpu(t: Measured, lim: Measured) -> None:
    """CPU per webhook, by process (bench/cpu_time.py): on a small machine the processes and
    the load generator share the cores, so this is what bounds the rates."""
    print()
    print("CPU per webhook (us of user + system time per 2xx):")
    for measured in (t, lim):
        if not measured.cpu:
            print(f"  {measured.name:<8} not measured: {measured.cpu_note}")
            continue
        total = sum(measured.cpu.values())
        parts = ", ".join(f"{name} {us:.0f}" for name, us in measured.cpu.items())
        print(f"  {measured.name:<8} {parts}: {total:.0f} in all")
    if t.cpu and lim.cpu:
        servers = sum(us for name, us in t.cpu.items() if name != "load generator")
        limit_server = sum(us for name, us in lim.cpu.items() if name != "load generator")
        spent = _times(_ratio(servers, limit_server))
        print(f"  tidings' processes spend {spent} the limit's server")
    print(
        "  (tidings' processes from the start of the load until the bench saw nothing pending,"
        " polled every 0.2 s; the limit and the load generator during the load)"
    )


def _print_commits(t: Measured, concurrency: int) -> None:
    """The intake's group commits (tidings' /metrics): a webhook is answered after its commit,
    so their size and time say how requests and commits share the wall clock."""
    print()
    print("intake group commits (tidings' /metrics, since it started):")
    if t.commits is None:
        print(f"  not measured: {t.commits_note}")
        return
    commits, receipts, seconds = t.commits
    print(
        f"  {commits:,.0f} commits, {receipts / commits:.1f} receipts and"
        f" {seconds / commits * 1000:.2f} ms each on average ({concurrency} connections);"
        f" a commit was under way for {_ratio(seconds, t.load.duration):.0%} of the load"
    )
    if receipts / commits >= 0.75 * concurrency:
        print(
            "  (commits holding nearly every request in flight: reading requests and"
            " committing them take turns; bench/README.md, 'Intake group commits')"
        )


def _print_targets(targets: list[tuple[str, str, bool]]) -> None:
    width = max(len(name) for name, _, _ in targets)
    for name, value, met in targets:
        print(f"  {name:<{width}}  {value:>8}  {'met' if met else 'NOT MET'}")


def _say(text: str) -> None:
    print(f"[bench] {text}", flush=True)


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=20000, help="webhooks per side")
    parser.add_argument("--concurrency", type=int, default=64, help="connections")
    parser.add_argument(
        "--pairs",
        type=_at_least_one,
        default=5,
        help="times tidings and the limit are measured one after the other; the issue-19 "
        "ratios are the median of the pairs'",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds the load may take per side before it is cut short",
    )
    parser.add_argument(
        "--stall",
        type=float,
        default=60.0,
        help="stop waiting for the workers after this many seconds without progress",
    )
    parser.add_argument(
        "--drain-cap",
        type=float,
        default=1800.0,
        help="stop waiting for the workers after this many seconds in all",
    )
    parser.add_argument(
        "--skip-scaleout",
        action="store_true",
        help="do not measure the scale-out configuration (PostgreSQL + Redis broker)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (stores and logs)"
    )
    parser.add_argument(
        "--outbound-events",
        type=int,
        default=20000,
        help="outbound section: webhooks sent, each forwarded as one signed delivery",
    )
    parser.add_argument(
        "--outbound-baseline",
        type=int,
        default=300,
        help="outbound section: events the hand-written httpx loop sends",
    )
    parser.add_argument(
        "--outbound-steady-rate",
        type=float,
        default=200.0,
        help="outbound section: webhooks/s of the steady stream the added latency is read on",
    )
    parser.add_argument(
        "--outbound-steady-seconds",
        type=float,
        default=10.0,
        help="outbound section: how long the steady stream lasts",
    )
    parser.add_argument(
        "--skip-outbound", action="store_true", help="do not measure outbound webhooks"
    )
    parser.add_argument(
        "--only-outbound", action="store_true", help="measure outbound webhooks alone"
    )
    parser.add_argument(
        "--dispatch-contacts",
        type=int,
        default=5000,
        help="dispatch section: contacts of the campaign sent at no rate limit",
    )
    parser.add_argument(
        "--dispatch-baseline",
        type=int,
        default=500,
        help="dispatch section: messages the hand-written httpx + SQLite loop sends",
    )
    parser.add_argument(
        "--dispatch-rate-contacts",
        type=int,
        default=300,
        help="dispatch section: contacts of the campaign at 600/min (300: 30 s)",
    )
    parser.add_argument(
        "--skip-dispatch", action="store_true", help="do not measure campaign dispatch"
    )
    parser.add_argument(
        "--only-dispatch", action="store_true", help="measure campaign dispatch alone"
    )
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        parser.error("--requests and --concurrency must be at least 1")
    if args.dispatch_contacts < 2 or args.dispatch_baseline < 2 or args.dispatch_rate_contacts < 2:
        parser.error(
            "--dispatch-contacts, --dispatch-baseline and --dispatch-rate-contacts must be at "
            "least 2 (a rate needs a first and a last arrival)"
        )
    for section in ("outbound", "dispatch"):
        if getattr(args, f"skip_{section}") and getattr(args, f"only_{section}"):
            parser.error(f"--skip-{section} and --only-{section} contradict each other")
    return args


def sections(args: argparse.Namespace) -> tuple[bool, bool, bool]:
    """Which sections run: (intake, outbound, dispatch). An --only-… flag runs just the
    sections it names; otherwise every section that is not skipped."""
    if args.only_outbound or args.only_dispatch:
        return False, args.only_outbound, args.only_dispatch
    return True, not args.skip_outbound, not args.skip_dispatch


@contextlib.contextmanager
def _workdir(keep: bool) -> Iterator[Path]:
    """A fresh directory for the stores and logs; kept with --keep or when the run failed."""
    path = Path(tempfile.mkdtemp(prefix="tidings-bench-"))
    try:
        yield path
    except BenchError:
        keep = True
        raise
    finally:
        if keep:
            print(f"[bench] stores and logs kept in {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    here = (
        os.path.relpath(sys.executable)
        if sys.executable.startswith(os.getcwd())
        else sys.executable
    )
    command = shlex.join([here, *sys.argv])
    # Ctrl-C must stop the run and its servers even when a shell started us with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _as_ctrl_c)
    intake, outbound, dispatch = sections(args)
    try:
        # fail before minutes of load when the baseline or the scale-out run cannot run
        if intake:
            redis_client()
        if intake and not args.skip_scaleout:
            postgres_admin().close()
        with _workdir(args.keep) as work, Processes(work) as procs:
            void = False
            if intake:
                pairs = measure_pairs(args, work, procs)
                tidings, limit = median_pair(pairs)
                baseline = measure_baseline(args, work, procs)
                scaleout = None if args.skip_scaleout else measure_scaleout(args, procs)
                void = report(args, command, tidings, limit, baseline, scaleout, pairs)
            if outbound:
                measured = measure_outbound(sys.modules[__name__], args, work, procs)
                void = report_outbound(measured) or void
            if dispatch:
                dispatched = measure_dispatch(sys.modules[__name__], args, work, procs)
                void = report_dispatch(dispatched) or void
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("bench: interrupted; every process it started has been stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_UNBALANCED if void else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
