"""Bodies to the API over the cap are refused with 413 in the API's error shape, whether their
size is declared or they come in chunks; a body under the cap is read as before."""

from __future__ import annotations

from collections.abc import Iterator

from tests.conftest import RunningApp
from tidings.api.body_limit import API_BODY_LIMIT

_MIB = 1024 * 1024


def _chunks(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        part = min(_MIB, total - sent)
        sent += part
        yield b" " * part


def test_a_body_over_the_cap_is_refused_declared_or_chunked(running_app: RunningApp) -> None:
    over = API_BODY_LIMIT + 1
    declared = running_app.api("POST", "/v1/messages", content=b" " * over)
    chunked = running_app.api("POST", "/v1/messages", content=_chunks(over))
    for answer in (declared, chunked):
        assert answer.status_code == 413
        assert answer.json()["error"]["code"] == "too_large"
        assert "larger than 32 MiB" in answer.json()["error"]["message"]


def test_a_chunked_body_under_the_cap_reaches_the_api(running_app: RunningApp) -> None:
    running_app.add_connection("callbell", "cb")
    body = b'{"connection": "cb", "provider_message_id": "m-1", "recipient": "+5531980000001"}'
    answer = running_app.api(
        "POST", "/v1/messages", content=iter([body[:20], body[20:]]),
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert answer.status_code == 201, answer.text
