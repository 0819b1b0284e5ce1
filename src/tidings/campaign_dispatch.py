"""Dispatching the campaigns tidings sends, one turn at a time (the `dispatch_campaigns` job,
run by the embedded scheduler's dispatch thread, or sent by Celery beat to a worker).

A turn sends, for every running campaign, the contacts whose slots fall within the turn,
each claimed and recorded right before its provider is called (so a crash leaves at most the
contact being sent with an unknown outcome, never one sent twice; decision 0012). A campaign
keeps its pace across turns and runners through the clock in the store; it slows to half
while its connection's health is under the threshold and pauses after consecutive errors or
when its connection cannot send, saying why.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tidings import send_process
from tidings.config import Settings
from tidings.domain.errors import NotFound
from tidings.domain.message_changes import Registration
from tidings.domain.sending import (
    DispatchState,
    SendOutcome,
    SendStatus,
    next_step_at,
    render,
    slot_interval,
    template_variables,
)
from tidings.logging import get_logger, mask_text
from tidings.providers.registry import get_provider
from tidings.providers.send import Answer, SendError, SendFailure, SendRequest
from tidings.providers.send_http import HttpSender
from tidings.send_process import SendProcess
from tidings.sending import outcome_of, sender_for
from tidings.storage import connections, dispatches, sends
from tidings.storage import health as health_store
from tidings.storage.connections import StoredConnection
from tidings.storage.db import Database
from tidings.storage.dispatches import Claim, DispatchView

__all__ = [
    "Health",
    "TurnReport",
    "connection_health",
    "dispatch_turn",
    "recover_interrupted",
]

log = get_logger("dispatch")

# Contacts a campaign without a rate claims in one transaction and sends before it records
# their answers in one unit of work: the store's cost is per batch, so a larger batch sends
# more per second (measured on the store's work alone, claim and record: 128 about a third
# cheaper a message than 64, 256 no cheaper than 128); a crash may leave two batches (one out,
# one being recorded) with an unknown outcome.
BATCH = 128

# How long a campaign waits after its provider was unreachable or asked to slow down
# without saying for how long.
_BACK_OFF = timedelta(seconds=30)

# What a connection's health says to dispatch: its score is under the threshold (slow down),
# and how many errors in a row it has had (pause at the limit).
Health = Callable[[Database, int, datetime], tuple[bool, int]]


def connection_health(settings: Settings) -> Health:
    """What dispatch asks of a connection's health (docs/architecture.md, "Connection
    health"): its score against TIDINGS_HEALTH_THRESHOLD, and its errors in a row."""

    def check(db: Database, connection_id: int, now: datetime) -> tuple[bool, int]:
        with db.read() as conn:
            return health_store.dispatch_health(conn, connection_id, settings.health_threshold)

    return check


@dataclass
class TurnReport:
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    deferred: int = 0
    paused: int = 0
    done: int = 0


def recover_interrupted(db: Database, settings: Settings, started_at: datetime | None) -> int:
    """Sends recorded but never answered, because the process sending them stopped: their
    outcome is unknown (the message may have gone out), so they are closed as such, never
    retried. Any send unanswered for `send_stale_seconds`; and in embedded mode, where only
    this process dispatches, every campaign send older than it (`started_at`). The API's
    single sends run in the web process, so only the window applies to them."""
    now = datetime.now(UTC)
    window = now - timedelta(seconds=settings.send_stale_seconds)
    closed = _close_stale(db, now, window, campaigns_only=False)
    if settings.embedded and started_at is not None and started_at > window:
        closed += _close_stale(db, now, started_at, campaigns_only=True)
    if closed:
        log.warning("%d interrupted sends closed with an unknown outcome", closed)
    return closed


def _close_stale(db: Database, now: datetime, before: datetime, campaigns_only: bool) -> int:
    closed = 0
    outcome = SendOutcome(
        SendStatus.UNKNOWN,
        error_kind="interrupted",
        error_message="tidings stopped before the provider's answer was recorded; "
        "the message may have gone out, so it is not sent again",
    )
    while True:
        with db.read() as conn:
            stale = sends.stale(conn, before, campaigns_only=campaigns_only)
            if not stale:
                return closed
            by_id = {c.id: c for c in connections.list_connections(conn)}
        for record in stale:
            sends.finish(db, by_id[record.connection_id], record.id, outcome, now)
            closed += 1
        if len(stale) < 100:
            return closed


