"""Deduplication keys: two copies of one provider event get the same key, so the second is a no-op.

The message is part of the unique index already (connection + provider message id); the key
adds the kind and the provider's event id or its own event time where it gives one. Without
either, one event per kind per message is assumed — true of every status a provider reports.
"""

from __future__ import annotations

from tidings.domain.events import EventKind, NormalizedEvent

__all__ = ["dedup_key"]


def dedup_key(event: NormalizedEvent) -> str:
    token = event.provider_event_id or (
        event.occurred_at.isoformat() if event.occurred_at is not None else ""
    )
    key = f"{event.kind.value}:{token}"
    if event.kind is EventKind.UNKNOWN:
        # Two different unknown words for one message are two facts, not one.
        key += f":{event.raw_status}"
    return key[:300]
