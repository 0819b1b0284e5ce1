"""A cap on the size of request bodies to the API and the dashboard (the intake has its own,
`TIDINGS_MAX_BODY_BYTES`): without it a client could make a node read and parse any amount.

The cap fits the largest thing a user sends on purpose: a bulk registration of 10,000 messages
or a CSV of contacts, a few MiB. A body declared larger is refused before it is read; one sent
in chunks is read up to the cap, then refused.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["API_BODY_LIMIT", "BodyLimit"]

API_BODY_LIMIT = 32 * 1024 * 1024


class BodyLimit:
    """Answers 413 (the API's error shape) to a body over `limit` bytes."""

    def __init__(self, app: ASGIApp, limit: int = API_BODY_LIMIT) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:  # the HTTP parser reads no more than declared
            if declared.isdigit() and int(declared) > self.limit:
                await self._too_large(send)
            else:
                await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._too_large(send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replaying(messages, receive), send)

    async def _too_large(self, send: Send) -> None:
        mib = self.limit // (1024 * 1024)
        error = {
            "code": "too_large",
            "message": f"the body is larger than {mib} MiB; send it in parts",
        }
        body = json.dumps({"error": error}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(body)),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """The messages already read, then whatever the connection sends next (a disconnect)."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
