"""Leads: the business's prospects, each with the phone numbers its calls are matched by.
Pure: what makes a lead valid, shared by the API and the CSV import.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tidings.domain.call_numbers import e164
from tidings.domain.errors import Invalid

__all__ = ["EXTERNAL_ID_LIMIT", "NAME_LIMIT", "Lead", "lead"]

EXTERNAL_ID_LIMIT = 200
NAME_LIMIT = 200


@dataclass(frozen=True)
class Lead:
    """A lead as the business names it (`external_id` is the business's own id); its phones
    in E.164, each once, in the order given."""

    external_id: str
    name: str | None = None
    owner: str | None = None
    phones: tuple[str, ...] = ()


def lead(
    external_id: str,
    name: str | None,
    owner: str | None,
    phones: Iterable[str],
    region: str | None = None,
) -> Lead:
    """A lead from what a person typed; numbers without a country code are read in `region`.

    Raises:
        Invalid: the external id is empty or too long, a text is too long, or a phone is not
            a phone number (the message names it).
    """
    key = external_id.strip()
    if not key:
        raise Invalid("external_id is empty")
    if len(key) > EXTERNAL_ID_LIMIT:
        raise Invalid(f"external_id is longer than {EXTERNAL_ID_LIMIT} characters")
    texts = {"name": (name or "").strip(), "owner": (owner or "").strip()}
    for field, text in texts.items():
        if len(text) > NAME_LIMIT:
            raise Invalid(f"{field} is longer than {NAME_LIMIT} characters")
        if "\x00" in text or "\x00" in key:
            raise Invalid(f"{field} contains a NUL character")
    numbers: list[str] = []
    for phone in phones:
        given = phone.strip()
        if not given:
            continue
        number = e164(given, None, region)
        if number is None or not number.startswith("+"):
            hint = "" if given.startswith("+") else " (write it with its country code, e.g. +91...)"
            raise Invalid(f"phone {given[:40]!r} is not a phone number{hint}")
        if number not in numbers:
            numbers.append(number)
    return Lead(key, texts["name"] or None, texts["owner"] or None, tuple(numbers))
