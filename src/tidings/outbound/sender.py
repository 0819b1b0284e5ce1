"""One signed POST per claimed delivery, and what came of it.

The body is built once per attempt and signed as the exact bytes sent. Redirects are not
followed (a 3xx is a failed attempt: the subscriber should give the final URL), every attempt
is bounded to `TIDINGS_OUTBOUND_TIMEOUT_SECONDS` in total, and every connection goes through
the SSRF guard (`outbound.guard`). Concurrency is bounded per subscription and overall, so one
slow endpoint cannot take every connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

import httpx
import orjson

from tidings.config import Settings
from tidings.domain.outbound import iso, masked_for
from tidings.logging import mask_text
from tidings.outbound import signing
from tidings.outbound.guard import GuardedTransport, RefusedAddress
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
    """Makes attempts; lives in one event loop (its client and semaphores belong to it)."""

    def __init__(
        self,
        settings: Settings,
        now: Callable[[], datetime],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._timeout = settings.outbound_timeout_seconds
        self._now = now
        self._wall_clock = wall_clock
        self._overall = asyncio.Semaphore(settings.outbound_concurrency)
        self._per_endpoint_limit = settings.outbound_endpoint_concurrency
        self._per_endpoint: dict[int, asyncio.Semaphore] = {}
        transport = GuardedTransport(
            settings.outbound_policy,
            max_connections=settings.outbound_concurrency,
            keepalive=settings.outbound_concurrency,
        )
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(self._timeout),
            follow_redirects=False,
            trust_env=False,
            headers={"user-agent": "tidings-webhooks", "content-type": "application/json"},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

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
        except httpx.TimeoutException:
            error = f"no answer within {self._timeout:g}s"
        except httpx.HTTPError as failed:
            error = f"{type(failed).__name__}: {failed}" if str(failed) else type(failed).__name__
        latency = int((time.perf_counter() - started) * 1000)
        if status is not None and 300 <= status < 400:
            error = "redirects are not followed: subscribe the URL it points to"
        elif status is not None and not 200 <= status < 300:
            error = f"HTTP {status}"
        return Attempt(claim, at, latency, status, error and mask_text(error), answer)

    async def _exchange(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        request = self._client.build_request("POST", url, content=body, headers=headers)
        response = await self._client.send(request, stream=True)
        try:
            kept = bytearray()
            async for chunk in response.aiter_raw():
                kept += chunk
                if len(kept) >= _RESPONSE_LIMIT:
                    break
        finally:
            await response.aclose()
        return response.status_code, bytes(kept[:_RESPONSE_LIMIT]).decode("utf-8", "replace")
