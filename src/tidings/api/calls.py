"""`/v1` routes for calls: employees, leads, calls and their statistics. They translate HTTP to
storage calls and back; the rules live in `domain/` (leads, call statistics, labels)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import Row, select

from tidings.api.call_models import (
    CallOut,
    DayOut,
    EmployeeIn,
    EmployeeOut,
    EmployeeStatsOut,
    FiguresOut,
    LeadDetail,
    LeadIn,
    LeadSaved,
    TeamMemberOut,
    TeamStatsOut,
)
from tidings.api.models import Page
from tidings.api.paging import Cursor, Limit, Since, Until, fetch_size, page
from tidings.api.routes import _ERRORS
from tidings.api.support import ApiError, Db, decode_cursor, require_token
from tidings.domain.call_numbers import e164
from tidings.domain.call_stats import CallFact, DayStats, Stats, stats
from tidings.domain.call_times import zone_named
from tidings.domain.calls import CallType, Employee, label, labels, locale_of
from tidings.domain.errors import Invalid
from tidings.domain.leads import lead as make_lead
from tidings.storage import call_lists, employees, leads
from tidings.storage.db import Database
from tidings.storage.employees import StoredEmployee
from tidings.storage.leads import StoredLead
from tidings.storage.schema import connections

__all__ = [
    "TeamFigures",
    "call_out",
    "chosen_locale",
    "figures_out",
    "lead_out",
    "router",
    "stats_zone",
    "team_figures",
]

router = APIRouter(
    prefix="/v1", dependencies=[Depends(require_token)], responses=_ERRORS, tags=["calls"]
)

_LATEST = 10  # calls a lead's details show

LocaleParam = Annotated[
    str | None,
    Query(description="Language of display labels: en or pl (default: TIDINGS_LOCALE)."),
]


def chosen_locale(request: Request, value: str | None) -> str:
    """The labels' language: the one asked for, else TIDINGS_LOCALE (422 for one unknown)."""
    if value is None:
        default: str = request.app.state.settings.locale
        return default
    found = locale_of(value)
    if found is None:
        raise ApiError(422, "invalid_locale", f"no labels for locale {value!r}; use en or pl")
    return found


def _region(request: Request) -> str | None:
    region: str | None = request.app.state.settings.default_region
    return region


def _connection_names(db: Database) -> dict[int, str]:
    with db.read() as conn:
        return {r.id: r.name for r in conn.execute(select(connections.c.id, connections.c.name))}


def _employee_out(found: StoredEmployee, names: dict[int, str]) -> EmployeeOut:
    return EmployeeOut(
        code=found.code,
        name=found.name,
        number=found.number,
        country_code=found.country_code,
        tags=list(found.tags),
        active=found.active,
        last_synced_at=found.last_synced_at,
        connection=names.get(found.connection_id) if found.connection_id else None,
        created_at=found.created_at,
        updated_at=found.updated_at,
    )


@router.post(
    "/employees",
    status_code=201,
    response_model=EmployeeOut,
    responses={200: {"model": EmployeeOut}},
)
def save_employee(body: EmployeeIn, db: Db, request: Request, response: Response) -> EmployeeOut:
    """Create an employee before any call of theirs (201), or change one (200): every field
    is set as given. Calls later refresh name, number and tags, never `active`."""
    number = None
    if body.number is not None and body.number.strip():
        number = e164(body.number, None, _region(request))
        if number is None:
            message = f"body.number: {body.number[:40]!r} is not a phone number"
            raise ApiError(422, "invalid_request", message)
    tags = tuple(tag.strip()[:100] for tag in body.tags if tag.strip())
    given = Employee(body.code.strip(), body.name, number, None, tags)
    now = datetime.now(UTC)
    _, created = db.apply(
        lambda reader, writes: employees.save_employee(reader, writes, given, body.active, now)
    )
    response.status_code = 201 if created else 200
    with db.read() as conn:
        found = employees.get_employee(conn, given.code)
    assert found is not None
    return _employee_out(found, _connection_names(db))


@router.get("/employees", response_model=Page[EmployeeOut])
def list_employees(
    db: Db, active: bool | None = None, limit: Limit = 100, cursor: Cursor = None
) -> dict[str, Any]:
    """Employees in the order they became known, with whether they are active and how far
    the verification poll has fetched their calls."""
    with db.read() as conn:
        found = employees.list_employees(conn, decode_cursor(cursor), fetch_size(limit), active)
    items, next_cursor = page(found, limit)
    names = _connection_names(db)
    return {"items": [_employee_out(e, names) for e in items], "next_cursor": next_cursor}


