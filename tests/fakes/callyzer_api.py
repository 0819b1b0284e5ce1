"""A fake Callyzer history API: a real HTTP server on 127.0.0.1 speaking what real accounts
answer (`POST .../call-log/history`, Bearer key, `{"message", "result", "total_records"}`).

It pages, filters by sync time and employee number, refuses a wrong key with 401, answers 429
with `Retry-After` to requests closer than two seconds apart (by the test's clock), and can be
told to fail the next requests: 429, the 400 whose body is a database error, 500, 401, a hang
longer than the client's time-out, HTML, or a body that is not the gzip it says it is. It
records every request with the clock's time, so tests assert the two-second spacing without
sleeping.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Failure = Literal["429", "db400", "bad400", "500", "401", "hang", "not_json", "bad_gzip"]

# What Callyzer's own store says when it fails (seen in real integrations' logs: a raw JDBC
# exception as the body of a 400).
DATABASE_ERROR = (
    "could not execute statement; SQL [n/a]; nested exception is "
    "org.hibernate.exception.JDBCConnectionException: Unable to acquire JDBC Connection"
)


class FakeClock:
    """Time that moves only when someone sleeps on it; shared by client and fake server."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(0.0, seconds)


@dataclass(frozen=True)
class Recorded:
    path: str
    authorization: str
    body: dict[str, Any]
    at: float  # the clock's time when the request arrived
    status: int