def dispatch_turn(
    db: Database,
    settings: Settings,
    *,
    budget: float = 2.0,
    health: Health | None = None,
    sleep: Callable[[float], None] = time.sleep,
    started_at: datetime | None = None,
) -> TurnReport:
    """Send what is due in the next `budget` seconds for every running campaign (nothing when
    another process's turn is running). A campaign started meanwhile waits for the next turn;
    one paused or cancelled meanwhile stops after the contacts being sent."""
    with dispatches.one_turn_at_a_time(db) as mine:
        if not mine:
            return TurnReport()
        # Under the lock: no turn elsewhere has a live send this could take for interrupted.
        if _recovery_due(db.url):
            recover_interrupted(db, settings, started_at)
        return _turn(db, settings, budget, health or connection_health(settings), sleep)


# Interrupted sends are those unanswered for minutes, or left by an earlier process: looked for
# on a process's first turn, then every few seconds rather than on every turn (ten a second,
# most of what an idle tidings did).
_RECOVERY_SECONDS = 5.0
_recovered_at: dict[str, float] = {}


def _recovery_due(store: str) -> bool:
    now = time.monotonic()
    last = _recovered_at.get(store)
    if last is not None and now - last < _RECOVERY_SECONDS:
        return False
    _recovered_at[store] = now
    return True


def _turn(
    db: Database,
    settings: Settings,
    budget: float,
    health: Health,
    sleep: Callable[[float], None],
) -> TurnReport:
    report = TurnReport()
    with db.read() as conn:
        starting, any_running = dispatches.due(conn, datetime.now(UTC))
    if not starting and not any_running:
        return report  # an idle turn: one small read (and the turn lock on PostgreSQL)
    if starting:
        with db.write() as conn:
            dispatches.start_scheduled(conn, starting, datetime.now(UTC))
    with db.read() as conn:
        running = dispatches.running(conn)
    if not running:
        return report
    deadline = time.monotonic() + budget
    sends = send_process.shared(
        settings.dispatch_concurrency, settings.log_level, settings.log_json
    )
    lanes = [_Lane.open(db, settings, v, sends, health, report) for v in running]
    try:
        _run_lanes([lane for lane in lanes if lane is not None], deadline, sleep, report)
    finally:  # whatever stopped the turn, the answers of the batches out are recorded
        for opened in lanes:
            if opened is not None:
                opened.land_all(report)
    for view in running:
        with db.read() as conn:
            busy = dispatches.has_work(conn, view.campaign_id)
        if busy:
            continue  # most turns: no write (each one would make the worker plan again)
        with db.write() as conn:
            if dispatches.finish_if_done(conn, view.campaign_id, datetime.now(UTC)):
                report.done += 1
                log.info("campaign %s: every contact has an outcome", view.key)
    return report


def _run_lanes(
    active: list[_Lane], deadline: float, sleep: Callable[[float], None], report: TurnReport
) -> None:
    """Step the campaign whose next slot comes first until none has anything to do in this
    turn or its time is up."""
    while active and time.monotonic() < deadline:
        lane = min(active, key=lambda one: one.next_at)
        wait = (lane.next_at - datetime.now(UTC)).total_seconds()
        if wait > deadline - time.monotonic():
            break
        if wait > 0:
            sleep(wait)
        try:
            going = lane.step(report)
        except Exception:  # one campaign's trouble (the store, a bug) spares the others
            log.exception("campaign %s: dispatch step failed", lane.view.key)
            going = False
        if not going:
            active.remove(lane)