def figures_out(figures: Stats) -> dict[str, Any]:
    """Figures as the API answers them; the team page shows these same numbers."""
    return {
        "calls": figures.calls,
        "by_type": dict(figures.by_type),
        "total_duration_seconds": figures.total_duration_seconds,
        "average_duration_seconds": figures.average_duration_seconds,
        "answered": figures.answered,
        "answered_share": figures.answered_share,
    }


def stats_zone(request: Request) -> tzinfo:
    """The zone days are counted in: TIDINGS_TIMEZONE, else UTC."""
    return zone_named(request.app.state.settings.timezone) or UTC


@router.get("/employees/{code}/stats", response_model=EmployeeStatsOut)
def employee_stats(
    code: str,
    db: Db,
    request: Request,
    since: Since = None,
    until: Until = None,
    locale: LocaleParam = None,
) -> EmployeeStatsOut:
    """One employee's calls that started in the window: by type, total and average duration,
    the answered share, and the same per day (days in TIDINGS_TIMEZONE)."""
    chosen = chosen_locale(request, locale)
    with db.read() as conn:
        found = employees.get_employee(conn, code)
        if found is None:
            raise ApiError(404, "not_found", f"no employee with code {code!r}")
        facts = [fact for _, fact in call_lists.call_facts(conn, found.id, since, until)]
    total, days = stats(facts, stats_zone(request))
    return EmployeeStatsOut(
        employee=found.code,
        name=found.name,
        since=since,
        until=until,
        labels=labels(chosen),
        **figures_out(total),
        per_day=[DayOut(date=d.day, **figures_out(d)) for d in days if d.day is not None],
    )


@router.get("/calls/stats", response_model=TeamStatsOut)
def team_stats(
    db: Db,
    request: Request,
    since: Since = None,
    until: Until = None,
    locale: LocaleParam = None,
) -> TeamStatsOut:
    """The team's calls that started in the window, per employee (by code) and in total."""
    chosen = chosen_locale(request, locale)
    team = team_figures(db, since, until, stats_zone(request))
    members = [
        TeamMemberOut(
            employee=member.code if member else None,
            name=member.name if member else None,
            **figures_out(figures),
        )
        for member, figures in team.members
    ]
    return TeamStatsOut(
        since=since,
        until=until,
        labels=labels(chosen),
        total=FiguresOut(**figures_out(team.total)),
        employees=members,
    )


@dataclass(frozen=True)
class TeamFigures:
    total: Stats
    per_day: list[DayStats]
    members: list[tuple[StoredEmployee | None, Stats]]  # by code; calls of no employee last


def team_figures(
    db: Database, since: datetime | None, until: datetime | None, zone: tzinfo
) -> TeamFigures:
    """The team's figures in a window, per employee, per day and in total, from one read:
    the API and the dashboard's team page show the same numbers."""
    with db.read() as conn:
        facts = call_lists.call_facts(conn, None, since, until)
        staff = {e.id: e for e in employees.list_employees(conn, None, 1_000_000)}
    by_employee: dict[int | None, list[CallFact]] = {}
    for employee_id, fact in facts:
        by_employee.setdefault(employee_id, []).append(fact)
    members = []
    for employee_id, own in by_employee.items():
        member = staff.get(employee_id) if employee_id is not None else None
        figures, _ = stats(own, zone)
        members.append((member, figures))
    members.sort(key=lambda m: (m[0] is None, m[0].code if m[0] else ""))
    total, days = stats((fact for _, fact in facts), zone)
    return TeamFigures(total, days, members)


