"""Where a campaign's messages go out: the send loop (`send_loop`) in a process of its own.

Dispatching a campaign is two kinds of work: recording each contact's send before and its
answer after (the store), and the provider calls (aiohttp). In one process they take turns on
one interpreter lock, and the calls took about half of it (measured with the dispatch bench:
about 400 µs of CPU per message in the dispatching process, 170 µs once the calls left it).
Here the calls run in a child process with the same loop, so each kind of work has a core.

The child is started on first use (`python -m tidings.send_process`) and kept. Each batch
goes to it pickled over a socket (the provider's name, the connection's `SenderConfig`, the
requests) and comes back as one answer per request, in order. If the child dies, every send
it had not answered is an unknown outcome (`interrupted`: it may have gone out, so it is never
sent again; the campaign pauses saying so), and the next batch starts a new child. The child
runs in a session of its own, so signals to the dispatching process's group do not cut its
sends; it ends when its socket closes: when the process that started it closes it, ends, or
dies.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import os
import pickle
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import Any

from tidings.logging import get_logger
from tidings.providers.send import Answer, SenderConfig, SendError, SendFailure, SendRequest
from tidings.providers.send_http import HttpSender

__all__ = ["SendProcess", "shared"]

log = get_logger("dispatch")

# A batch: its number, the provider, the connection's settings, the requests.
_Batch = tuple[int, str, SenderConfig, list[SendRequest | SendError]]


def _gone(provider: str) -> Answer:
    """The answer of a send the child took and never answered."""
    error = SendError(
        f"{provider}: tidings' send process stopped before the provider answered; "
        "the message may have been sent",
        provider=provider,
        kind=SendFailure.INTERRUPTED,
        outcome_unknown=True,
    )
    return error, None


def _not_passed(provider: str, error: Exception) -> Answer:
    """The answer of a send that never reached the child: nothing went out."""
    refused = SendError(
        f"{provider}: the send could not be passed to tidings' send process ({error})",
        provider=provider,
        kind=SendFailure.CONFIG,
    )
    return refused, None


class _Child:
    """One running send process and the batches out at it. The futures waiting are kept
    under one lock and the socket is written under another, so the thread reading answers
    never waits for a batch being written (the child, blocked writing answers nobody reads,
    would stop reading that batch)."""

    def __init__(self, concurrency: int, log_level: str, log_json: bool) -> None:
        mine, theirs = socket.socketpair()
        with theirs:
            # -P: the working directory is not on the child's import path (a file there named
            # like a library would be imported instead). A session of its own: signals to
            # `serve`'s process group (Ctrl-C, a service manager's SIGTERM) do not cut the
            # sends out, nor a SIGTERM to every process of the service (systemd's stop): the
            # embedded worker process ignores it, and so does this child it starts. The child
            # ends when its socket closes.
            argv = [sys.executable, "-P", "-m", "tidings.send_process", str(theirs.fileno())]
            argv += [str(concurrency), log_level, "json" if log_json else "text"]
            self.popen = subprocess.Popen(  # noqa: S603
                argv, pass_fds=[theirs.fileno()], start_new_session=True
            )
        # The reader thread blocks in recv on its own copy; a shutdown of this socket wakes
        # it (a close from another thread would not) and tells the child to end.
        self._socket = mine
        self._conn = Connection(os.dup(mine.fileno()))
        self._waiting: dict[int, tuple[str, int, Future[list[Answer]]]] = {}
        self._numbers = itertools.count()
        self._guard = threading.Lock()  # `_waiting` and `alive`
        self._writing = threading.Lock()
        self.alive = True
        threading.Thread(target=self._read, name="tidings-send-answers", daemon=True).start()

    def send(
        self, provider: str, config: SenderConfig, requests: list[Any]
    ) -> Future[list[Answer]]:
        future: Future[list[Answer]] = Future()
        with self._guard:
            if not self.alive:
                future.set_result([_gone(provider)] * len(requests))
                return future
            number = next(self._numbers)
            self._waiting[number] = (provider, len(requests), future)
        batch: _Batch = (number, provider, config, requests)
        try:
            with self._writing:
                self._conn.send(batch)
        except OSError:  # it died; if the reader has not answered this batch yet, it never will
            self._stop()
            self._answer_left(number, [_gone(provider)] * len(requests))
        except Exception as error:  # it cannot be pickled (a bug): nothing went out
            log.exception("a batch through %s cannot be passed to the send process", provider)
            self._answer_left(number, [_not_passed(provider, error)] * len(requests))
        return future

    def _answer_left(self, number: int, answers: list[Answer]) -> None:
        with self._guard:
            found = self._waiting.pop(number, None)
        if found is not None:
            found[2].set_result(answers)

    def _stop(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()

    def _read(self) -> None:
        try:
            while True:
                number, answers = self._conn.recv()
                self._answer_left(number, answers)
        except (EOFError, OSError):
            pass
        except Exception:  # an answer this process cannot read: end the child, answer all
            log.exception("the send process's answers cannot be read; stopping it")
        with self._guard:
            self.alive = False
            waiting, self._waiting = self._waiting, {}
        self._stop()
        self._conn.close()
        for provider, count, future in waiting.values():  # before waiting for its end
            future.set_result([_gone(provider)] * count)
        exit_code = self.popen.wait()  # reaped now, not left a zombie until the next batch
        if waiting:
            log.warning(
                "the send process stopped (exit %s) with %d batches unanswered",
                exit_code,
                len(waiting),
            )

    def close(self) -> None:
        """Close its socket (the child ends) and wait a moment for it."""
        self._stop()
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def forget(self) -> None:
        """In a forked child: close this process's copies, leaving the child to the parent."""
        self._socket.close()
        self._conn.close()


