"""Errors tidings raises, one root so callers can catch them all.

    TidingsError
    ├── SignatureError       a webhook failed authentication (→ 401 at intake)
    ├── PayloadError         a body or item cannot be understood (→ quarantine / failed receipt)
    ├── StorageUnavailable   the store cannot commit right now (→ 503 at intake)
    ├── NotFound             a named thing does not exist (→ 404)
    ├── Conflict             a request contradicts what is stored (→ 409)
    └── Invalid              a request names a value the store cannot hold (→ 422)

The mapping to HTTP statuses lives only in the intake and API layers.
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "Invalid",
    "NotFound",
    "PayloadError",
    "SignatureError",
    "StorageUnavailable",
    "TidingsError",
]


class TidingsError(Exception):
    """Root of every error tidings raises on purpose."""


class SignatureError(TidingsError):
    """A webhook's credentials are missing or wrong; the message says which."""


class PayloadError(TidingsError):
    """A body (or one item of it) is not what the provider documents; says what to fix."""


class StorageUnavailable(TidingsError):
    """The store could not commit in time; the caller should answer 503 and let the sender retry."""


class NotFound(TidingsError):
    """A connection, message, receipt or campaign that was asked for does not exist."""


class Conflict(TidingsError):
    """A request contradicts stored facts (e.g. a message registered under another campaign)."""


class Invalid(TidingsError):
    """A request carries a value the store cannot hold (e.g. longer than its column)."""
