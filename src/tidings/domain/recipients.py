"""One spelling per recipient, so a message is found by whoever it was sent to, however the
number or address was written: phone numbers in E.164 (`+5531982968010`), email addresses with
their domain lower-cased. Pure: no network lookups (an address's domain is not resolved)."""

from __future__ import annotations

import re

import phonenumbers

__all__ = ["REGIONS", "InvalidRecipient", "normalise_recipient", "same_party"]

# Two-letter regions phonenumbers knows ("BR", "US"): a default for numbers written without
# their country code.
REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)


class InvalidRecipient(ValueError):
    """The value is neither a phone number nor an email address; the message says why."""


def normalise_recipient(value: str, default_region: str | None = None) -> str:
    """`value` in its one spelling, or InvalidRecipient. Anything with an `@` is taken for an
    email address, anything else for a phone number; `default_region` reads numbers written
    without a country code (with none, or when that reading is impossible, the digits are
    read as an international number, as if written with a leading `+`)."""
    text = value.strip()
    if "@" in text:
        return _email(text)
    return _phone(text, default_region)


# Digits and the punctuation people write numbers with; letters (vanity numbers, "ext.")
# are refused rather than guessed at.
_PHONE_CHARACTERS = re.compile(r"\+?[\d\s().\-]+")


def _phone(text: str, region: str | None) -> str:
    if not _PHONE_CHARACTERS.fullmatch(text) or not any(c.isdigit() for c in text):
        raise InvalidRecipient(
            f"{text!r} is neither a phone number (digits, optionally a leading +) "
            "nor an email address"
        )
    readings: list[tuple[str, str | None]] = []
    if not text.startswith("+") and region in REGIONS:
        readings.append((text, region))
    readings.append((text if text.startswith("+") else f"+{text}", None))
    for candidate, candidate_region in readings:
        try:
            number = phonenumbers.parse(candidate, candidate_region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    hint = "" if text.startswith("+") else " (write it with its country code, e.g. +55...)"
    raise InvalidRecipient(f"{text!r} is not a possible phone number{hint}")


# Deliberately simple: a local part without spaces or the characters that need quoting, and
# a domain of two or more DNS labels (letters of any script, digits, inner hyphens).
_LOCAL_PART = re.compile(r"[^\s@\"(),:;<>\[\]\\]{1,64}")
_LABEL = re.compile(r"[^\W_](?:[^\W_]|-){0,62}(?<!-)")


def _email(text: str) -> str:
    local, _, domain = text.rpartition("@")
    labels = domain.split(".")
    if (
        not _LOCAL_PART.fullmatch(local)
        or len(domain) > 253
        or len(labels) < 2
        or not all(_LABEL.fullmatch(label) for label in labels)
    ):
        raise InvalidRecipient(f"{text!r} is not an email address (expected name@example.com)")
    return f"{local}@{domain.lower()}"


def same_party(given: str, known: str) -> bool:
    """Whether two recipients or contact references name the same party: each as
    `normalise_recipient` stores it (providers write numbers with or without `+`, spaces or a
    `whatsapp:` prefix), or, when it is neither a number nor an email, as text ignoring case."""
    return _comparable(given) == _comparable(known)


def _comparable(text: str) -> str:
    bare = text.strip().rsplit(":", 1)[-1]  # whatsapp:+55..., tel:+55...
    try:
        return normalise_recipient(bare)
    except InvalidRecipient:
        return text.strip().casefold()
