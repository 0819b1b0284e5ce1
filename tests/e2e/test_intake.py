"""The durability contract at the HTTP edge (docs/architecture.md), against a running app."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import RunningApp, serve_in_thread
from tests.e2e.payloads import evolution_update
from tidings.config import Settings
from tidings.storage import inbox
from tidings.storage.schema import rejections


def _stored(app: RunningApp) -> list[Any]:
    """Every receipt, oldest first, whether the worker has taken it yet or not (on SQLite a
    new one is in the landing file until then)."""
    with app.db.read() as conn:
        listed = inbox.list_receipts(conn, None, None, None, 100_000)
        found = [inbox.get_receipt(conn, r.id) for r in reversed(listed)]
    return [r for r in found if r is not None]


def _receipt_rows(app: RunningApp) -> list[tuple[int, str, bytes, str | None]]:
    return [(r.id, r.status, bytes(r.body), r.error) for r in _stored(app)]


def _rejections(app: RunningApp) -> list[tuple[int, str, str]]:
    with app.db.read() as conn:
        rows = conn.execute(
            select(rejections.c.status_code, rejections.c.reason, rejections.c.connection)
        ).all()
    return [(r.status_code, r.reason, r.connection) for r in rows]


def test_accepted_webhook_is_committed_before_202(running_app: RunningApp) -> None:
    running_app.add_connection("evolution", "main")
    body = evolution_update("ABC1", "DELIVERY_ACK")
    response = running_app.hook("evolution", "main", body)
    assert response.status_code == 202
    receipt_id = response.json()["receipt"]
    stored = {r[0]: r for r in _receipt_rows(running_app)}
    assert stored[receipt_id][2] == body.encode()
    # Framed by length, not chunked: cheaper for the provider's client and for us.
    assert response.headers["content-length"] == str(len(response.content))
    assert "transfer-encoding" not in response.headers


def test_unknown_provider_and_connection_are_404(running_app: RunningApp) -> None:
    running_app.add_connection("evolution", "main")
    assert running_app.hook("nosuch", "main", "{}").status_code == 404
    missing = running_app.hook("evolution", "other", "{}")
    assert missing.status_code == 404
    assert "other" in missing.json()["error"]["message"]
    # A connection of another provider is not found under this provider's URL either.
    assert running_app.hook("callbell", "main", "{}").status_code == 404
    assert _receipt_rows(running_app) == []


@pytest.mark.parametrize(
    ("token", "expected_reason"),
    [(None, "missing"), ("wrong", "wrong secret")],
)
def test_bad_credentials_are_401_with_a_rejection_row_and_no_receipt(
    running_app: RunningApp, token: str | None, expected_reason: str
) -> None:
    running_app.add_connection("evolution", "main")
    response = running_app.hook("evolution", "main", evolution_update("X", "READ"), token=token)
    assert response.status_code == 401
    assert expected_reason in response.json()["error"]["message"].lower()
    assert _receipt_rows(running_app) == []
    [(status, reason, connection)] = _rejections(running_app)
    assert (status, connection) == (401, "main")
    assert expected_reason in reason.lower()


def test_secret_in_configured_header_is_accepted(running_app: RunningApp) -> None:
    running_app.add_connection("callbell", "cb", auth_header="X-Tidings-Secret")
    body = '{"event": "message_status_updated", "payload": {"uuid": "u1", "status": "sent"}}'
    ok = running_app.hook(
        "callbell", "cb", body, token=None, headers={"x-tidings-secret": "s3cret"}
    )
    assert ok.status_code == 202
    [stored] = _stored(running_app)
    assert "x-tidings-secret" not in stored.headers


def test_oversized_body_is_413_and_logged(running_app: RunningApp, settings: Settings) -> None:
    running_app.add_connection("evolution", "main")
    body = '{"event": "messages.update", "pad": "' + "x" * settings.max_body_bytes + '"}'
    response = running_app.hook("evolution", "main", body)
    assert response.status_code == 413
    assert _receipt_rows(running_app) == []
    assert [r[0] for r in _rejections(running_app)] == [413]


def test_oversized_chunked_body_without_length_is_413(
    running_app: RunningApp, settings: Settings
) -> None:
    running_app.add_connection("evolution", "main")

    def chunks() -> object:
        for _ in range(settings.max_body_bytes // 1024 + 2):
            yield b"x" * 1024

    response = running_app.client.post(
        "/hooks/evolution/main",
        params={"token": "s3cret"},
        content=chunks(),  # type: ignore[arg-type]
    )
    assert response.status_code == 413


def test_malformed_json_is_quarantined_and_answered_400(running_app: RunningApp) -> None:
    running_app.add_connection("evolution", "main")
    response = running_app.hook("evolution", "main", b'{"event": "messages.update", ')
    assert response.status_code == 400
    error = response.json()
    assert "not valid JSON" in error["error"]["message"]
    [(receipt_id, status, body, stored_error)] = _receipt_rows(running_app)
    assert error["receipt"] == receipt_id
    assert status == "quarantined"
    assert body == b'{"event": "messages.update", '
    assert stored_error and "JSON" in stored_error
    # The worker leaves quarantined receipts alone; they are visible through the API.
    listed = running_app.api("GET", "/v1/receipts", params={"status": "quarantined"}).json()
    assert [r["id"] for r in listed["items"]] == [receipt_id]


def test_callbell_connection_check_gets_status_ok(running_app: RunningApp) -> None:
    running_app.add_connection("callbell", "cb")
    for body in (b"", b"{}", b'{"event": "ping"}'):
        response = running_app.hook("callbell", "cb", body)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
    get = running_app.client.get("/hooks/callbell/cb", params={"token": "s3cret"})
    assert (get.status_code, get.json()) == (200, {"status": "ok"})
    counts = running_app.wait_idle()
    assert counts["done"] == 3  # stored like any receipt, applied as a no-op


@pytest.mark.sqlite_only
def test_locked_sqlite_store_answers_503_then_recovers_without_loss(
    running_app: RunningApp, db_url: str
) -> None:
    running_app.add_connection("evolution", "main")
    assert (
        running_app.hook("evolution", "main", evolution_update("L0", "SERVER_ACK")).status_code
        == 202
    )
    # Another process-level connection takes the write lock of the file the intake commits to
    # (the store's landing file) and keeps it past the busy timeout.
    landing = db_url.removeprefix("sqlite:///") + "-inbox"
    blocker = sqlite3.connect(landing, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        response = running_app.hook("evolution", "main", evolution_update("L1", "SERVER_ACK"))
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert response.headers["retry-after"].isdigit()
        assert elapsed < 5, "a locked store must not hang the request"
        # Checking an API token only reads: a wrong one is refused at once, not after the lock.
        started = time.monotonic()
        wrong = running_app.client.get("/v1/messages", headers={"authorization": "Bearer tdg_no"})
        assert wrong.status_code == 401
        assert time.monotonic() - started < 1
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    retried = running_app.hook("evolution", "main", evolution_update("L1", "SERVER_ACK"))
    assert retried.status_code == 202
    running_app.wait_idle()
    bodies = [r[2] for r in _receipt_rows(running_app)]
    assert len(bodies) == 2 and all(b"SERVER_ACK" in b for b in bodies)


def test_unreachable_postgresql_answers_503_quickly(tmp_path: Path) -> None:
    # A server that accepts TCP connections but never answers: PostgreSQL's handshake hangs.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    settings = Settings(
        database_url=f"postgresql://postgres@127.0.0.1:{port}/tidings", store_timeout_seconds=1.0
    )
    try:
        for base_url, _server in serve_in_thread(settings, run_worker=False):
            with httpx.Client(base_url=base_url, timeout=15) as client:
                started = time.monotonic()
                response = client.post("/hooks/evolution/main?token=x", content=b"{}")
                assert response.status_code == 503
                assert "retry-after" in response.headers
                assert time.monotonic() - started < 6
                assert client.get("/readyz").status_code == 503
                assert client.get("/healthz").status_code == 200
    finally:
        silent.close()


def test_concurrent_webhooks_all_get_their_own_receipt(running_app: RunningApp) -> None:
    running_app.add_connection("evolution", "main")
    results: list[int] = []
    lock = threading.Lock()

    def send(i: int) -> None:
        with httpx.Client(base_url=running_app.base_url) as client:
            r = client.post(
                "/hooks/evolution/main",
                params={"token": "s3cret"},
                content=evolution_update(f"C{i}", "SERVER_ACK"),
            )
            with lock:
                results.append(r.json()["receipt"])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 40
    assert len(_stored(running_app)) == 40


def test_get_without_a_handshake_is_405(running_app: RunningApp) -> None:
    running_app.add_connection("evolution", "main")
    response = running_app.client.get("/hooks/evolution/main", params={"token": "s3cret"})
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_deeply_nested_json_is_quarantined_not_a_server_error(running_app: RunningApp) -> None:
    running_app.add_connection("evolution", "main")
    response = running_app.hook("evolution", "main", b"[" * 20_000 + b"]" * 20_000)
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["error"]["message"]
    [(_, status, _, _)] = _receipt_rows(running_app)
    assert status == "quarantined"


def test_an_overlong_content_type_does_not_fail_the_commit(running_app: RunningApp) -> None:
    running_app.add_connection("evolution", "main")
    response = running_app.hook(
        "evolution",
        "main",
        evolution_update("CT", "READ"),
        headers={"content-type": "application/json; " + "x=y;" * 100 + "z=1"},
    )
    assert response.status_code == 202


def test_unknown_connection_names_are_not_remembered(running_app: RunningApp) -> None:
    running_app.add_connection("evolution", "main")
    for i in range(50):
        assert running_app.hook("evolution", f"made-up-{i}", "{}").status_code == 404
    metrics = running_app.client.get("/metrics").text
    assert "made-up" not in metrics
    assert running_app.hook("nope", "x", "{}").status_code == 404
    assert 'provider="nope"' not in running_app.client.get("/metrics").text
