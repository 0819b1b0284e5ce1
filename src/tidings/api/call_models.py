"""Request and response shapes of the calls API: employees, leads, calls, statistics."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from tidings.domain.leads import EXTERNAL_ID_LIMIT, NAME_LIMIT
from tidings.storage.limits import NO_NUL, column_limit
from tidings.storage.schema import employees

__all__ = [
    "CallOut",
    "DayOut",
    "EmployeeIn",
    "EmployeeOut",
    "EmployeeStatsOut",
    "FiguresOut",
    "LeadDetail",
    "LeadIn",
    "LeadOut",
    "LeadSaved",
    "TeamMemberOut",
    "TeamStatsOut",
]

_CODE = column_limit(employees, "code")


class EmployeeIn(BaseModel):
    """An employee (adviser) known before any call of theirs, or changed: all fields."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        min_length=1,
        max_length=_CODE,
        # Something besides spaces, and no NUL or slash anywhere (`\S` alone let one through).
        pattern=r"^[^\x00/]*[^\x00/\s][^\x00/]*$",
        description="Callyzer's employee code (emp_code); the key of the employee.",
    )
    name: str | None = Field(default=None, max_length=NAME_LIMIT, pattern=NO_NUL)
    number: str | None = Field(
        default=None,
        max_length=40,
        pattern=NO_NUL,
        description="Their phone number (stored in E.164; without a country code it is read "
        "in the default region).",
    )
    tags: list[Annotated[str, Field(pattern=NO_NUL)]] = Field(default_factory=list, max_length=50)
    active: bool = Field(default=True, description="Inactive employees are left out of the poll.")


class EmployeeOut(BaseModel):
    code: str
    name: str | None
    number: str | None
    country_code: str | None
    tags: list[str]
    active: bool
    last_synced_at: datetime | None = Field(
        description="How far the verification poll has fetched their calls."
    )
    connection: str | None
    created_at: datetime
    updated_at: datetime


class LeadIn(BaseModel):
    """A lead, upserted on `external_id`; its phones become exactly these."""

    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(min_length=1, max_length=EXTERNAL_ID_LIMIT, pattern=NO_NUL)
    name: str | None = Field(default=None, max_length=NAME_LIMIT, pattern=NO_NUL)
    owner: str | None = Field(default=None, max_length=NAME_LIMIT, pattern=NO_NUL)
    phones: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Phone numbers (any spelling; stored in E.164; without a country code "
        "read in the default region).",
    )


class LeadOut(BaseModel):
    external_id: str
    name: str | None
    owner: str | None
    phones: list[str]
    created_at: datetime
    updated_at: datetime


class LeadSaved(LeadOut):
    matched_calls: int = Field(description="Waiting calls this save attached to the lead.")


class CallOut(BaseModel):
    id: int
    connection: str
    provider_call_id: str
    employee: str | None = Field(description="The employee's code.")
    employee_name: str | None
    client_name: str | None
    client_number: str | None
    type: str
    type_label: str
    raw_type: str
    duration_seconds: int
    started_at: datetime | None
    note: str | None
    recording_url: str | None
    crm_status: str | None
    synced_at: datetime | None
    modified_at: datetime | None
    lead: str | None = Field(description="The lead's external_id; null while unmatched.")
    match_attempts: int
    last_match_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime


class LeadDetail(LeadOut):
    latest_calls: list[CallOut]


class FiguresOut(BaseModel):
    calls: int
    by_type: dict[str, int]
    total_duration_seconds: int
    average_duration_seconds: float = Field(description="Total duration / answered calls.")
    answered: int = Field(description="Calls that lasted more than 0 seconds.")
    answered_share: float = Field(description="answered / calls (0 when there are none).")


class DayOut(FiguresOut):
    date: date


class EmployeeStatsOut(FiguresOut):
    employee: str
    name: str | None
    since: datetime | None
    until: datetime | None
    labels: dict[str, str] = Field(description="Each call type's display label.")
    per_day: list[DayOut]


class TeamMemberOut(FiguresOut):
    employee: str | None
    name: str | None


class TeamStatsOut(BaseModel):
    since: datetime | None
    until: datetime | None
    labels: dict[str, str]
    total: FiguresOut
    employees: list[TeamMemberOut]
