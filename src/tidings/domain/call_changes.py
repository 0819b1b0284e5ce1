"""The call kind's rules: what a batch of call records changes. Pure: plain data in, changes out.

- A call is one record per connection and Callyzer call id, whatever carried it (the webhook,
  the verification poll, a replay): never a second record.
- Versions are ordered by `modified_at`. A later one replaces what is stored; the same one
  again changes nothing; an older one is ignored with a note. A version without
  `modified_at` only ever creates a call (it cannot be placed after one stored).
- A call is matched to a lead by its client's E.164 number when it is written and not yet
  matched: one attempt each time. When several leads have the number, the oldest lead (the
  lowest id) takes the call, so the choice never changes with later imports. A matched call
  stays with its lead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from tidings.domain.calls import CallRecord

__all__ = [
    "CallChange",
    "CallItem",
    "CallKey",
    "CallPlan",
    "Match",
    "Verdict",
    "is_newer",
    "lead_for",
    "match",
    "plan_calls",
]

CallKey = tuple[int, str]  # (connection id, Callyzer call id)


class Verdict(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    SAME = "same"  # the stored version again (the webhook and the poll of one call)
    OLDER = "older"  # an older version than the stored one: ignored


@dataclass(frozen=True)
class CallItem:
    """One call record as it arrived."""

    key: CallKey
    record: CallRecord
    receipt_id: int | None = None


@dataclass(frozen=True)
class StoredVersion:
    """What the rules need of a stored call: its version, and whether it has its lead."""

    modified_at: datetime | None
    lead_id: int | None
    match_attempts: int


@dataclass(frozen=True)
class Match:
    """One matching attempt: the lead found (None: still waiting) and the attempts so far."""

    lead_id: int | None
    attempts: int
    at: datetime


@dataclass(frozen=True)
class CallChange:
    """A call to write: the version that won, and the match made when it is still waiting."""

    item: CallItem
    verdict: Verdict
    match: Match | None = None


@dataclass
class CallPlan:
    changes: list[CallChange] = field(default_factory=list)
    same: int = 0
    older: int = 0
    notes: dict[int, list[str]] = field(default_factory=dict)  # by receipt id

    def note(self, receipt_id: int | None, text: str) -> None:
        if receipt_id is not None:
            self.notes.setdefault(receipt_id, []).append(text)


def is_newer(incoming: datetime | None, stored: datetime | None) -> bool:
    """Whether a version modified at `incoming` replaces one modified at `stored`."""
    return incoming is not None and (stored is None or incoming > stored)


def lead_for(lead_ids: Sequence[int]) -> int | None:
    """The lead a number's call goes to when several leads have that number: the oldest."""
    return min(lead_ids) if lead_ids else None


def match(
    number: str | None,
    leads_by_number: Mapping[str, Sequence[int]],
    attempts: int,
    at: datetime,
) -> Match:
    """One matching attempt for a waiting call with this client number."""
    found = lead_for(leads_by_number.get(number, ())) if number else None
    return Match(found, attempts + 1, at)


def plan_calls(
    items: Sequence[CallItem],
    stored: Mapping[CallKey, StoredVersion],
    leads_by_number: Mapping[str, Sequence[int]],
    now: datetime,
) -> CallPlan:
    """What these items change, given the stored calls they name and the leads of their
    client numbers. Per call, the latest version among the items and the stored one wins."""
    plan = CallPlan()
    best: dict[CallKey, CallItem] = {}
    order: list[CallKey] = []
    for item in items:
        for text in item.record.notes:
            plan.note(item.receipt_id, text)
        current = best.get(item.key)
        if current is None:
            best[item.key] = item
            order.append(item.key)
        elif is_newer(item.record.modified_at, current.record.modified_at):
            _passed_over(plan, current, item.record.modified_at)
            best[item.key] = item
        else:
            _passed_over(plan, item, current.record.modified_at)
    for key in order:
        item = best[key]
        version = stored.get(key)
        if version is None:
            verdict = Verdict.CREATED
        elif is_newer(item.record.modified_at, version.modified_at):
            verdict = Verdict.UPDATED
        else:
            _passed_over(plan, item, version.modified_at)
            continue
        waiting = version is None or version.lead_id is None
        attempts = version.match_attempts if version is not None else 0
        found = (
            match(item.record.client_number, leads_by_number, attempts, now) if waiting else None
        )
        plan.changes.append(CallChange(item, verdict, found))
    return plan


def _passed_over(plan: CallPlan, item: CallItem, winner: datetime | None) -> None:
    """Count (and note, when it is older) a version that does not win."""
    mine = item.record.modified_at
    if mine is not None and (winner is None or mine != winner):
        plan.older += 1
        plan.note(
            item.receipt_id,
            f"call {item.record.call_id}: ignored, modified at {mine.isoformat()}, older than "
            f"the version kept ({winner.isoformat() if winner else 'unknown'})",
        )
    else:
        plan.same += 1
