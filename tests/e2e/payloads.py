"""Webhook bodies for end-to-end tests, in the documented shapes (tests/fixtures/*/README.md)."""

from __future__ import annotations

import json
from typing import Any


def evolution_update(message_id: str, status: str | int, *, v1_ms: int | None = None) -> str:
    """An Evolution `messages.update`: v2 shape (`data.keyId`), or v1 (`data.id`, `datetime`)
    when `v1_ms` is given, or the Baileys shape when `status` is a number."""
    data: dict[str, Any]
    if isinstance(status, int):
        data = {"key": {"id": message_id, "fromMe": True}, "update": {"status": status}}
    elif v1_ms is not None:
        data = {
            "id": message_id,
            "fromMe": True,
            "status": status,
            "datetime": v1_ms,
            "remoteJid": "5511999990000@s.whatsapp.net",
        }
    else:
        data = {
            "keyId": message_id,
            "fromMe": True,
            "status": status,
            "remoteJid": "5511999990000@s.whatsapp.net",
            "instanceId": "inst-1",
        }
    return json.dumps({"event": "messages.update", "instance": "main", "data": data})


def evolution_batch(updates: list[tuple[str, str]]) -> str:
    data = [{"keyId": m, "fromMe": True, "status": s} for m, s in updates]
    return json.dumps({"event": "messages.update", "instance": "main", "data": data})


def callbell_status(uuid: str, status: str, ts: int | None = None, **metadata: str) -> str:
    payload: dict[str, Any] = {"uuid": uuid, "status": status}
    if metadata:
        payload["metadata"] = metadata
    if ts is not None:
        payload["messageStatusPayload"] = {"type": status, "payload": {"ts": ts}}
    return json.dumps({"event": "message_status_updated", "payload": payload})
