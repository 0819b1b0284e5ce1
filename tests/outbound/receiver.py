"""A real subscriber for tests: a threaded HTTP server on loopback that verifies every delivery
with the `standardwebhooks` package (not tidings' signer) and keeps a ledger.

It can be told to fail the next N deliveries, answer 410 Gone, redirect, answer slowly, or
hang until released, like the endpoints a business really runs. The ledger tells what a
receiver that deduplicates on `webhook-id` would have applied: each id once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Delivery:
    webhook_id: str
    body: bytes
    headers: dict[str, str]
    verified_with: list[str]  # which of the receiver's secrets verified it

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


@dataclass
class Behaviour:
    fail_next: int = 0
    fail_status: int = 500
    gone: bool = False
    redirect_to: str | None = None
    delay: float = 0.0
    hang: threading.Event | None = None
    answer: bytes = b'{"ok": true}'


@dataclass
class Receiver:
    url: str
    secrets: list[str] = field(default_factory=list)
    behaviour: Behaviour = field(default_factory=Behaviour)
    arrived: list[str] = field(default_factory=list)  # every request's webhook id, on arrival
    received: list[Delivery] = field(default_factory=list)  # 2xx answers only
    refused: list[tuple[str, int]] = field(default_factory=list)  # (webhook id, status)
    unverified: list[str] = field(default_factory=list)
    broken: int = 0  # requests cut short by their sender's death, never answered
    lock: threading.Lock = field(default_factory=threading.Lock)

    def applied(self) -> dict[str, Delivery]:
        """What a receiver deduplicating on webhook-id applied: the first of each id."""
        first: dict[str, Delivery] = {}
        for delivery in self.received:
            first.setdefault(delivery.webhook_id, delivery)
        return first

    def duplicates(self) -> int:
        return len(self.received) - len(self.applied())

    def types(self) -> list[str]:
        return [d.payload["type"] for d in self.received]

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.applied()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"receiver has {len(self.applied())} of {count} deliveries "
                    f"(refused: {self.refused[-3:]}, unverified: {len(self.unverified)})"
                )
            time.sleep(0.02)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            if len(body) < length:  # the sender died mid-request (a killed worker): no delivery
                with receiver.lock:
                    receiver.broken += 1
                self.close_connection = True
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            webhook_id = headers.get("webhook-id", "")
            with receiver.lock:
                receiver.arrived.append(webhook_id)
            b = receiver.behaviour
            if b.hang is not None:
                b.hang.wait(10)
            if b.delay:
                time.sleep(b.delay)
            verified = []
            for secret in receiver.secrets:
                try:
                    Webhook(secret).verify(body, headers)
                    verified.append(secret)
                except WebhookVerificationError:
                    pass
            with receiver.lock:
                if not verified:
                    receiver.unverified.append(webhook_id)
                    status = 401
                elif b.gone:
                    status = 410
                elif b.redirect_to:
                    status = 302
                elif b.fail_next > 0:
                    b.fail_next -= 1
                    status = b.fail_status
                else:
                    status = 200
                    receiver.received.append(Delivery(webhook_id, body, headers, verified))
                if status != 200:
                    receiver.refused.append((webhook_id, status))
            if status == 302:
                self._answer(302, b"", {"location": b.redirect_to or "/"})
            elif status == 200:
                self._answer(200, b.answer, {"content-type": "application/json"})
            else:
                self._answer(status, b"x" * 3000)  # longer than the 1 KiB tidings keeps

    return Handler


@contextmanager
def running_receiver(*secrets: str) -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(Receiver("")))
    receiver = Receiver(f"http://127.0.0.1:{server.server_address[1]}/hooks", list(secrets))
    server.RequestHandlerClass = _handler(receiver)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        if receiver.behaviour.hang is not None:
            receiver.behaviour.hang.set()
        server.shutdown()
        server.server_close()