@dataclass
class _Lane:
    """One running campaign within a turn: its sender, its pace, when its next slot starts."""

    db: Database
    view: DispatchView
    connection: StoredConnection
    sender: HttpSender
    registration: Registration
    interval: timedelta
    health: Health
    pause_after: int
    sends: SendProcess
    next_at: datetime
    healthy: bool = True
    unanswered: int = 0
    # Batches out at the provider, oldest first, with their answers to come; whether the last
    # batch recorded got an answer to every send (refusals included) and did not stop the
    # campaign: only then is the next one sent before the one out is recorded.
    flights: deque[tuple[list[Claim], Future[list[Answer]]]] = field(default_factory=deque)
    clean: bool = False

    @classmethod
    def open(
        cls,
        db: Database,
        settings: Settings,
        view: DispatchView,
        sends: SendProcess,
        health: Health,
        report: TurnReport,
    ) -> _Lane | None:
        now = datetime.now(UTC)
        try:
            with db.read() as conn:
                connection = connections.get_connection(conn, view.connection)
            if connection.id != view.connection_id:  # removed, and its name given to another
                raise NotFound(f"connection {view.connection!r} was removed")
            sender = sender_for(settings, db, connection, None)
        except Exception as error:  # removed connection, missing option: a person must act
            reason = str(error)
            if f"connection {view.connection!r}" not in reason:  # said once, not twice
                reason = f"connection {view.connection!r} cannot send: {reason}"
            _pause(db, view, reason, report)
            return None
        healthy, _errors = health(db, view.connection_id, now)
        registration = Registration(
            provider_message_id="",
            campaign=view.key,
            channel=get_provider(connection.provider).channel,
        )
        interval = slot_interval(view.rate_per_minute, healthy)
        if not healthy:
            log.info(
                "campaign %s: connection %s is unhealthy, half rate", view.key, view.connection
            )
        start = view.next_slot_at or now
        return cls(
            db,
            view,
            connection,
            sender,
            registration,
            interval,
            health,
            settings.pause_after_errors,
            sends,
            start,
            healthy,
        )

    def step(self, report: TurnReport) -> bool:
        """Send the contacts whose slots have come; False when this campaign has nothing more
        to do in this turn (no contact waits, it was paused, it must wait). A campaign with a
        rate sends one contact at a time; one without claims `BATCH` at once and sends them
        `dispatch_concurrency` at a time (over aiohttp, from `send_process`). While its batches get
        answers (a refused contact included), a campaign without a rate records a batch's
        answers while the next batch is out (the store's work and the provider's overlap);
        a batch with a send unanswered or deferred, a pause, and the end of a turn land every
        batch out before anything more is claimed."""
        now = datetime.now(UTC)
        limit = 1 if self.interval else BATCH
        with self.db.write() as conn:
            claimed, following = dispatches.claim(
                conn, self.view.campaign_id, self.interval, now, self.registration, limit
            )
        if claimed:
            if following is None:
                self.next_at = now
            elif self.interval:
                self.next_at = next_step_at(following, now, self.interval, self.healthy)
            else:
                self.next_at = following
            requests = [self._request(c) for c in claimed]
            self.flights.append((claimed, self.sends.submit(self.sender, requests)))
        elif following is not None:
            self.next_at = following
        overlap = bool(claimed) and not self.interval
        going = True
        # `clean` as it stands after each landing: a batch with trouble in it gets the batch
        # already out after it recorded before anything more is claimed.
        while len(self.flights) > (1 if overlap and going and self.clean else 0):
            # A batch out after one that stopped the campaign is recorded, not acted on
            # again (one pause, one reason).
            going = self._land(report, act=going) and going
        return going and (bool(claimed) or following is not None)

    def land_all(self, report: TurnReport) -> None:
        """Record every batch still out (the end of a turn): each answer is kept, and the
        campaign is acted on once at most."""
        going = True
        while self.flights:
            try:
                going = self._land(report, act=going) and going
            except Exception:  # logged; its sends stay unanswered, never resent
                log.exception("campaign %s: recording a batch failed", self.view.key)
                going = False

    def _land(self, report: TurnReport, act: bool) -> bool:
        """Wait for the oldest batch's answers and record them; False when the campaign stops
        for this turn (recording failed, it was paused, it must wait). With `act` False the
        errors are counted but not acted on."""
        claimed, pending = self.flights.popleft()
        self.clean = False
        answers = pending.result()
        outcomes = [outcome_of(answer, status, defer=True) for answer, status in answers]
        now = datetime.now(UTC)
        finished = [(c.send_id, o) for c, o in zip(claimed, outcomes, strict=True)]
        try:
            sends.finish_many(self.db, self.connection, finished, now)
        except Exception:  # the answers are lost: the sends stay unanswered, never resent
            log.exception("campaign %s: recording %d answers failed", self.view.key, len(claimed))
            return False
        errors: list[tuple[SendError, SendOutcome]] = []
        for contact, (answer, _status), outcome in zip(claimed, answers, outcomes, strict=True):
            if isinstance(answer, SendError):
                log.warning(
                    "campaign %s: send to %s %s: %s",
                    self.view.key,
                    mask_text(contact.recipient),
                    outcome.status.value,
                    answer,
                )
                errors.append((answer, outcome))
            else:
                report.sent += 1
        self._count(outcomes)
        if not act:
            self._tally(errors, report)
            return False
        if errors and not self._after_errors(errors, now, report):
            return False
        refused = any(o.status is SendStatus.FAILED for o in outcomes)
        going = self._keep_going(refused, report)
        # Refusals of single contacts (a number not on WhatsApp) are everyday and leave the
        # overlap on: a provider that refuses everything pauses the campaign within a batch.
        # No answer, or a provider that asks to slow down, turns it off.
        self.clean = going and all(
            o.status in (SendStatus.SENT, SendStatus.FAILED) for o in outcomes
        )
        return going

    def _count(self, outcomes: list[SendOutcome]) -> None:
        """Sends in a row that got no answer (reset by any answer)."""
        for outcome in outcomes:
            if outcome.status is SendStatus.UNKNOWN:
                self.unanswered += 1
            elif outcome.status is not SendStatus.DEFERRED:
                self.unanswered = 0

    def _request(self, claimed: Claim) -> SendRequest | SendError:
        """One contact's request, or why it cannot be made (nothing goes out then)."""
        view = self.view
        variables = dict(claimed.variables)
        template = view.template
        try:
            return SendRequest(
                recipient=claimed.recipient,
                text=render(view.text, variables) if view.text is not None else None,
                template=str(template["name"]) if template else None,
                language=template.get("language") if template else None,
                variables=template_variables(variables) if template else (),
                campaign=view.key,
                contact_ref=claimed.contact_ref,
                idempotency_key=claimed.idempotency_key,
            )
        except SendError as error:
            return error

    def _tally(
        self, errors: list[tuple[SendError, SendOutcome]], report: TurnReport
    ) -> list[SendError]:
        """Count errors by outcome in the turn's report; those the provider deferred."""
        deferred: list[SendError] = []
        for error, outcome in errors:
            if outcome.status is SendStatus.UNKNOWN:
                report.unknown += 1
            elif outcome.status is SendStatus.FAILED:
                report.failed += 1
            else:
                report.deferred += 1
                deferred.append(error)
        return deferred

    def _after_errors(
        self, errors: list[tuple[SendError, SendOutcome]], now: datetime, report: TurnReport
    ) -> bool:
        """Count a step's errors and act once on them: pause when the connection cannot
        send or too many sends in a row got no answer, wait when the provider asked to slow
        down or could not be reached. False when the campaign stops for this turn."""
        deferred = self._tally(errors, report)
        kinds = {error.kind for error in deferred}
        if SendFailure.AUTH in kinds or SendFailure.CONFIG in kinds:
            error = next(e for e in deferred if e.kind in (SendFailure.AUTH, SendFailure.CONFIG))
            what = "refused the credentials" if error.kind is SendFailure.AUTH else "cannot send"
            _pause(self.db, self.view, f"the connection {what}: {error}", report)
            return False
        stopped = sum(1 for error, _ in errors if error.kind is SendFailure.INTERRUPTED)
        if stopped:
            reason = (
                f"paused: tidings' send process stopped with {stopped} sends out; their "
                "outcome is unknown and they are not sent again (resume to go on)"
            )
            _pause(self.db, self.view, reason, report)
            return False
        if self.unanswered >= self.pause_after:
            reason = (
                f"paused after {self.unanswered} sends in a row got no answer from "
                f"{self.view.connection!r} (the provider may be down); their outcome is "
                "unknown and they are not sent again"
            )
            _pause(self.db, self.view, reason, report)
            return False
        if deferred:
            waits = [e.retry_after for e in deferred if e.retry_after]
            wait = timedelta(seconds=max(waits)) if waits else _BACK_OFF
            with self.db.write() as conn:
                dispatches.delay(conn, self.view.campaign_id, now + wait)
            self.next_at = now + wait
        return True

    def _keep_going(self, refused: bool, report: TurnReport) -> bool:
        """Pause when a refusal brings the connection's errors in a row to the limit (a person
        who resumes gets the sends until the next refusal); stop when a person paused or
        cancelled meanwhile."""
        if refused:
            _healthy, errors = self.health(self.db, self.view.connection_id, datetime.now(UTC))
            if errors >= self.pause_after:
                _pause(self.db, self.view, _errors_reason(self.view, errors), report)
                return False
        with self.db.read() as conn:
            state = dispatches.state_of(conn, self.view.campaign_id)
        return state is DispatchState.RUNNING


def _errors_reason(view: DispatchView, errors: int) -> str:
    return (
        f"paused after {errors} consecutive errors on connection {view.connection!r}; "
        "see GET /v1/messages?campaign=" + view.key + "&status=failed"
    )


def _pause(db: Database, view: DispatchView, reason: str, report: TurnReport) -> None:
    with db.write() as conn:
        dispatches.pause(conn, view.campaign_id, reason, datetime.now(UTC))
    report.paused += 1
    log.warning("campaign %s paused: %s", view.key, reason)
