"""One signed POST per claimed delivery, and what came of it.

The body is built once per attempt and signed as the exact bytes sent, over aiohttp (a
quarter of httpx's CPU a request, decision 0013). Redirects are not followed (a 3xx is a
failed attempt: the subscriber should give the final URL), every attempt is bounded to
`TIDINGS_OUTBOUND_TIMEOUT_SECONDS` in total, and every connection goes through the SSRF
guard (`outbound.guard`). Concurrency is bounded per subscription and overall, so one slow
endpoint cannot take every connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

import aiohttp
import orjson

from tidings.config import Settings
from tidings.domain.outbound import iso, masked_for
from tidings.logging import mask_text
from tidings.outbound import signing
from tidings.outbound.guard import GuardedResolver, RefusedAddress, check_literal
from tidings.storage.deliveries import Attempt, Claim

__all__ = ["Sender", "body_of"]

_RESPONSE_LIMIT = 1024


def body_of(claim: Claim) -> bytes:
    """The exact bytes a subscriber gets for this delivery: `{"type", "timestamp", "data"}`,
    contact details masked unless the subscriber asked for them."""
    data = masked_for(claim.data, claim.subscription.include_contact, mask_text)
    payload = {"type": claim.event_type, "timestamp": iso(claim.created_at), "data": data}
    return orjson.dumps(payload)


class Sender:
    """Makes attempts; lives in one event loop (its session and semaphores belong to it, made
    at its first attempt)."""

    def __init__(
        self,
        settings: Settings,
        now: Callable[[], datetime],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._timeout = settings.outbound_timeout_seconds
        self._now = now
        self._wall_clock = wall_clock
        self._policy = settings.outbound_policy
        self._concurrency = settings.outbound_concurrency
        self._overall = asyncio.Semaphore(settings.outbound_concurrency)
        self._per_endpoint_limit = settings.outbound_endpoint_concurrency
        self._per_endpoint: dict[int, asyncio.Semaphore] = {}
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._concurrency,
                limit_per_host=0,  # per endpoint: the semaphores
                use_dns_cache=False,  # every new connection is resolved and checked again
                resolver=GuardedResolver(self._policy),
                keepalive_timeout=30.0,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"user-agent": "tidings-webhooks", "content-type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=None),  # each attempt has its own bound
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def attempt(self, claim: Claim) -> Attempt:
        """POST one delivery (waiting for a free slot of its endpoint and overall)."""
        sub_id = claim.subscription.id
        endpoint = self._per_endpoint.get(sub_id)
        if endpoint is None:
            endpoint = self._per_endpoint[sub_id] = asyncio.Semaphore(self._per_endpoint_limit)
        async with endpoint, self._overall:
            return await self._post(claim)

    async def _post(self, claim: Claim) -> Attempt:
        at = self._now()
        body = body_of(claim)
        keys = [signing.secret_bytes(s) for s in claim.subscription.signing_secrets(at)]
        headers = signing.headers(keys, claim.webhook_id, int(self._wall_clock()), body)
        started = time.perf_counter()
        status: int | None = None
        answer: str | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(self._timeout):
                status, answer = await self._exchange(claim.subscription.url, body, headers)
        except TimeoutError:
            error = f"no answer within {self._timeout:g}s"
        except RefusedAddress as refused:
            error = f"refused: {refused}"
        except aiohttp.ClientError as failed:
            error = f"{type(failed).__name__}: {failed}" if str(failed) else type(failed).__name__
        latency = int((time.perf_counter() - started) * 1000)
        if status is not None and 300 <= status < 400:
            error = "redirects are not followed: subscribe the URL it points to"
        elif status is not None and not 200 <= status < 300:
            error = f"HTTP {status}"
        return Attempt(claim, at, latency, status, error and mask_text(error), answer)

    async def _exchange(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        check_literal(url, self._policy)
        async with self._client().post(
            url, data=body, headers=headers, allow_redirects=False
        ) as response:
            kept = bytearray()
            while len(kept) < _RESPONSE_LIMIT:
                chunk = await response.content.read(_RESPONSE_LIMIT - len(kept))
                if not chunk:
                    break
                kept += chunk
            return response.status, bytes(kept).decode("utf-8", "replace")
