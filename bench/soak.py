"""`make soak`: tidings under a steady load with duplicates and out-of-order events, for a bounded
time, on loopback only. It reports the memory of the serving process and of its worker at the
start and the end, the backlog over time, and the ledger counted from the store.

    .venv/bin/python bench/soak.py [--seconds 600] [--rate 300]

Exit status: 0 memory flat and ledger balanced; 1 memory grew or the ledger does not balance;
3 the run could not complete. Every process started here is stopped before it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from run import HOST, BenchError, Processes, clean_env, free_port, tool, wait_http

MAX_SECONDS = 600
SAMPLE_EVERY = 10.0
# Memory counts as flat when the end is within this of the first sample after warm-up.
GROWTH_LIMIT = 1.5
GROWTH_SLACK_KB = 20 * 1024
STATUSES = ("sent", "delivered", "read")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def worker_pid(parent: int) -> int | None:
    found = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True)
    for pid in found.stdout.split():
        try:
            if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                return int(pid)
        except FileNotFoundError:
            continue
    return None


def body(message: int, status: str) -> bytes:
    payload = {"uuid": f"soak-{message}", "status": status, "metadata": {"campaign": "soak"}}
    return json.dumps({"event": "message_status_updated", "payload": payload}).encode()


class Traffic:
    """Each message's three statuses in random order, interleaved with other messages', and
    one in ten sent twice."""

    def __init__(self, seed: int = 11) -> None:
        self._random = random.Random(seed)
        self._pool: list[bytes] = []
        self._next_message = 0
        self.distinct: set[bytes] = set()

    def draw(self) -> bytes:
        while len(self._pool) < 60:
            for status in STATUSES:
                item = body(self._next_message, status)
                self._pool.append(item)
                if self._random.random() < 0.1:
                    self._pool.append(item)
            self._next_message += 1
        drawn = self._pool.pop(self._random.randrange(len(self._pool)))
        self.distinct.add(drawn)
        return drawn


async def send_steadily(
    url: str, seconds: float, rate: int, sample: object
) -> tuple[list[int], dict[int, int]]:
    traffic = Traffic()
    receipts: list[int] = []
    statuses: dict[int, int] = {}
    tick = 0.1
    per_tick = max(1, round(rate * tick))
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def one(content: bytes) -> None:
            try:
                response = await client.post(
                    url, content=content, headers={"content-type": "application/json"}
                )
            except httpx.HTTPError:
                statuses[0] = statuses.get(0, 0) + 1
                return
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 202:
                receipts.append(response.json()["receipt"])

        started = time.monotonic()
        next_sample = started
        while (elapsed := time.monotonic() - started) < seconds:
            await asyncio.gather(*(one(traffic.draw()) for _ in range(per_tick)))
            if time.monotonic() >= next_sample:
                sample(elapsed, len(receipts))  # type: ignore[operator]
                next_sample += SAMPLE_EVERY
            await asyncio.sleep(max(0.0, started + (elapsed // tick + 1) * tick - time.monotonic()))
    send_steadily.distinct = len(traffic.distinct)  # type: ignore[attr-defined]
    return receipts, statuses


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=MAX_SECONDS, help=f"at most {MAX_SECONDS}")
    parser.add_argument("--rate", type=int, default=300, help="webhooks per second")
    args = parser.parse_args(argv)
    seconds = min(args.seconds, MAX_SECONDS)
    work = Path(tempfile.mkdtemp(prefix="tidings-soak-"))
    db_path = work / "tidings.db"
    env = clean_env(TIDINGS_DATABASE_URL=f"sqlite:///{db_path}", TIDINGS_LOG_LEVEL="WARNING")
    command = shlex.join([".venv/bin/python", "bench/soak.py", *argv])
    print(f"tidings soak, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\ncommand: {command}")
    print(
        f"load: {args.rate}/s for {seconds:.0f}s, duplicates and out-of-order statuses, loopback\n"
    )
    subprocess.run([tool("tidings"), "migrate"], env=env, check=True, capture_output=True)
    subprocess.run(
        [
            tool("tidings"),
            "connection",
            "add",
            "callbell",
            "soak",
            "--secret",
            "s",
            "--option",
            "campaign_key=campaign",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    port = free_port()
    rows: list[tuple[float, int, int, int, int]] = []
    with Processes(work) as procs:
        server = procs.start(
            "tidings", [tool("tidings"), "serve", "--host", HOST, "--port", str(port)], env
        )
        wait_http(procs, "tidings", port, "/healthz")

        def backlog() -> int:
            """Pending receipts, those landed and not yet applied included (decision 0017)."""
            with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
                landed = 0
                if Path(f"{db_path}-inbox").is_file():
                    conn.execute("attach database ? as landing", (f"file:{db_path}-inbox?mode=ro",))
                    landed = conn.execute(
                        "select count(*) from landing.landed where id > coalesce("
                        "(select applied_through from inbox_progress where id = 1), 0)"
                    ).fetchone()[0]
                pending = conn.execute("select count(*) from receipts where status='pending'")
                return int(pending.fetchone()[0]) + int(landed)

        def sample(elapsed: float, acknowledged: int) -> None:
            procs.check_alive("tidings")
            worker = worker_pid(server.pid)
            row = (
                elapsed,
                acknowledged,
                backlog(),
                rss_kb(server.pid),
                rss_kb(worker) if worker else 0,
            )
            rows.append(row)
            print(
                f"  {row[0]:6.0f}s  acknowledged {row[1]:8,}  backlog {row[2]:6,}  "
                f"rss serve {row[3] / 1024:6.1f} MiB  worker {row[4] / 1024:6.1f} MiB",
                flush=True,
            )

        url = f"http://{HOST}:{port}/hooks/callbell/soak?token=s"
        receipts, statuses = asyncio.run(send_steadily(url, seconds, args.rate, sample))
        deadline = time.monotonic() + 120
        while backlog() and time.monotonic() < deadline:
            time.sleep(0.5)
        sample(seconds, len(receipts))
    return report(db_path, rows, receipts, statuses, send_steadily.distinct)  # type: ignore[attr-defined]


def report(
    db_path: Path,
    rows: list[tuple[float, int, int, int, int]],
    receipts: list[int],
    statuses: dict[int, int],
    distinct: int,
) -> int:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
        stored = {r[0] for r in conn.execute("select id from receipts")}
        done = conn.execute("select count(*) from receipts where status='done'").fetchone()[0]
        events = conn.execute("select count(*) from events").fetchone()[0]
        distinct_events = conn.execute(
            "select count(*) from (select distinct message_id, kind from events)"
        ).fetchone()[0]
    lost = sum(1 for r in receipts if r not in stored)
    warm = rows[1] if len(rows) > 2 else rows[0]
    end = rows[-1]
    problems = []
    for name, start_kb, end_kb in (("serve", warm[3], end[3]), ("worker", warm[4], end[4])):
        grew = end_kb > start_kb * GROWTH_LIMIT + GROWTH_SLACK_KB
        print(
            f"\nmemory {name}: {start_kb / 1024:.1f} MiB after warm-up, "
            f"{end_kb / 1024:.1f} MiB at the end ({'GREW' if grew else 'flat'})",
            end="",
        )
        if grew:
            problems.append(f"{name} memory grew")
    print(f"\nbacklog: at most {max(r[2] for r in rows):,} pending; {rows[-1][2]} at the end")
    print(f"answers: {dict(sorted(statuses.items()))}")
    print(
        f"ledger: acknowledged {len(receipts):,}, stored {len(stored):,}, done {done:,}, "
        f"lost {lost}, events {events:,} = distinct (message, kind) {distinct_events:,} "
        f"= distinct sent {distinct:,}"
    )
    if lost:
        problems.append(f"{lost} acknowledged webhooks lost")
    if done != len(stored):
        problems.append("receipts left unapplied")
    if not events == distinct_events == distinct:
        problems.append("events applied twice or missing")
    print(
        "result: "
        + ("; ".join(problems) if problems else "memory flat, nothing lost, nothing applied twice")
    )
    return 1 if problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as error:
        print(f"soak could not complete: {error}", file=sys.stderr)
        sys.exit(3)
