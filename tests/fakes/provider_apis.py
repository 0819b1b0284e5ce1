"""Fake provider APIs for send tests: real threaded HTTP servers on 127.0.0.1, one class per
provider, each answering in that provider's documented format.

A fake accepts by default (the documented success answer, with a fresh id); a test plans
other answers first, in order: `refuse(name)` (one of the provider's documented error bodies
in `REFUSALS`), `rate_limit(retry_after)` (429 in the provider's shape), `hang()` (no answer
until the fake closes: the client times out), `drop()` (the connection closes without an
answer). Every request is recorded (`requests`) so tests check the exact path, headers and
body a client sent. A fake also checks the credential its provider checks and refuses a
wrong one with its documented 401.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

__all__ = [
    "Answer",
    "FakeCallbell",
    "FakeEvolution",
    "FakeInfobip",
    "FakeMeta",
    "FakeProviderApi",
    "FakeTwilio",
    "Recorded",
]


def _fixture(provider: str, name: str) -> Any:
    return json.loads((FIXTURES / provider / "send" / name).read_bytes())


@dataclass(frozen=True)
class Recorded:
    """One request as the fake received it; header names lower-case."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)  # when it arrived (monotonic clock)

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """A form-encoded body (each field once)."""
        parsed = parse_qs(self.body.decode(), keep_blank_values=True, strict_parsing=True)
        return {key: values[-1] for key, values in parsed.items()}

    def multipart(self) -> list[tuple[str, str, str | None]]:
        """A multipart/form-data body as (name, value, filename) in order."""
        head = f"Content-Type: {self.headers['content-type']}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + self.body)
        assert message.is_multipart(), "not a multipart body"
        parts = []
        for part in message.iter_parts():
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            parts.append(
                (
                    str(part.get_param("name", header="content-disposition")),
                    payload.decode(),
                    part.get_filename(),
                )
            )
        return parts


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any = None  # JSON-encoded unless bytes
    headers: dict[str, str] = field(default_factory=dict)
    reason: str | None = None  # the status line's phrase (Latin-1), else the standard one
    repeated: tuple[tuple[str, str], ...] = ()  # more header lines, a name again allowed

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


_HANG = object()
_DROP = object()
_ACCEPT = object()


