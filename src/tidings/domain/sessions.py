"""Connection session events (WhatsApp connected, disconnected, QR issued): the session kind's
rules. Pure.

The newest update wins: one older than what is stored changes nothing (the store compares
times, since the stored time is not read ahead). A `qrcode` state that carries no image keeps
the image already known.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tidings.domain.events import SessionUpdate

__all__ = ["session_fields"]


def session_fields(update: SessionUpdate, at: datetime) -> dict[str, Any]:
    """The connection fields this update sets, if it is newer than what is stored."""
    fields: dict[str, Any] = {"session_state": update.state, "session_updated_at": at}
    if update.qrcode is not None or update.state != "qrcode":
        fields["session_qrcode"] = update.qrcode
    return fields