def call_out(row: Row[Any], locale: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "connection": row.connection_name,
        "provider_call_id": row.provider_call_id,
        "employee": row.employee_code,
        "employee_name": row.employee_name,
        "client_name": row.client_name,
        "client_number": row.client_number,
        "type": row.type,
        "type_label": label(row.type, locale),
        "raw_type": row.raw_type,
        "duration_seconds": row.duration_seconds,
        "started_at": row.started_at,
        "note": row.note,
        "recording_url": row.recording_url,
        "crm_status": row.crm_status,
        "synced_at": row.synced_at,
        "modified_at": row.modified_at,
        "lead": row.lead_external_id,
        "match_attempts": row.match_attempts,
        "last_match_attempt_at": row.last_match_attempt_at,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def _lead_detail(db: Database, found: StoredLead, locale: str) -> dict[str, Any]:
    with db.read() as conn:
        latest = call_lists.latest_calls(conn, found.id, _LATEST)
    return {**lead_out(found), "latest_calls": [call_out(row, locale) for row in latest]}


def lead_out(found: StoredLead) -> dict[str, Any]:
    return {
        "external_id": found.external_id,
        "name": found.name,
        "owner": found.owner,
        "phones": list(found.phones),
        "created_at": found.created_at,
        "updated_at": found.updated_at,
    }


@router.post(
    "/leads", status_code=201, response_model=LeadSaved, responses={200: {"model": LeadSaved}}
)
def save_lead(body: LeadIn, db: Db, request: Request, response: Response) -> dict[str, Any]:
    """Create a lead (201) or update it (200), upserted on `external_id`; its phones become
    exactly these, and the calls waiting for any of them are attached to it at once."""
    try:
        given = make_lead(body.external_id, body.name, body.owner, body.phones, _region(request))
    except Invalid as error:
        raise ApiError(422, "invalid_request", f"body: {error}") from None
    now = datetime.now(UTC)
    [saved] = db.apply(lambda reader, writes: leads.save_leads(reader, writes, [given], now))
    response.status_code = 201 if saved.created else 200
    with db.read() as conn:
        found = leads.get_lead(conn, given.external_id)
    assert found is not None
    return {**lead_out(found), "matched_calls": saved.matched_calls}


def _get_lead(db: Database, external_id: str) -> StoredLead:
    with db.read() as conn:
        found = leads.get_lead(conn, external_id)
    if found is None:
        raise ApiError(404, "not_found", f"no lead with external_id {external_id!r}")
    return found


@router.get("/leads/{external_id}", response_model=LeadDetail)
def get_lead(
    external_id: str, db: Db, request: Request, locale: LocaleParam = None
) -> dict[str, Any]:
    """A lead, its phones and its latest calls (by when they started)."""
    return _lead_detail(db, _get_lead(db, external_id), chosen_locale(request, locale))


@router.get("/leads/{external_id}/calls", response_model=Page[CallOut])
def lead_calls(
    external_id: str,
    db: Db,
    request: Request,
    limit: Limit = 100,
    cursor: Cursor = None,
    locale: LocaleParam = None,
) -> dict[str, Any]:
    """A lead's call register, newest first."""
    chosen = chosen_locale(request, locale)
    found = _get_lead(db, external_id)
    return _call_page(db, call_lists.CallFilter(lead=found.external_id), limit, cursor, chosen)


def _call_page(
    db: Database, where: call_lists.CallFilter, limit: int, cursor: str | None, locale: str
) -> dict[str, Any]:
    with db.read() as conn:
        rows = call_lists.list_calls(conn, where, decode_cursor(cursor), fetch_size(limit))
    found, next_cursor = page(rows, limit)
    return {"items": [call_out(r, locale) for r in found], "next_cursor": next_cursor}


@router.get("/calls", response_model=Page[CallOut])
def list_calls(
    db: Db,
    request: Request,
    employee: Annotated[str | None, Query(description="An employee's code.")] = None,
    lead: Annotated[str | None, Query(description="A lead's external_id.")] = None,
    type: CallType | None = None,  # the public parameter's name
    since: Since = None,
    until: Until = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    locale: LocaleParam = None,
) -> dict[str, Any]:
    """Calls, newest first; `since`/`until` bound when they started."""
    where = call_lists.CallFilter(
        employee=employee,
        lead=lead,
        type=type.value if type else None,
        since=since,
        until=until,
    )
    return _call_page(db, where, limit, cursor, chosen_locale(request, locale))


@router.get("/calls/unmatched", response_model=Page[CallOut])
def unmatched_calls(
    db: Db,
    request: Request,
    limit: Limit = 100,
    cursor: Cursor = None,
    locale: LocaleParam = None,
) -> dict[str, Any]:
    """Calls no lead has taken yet, newest first, with how many matching attempts each has
    had (`match_attempts`) and when the last was; past TIDINGS_CALL_MATCH_MAX_ATTEMPTS they
    wait for a person (adding the lead with the number attaches them at once)."""
    where = call_lists.CallFilter(waiting=True)
    return _call_page(db, where, limit, cursor, chosen_locale(request, locale))
