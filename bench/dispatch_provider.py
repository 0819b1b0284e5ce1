"""A fake Evolution API for the dispatch benchmark: it takes every send at once and keeps a
ledger of what arrived, so that the bench counts sends at the provider, never from what the
sender believes.

    python bench/dispatch_provider.py --port P --api-key KEY --ledger FILE

It speaks Evolution v2's send API as tidings' client and the hand-written baseline call it:
`POST /message/sendText/{instance}` with the header `apikey` and a JSON body `{"number",
"text"}`, answered 201 with the documented body (`key.remoteJid`, `key.fromMe`, a unique
`key.id`, `message`, `messageTimestamp`, `status: PENDING`). A wrong `apikey` is a 401 and a
body without `number` or `text` a 400, in Evolution's error format, so a sender that calls it
wrongly shows up in the ledger instead of being counted as sent. `GET /healthz` answers 200.

It runs on the same server stack as `tidings serve` (uvicorn with uvloop and httptools, one
process) and does nothing per request but parse the body and append to a list in memory, so
it is not what limits either sender. On SIGTERM or SIGINT uvicorn stops, and the ledger is
written at the app's lifespan shutdown (uvicorn then re-raises the signal, so nothing after
`uvicorn.run` would run), one line per request: `instance <tab> number <tab> arrival
(time.time(), when the whole body had arrived) <tab> status <tab> key.id (empty when
refused)`. It is written to FILE.tmp and renamed, so a ledger that exists is complete.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import orjson
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_PREFIX = "/message/sendText/"
_JSON = [(b"content-type", b"application/json; charset=utf-8")]


class FakeEvolution:
    """The ASGI app: one instance per process, its ledger in memory until shutdown."""

    def __init__(self, api_key: str, ledger: Path) -> None:
        self.api_key = api_key.encode()
        self.ledger_path = ledger
        self.ledger: list[str] = []
        # Ids like Evolution's (16 hex digits), unique across processes that share a store:
        # a random prefix per process, then a counter.
        self._prefix = f"BAE5{os.urandom(2).hex().upper()}"
        self._numbers = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        path: str = scope["path"]
        if scope["method"] == "GET" and path == "/healthz":
            await _answer(send, 200, {"status": "ok"})
            return
        if scope["method"] != "POST" or not path.startswith(_PREFIX) or "/" in path[len(_PREFIX) :]:
            await _answer(send, 404, _error(404, "Not Found", "Cannot " + path))
            return
        arrived = time.time()
        instance = path[len(_PREFIX) :]
        headers = dict(scope["headers"])
        try:
            body = orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError:
            body = None
        number = body.get("number") if isinstance(body, dict) else None
        text = body.get("text") if isinstance(body, dict) else None
        shown = number if isinstance(number, str) else ""
        if headers.get(b"apikey") != self.api_key:
            self._record(instance, shown, arrived, 401, "")
            await _answer(send, 401, _error(401, "Unauthorized", "Unauthorized"))
            return
        if not isinstance(number, str) or not isinstance(text, str):
            self._record(instance, shown, arrived, 400, "")
            missing = "text" if isinstance(number, str) else "number"
            await _answer(
                send, 400, _error(400, "Bad Request", [[f'instance requires property "{missing}"']])
            )
            return
        message_id = f"{self._prefix}{next(self._numbers):08X}"
        self._record(instance, number, arrived, 201, message_id)
        await _answer(
            send,
            201,
            {
                "key": {
                    "remoteJid": f"{number}@s.whatsapp.net",
                    "fromMe": True,
                    "id": message_id,
                },
                "message": {"extendedTextMessage": {"text": text}},
                "messageTimestamp": str(int(arrived)),
                "status": "PENDING",
            },
        )

    def _record(self, instance: str, number: str, at: float, status: int, message_id: str) -> None:
        self.ledger.append(f"{instance}\t{number}\t{at:.6f}\t{status}\t{message_id}\n")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.write_ledger()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def write_ledger(self) -> None:
        partial = self.ledger_path.with_name(self.ledger_path.name + ".tmp")
        partial.write_text("".join(self.ledger))
        partial.replace(self.ledger_path)


def _error(status: int, error: str, message: object) -> dict[str, Any]:
    """Evolution's error body: `{"status", "error", "response": {"message"}}`."""
    return {"status": status, "error": error, "response": {"message": message}}


async def _answer(send: Send, status: int, body: object) -> None:
    """With its length, not chunked. uvicorn writes the head and the body separately; the
    socket has TCP_NODELAY (uvloop's default), so the body does not wait for an ACK."""
    data = orjson.dumps(body)
    headers = [*_JSON, (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True, help="the apikey header a send must carry")
    parser.add_argument("--ledger", type=Path, required=True, help="written on shutdown")
    args = parser.parse_args()
    uvicorn.run(
        FakeEvolution(args.api_key, args.ledger),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