class SendProcess:
    """`SendLoop.submit` in a child process, started (or started again) when a batch comes."""

    def __init__(self, concurrency: int, log_level: str = "INFO", log_json: bool = False) -> None:
        self._args = (concurrency, log_level, log_json)
        self._child: _Child | None = None
        self._guard = threading.Lock()

    def submit(
        self, sender: HttpSender, requests: Sequence[SendRequest | SendError]
    ) -> Future[list[Answer]]:
        """Each request's answer, in order, in the future returned (a SendError given
        instead of a request is its own answer)."""
        with self._guard:
            if self._child is None or not self._child.alive:
                self._child = _Child(*self._args)
            child = self._child
        return child.send(sender.provider, sender.config, list(requests))

    def send_all(
        self, sender: HttpSender, requests: Sequence[SendRequest | SendError]
    ) -> list[Answer]:
        return self.submit(sender, requests).result()

    def close(self) -> None:
        with self._guard:
            child, self._child = self._child, None
        if child is not None:
            child.close()

    def forget(self) -> None:
        if self._child is not None:
            self._child.forget()
            self._child = None


_shared: dict[tuple[int, str, bool], SendProcess] = {}
_shared_guard = threading.Lock()


def shared(concurrency: int, log_level: str = "INFO", log_json: bool = False) -> SendProcess:
    """This process's send process for `concurrency` (started with its first batch)."""
    key = (concurrency, log_level, log_json)
    with _shared_guard:
        found = _shared.get(key)
        if found is None:
            found = _shared[key] = SendProcess(*key)
        return found


def _after_fork_in_child() -> None:
    """A forked child (a Celery worker) starts send processes of its own. Its copies of the
    parent's sockets are closed, so the parent's send process still ends with the parent."""
    global _shared_guard
    for inherited in _shared.values():
        inherited.forget()
    _shared.clear()
    _shared_guard = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _close_all() -> None:
    with _shared_guard:
        for found in _shared.values():
            found.close()
        _shared.clear()


def _serve(conn: Connection, concurrency: int) -> None:
    """The child: send each batch on one send loop; answers go back from a thread of their
    own, so this one always goes on reading (the parent may be writing a large batch)."""
    from tidings.providers.senders import make_sender
    from tidings.send_loop import SendLoop

    loop = SendLoop(concurrency)
    outgoing: queue.SimpleQueue[tuple[int, str, int, Future[list[Answer]]] | None] = (
        queue.SimpleQueue()
    )
    writer = threading.Thread(target=_write_answers, args=(conn, outgoing), daemon=True)
    writer.start()
    try:
        while True:
            try:
                number, provider, config, requests = conn.recv()
            except (EOFError, OSError):
                return
            try:
                sender = make_sender(provider, config, None)
                future = loop.submit(sender, requests)
            except SendError as error:  # the connection cannot send: no request goes out
                future = Future()
                future.set_result([(error, None)] * len(requests))
            future.add_done_callback(
                functools.partial(_queue_answer, outgoing, number, provider, len(requests))
            )
    finally:
        loop.close()
        outgoing.put(None)
        writer.join(5)


def _queue_answer(
    outgoing: queue.SimpleQueue[Any], number: int, provider: str, count: int, done: Future[Any]
) -> None:
    outgoing.put((number, provider, count, done))


def _write_answers(conn: Connection, outgoing: queue.SimpleQueue[Any]) -> None:
    while (item := outgoing.get()) is not None:
        number, provider, count, done = item
        try:
            answers: list[Answer] = done.result()
        except Exception:  # the loop itself failed: each send's outcome is unknown
            log.exception("a batch of %d sends through %s failed", count, provider)
            answers = [_gone(provider)] * count
        try:
            conn.send((number, answers))
        except OSError:  # the dispatcher is gone; nobody waits for these answers
            return
        except Exception:  # an answer that cannot be pickled (a bug): that one is unknown
            log.exception("an answer through %s cannot be passed on", provider)
            kept = [a if _picklable(a) else _gone(provider) for a in answers]
            with contextlib.suppress(OSError):
                conn.send((number, kept))


def _picklable(answer: Answer) -> bool:
    try:
        pickle.dumps(answer)
    except Exception:
        return False
    return True


def _main(argv: list[str]) -> None:
    from tidings.logging import configure_logging

    if len(argv) != 4 or not argv[0].isdigit() or not argv[1].isdigit():
        sys.exit("tidings.send_process is started by tidings' campaign dispatch, not by hand")
    descriptor, concurrency, log_level, log_format = argv
    configure_logging(log_level, log_format == "json")
    _serve(Connection(int(descriptor)), int(concurrency))


if __name__ == "__main__":
    _main(sys.argv[1:])
