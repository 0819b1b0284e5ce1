"""Call pages: calls by adviser (and their CSV export), the calls still waiting for a lead, one
lead with its calls and messages, and the team's figures for a window; plus the reveal of one
call's or lead's number.

Filters live in the URL, so a view is a link. Days and times a person types are read in
TIDINGS_TIMEZONE, as the pages show them; the figures are the ones `/v1/calls/stats` answers
(`api.calls.team_figures`), and labels are in TIDINGS_LOCALE.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from tidings.api.calls import (
    call_out,
    chosen_locale,
    figures_out,
    lead_out,
    stats_zone,
    team_figures,
)
from tidings.api.routes import Id
from tidings.dashboard.auth import Viewer
from tidings.dashboard.csv_export import csv_download
from tidings.dashboard.paging import PAGE, cursor_of, page_of
from tidings.dashboard.rendering import PageError, render
from tidings.dashboard.reveal import revealed
from tidings.domain.calls import CallType, labels
from tidings.logging import mask_text
from tidings.storage import call_lists, employees, lead_messages, leads
from tidings.storage.call_lists import CallFilter
from tidings.storage.db import Database

__all__ = ["router"]

router = APIRouter()
TEAM_DAYS = 7  # the team page's window when the URL names none
ADVISERS = 500  # codes offered in the adviser filter's suggestions
TYPES = [t.value for t in CallType]
FILTERS = ("employee", "type", "since", "until")


def _moment(request: Request, name: str) -> datetime | None:
    """`since` or `until` from the URL, in UTC. A day (YYYY-MM-DD) starts at midnight in
    TIDINGS_TIMEZONE, and `until` includes the day it names (a person means "up to and with
    the 28th"); a time without an offset is in TIDINGS_TIMEZONE too, as pages show times."""
    text = (request.query_params.get(name) or "").strip()
    if not text:
        return None
    try:
        if len(text) <= 10:
            day = date.fromisoformat(text)
            local = datetime.combine(day + timedelta(days=name == "until"), time())
        else:
            local = datetime.fromisoformat(text)
        if local.tzinfo is None:
            local = local.replace(tzinfo=stats_zone(request))
        return local.astimezone(UTC)
    except (ValueError, OverflowError):
        raise PageError(400, f"{name.capitalize()}: {text[:40]!r} is not a date; use YYYY-MM-DD "
                             "or a time such as 2026-07-28T10:00:00+05:30.") from None  # fmt: skip


def _filter(request: Request) -> CallFilter:
    """The call filters the URL names; a bad one is a 400 page saying which and why."""
    q = request.query_params
    kind = q.get("type") or None
    if kind is not None and kind not in TYPES:
        raise PageError(400, f"There is no call type {kind!r}; use one of {', '.join(TYPES)}.")
    return CallFilter(
        employee=(q.get("employee") or "").strip() or None,
        type=kind,
        since=_moment(request, "since"),
        until=_moment(request, "until"),
    )


def _filters(request: Request) -> dict[str, str]:
    """The filters as given (for the form and links), without the page's cursor."""
    return {k: request.query_params[k] for k in FILTERS if request.query_params.get(k)}


def _common(request: Request, db: Database, locale: str) -> dict[str, Any]:
    """What every page with a call filter shows: the types with their labels and the
    advisers' codes to suggest (only codes that are not phone numbers: a page shows none)."""
    with db.read() as conn:
        staff = employees.list_employees(conn, None, ADVISERS)
    filters = _filters(request)
    return {
        "types": [(kind, label) for kind, label in labels(locale).items()],
        "advisers": [e.code for e in staff if mask_text(e.code) == e.code],
        "filters": filters,
        "filtered": bool(filters),
    }


@router.get("/calls")
def calls_page(request: Request, viewer: Viewer) -> Response:
    db: Database = request.app.state.db
    where = _filter(request)
    locale = chosen_locale(request, None)
    with db.read() as conn:
        rows = call_lists.list_calls(conn, where, cursor_of(request), PAGE + 1)
    found, after = page_of(rows)
    filters = _filters(request)
    return render(request, "calls.html", {
        **_common(request, db, locale),
        "section": "calls",
        "calls": [call_out(r, locale) for r in found],
        "after": after,
        "export": "/calls.csv" + (f"?{urlencode(filters)}" if filters else ""),
    })  # fmt: skip


CSV_COLUMNS = ["id", "started_at", "employee", "employee_name", "type", "type_label",
               "duration_seconds", "client_name", "client_number", "lead", "match_attempts",
               "connection", "provider_call_id", "crm_status", "note"]  # fmt: skip


def _csv_row(row: Any, full: bool, locale: str) -> list[object]:
    c = call_out(row, locale)
    shown = (lambda v: v) if full else mask_text
    return [
        c["id"], c["started_at"].isoformat() if c["started_at"] else "",
        *(shown(c[k]) if c[k] else "" for k in ("employee", "employee_name")),
        c["type"], c["type_label"], c["duration_seconds"],
        *(shown(c[k]) if c[k] else "" for k in ("client_name", "client_number")),
        shown(c["lead"]) if c["lead"] else "", c["match_attempts"], c["connection"],
        c["provider_call_id"],
        shown(c["crm_status"]) if c["crm_status"] else "", shown(c["note"]) if c["note"] else "",
    ]  # fmt: skip


@router.get("/calls.csv")
def calls_csv(request: Request, viewer: Viewer) -> Response:
    """The calls the same filters show, every page of them; numbers masked unless `full=1`."""
    full = request.query_params.get("full") == "1"
    where, locale = _filter(request), chosen_locale(request, None)
    return csv_download(
        request.app.state.db,
        "calls.csv",
        CSV_COLUMNS,
        lambda conn, after, limit: call_lists.list_calls(conn, where, after, limit),
        lambda row: _csv_row(row, full, locale),
    )


@router.get("/calls/unmatched")
def unmatched_page(request: Request, viewer: Viewer) -> Response:
    db: Database = request.app.state.db
    where = replace(_filter(request), waiting=True)
    locale = chosen_locale(request, None)
    with db.read() as conn:
        rows = call_lists.list_calls(conn, where, cursor_of(request), PAGE + 1)
    found, after = page_of(rows)
    return render(request, "unmatched.html", {
        **_common(request, db, locale),
        "section": "calls",
        "calls": [call_out(r, locale) for r in found],
        "after": after,
        "max_attempts": request.app.state.settings.call_match_max_attempts,
    })  # fmt: skip


@router.get("/leads/{external_id:path}")
def lead_page(external_id: str, request: Request, viewer: Viewer) -> Response:
    db: Database = request.app.state.db
    where = replace(_filter(request), lead=external_id)
    locale = chosen_locale(request, None)
    with db.read() as conn:
        found = leads.get_lead(conn, external_id)
        if found is None:
            raise PageError(404, f"There is no lead {mask_text(external_id)!r}.")
        rows = call_lists.list_calls(conn, where, cursor_of(request), PAGE + 1)
        sent = lead_messages.messages_to(conn, found.phones)
    calls, after = page_of(rows)
    return render(request, "lead.html", {
        **_common(request, db, locale),
        "section": "calls",
        "lead": lead_out(found),
        "lead_id": found.id,
        "calls": [call_out(r, locale) for r in calls],
        "after": after,
        "messages": sent,
        "message_limit": lead_messages.LIMIT,
    })  # fmt: skip


def _team_window(request: Request) -> tuple[datetime | None, datetime | None, dict[str, str]]:
    """The window the URL names, else the last TEAM_DAYS days (today included) in
    TIDINGS_TIMEZONE; and the window as the form shows it."""
    given = _filters(request)
    if "since" in given or "until" in given:
        return _moment(request, "since"), _moment(request, "until"), given
    today = datetime.now(stats_zone(request)).date()
    first = today - timedelta(days=TEAM_DAYS - 1)
    shown = {"since": first.isoformat(), "until": today.isoformat()}
    zone = stats_zone(request)
    since = datetime.combine(first, time(), zone).astimezone(UTC)
    until = datetime.combine(today + timedelta(days=1), time(), zone).astimezone(UTC)
    return since, until, shown


@router.get("/team")
def team_page(request: Request, viewer: Viewer) -> Response:
    db: Database = request.app.state.db
    since, until, window = _team_window(request)
    team = team_figures(db, since, until, stats_zone(request))
    any_call = True
    if not team.total.calls:
        with db.read() as conn:
            any_call = bool(call_lists.list_calls(conn, CallFilter(), None, 1))
    locale = chosen_locale(request, None)
    return render(request, "team.html", {
        "section": "team",
        "window": window,
        "window_query": urlencode(window),
        "types": [(kind, label) for kind, label in labels(locale).items()],
        "total": figures_out(team.total),
        "members": [
            {"code": m.code if m else None, "name": m.name if m else None,
             "linked": m is not None and mask_text(m.code) == m.code, **figures_out(f)}
            for m, f in team.members
        ],
        "days": [{"day": d.day, **figures_out(d)} for d in team.per_day],
        "any_call": any_call,
    })  # fmt: skip


@router.get("/reveal/call/{call_id}")
def reveal_call(call_id: Id, request: Request, viewer: Viewer) -> Response:
    rows = []
    if call_id < 2**63 - 1:  # the largest id has no id above it to read below from
        with request.app.state.db.read() as conn:
            # The newest call at or below this id is this call, when it exists (a key lookup).
            rows = call_lists.list_calls(conn, CallFilter(), call_id + 1, 1)
    number = rows[0].client_number if rows and rows[0].id == call_id else None
    return revealed(number, f"client number of call {call_id}", viewer.email)


@router.get("/reveal/lead/{lead_id}/{index}")
def reveal_lead_phone(lead_id: Id, index: int, request: Request, viewer: Viewer) -> Response:
    """By the lead's id in the store: its external id may itself be a number."""
    with request.app.state.db.read() as conn:
        found = leads.get_lead_by_id(conn, lead_id)
    phones = found.phones if found else ()
    number = phones[index] if 0 <= index < len(phones) else None
    return revealed(number, f"phone {index} of lead {lead_id}", viewer.email)
