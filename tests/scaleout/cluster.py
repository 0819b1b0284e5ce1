"""Helpers for scale-out tests: brokers of the test's own, a cluster of real tidings processes,
and a pool that posts webhooks to several web nodes."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from tests.conftest import TIDINGS, free_port

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
RABBITMQ_AUTHORITY = "guest:guest@127.0.0.1:5672"
BROKERS = ("redis", "amqp")
_CLAIM_KEY = "tidings-test:claimed-by"


def redis_database() -> Iterator[str]:
    """A Redis database number nobody uses, claimed with a marker key and flushed afterwards."""
    token = uuid.uuid4().hex
    admin = redis.Redis(REDIS_HOST, REDIS_PORT)
    count = int(admin.config_get("databases").get("databases", 16))
    admin.close()
    for number in random.sample(range(1, count), count - 1):
        client = redis.Redis(REDIS_HOST, REDIS_PORT, db=number)
        if client.set(_CLAIM_KEY, token, nx=True, ex=3600):
            if client.dbsize() == 1:
                break
            client.delete(_CLAIM_KEY)  # not empty: someone else's data
        client.close()
    else:
        raise AssertionError(f"no free Redis database among 1..{count - 1}")
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
    finally:
        if client.get(_CLAIM_KEY) == token.encode():
            client.flushdb()
        client.close()


def _rabbitmqctl(*args: str) -> bool:
    if shutil.which("rabbitmqctl") is None:
        return False
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, timeout=60)
    return done.returncode == 0


def rabbitmq_vhost() -> Iterator[str]:
    """A RabbitMQ virtual host of this test's own; the default one if rabbitmqctl is denied."""
    vhost = f"tidings-test-{uuid.uuid4().hex[:12]}"
    if not (
        _rabbitmqctl("add_vhost", vhost)
        and _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    ):
        print("rabbitmqctl unavailable: this test shares RabbitMQ's default virtual host")
        yield f"amqp://{RABBITMQ_AUTHORITY}//"
        return
    try:
        yield f"amqp://{RABBITMQ_AUTHORITY}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


def dead_broker_url(kind: str) -> str:
    """A broker URL of this kind whose port nothing listens on."""
    port = free_port()
    if kind == "redis":
        return f"redis://127.0.0.1:{port}/0"
    return f"amqp://guest:guest@127.0.0.1:{port}//"


def broker_kind(url: str) -> str:
    return "redis" if url.startswith("redis") else "amqp"


@dataclass
class Proc:
    """One tidings process of the cluster, in a session (process group) of its own."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    ready_line: str | None = None
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def alive(self) -> bool:
        return self.process.poll() is None

    def is_ready(self) -> bool:
        if not self.alive():
            raise AssertionError(
                f"{self.name} exited with {self.process.returncode}:\n{self.tail()}"
            )
        if self.port is not None:
            try:
                return httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200
            except httpx.HTTPError:
                return False
        return self.ready_line is None or self.ready_line in self.text()


class Cluster:
    """Starts tidings processes as real subprocesses and always stops them all at the end."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.dir = tmp_path
        self.env = env
        self.procs: list[Proc] = []

    def run(self, *args: str, **env: str) -> str:
        """A one-shot `tidings` command; its output."""
        done = subprocess.run(
            [TIDINGS, *args], env={**self.env, **env}, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"tidings {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def _start(
        self,
        name: str,
        args: Sequence[str],
        env: dict[str, str],
        ready_line: str | None = None,
        port: int | None = None,
    ) -> Proc:
        log = self.dir / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [TIDINGS, *args],
                env={**self.env, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        proc = Proc(name, process, log, ready_line, port)
        self.procs.append(proc)
        return proc

    def web(self, name: str, **env: str) -> Proc:
        port = free_port()
        return self._start(name, ["serve", "--no-worker", "--port", str(port)], env, port=port)

    def worker(self, name: str, concurrency: int = 1, **env: str) -> Proc:
        args = ["worker", "--concurrency", str(concurrency)]
        return self._start(name, args, env, ready_line="tidings worker ready")

    def beat(self, name: str = "beat", **env: str) -> Proc:
        return self._start(name, ["beat"], env, ready_line="beat: Starting...")

    def wait_ready(self, *procs: Proc, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for proc in procs:
            while not proc.is_ready():
                if time.monotonic() > deadline:
                    raise AssertionError(f"{proc.name} did not get ready:\n{proc.tail()}")
                time.sleep(0.1)

    def kill(self, proc: Proc) -> None:
        """SIGKILL the process and its children (a Celery worker's pool): a machine lost."""
        os.killpg(proc.process.pid, signal.SIGKILL)
        proc.process.wait(10)

    def stop(self, *procs: Proc, timeout: float = 30.0) -> None:
        """SIGTERM (a warm shutdown), then SIGKILL whatever is still there after `timeout`."""
        for proc in procs:
            if proc.alive():
                os.killpg(proc.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.process.wait(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):  # no pool child outlives its test
                os.killpg(proc.process.pid, signal.SIGKILL)
            proc.process.wait(10)

    def close(self) -> None:
        self.stop(*self.procs)


@dataclass
class Answer:
    status: int
    receipt: int | None
    body: bytes
    seconds: float


def post_all(
    requests: Sequence[tuple[str, bytes]], threads: int = 8, timeout: float = 10.0
) -> list[Answer]:
    """POST each (url, body) from a pool of keep-alive clients, in order; every answer."""
    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()

    def post(request: tuple[str, bytes]) -> Answer:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=timeout)
            with lock:
                clients.append(client)
        url, body = request
        started = time.monotonic()
        try:
            response = client.post(url, content=body, headers={"content-type": "application/json"})
        except httpx.HTTPError:
            return Answer(0, None, body, time.monotonic() - started)
        seconds = time.monotonic() - started
        receipt = response.json().get("receipt") if response.status_code == 202 else None
        return Answer(response.status_code, receipt, body, seconds)

    try:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(post, requests))
    finally:
        for client in clients:
            client.close()
