"""Phone numbers of calls in E.164, however Callyzer wrote them. Pure.

Callyzer sends most numbers without their country code and gives the code beside them
(`client_country_code`, `emp_country_code`: "91"); employee numbers in its API filters are
written `91-9876543210`; its older API wrapped unknown callers as `Unknown (09163127901)`.
A number is read, in this order: as international when it starts with `+` or `00`; with the
country code given beside it; in the connection's default region; as international digits.
The first reading that is a valid number wins, else the first that is at least possible.
"""

from __future__ import annotations

import re

import phonenumbers

__all__ = ["e164"]

# "Unknown (09163127901)", "Asha (+91 98765 43210)": the number is in the brackets.
_BRACKETED = re.compile(r".*\(([+\d][\d\s().\-]*)\)\s*")
_NUMBER_CHARACTERS = re.compile(r"\+?[\d\s().\-/]+")


def e164(number: object, country_code: object = None, region: str | None = None) -> str | None:
    """`number` in E.164 ("+919876543210"), or None when it is not a phone number (empty,
    "Unknown", "*121#", a short code too short for any country)."""
    if number is None or isinstance(number, bool):
        return None
    text = str(number).strip()
    bracketed = _BRACKETED.fullmatch(text)
    if bracketed:
        text = bracketed.group(1).strip()
    if not text or not _NUMBER_CHARACTERS.fullmatch(text):
        return None
    digits = "".join(c for c in text if c.isdigit())
    if not digits:
        return None
    readings: list[tuple[str, str | None]] = []
    if text.startswith("+"):
        readings.append(("+" + digits, None))
    elif digits.startswith("00"):
        readings.append(("+" + digits[2:], None))
    else:
        code = _country_code(country_code)
        if code is not None:
            code_region = phonenumbers.region_code_for_country_code(code)
            if code_region != phonenumbers.UNKNOWN_REGION:
                # phonenumbers drops a trunk "0" and a repeated country code in that region.
                readings.append((digits, code_region))
            readings.append((f"+{code}{digits.lstrip('0')}", None))
        if region:
            readings.append((digits, region))
        readings.append(("+" + digits, None))
    return _first_number(readings)


def _country_code(value: object) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    digits = "".join(c for c in str(value) if c in "0123456789")
    if not digits or len(digits) > 3:
        return None
    code = int(digits)
    return code if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE else None


def _first_number(readings: list[tuple[str, str | None]]) -> str | None:
    possible: str | None = None
    for text, region in readings:
        try:
            parsed = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            continue
        formatted = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        if phonenumbers.is_valid_number(parsed):
            return formatted
        if possible is None and phonenumbers.is_possible_number(parsed):
            possible = formatted
    return possible
