"""A subscriber for the outbound benchmark: a keep-alive HTTP/1.1 server on raw asyncio that
verifies every delivery with the `standardwebhooks` package and writes its ledger, one line
per request: `webhook-id <tab> arrival time (time.time()) <tab> 1 if verified else 0`.

    python bench/outbound_receiver.py --port P --secret whsec_... --ledger FILE

Raw asyncio, like the load generator, so that the receiver takes as little of the shared
machine's CPU as it can: the benchmark measures the sender, not the receiver. It stops on
SIGTERM or SIGINT, after writing the ledger out.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from pathlib import Path

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

_OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
_BAD = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class _Ledger:
    def __init__(self, path: Path) -> None:
        self._out = path.open("w", buffering=1 << 16)

    def add(self, webhook_id: str, verified: bool) -> None:
        self._out.write(f"{webhook_id}\t{time.time():.6f}\t{int(verified)}\n")

    def close(self) -> None:
        self._out.close()


class _Connection(asyncio.Protocol):
    def __init__(self, webhook: Webhook, ledger: _Ledger) -> None:
        self._webhook = webhook
        self._ledger = ledger
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self._buffer) < end + 4 + length:
                return
            body = bytes(self._buffer[end + 4 : end + 4 + length])
            del self._buffer[: end + 4 + length]
            self._answer(headers, body)

    def _answer(self, headers: dict[str, str], body: bytes) -> None:
        assert self._transport is not None
        try:
            self._webhook.verify(body, headers, json_parse=False)
            verified = True
        except (WebhookVerificationError, ValueError):
            verified = False
        self._ledger.add(headers.get("webhook-id", ""), verified)
        self._transport.write(_OK if verified else _BAD)


async def _serve(port: int, secret: str, ledger_path: Path) -> None:
    ledger = _Ledger(ledger_path)
    webhook = Webhook(secret)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(webhook, ledger), "127.0.0.1", port, backlog=1024
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("receiver ready", flush=True)
    await stop.wait()
    server.close()
    ledger.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--ledger", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(_serve(args.port, args.secret, args.ledger))


if __name__ == "__main__":
    main()