@dataclass
class FakeCallyzer:
    """State of the fake; `url` is the `api_url` to configure (it ends in /api/v2.2)."""

    api_key: str
    clock: FakeClock
    url: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)  # answered, in order
    arrivals: list[float] = field(default_factory=list)  # clock times, before answering
    enforce_rate_limit: bool = True
    retry_after: str = "2"
    hang_seconds: float = 5.0
    _failures: deque[Failure] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _last_accepted: float | None = None

    def add_call(self, call: Mapping[str, Any], synced_epoch: int) -> None:
        """A call Callyzer holds, synced at `synced_epoch` (UNIX seconds)."""
        with self._lock:
            self.calls = [c for c in self.calls if c["id"] != call["id"]]
            self.calls.append({**call, "_synced": synced_epoch})

    def fail_next(self, *failures: Failure) -> None:
        with self._lock:
            self._failures.extend(failures)

    @property
    def history_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/call-log/history")]

    def answer(
        self, path: str, headers: Mapping[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for one request (the handler's logic, testable alone)."""
        now = self.clock.monotonic()
        with self._lock:
            self.arrivals.append(now)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        status, extra, payload = self._respond(path, headers, body, now)
        with self._lock:
            self.requests.append(
                Recorded(path, headers.get("authorization", ""), body, now, status)
            )
        return status, extra, payload

    def _respond(
        self, path: str, headers: Mapping[str, str], body: Any, now: float
    ) -> tuple[int, dict[str, str], bytes]:
        if path != "/api/v2.2/call-log/history":
            return _json(404, {"message": "Not Found"})
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return _json(401, {"message": "Invalid access token"})
        too_soon = self._last_accepted is not None and now - self._last_accepted < 2.0
        if self.enforce_rate_limit and too_soon:  # a failure asked for waits its turn
            return _json(429, {"message": "Too Many Requests"}, {"retry-after": self.retry_after})
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
        if failure == "429":
            return _json(429, {"message": "Too Many Requests"}, {"retry-after": self.retry_after})
        if failure == "401":
            return _json(401, {"message": "Invalid access token"})
        self._last_accepted = now
        if failure == "hang":
            self._stopping.wait(self.hang_seconds)
            return _json(200, {"message": "Success", "result": [], "total_records": 0})
        if failure == "db400":
            return 400, {"content-type": "text/plain"}, DATABASE_ERROR.encode()
        if failure == "bad400":
            return _json(400, {"message": "emp_numbers: invalid number format"})
        if failure == "500":
            return _json(500, {"message": "Internal Server Error"})
        if failure == "not_json":
            return 200, {"content-type": "text/html"}, b"<html>maintenance</html>"
        if failure == "bad_gzip":  # a proxy that says gzip and sends the plain body
            return 200, {"content-type": "application/json", "content-encoding": "gzip"}, b"{}"
        refusal = _refusal(body)
        if refusal:
            return _json(400, {"message": refusal})
        matched = [c for c in self.calls if _matches(c, body)]
        matched.sort(key=lambda c: (c["_synced"], c["id"]))
        size, page_no = int(body["page_size"]), int(body["page_no"])
        page = matched[(page_no - 1) * size : page_no * size]
        result = [{k: v for k, v in c.items() if k != "_synced"} for c in page]
        return _json(200, {"message": "Success", "result": result, "total_records": len(matched)})

    def stop_hanging(self) -> None:
        self._stopping.set()


def _refusal(body: Any) -> str | None:
    """Callyzer's business rules for the body, as its documentation states them."""
    if not isinstance(body, dict):
        return "Invalid request body"
    if "synced_from" in body and "synced_to" not in body:
        return "synced_to is mandatory when synced_from is present"
    if "synced_from" not in body and "call_from" not in body:
        return "Either call_from and call_to or synced_from and synced_to are required"
    size, page = body.get("page_size", 10), body.get("page_no", 1)
    if not isinstance(size, int) or not 1 <= size <= 100:
        return "page_size must be between 1 and 100"
    if not isinstance(page, int) or page < 1:
        return "page_no must be at least 1"
    body.setdefault("page_size", size)
    body.setdefault("page_no", page)
    return None


def _matches(call: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    if not body["synced_from"] <= call["_synced"] <= body["synced_to"]:
        return False
    numbers = body.get("emp_numbers")
    if numbers:
        code = str(call.get("emp_country_code") or "")
        written = f"{code}-{call['emp_number']}" if code else str(call["emp_number"])
        return written in numbers
    return True


def _json(
    status: int, document: Any, headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    return (
        status,
        {"content-type": "application/json", **(headers or {})},
        json.dumps(document).encode(),
    )


class _Handler(BaseHTTPRequestHandler):
    fake: FakeCallyzer

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, extra, payload = self.fake.answer(self.path, headers, raw)
        try:
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and went away: that is what a hang tests

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def running_fake(api_key: str = "cz-key", clock: FakeClock | None = None) -> Iterator[FakeCallyzer]:
    """The fake, served on a free loopback port until the block ends."""
    fake = FakeCallyzer(api_key=api_key, clock=clock or FakeClock())
    handler = type("Handler", (_Handler,), {"fake": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/api/v2.2"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.stop_hanging()
        server.shutdown()
        server.server_close()
        thread.join(5)


def flat_call(
    call_id: str,
    *,
    emp_number: str = "9876543210",
    emp_country_code: str = "91",
    emp_code: str = "E1",
    emp_name: str = "Asha",
    client_number: str = "9123456780",
    client_country_code: str = "91",
    call_type: str = "Outgoing",
    call_date: str = "2026-07-28",
    call_time: str = "10:40:00",
    duration: int = 65,
    synced_at: str = "2026-07-28 10:44:41 IST",
    modified_at: str = "2026-07-28 10:44:41 IST",
    **more: Any,
) -> dict[str, Any]:
    """One call as the history API returns it: flat, with its employee's fields (shape from
    real integrations' handlers; values made up)."""
    return {
        "id": call_id,
        "emp_name": emp_name,
        "emp_code": emp_code,
        "emp_country_code": emp_country_code,
        "emp_number": emp_number,
        "emp_tags": ["sales"],
        "client_name": "Ravi",
        "client_country_code": client_country_code,
        "client_number": client_number,
        "duration": duration,
        "call_type": call_type,
        "call_date": call_date,
        "call_time": call_time,
        "note": "",
        "call_recording_url": "",
        "crm_status": "",
        "reminder_date": "",
        "reminder_time": "",
        "synced_at": synced_at,
        "modified_at": modified_at,
        "lead_id": "",
        **more,
    }
