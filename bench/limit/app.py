"""The machine's durable limit: the least an intake can do and keep tidings' promise.

It answers 202 only after the raw body is committed and synced to SQLite (WAL,
`synchronous=FULL`), like tidings' intake, and does nothing else: no routing, no
authentication, no parsing, no worker. Requests that arrive while a commit is being synced wait
for the next one, which takes all of them at once (group commit). It runs on the same server
stack as `tidings serve` (uvicorn with uvloop and httptools, one process), so tidings ÷ this
is the share of what the machine can durably take that tidings takes.

Run (bench/run.py does this): python bench/limit/app.py --port PORT --db FILE
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Waiting = tuple[bytes, asyncio.Future[int], asyncio.AbstractEventLoop]


class GroupCommitter:
    """One thread owns the SQLite connection; each commit takes everything that is waiting."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY, body BLOB)")
        self._waiting: list[Waiting] = []
        self._ready = threading.Condition()
        threading.Thread(target=self._run, name="group-commit", daemon=True).start()

    def submit(self, body: bytes) -> asyncio.Future[int]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        with self._ready:
            self._waiting.append((body, future, loop))
            self._ready.notify()
        return future

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._waiting:
                    self._ready.wait()
                batch, self._waiting = self._waiting, []
            self._db.execute("BEGIN IMMEDIATE")
            cursor = self._db.execute("SELECT coalesce(max(id), 0) FROM inbox")
            first = int(cursor.fetchone()[0]) + 1
            self._db.executemany("INSERT INTO inbox (body) VALUES (?)", [(b,) for b, _, _ in batch])
            self._db.execute("COMMIT")
            for offset, (_, future, loop) in enumerate(batch):
                loop.call_soon_threadsafe(_resolve, future, first + offset)


def _resolve(future: asyncio.Future[int], receipt: int) -> None:
    if not future.done():
        future.set_result(receipt)


def make_app(committer: GroupCommitter) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        if scope["method"] == "POST":
            status, body = 202, json.dumps({"receipt": await committer.submit(b"".join(chunks))})
        else:
            status, body = 200, '{"status": "ok"}'
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True, help="the SQLite file to commit bodies to")
    args = parser.parse_args()
    uvicorn.run(
        make_app(GroupCommitter(args.db)),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
