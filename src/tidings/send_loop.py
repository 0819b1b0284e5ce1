"""Where a campaign's messages go out: an event loop on a thread of its own, with one aiohttp
session, sending each batch `concurrency` requests at a time (`providers.send_async`).

It runs in the send process (`send_process`), one per concurrency, kept there so the
connections to a provider outlive a batch and a turn; the loop never touches the store.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

import aiohttp

from tidings.event_loops import new_event_loop
from tidings.providers.send import Answer, SendError, SendRequest, answer_to_error
from tidings.providers.send_async import new_session, send_async
from tidings.providers.send_http import HttpSender

__all__ = ["SendLoop"]

T = TypeVar("T")


class SendLoop:
    """An event loop thread and its aiohttp session; `send_all` is safe from any thread."""

    def __init__(self, concurrency: int) -> None:
        self._concurrency = concurrency
        self._loop = new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tidings-send-loop", daemon=True
        )
        self._thread.start()
        self._session, self._gate = self._run(self._open())

    async def _open(self) -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
        # One gate for every batch: with two batches out at once their requests wait here,
        # not for a pooled connection, where the wait would count against the connect
        # time-out of a slow provider.
        return new_session(self._concurrency), asyncio.Semaphore(self._concurrency)

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def send_all(
        self, sender: HttpSender, requests: Sequence[SendRequest | SendError]
    ) -> list[Answer]:
        """Each request's answer, in order; a SendError given instead of a request (one that
        could not even be made) is its own answer."""
        return self.submit(sender, requests).result()

    def submit(
        self, sender: HttpSender, requests: Sequence[SendRequest | SendError]
    ) -> Future[list[Answer]]:
        """`send_all` without waiting: the answers arrive in the future returned, while the
        caller records the batch before (batches share the `concurrency` connections)."""
        return asyncio.run_coroutine_threadsafe(self._all(sender, requests), self._loop)

    async def _all(
        self, sender: HttpSender, requests: Sequence[SendRequest | SendError]
    ) -> list[Answer]:
        async def one(request: SendRequest | SendError) -> Answer:
            if isinstance(request, SendError):
                return request, None
            async with self._gate:
                try:
                    result = await send_async(sender, self._session, request)
                except Exception as error:
                    return answer_to_error(sender.provider, error)
            return result.provider_message_id, result.http_status

        return list(await asyncio.gather(*(one(request) for request in requests)))

    def close(self) -> None:
        if self._loop.is_closed():
            return
        if self._loop.is_running():
            self._run(self._session.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._loop.is_running():
            self._loop.close()