class FakeProviderApi:
    """The server, the plan of answers and the record of requests; subclasses speak a
    provider's format."""

    name: ClassVar[str]
    path: ClassVar[re.Pattern[str]]  # the documented send endpoint(s)
    REFUSALS: ClassVar[dict[str, Answer]] = {}

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        # Seconds each answer takes, as a real provider's do: bounds how fast a test can send,
        # whatever the machine's speed.
        self.latency = 0.0
        self._plan: deque[object] = deque()
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._ids = itertools.count(1)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One write per answer, sent at once: headers and body in separate small writes
            # meet the client's delayed ACK and cost 40 ms per request on a kept-alive line.
            wbufsize = 64 * 1024
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    # -- what tests use ------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def refuse(self, name: str) -> None:
        self._push(self.REFUSALS[name])

    def accept(self, count: int) -> None:
        """The next `count` requests are accepted, before any answer planned after this."""
        for _ in range(count):
            self._push(_ACCEPT)

    def rate_limit(self, retry_after: str | None, *again: str) -> None:
        """The next request is turned away with a 429 (and `Retry-After`, repeated with each of
        `again`'s values, as some proxies do)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        repeated = tuple(("Retry-After", value) for value in again)
        self._push(Answer(429, self.rate_limited_body(), headers, repeated=repeated))

    def answer(self, answer: Answer) -> None:
        self._push(answer)

    def hang(self) -> None:
        self._push(_HANG)

    def drop(self) -> None:
        self._push(_DROP)

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeProviderApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what a provider fake defines ----------------------------------------------------
    def authorized(self, request: Recorded) -> bool:
        raise NotImplementedError

    def unauthorized(self) -> Answer:
        raise NotImplementedError

    def accepted(self, request: Recorded, number: int) -> Answer:
        raise NotImplementedError

    def rate_limited_body(self) -> Any:
        raise NotImplementedError

    # -- the server side -----------------------------------------------------------------
    def _push(self, planned: object) -> None:
        with self._lock:
            self._plan.append(planned)

    def _next(self) -> object | None:
        with self._lock:
            return self._plan.popleft() if self._plan else None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        split = urlsplit(handler.path)
        recorded = Recorded(
            method=handler.command,
            path=split.path,
            query=parse_qs(split.query),
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
        )
        with self._lock:
            self.requests.append(recorded)
        if self.latency:
            time.sleep(self.latency)
        planned = self._next()
        if planned is _HANG:
            self._release.wait(timeout=10)
            handler.close_connection = True
            return
        if planned is _DROP:
            handler.close_connection = True
            return
        if not self.path.fullmatch(recorded.path):
            answer = Answer(404, {"fake": f"no {self.name} endpoint at {recorded.path}"})
        elif not self.authorized(recorded):
            answer = self.unauthorized()
        elif isinstance(planned, Answer):
            answer = planned
        else:
            answer = self.accepted(recorded, next(self._ids))
        payload = answer.encoded()
        handler.send_response(answer.status, answer.reason)
        if not any(key.lower() == "content-type" for key in answer.headers):
            handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(payload)))
        for key, value in (*answer.headers.items(), *answer.repeated):
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(payload)


def _bearer(request: Recorded, token: str) -> bool:
    return request.headers.get("authorization") == f"Bearer {token}"


class FakeEvolution(FakeProviderApi):
    """Evolution API v1/v2 `sendText`: header `apikey`, 201 with `key.id`."""

    name = "evolution"
    path = re.compile(r"/message/sendText/[^/]+")
    REFUSALS: ClassVar[dict[str, Answer]] = {
        "not_on_whatsapp": Answer(400, _fixture("evolution", "error-not-on-whatsapp-built.json")),
        "validation": Answer(400, _fixture("evolution", "error-validation-built.json")),
        "not_connected": Answer(400, _fixture("evolution", "error-not-connected-built.json")),
        "stored_after_send": Answer(
            400, _fixture("evolution", "error-stored-after-send-built.json")
        ),
        "instance_not_found": Answer(
            404, _fixture("evolution", "error-instance-not-found-built.json")
        ),
    }

    def __init__(self, api_key: str = "evo-key") -> None:
        self.api_key = api_key
        super().__init__()

    def authorized(self, request: Recorded) -> bool:
        return request.headers.get("apikey") == self.api_key

    def unauthorized(self) -> Answer:
        return Answer(401, _fixture("evolution", "error-unauthorized-built.json"))

    def accepted(self, request: Recorded, number: int) -> Answer:
        answer = _fixture("evolution", "send-text-response.json")
        answer["key"]["id"] = f"BAE5{number:012X}"
        return Answer(201, answer)

    def rate_limited_body(self) -> Any:
        return {"status": 429, "error": "Too Many Requests", "response": {"message": []}}


class FakeCallbell(FakeProviderApi):
    """Callbell `POST /v1/messages/send`: Bearer token, `{"message": {"uuid", "status"}}`."""

    name = "callbell"
    path = re.compile(r"/v1/messages/send")
    REFUSALS: ClassVar[dict[str, Answer]] = {
        "wallet_depleted": Answer(402, _fixture("callbell", "error-wallet-depleted.json")),
        "invalid_number": Answer(422, _fixture("callbell", "error-invalid-number-built.json")),
        "server_error": Answer(500, _fixture("callbell", "error-server-built.json")),
    }

    def __init__(self, api_key: str = "cb-token") -> None:
        self.api_key = api_key
        super().__init__()

    def authorized(self, request: Recorded) -> bool:
        return _bearer(request, self.api_key)

    def unauthorized(self) -> Answer:
        return Answer(401, _fixture("callbell", "error-unauthorized-built.json"))

    def accepted(self, request: Recorded, number: int) -> Answer:
        answer = _fixture("callbell", "send-message-response.json")
        answer["message"]["uuid"] = f"{number:032x}"
        return Answer(200, answer)

    def rate_limited_body(self) -> Any:
        return _fixture("callbell", "error-rate-limited-built.json")


class FakeMeta(FakeProviderApi):
    """WhatsApp Cloud API `POST /{version}/{phone_number_id}/messages`: Bearer access token,
    Graph API errors."""

    name = "meta"
    path = re.compile(r"/v\d+\.\d+/\d+/messages")
    REFUSALS: ClassVar[dict[str, Answer]] = {
        "not_allowed": Answer(400, _fixture("meta", "error-131030-built.json")),
        "outside_window": Answer(400, _fixture("meta", "error-131047-built.json")),
        "throughput": Answer(400, _fixture("meta", "error-130429-built.json")),
        "unavailable": Answer(503, _fixture("meta", "error-131016-built.json")),
        "bad_parameter": Answer(400, _fixture("meta", "error-100-built.json")),
    }

    def __init__(self, api_key: str = "EAAG-token") -> None:
        self.api_key = api_key
        super().__init__()

    def authorized(self, request: Recorded) -> bool:
        return _bearer(request, self.api_key)

    def unauthorized(self) -> Answer:
        return Answer(401, _fixture("meta", "error-190-built.json"))

    def accepted(self, request: Recorded, number: int) -> Answer:
        answer = _fixture("meta", "send-response-built.json")
        to = request.json().get("to", "")
        answer["contacts"] = [{"input": to, "wa_id": to}]
        answer["messages"][0]["id"] = f"wamid.HBgL{number:024d}"
        return Answer(200, answer)

    def rate_limited_body(self) -> Any:
        return _fixture("meta", "error-130429-built.json")


class FakeTwilio(FakeProviderApi):
    """Twilio `POST /2010-04-01/Accounts/{sid}/Messages.json`: form body, Basic auth."""

    name = "twilio"
    path = re.compile(r"/2010-04-01/Accounts/AC[0-9a-f]{32}/Messages\.json")
    REFUSALS: ClassVar[dict[str, Answer]] = {
        "invalid_to": Answer(400, _fixture("twilio", "error-21211.json")),
        "unsubscribed": Answer(400, _fixture("twilio", "error-21610-built.json")),
        "bad_from": Answer(400, _fixture("twilio", "error-21606-built.json")),
    }

    def __init__(self, account_sid: str = "AC" + "0" * 31 + "1", token: str = "tw-token") -> None:
        self.account_sid = account_sid
        self.token = token
        super().__init__()

    def authorized(self, request: Recorded) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.token}".encode()).decode()
        return request.headers.get("authorization") == f"Basic {expected}"

    def unauthorized(self) -> Answer:
        return Answer(401, _fixture("twilio", "error-20003-built.json"))

    def accepted(self, request: Recorded, number: int) -> Answer:
        answer = _fixture("twilio", "message-resource-fetch-response.json")
        form = request.form()
        sid = f"SM{number:032x}"
        answer.update(
            sid=sid,
            status="queued",
            to=form.get("To"),
            account_sid=self.account_sid,
            uri=f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        )
        return Answer(201, answer)

    def rate_limited_body(self) -> Any:
        return _fixture("twilio", "error-20429-built.json")


class FakeInfobip(FakeProviderApi):
    """Infobip SMS `POST /sms/2/text/advanced` (JSON) and email `POST /email/3/send`
    (multipart): `Authorization: App {key}`; a messageId given is kept."""

    name = "infobip"
    path = re.compile(r"/sms/2/text/advanced|/email/3/send")
    REFUSALS: ClassVar[dict[str, Answer]] = {
        "bad_request": Answer(400, _fixture("infobip", "error-bad-request.json")),
        "general_error": Answer(500, _fixture("infobip", "error-general.json")),
        "rejected_destination": Answer(
            200, _fixture("infobip", "sms-send-response-rejected-built.json")
        ),
        "rejected_credits": Answer(
            200, _fixture("infobip", "sms-send-response-no-credits-built.json")
        ),
    }

    def __init__(self, api_key: str = "ib-key") -> None:
        self.api_key = api_key
        super().__init__()

    def authorized(self, request: Recorded) -> bool:
        return request.headers.get("authorization") == f"App {self.api_key}"

    def unauthorized(self) -> Answer:
        return Answer(401, _fixture("infobip", "error-unauthorized.json"))

    def accepted(self, request: Recorded, number: int) -> Answer:
        if request.path.startswith("/email/"):
            fields = {name: value for name, value, _ in request.multipart()}
            answer = _fixture("infobip", "email-send-response-built.json")
            message = answer["messages"][0]
            message["to"] = fields.get("to")
            message["messageId"] = fields.get("messageId") or f"ib-mail-{number}"
            return Answer(200, answer)
        destination = request.json()["messages"][0]["destinations"][0]
        answer = _fixture("infobip", "sms-send-response-built.json")
        message = answer["messages"][0]
        message["to"] = destination["to"]
        message["messageId"] = destination.get("messageId") or f"ib-sms-{number}"
        return Answer(200, answer)

    def rate_limited_body(self) -> Any:
        return _fixture("infobip", "error-too-many-requests.json")


def every_fake() -> Iterator[type[FakeProviderApi]]:
    yield from (FakeEvolution, FakeCallbell, FakeMeta, FakeTwilio, FakeInfobip)
