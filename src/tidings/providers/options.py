"""What a connection of each provider may be given, checked before it is stored.

A connection that cannot work (a Meta connection without its app secret, an option key
nothing reads, a name no URL can carry) is refused when it is added or changed, with a
one-line reason, rather than failing later on every webhook.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from tidings.domain.call_times import zone_named
from tidings.domain.errors import TidingsError
from tidings.domain.recipients import REGIONS
from tidings.providers.registry import get_provider

__all__ = ["KNOWN_OPTIONS", "InvalidConnection", "check_connection", "check_name"]


class InvalidConnection(TidingsError):
    """A connection as given could not work; the message says what to change."""


# Keys every provider takes: its API (for the calls tidings makes), the sender, how to read
# times, where the account lives, and which metadata keys carry campaign and contact.
_COMMON = frozenset(
    {"api_url", "api_key", "from", "timezone", "region", "campaign_key", "contact_ref_key"}
)

KNOWN_OPTIONS: dict[str, frozenset[str]] = {
    "evolution": _COMMON | {"instance", "auth_header", "api_version"},
    "callbell": _COMMON | {"auth_header"},
    "infobip": _COMMON | {"auth_header"},
    "meta": _COMMON | {"phone_number_id", "verify_token"},
    "twilio": _COMMON | {"account_sid"},
    "callyzer": _COMMON | {"auth_header"},
}

# Unreserved URL characters only, so the name is the path segment as typed; at most the
# column's 100 characters, never "." or "..".
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,99}")


def check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidConnection(
            f"{name!r} cannot be a connection name: use 1-100 letters, digits, '.', '_', '~' "
            "or '-', starting with a letter or digit (it is a segment of the intake URL)"
        )


# A header name as HTTP defines it (a "token": no spaces, no separators).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def check_connection(provider: str, secret: str | None, options: Mapping[str, str]) -> None:
    """Raise InvalidConnection when a connection with this secret and these options (all of
    them, as they would be stored) cannot work for `provider`."""
    known = KNOWN_OPTIONS[get_provider(provider).name]
    unknown = sorted(set(options) - known)
    if unknown:
        raise InvalidConnection(
            f"{provider} does not know the option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)}; it knows: {', '.join(sorted(known))}"
        )
    empty = sorted(key for key, value in options.items() if not value.strip())
    if empty:
        raise InvalidConnection(
            f"option {', '.join(empty)} has no value (to drop an option: --unset-option KEY)"
        )
    if "timezone" in options and zone_named(options["timezone"]) is None:
        raise InvalidConnection(
            f"timezone {options['timezone']!r} is no time zone of the tz database; use an "
            "Area/City name such as Asia/Kolkata or Europe/Warsaw"
        )
    api_url = options.get("api_url", "").strip()
    if api_url and urlsplit(api_url).scheme.lower() not in ("http", "https"):
        raise InvalidConnection(
            f"api_url {api_url!r} must start with https:// (or http://), e.g. "
            "https://evolution.example.com"
        )
    if api_url and not urlsplit(api_url).hostname:
        raise InvalidConnection(f"api_url {api_url!r} names no host")
    if "region" in options and options["region"].strip().upper() not in REGIONS:
        raise InvalidConnection(
            f"region {options['region']!r} is not a region code phone numbers use "
            "(two letters, e.g. IN, PL, BR)"
        )
    header = options.get("auth_header", "")
    if header and not _HEADER_NAME.fullmatch(header):
        raise InvalidConnection(
            f"auth_header {header!r} is not an HTTP header name (letters, digits and "
            "-, e.g. X-Webhook-Token)"
        )
    version = options.get("api_version", "v2").strip().lower()
    if provider == "evolution" and version not in ("v1", "v2"):
        raise InvalidConnection(
            f"api_version {options['api_version']!r} is not one Evolution has: use v1 or v2"
        )
    if provider == "meta" and not secret:
        raise InvalidConnection(
            "a meta connection needs --secret: the App Secret Meta signs every webhook with"
        )
    if provider == "meta" and not options.get("verify_token"):
        raise InvalidConnection(
            "a meta connection needs --option verify_token=TOKEN: the Verify Token typed in "
            "the App Dashboard for the callback URL"
        )
    if provider == "twilio" and not secret:
        raise InvalidConnection(
            "a twilio connection needs --secret: the auth token of the Twilio account "
            "(it signs every callback)"
        )
