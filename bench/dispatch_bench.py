"""`make bench`, dispatch section: messages a campaign hands to its provider per second from
`tidings serve` (embedded, SQLite, default configuration) at an unlimited rate, against a
plain loop that sends one message at a time with httpx and writes a row per send to SQLite,
as people write it by hand; both measured in the same run against the same fake provider.
Then the rate limiter's accuracy: a second campaign at 600/min, achieved ÷ configured.

The provider is `dispatch_provider.py`, a fake Evolution API whose ledger is what the
figures are counted from: every contact arrived exactly once (none lost, none sent twice),
nothing arrived that no contact asked for; and from the store: every contact `sent`, every
id the provider answered registered as a message of its campaign, `tidings recount` clean.

Rates are counted at the provider: messages ÷ (last arrival - first arrival), the same for
tidings and for the loop. Accuracy is (n - 1) ÷ (last - first) x 60 ÷ 600: n arrivals span
n - 1 intervals.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from tidings.config import Settings
from tidings.storage import schema
from tidings.storage.db import Database

TARGET_RATIO = 5.0  # messages handed/s against the hand-written loop
TARGET_ACCURACY = 0.05  # |achieved ÷ configured - 1| at RATE_PER_MINUTE
RATE_PER_MINUTE = 600

CONNECTION = "evo"  # also the Evolution instance tidings sends to (its default)
API_KEY = "bench-evolution-key"
UNLIMITED = "bench-unlimited"
PACED = "bench-paced"
TEXT = "Hi {{name}}, your order {{var1}} is on its way"
BASELINE_INSTANCE = "baseline"
REFERENCE_INSTANCE = "baseline-normal"
FINAL_STATES = ("done", "paused", "cancelled")

__all__ = ["DispatchMeasured", "measure_dispatch", "report_dispatch"]


@dataclass(frozen=True)
class Arrival:
    instance: str
    number: str
    at: float
    status: int
    message_id: str


@dataclass
class DispatchMeasured:
    contacts: int
    per_s: float  # tidings, unlimited campaign, counted at the provider
    span: float  # first -> last arrival of that campaign (s)
    start_to_last: float  # `campaign start` invoked -> last arrival (s)
    baseline_count: int
    baseline_per_s: float  # one httpx.Client, a row per send, SQLite's default synchronous
    reference_per_s: float  # the same loop with synchronous=NORMAL (reference)
    paced_contacts: int
    achieved_per_min: float
    concurrency: str  # what the default configuration sends at once, as far as it says
    sent_twice: int  # numbers of either campaign that arrived more than once
    lost: int  # contacts of either campaign that never arrived
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.achieved_per_min / RATE_PER_MINUTE

    @property
    def balanced(self) -> bool:
        return all(ok for _, ok, _ in self.checks)


# The fourth digit of each list's numbers, so that no two lists share a number.
_LISTS = {"u": "8", "p": "7", "b": "6", "r": "5"}


def _contacts(tag: str, count: int) -> list[tuple[str, str, str, str]]:
    """(contact_ref, recipient, name, var1): Brazilian mobile numbers, distinct per list."""
    return [
        (f"{tag}-{i}", f"+55319{_LISTS[tag]}{i:07d}", f"Person {i}", f"{1000 + i}")
        for i in range(count)
    ]


def _digits(recipient: str) -> str:
    """The number as Evolution takes it (and the ledger shows it): digits only."""
    return "".join(c for c in recipient if c.isdigit())


def _render(name: str, var1: str) -> str:
    return TEXT.replace("{{name}}", name).replace("{{var1}}", var1)


def _write_csv(path: Path, rows: list[tuple[str, str, str, str]]) -> None:
    lines = ["contact_ref,recipient,name,var1"] + [",".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def _read_ledger(path: Path) -> list[Arrival]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) == 5:
            rows.append(Arrival(parts[0], parts[1], float(parts[2]), int(parts[3]), parts[4]))
    return rows


def _start_provider(bench: Any, procs: Any, port: int, ledger: Path) -> None:
    script = str(Path(__file__).resolve().parent / "dispatch_provider.py")
    argv = [sys.executable, script, "--host", bench.HOST, "--port", str(port)]
    argv += ["--api-key", API_KEY, "--ledger", str(ledger)]
    procs.start("provider", argv, bench.clean_env())
    bench.wait_http(procs, "provider", port, "/healthz")


def _concurrency() -> str:
    """The default of `dispatch_concurrency`, when this tidings has that setting."""
    found = Settings.model_fields.get("dispatch_concurrency")
    if found is None:
        return "one contact at a time"
    return f"{found.default} contacts at once (dispatch_concurrency)"


def measure_dispatch(bench: Any, args: Any, work: Path, procs: Any) -> DispatchMeasured:
    """Run tidings, then the loops, against one fake provider; count everything from its
    ledger and the store. `bench` is `run.py` (its helpers), `procs` its `Processes`."""
    provider_port = bench.free_port()
    ledger_path = work / "dispatch-ledger.tsv"
    _start_provider(bench, procs, provider_port, ledger_path)
    api_url = f"http://{bench.HOST}:{provider_port}"
    unlimited = _contacts("u", args.dispatch_contacts)
    paced = _contacts("p", args.dispatch_rate_contacts)
    stored, recount, started, notes = _run_tidings(
        bench, args, work, procs, api_url, unlimited, paced
    )

    baseline = _contacts("b", args.dispatch_baseline)
    reference = _contacts("r", args.dispatch_baseline)
    bench._say(
        f"dispatch baseline: {len(baseline):,} messages, one at a time with httpx, "
        "a SQLite row per send (synchronous as SQLite defaults, FULL)"
    )
    try:
        _loop(f"{api_url}/message/sendText/{BASELINE_INSTANCE}", baseline,
              work / "dispatch-baseline.db", synchronous=None)  # fmt: skip
        bench._say("dispatch reference: the same loop with synchronous=NORMAL")
        _loop(f"{api_url}/message/sendText/{REFERENCE_INSTANCE}", reference,
              work / "dispatch-baseline-normal.db", synchronous="NORMAL")  # fmt: skip
    except (httpx.HTTPError, ValueError, KeyError) as error:
        raise bench.BenchError(
            f"the baseline loop could not send ({error!r}):\n{procs.log_tail('provider')}"
        ) from None
    procs.check_alive("provider")
    procs.stop("provider")  # writes its ledger out
    if not ledger_path.exists():
        raise bench.BenchError(f"the provider wrote no ledger:\n{procs.log_tail('provider')}")
    arrivals = _read_ledger(ledger_path)

    by_instance: dict[str, list[Arrival]] = {}
    for arrival in arrivals:
        by_instance.setdefault(arrival.instance, []).append(arrival)
    sent_by_tidings = by_instance.pop(CONNECTION, [])
    checks: list[tuple[str, bool, str]] = []
    spans: dict[str, tuple[float, float]] = {}
    sent_twice = lost = 0
    known = {_digits(r[1]) for r in unlimited} | {_digits(r[1]) for r in paced}
    for key, rows in ((UNLIMITED, unlimited), (PACED, paced)):
        numbers = {_digits(r[1]) for r in rows}
        mine = [a for a in sent_by_tidings if a.number in numbers]
        checks += _arrival_checks(key, numbers, mine)
        counts = Counter(a.number for a in mine)
        sent_twice += sum(n - 1 for n in counts.values())
        lost += len(numbers - counts.keys())
        accepted = sorted(a.at for a in mine if a.status == 201)
        spans[key] = (accepted[0], accepted[-1]) if accepted else (0.0, 0.0)
        checks += _store_checks(key, len(rows), stored[key], {a.message_id for a in mine})
    strays = [a for a in sent_by_tidings if a.number not in known]
    checks.append(
        ("nothing arrived from tidings that no contact asked for", not strays,
         f"{len(strays)} strays")
    )  # fmt: skip
    checks.append(
        ("tidings recount: no drift", recount.returncode == 0,
         (recount.stdout.strip().splitlines() or ["(no output)"])[-1])
    )  # fmt: skip
    rates: list[float] = []
    for instance, rows in ((BASELINE_INSTANCE, baseline), (REFERENCE_INSTANCE, reference)):
        numbers = {_digits(r[1]) for r in rows}
        mine = by_instance.pop(instance, [])
        checks += _arrival_checks(f"{instance} loop", numbers, mine)
        accepted = sorted(a.at for a in mine if a.status == 201)
        span = accepted[-1] - accepted[0] if len(accepted) > 1 else 0.0
        rates.append(len(accepted) / span if span > 0 else 0.0)
    checks += [
        (f"the {name} loop stored a row per message", n == len(baseline), f"{n} rows")
        for name, n in (
            ("baseline", _rows(work / "dispatch-baseline.db")),
            ("reference", _rows(work / "dispatch-baseline-normal.db")),
        )
    ]
    if by_instance:
        checks.append(
            ("no request to another instance", False,
             ", ".join(f"{k}: {len(v)}" for k, v in by_instance.items()))
        )  # fmt: skip

    first, last = spans[UNLIMITED]
    span = last - first
    paced_first, paced_last = spans[PACED]
    paced_span = paced_last - paced_first
    achieved = (len(paced) - 1) / paced_span * 60 if paced_span > 0 else 0.0
    return DispatchMeasured(
        contacts=len(unlimited),
        per_s=len(unlimited) / span if span > 0 else 0.0,
        span=span,
        start_to_last=last - started if last else 0.0,
        baseline_count=len(baseline),
        baseline_per_s=rates[0],
        reference_per_s=rates[1],
        paced_contacts=len(paced),
        achieved_per_min=achieved,
        concurrency=_concurrency(),
        sent_twice=sent_twice,
        lost=lost,
        checks=checks,
        notes=notes,
    )


def _run_tidings(
    bench: Any,
    args: Any,
    work: Path,
    procs: Any,
    api_url: str,
    unlimited: list[tuple[str, str, str, str]],
    paced: list[tuple[str, str, str, str]],
) -> tuple[dict[str, dict[str, Any]], subprocess.CompletedProcess[str], float, list[str]]:
    """Both campaigns through `tidings serve` as it starts by default, one after the other:
    (each campaign as the store has it at the end, `tidings recount`'s result, when `campaign
    start` was invoked for the unlimited one, notes)."""
    url = f"sqlite:///{work / 'dispatch.db'}"
    env = bench.clean_env(TIDINGS_DATABASE_URL=url)  # no TIDINGS_* setting but the store
    tidings = bench.tool("tidings")

    def cli(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [tidings, *argv], env=env, capture_output=True, text=True, check=False
        )
        if check and done.returncode != 0:
            raise bench.BenchError(
                f"tidings {' '.join(argv[:2])} failed:\n{done.stdout}{done.stderr}"
            )
        return done

    cli("migrate")
    cli("connection", "add", "evolution", CONNECTION, "--secret", bench.SECRET,
        "--option", f"api_url={api_url}", "--option", f"api_key={API_KEY}")  # fmt: skip
    rate = ["--rate", f"{RATE_PER_MINUTE}/min"]
    for key, rows, extra in ((UNLIMITED, unlimited, []), (PACED, paced, rate)):
        csv = work / f"{key}.csv"
        _write_csv(csv, rows)
        bench._say(f"dispatch: creating campaign {key} with {len(rows):,} contacts")
        cli("campaign", "create", key, "--connection", CONNECTION, "--text", TEXT,
            "--contacts", str(csv), *extra)  # fmt: skip

    port = bench.free_port()
    procs.start(
        "tidings-dispatch", [tidings, "serve", "--host", bench.HOST, "--port", str(port)], env
    )
    bench.wait_http(procs, "tidings-dispatch", port, "/healthz")
    db = Database(url, timeout=10.0)
    notes: list[str] = []
    try:
        bench._say(f"dispatch: sending {len(unlimited):,} contacts at no rate limit")
        started = time.time()
        cli("campaign", "start", UNLIMITED)
        _wait_campaign(bench, args, procs, db, UNLIMITED, notes)
        bench._say(
            f"dispatch: sending {len(paced):,} contacts at {RATE_PER_MINUTE}/min "
            f"(about {len(paced) * 60 / RATE_PER_MINUTE:.0f} s)"
        )
        cli("campaign", "start", PACED)
        _wait_campaign(bench, args, procs, db, PACED, notes)
        procs.check_alive("tidings-dispatch")
        procs.stop("tidings-dispatch")
        stored = {key: _stored(db, key) for key in (UNLIMITED, PACED)}
    finally:
        db.dispose()
    return stored, cli("recount", check=False), started, notes


def _wait_campaign(
    bench: Any, args: Any, procs: Any, db: Database, key: str, notes: list[str]
) -> None:
    """Until the store says the campaign is done (or paused, cancelled); a note if not."""
    campaign_id = _campaign_id(db, key)
    state: list[str] = [""]

    def progress() -> tuple[int, bool]:
        procs.check_alive("tidings-dispatch")
        state[0], by_status = _progress(db, campaign_id)
        moved = sum(n for s, n in by_status.items() if s != "pending")
        return moved, state[0] in FINAL_STATES

    if not bench.wait_for(progress, stall=args.stall, cap=args.drain_cap, every=0.1):
        notes.append(f"gave up waiting for {key} (still {state[0]})")


def _campaign_id(db: Database, key: str) -> int:
    campaigns = schema.campaigns
    with db.read() as conn:
        found: int = conn.execute(select(campaigns.c.id).where(campaigns.c.key == key)).scalar_one()
    return found


def _progress(db: Database, campaign_id: int) -> tuple[str, Counter[str]]:
    """A campaign's dispatch state and its contacts by status."""
    dispatches, contacts = schema.campaign_dispatches, schema.campaign_contacts
    with db.read() as conn:
        state: str = conn.execute(
            select(dispatches.c.state).where(dispatches.c.campaign_id == campaign_id)
        ).scalar_one()
        by_status = Counter(
            {
                status: int(n)
                for status, n in conn.execute(
                    select(contacts.c.status, func.count())
                    .where(contacts.c.campaign_id == campaign_id)
                    .group_by(contacts.c.status)
                )
            }
        )
    return state, by_status


def _stored(db: Database, key: str) -> dict[str, Any]:
    """A campaign as the store has it at the end: state, why paused, contacts by status,
    its messages' provider ids."""
    campaign_id = _campaign_id(db, key)
    state, by_status = _progress(db, campaign_id)
    dispatches, messages = schema.campaign_dispatches, schema.messages
    with db.read() as conn:
        paused = conn.execute(
            select(dispatches.c.paused_reason).where(dispatches.c.campaign_id == campaign_id)
        ).scalar_one()
        ids = [
            row[0]
            for row in conn.execute(
                select(messages.c.provider_message_id).where(messages.c.campaign_id == campaign_id)
            )
        ]
    return {"state": state, "paused": paused, "contacts": by_status, "ids": ids}


def _arrival_checks(
    name: str, numbers: set[str], arrived: list[Arrival]
) -> list[tuple[str, bool, str]]:
    """Every number arrived exactly once and was accepted: none lost, none sent twice."""
    counts = Counter(a.number for a in arrived)
    lost = len(numbers - counts.keys())
    twice = sum(n - 1 for n in counts.values() if n > 1)
    refused = Counter(a.status for a in arrived if a.status != 201)
    return [
        (f"{name}: every contact arrived at the provider exactly once",
         lost == 0 and twice == 0,
         f"{len(arrived)} arrivals for {len(numbers)} contacts, {lost} lost, "
         f"{twice} sent twice"),
        (f"{name}: every arrival accepted (201)", not refused,
         ", ".join(f"{n} x {s}" for s, n in sorted(refused.items())) or "all 201"),
    ]  # fmt: skip


def _store_checks(
    key: str, count: int, stored: dict[str, Any], answered: set[str]
) -> list[tuple[str, bool, str]]:
    contacts: Counter[str] = stored["contacts"]
    ids: list[str] = stored["ids"]
    shown = ", ".join(f"{n} {s}" for s, n in sorted(contacts.items())) or "none"
    paused = f" ({stored['paused']})" if stored["paused"] else ""
    return [
        (f"{key}: done, every contact sent",
         stored["state"] == "done" and contacts.get("sent", 0) == count == sum(contacts.values()),
         f"{stored['state']}{paused}; {shown}"),
        (f"{key}: every id the provider answered is a message of the campaign, once",
         set(ids) == answered and len(ids) == len(answered),
         f"{len(ids)} messages for {len(answered)} ids answered"),
    ]  # fmt: skip


def _loop(
    url: str, rows: list[tuple[str, str, str, str]], path: Path, synchronous: str | None
) -> None:
    """The baseline, as people write it by hand: one message at a time with one keep-alive
    httpx.Client, and a row per send committed right after it, in SQLite (WAL)."""
    with contextlib.closing(sqlite3.connect(path)) as db, httpx.Client(timeout=10.0) as client:
        db.execute("PRAGMA journal_mode=WAL")
        if synchronous is not None:
            db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute(
            "CREATE TABLE sends (id INTEGER PRIMARY KEY, contact_ref TEXT UNIQUE NOT NULL, "
            "number TEXT NOT NULL, status TEXT NOT NULL, http_status INTEGER, "
            "provider_id TEXT, sent_at TEXT NOT NULL)"
        )
        db.commit()
        for contact_ref, recipient, name, var1 in rows:
            number = _digits(recipient)
            response = client.post(
                url,
                json={"number": number, "text": _render(name, var1)},
                headers={"apikey": API_KEY},
            )
            provider_id = response.json()["key"]["id"] if response.status_code == 201 else None
            db.execute(
                "INSERT INTO sends (contact_ref, number, status, http_status, provider_id, "
                "sent_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    contact_ref,
                    number,
                    "sent" if provider_id else "failed",
                    response.status_code,
                    provider_id,
                    datetime.now(UTC).isoformat(),
                ),
            )
            db.commit()


def _rows(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT count(*) FROM sends").fetchone()[0])


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def report_dispatch(measured: DispatchMeasured) -> bool:
    """Print the section; True when its ledger does not balance (the run is void)."""
    rate, base = measured.per_s, measured.baseline_per_s
    ratio = rate / base if base else 0.0
    reference = measured.reference_per_s
    accuracy = measured.accuracy
    print()
    print(
        "campaign dispatch (embedded, default configuration, sends "
        f"{measured.concurrency}; fake Evolution provider)"
    )
    print(
        f"  messages handed/s     {rate:10,.0f}   "
        f"({measured.contacts:,} contacts, no rate limit; first -> last arrival "
        f"{measured.span:.2f} s, `campaign start` -> last {measured.start_to_last:.2f} s)"
    )
    print(
        f"  baseline loop/s       {base:10,.0f}   ratio {ratio:.1f}x "
        f"(target >= {TARGET_RATIO:.0f}x: {_verdict(ratio >= TARGET_RATIO)}; "
        f"{measured.baseline_count:,} messages)"
    )
    print(
        f"  NORMAL loop/s         {reference:10,.0f}   "
        f"ratio {rate / reference if reference else 0:.1f}x "
        "(reference: the same loop with synchronous=NORMAL)"
    )
    print(
        f"  rate at {RATE_PER_MINUTE}/min       {measured.achieved_per_min:10,.1f}/min  "
        f"achieved / configured {accuracy:.3f} "
        f"(target within {TARGET_ACCURACY:.0%}: "
        f"{_verdict(abs(accuracy - 1) <= TARGET_ACCURACY)}; {measured.paced_contacts} contacts)"
    )
    print(
        f"  sent twice / lost     {measured.sent_twice:>6} / {measured.lost:<6} "
        f"(target no double send: {_verdict(measured.sent_twice == 0)}; both campaigns, "
        "counted at the provider)"
    )
    for name, ok, detail in measured.checks:
        print(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
    for note in measured.notes:
        print(f"  note: {note}")
    if not measured.balanced:
        print("  the dispatch ledger does not balance: this section is VOID")
    return not measured.balanced
