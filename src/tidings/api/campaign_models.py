"""Request and response shapes of the campaigns that tidings sends."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from tidings.api.models import CampaignOut, DispatchOut, TemplateIn
from tidings.storage import schema
from tidings.storage.dispatches import DispatchView
from tidings.storage.limits import NO_NUL, column_limit

__all__ = [
    "ContactResultOut",
    "ContactsOut",
    "CreateCampaign",
    "CreatedCampaignOut",
    "DispatchOut",
    "dispatch_out",
]


# What each field is stored in; the text has no column limit, and 4,096 characters is the
# longest text message WhatsApp takes.
_CAMPAIGN_KEY = column_limit(schema.campaigns, "key")
_NAME = column_limit(schema.campaign_dispatches, "name")
_CONNECTION_NAME = column_limit(schema.connections, "name")
_TEXT = 4096


class CreateCampaign(BaseModel):
    """A campaign for tidings to send: `text` (with `{{name}}`, `{{var1}}`… filled in from each
    contact) or a provider `template` (each contact's extra columns as its variables, in
    order), through `connection`, at most `rate_per_minute` (none: as fast as the provider
    takes them), from `start_at` (none: when started)."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=_CAMPAIGN_KEY, pattern=NO_NUL)
    name: str | None = Field(default=None, max_length=_NAME, pattern=NO_NUL)
    connection: str = Field(min_length=1, max_length=_CONNECTION_NAME, pattern=NO_NUL)
    text: str | None = Field(default=None, min_length=1, max_length=_TEXT, pattern=NO_NUL)
    template: TemplateIn | None = None
    rate_per_minute: int | None = Field(default=None, ge=1, le=60_000)
    start_at: AwareDatetime | None = None
    contacts: list[dict[str, Any]] | None = Field(
        default=None, description="Contacts to add at once (as POST …/contacts takes them)."
    )


def dispatch_out(view: DispatchView) -> DispatchOut:
    return DispatchOut(
        state=view.state.value,
        name=view.name,
        connection=view.connection,
        text=view.text,
        template=dict(view.template) if view.template is not None else None,
        rate_per_minute=view.rate_per_minute,
        start_at=view.start_at,
        paused_reason=view.paused_reason,
        waiting_reason=view.waiting_reason,
        contacts=dict(view.contacts),
        finished_at=view.finished_at,
    )


class ContactResultOut(BaseModel):
    row: int
    contact_ref: str | None
    status: str = Field(description="added or error")
    error: str | None


class ContactsOut(BaseModel):
    added: int
    errors: int
    results: list[ContactResultOut]


class CreatedCampaignOut(CampaignOut):
    contacts: ContactsOut | None = Field(
        default=None, description="What became of the contacts given with the campaign."
    )
