"""Answers written once per loop turn: what reaches the socket, and that nothing is held back."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TIDINGS, RunningApp, free_port, serving
from tests.e2e.payloads import evolution_update
from tidings.intake.protocol import CoalescingTransport


class _Recording:
    """A real socket transport that remembers each write it was given."""

    def __init__(self, real: asyncio.Transport) -> None:
        self.real = real
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.real.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


async def _wired() -> tuple[_Recording, CoalescingTransport, socket.socket]:
    """A coalescing transport over a recorded real socket transport, and the socket's peer."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    real, _ = await loop.create_connection(asyncio.Protocol, sock=ours)
    recording = _Recording(real)  # type: ignore[arg-type]
    return recording, CoalescingTransport(recording, loop), theirs  # type: ignore[arg-type]


async def _read_to_end(peer: socket.socket) -> bytes:
    received = b""
    while chunk := await asyncio.get_running_loop().sock_recv(peer, 65536):
        received += chunk
    return received


def test_writes_of_one_turn_reach_the_socket_as_one_and_close_sends_them_first() -> None:
    async def scenario() -> tuple[list[bytes], bytes]:
        recording, transport, peer = await _wired()
        transport.write(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n")
        transport.write(b"{}")
        assert recording.writes == []  # not before this turn of the loop ends
        await asyncio.sleep(0)
        transport.write(b"tail")
        transport.close()  # pending bytes go out before the connection closes
        received = await _read_to_end(peer)
        peer.close()
        return recording.writes, received

    writes, received = asyncio.run(scenario())
    assert writes == [b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}", b"tail"]
    assert received == b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}tail"


def test_the_rest_of_the_transport_sees_pending_writes_in_order() -> None:
    async def scenario() -> tuple[list[bytes], bytes, list[int]]:
        recording, transport, peer = await _wired()
        sizes = []
        transport.write(b"a")
        transport.writelines([b"b", b"c"])  # after what is pending, not before it
        sizes.append(transport.get_write_buffer_size())  # pending bytes count as buffered
        transport.write(b"x" * 70_000)  # past the threshold: out at once, not at turn's end
        sizes.append(len(recording.writes))
        transport.write(b"end")
        transport.write_eof()  # pending bytes first, then the end of the stream
        received = await _read_to_end(peer)
        transport.write(b"dropped")
        transport.abort()  # discards what is pending
        await asyncio.sleep(0)
        peer.close()
        return recording.writes, received, sizes

    writes, received, sizes = asyncio.run(scenario())
    assert received == b"abc" + b"x" * 70_000 + b"end"
    assert writes == [b"abc" + b"x" * 70_000, b"end"]
    assert sizes == [3, 1]


def _read_responses(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    """`count` whole responses framed by Content-Length, read off one connection."""
    buffer = b""
    answers: list[tuple[int, bytes]] = []
    while len(answers) < count:
        head_end = buffer.find(b"\r\n\r\n")
        if head_end >= 0:
            head = buffer[:head_end].decode("latin-1")
            length = int(re.search(r"(?im)^content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
            if len(buffer) >= head_end + 4 + length:
                status = int(head.split(" ", 2)[1])
                answers.append((status, buffer[head_end + 4 : head_end + 4 + length]))
                buffer = buffer[head_end + 4 + length :]
                continue
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {len(answers)} of {count} answers"
        buffer += chunk
    return answers


def _post(path: str, body: bytes, close: bool = False) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}"
        "\r\n"
    ).encode() + body


def test_pipelined_webhooks_each_get_their_whole_answer_in_order(running_app: RunningApp) -> None:
    running_app.add_connection("evolution", "main")
    path = "/hooks/evolution/main?token=s3cret"
    bodies = [evolution_update(f"PIPE{i}", "DELIVERY_ACK").encode() for i in range(5)]
    port = int(running_app.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"".join(_post(path, body) for body in bodies))
        answers = _read_responses(sock, len(bodies))
        sock.sendall(_post(path, evolution_update("LAST", "READ").encode(), close=True))
        [(status, last)] = _read_responses(sock, 1)
        assert sock.recv(1024) == b""  # the server closed after sending all of it
    assert [status for status, _ in answers] == [202] * len(bodies)
    receipts = [json.loads(body)["receipt"] for _, body in answers]
    assert receipts == sorted(receipts) and len(set(receipts)) == len(bodies)
    assert status == 202 and json.loads(last)["receipt"] > receipts[-1]


@pytest.mark.parametrize(
    ("level", "access_log", "logged"),
    [("INFO", None, False), ("INFO", "true", True), ("WARNING", "true", False)],
)
def test_serve_writes_masked_access_lines_only_when_asked_and_at_info(
    tmp_path: Path, db_url: str, level: str, access_log: str | None, logged: bool
) -> None:
    """By default no line per request (receipts and /metrics record each webhook, and the line
    cost the intake a quarter of its rate); TIDINGS_ACCESS_LOG=true writes it, masked."""
    env = {k: v for k, v in os.environ.items() if k != "TIDINGS_ACCESS_LOG"}
    env |= {"TIDINGS_DATABASE_URL": db_url, "TIDINGS_LOG_LEVEL": level}
    if access_log is not None:
        env["TIDINGS_ACCESS_LOG"] = access_log
    subprocess.run([TIDINGS, "migrate"], env=env, check=True, capture_output=True)
    subprocess.run(
        [TIDINGS, "connection", "add", "evolution", "main", "--secret", "s3cret"],
        env=env,
        check=True,
        capture_output=True,
    )
    port, log = free_port(), tmp_path / "serve.log"
    with serving(env, port, log, "--no-worker"):
        answer = httpx.post(
            f"http://127.0.0.1:{port}/hooks/evolution/main?token=s3cret",
            content=evolution_update("LOGGED", "READ"),
        )
        assert answer.status_code == 202
    written = log.read_text()
    assert "s3cret" not in written
    assert ('"POST /hooks/evolution/main?token=*** HTTP/1.1" 202' in written) is logged
