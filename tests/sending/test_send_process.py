"""The process a campaign's batches go out from: the same answers as the send loop in the
dispatching process (ids, refusals with everything the store records, requests that could not
be made), and a process that dies leaves unknown outcomes, never a batch waiting forever."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from multiprocessing.queues import Queue
from typing import Any

import pytest

from tests.fakes.sending import SETUPS
from tidings import send_process
from tidings.providers import send as send_module
from tidings.providers.send import SenderConfig, SendError, SendFailure, SendRequest
from tidings.providers.senders import make_sender
from tidings.send_process import SendProcess

EVOLUTION = SETUPS["evolution"]


def _sender(options: dict[str, str]):  # type: ignore[no-untyped-def]
    return make_sender("evolution", SenderConfig(connection="sales", options=options), None)


def _requests(count: int, tag: str) -> list[SendRequest | SendError]:
    return [SendRequest(recipient=f"+553199999{tag}{i:03d}", text=f"hi {i}") for i in range(count)]


def test_each_request_gets_its_own_answer_in_order_from_the_child() -> None:
    # One at a time: the fake's planned answers go to requests in the order they arrive.
    sends = SendProcess(concurrency=1)
    try:
        with EVOLUTION.fake() as fake:
            fake.accept(2)
            fake.refuse("not_on_whatsapp")
            sender = _sender(EVOLUTION.options(fake))
            unmade = SendError("no such number", provider="evolution", kind=SendFailure.INVALID)
            requests = _requests(3, "1")
            requests.append(unmade)
            answers = sends.send_all(sender, requests)
            sent_to = [json.loads(r.body)["number"] for r in fake.requests]
    finally:
        sends.close()
    assert [type(a) for a, _ in answers[:2]] == [str, str] and answers[0][0] != answers[1][0]
    assert [status for _, status in answers[:2]] == [201, 201]
    refused, status = answers[2]
    assert isinstance(refused, SendError), "a refusal comes back as the SendError it was"
    assert refused.kind is SendFailure.REFUSED and refused.http_status == status == 400
    assert refused.provider == "evolution" and not refused.outcome_unknown
    assert refused.reason, "the provider's words are kept for the message's failure"
    left, _ = answers[3]
    assert isinstance(left, SendError) and left.kind is SendFailure.INVALID
    assert str(left) == "no such number", "a request that could not be made is its own answer"
    assert len(sent_to) == 3, "the request that could not be made was not sent"


def test_a_connection_that_cannot_send_answers_every_request_without_sending() -> None:
    sends = SendProcess(concurrency=2)
    try:
        with EVOLUTION.fake() as fake:
            broken = _sender({"api_url": fake.url, "api_key": fake.api_key})
            broken.config.options.pop("api_key")  # type: ignore[attr-defined]
            answers = sends.send_all(broken, _requests(2, "2"))
            arrived = len(fake.requests)
    finally:
        sends.close()
    assert arrived == 0
    assert all(isinstance(a, SendError) and a.kind is SendFailure.CONFIG for a, _ in answers)
    assert "api_key" in str(answers[0][0])


def test_a_child_that_dies_leaves_unknown_outcomes_and_the_next_batch_starts_a_new_one() -> None:
    sends = SendProcess(concurrency=2)
    try:
        with EVOLUTION.fake() as fake:
            sender = _sender(EVOLUTION.options(fake))
            [(first, _)] = sends.send_all(sender, _requests(1, "3"))
            fake.hang()
            out = sends.submit(sender, _requests(1, "4"))
            deadline = time.monotonic() + 10
            while len(fake.requests) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(fake.requests) == 2, "the second batch reached the provider"
            child = sends._child
            assert child is not None
            os.kill(child.popen.pid, signal.SIGKILL)
            [(lost, status)] = out.result(timeout=10)
            fake.accept(1)
            [(after, _)] = sends.send_all(sender, _requests(1, "5"))
    finally:
        sends.close()
    assert isinstance(first, str)
    assert isinstance(lost, SendError) and lost.kind is SendFailure.INTERRUPTED
    assert lost.outcome_unknown and status is None
    assert "may have been sent" in str(lost)
    assert isinstance(after, str), "a new child sent the next batch"


def test_closing_ends_the_child_at_once() -> None:
    sends = SendProcess(concurrency=2)
    with EVOLUTION.fake() as fake:
        sends.send_all(_sender(EVOLUTION.options(fake)), _requests(1, "6"))
    child = sends._child
    assert child is not None
    started = time.monotonic()
    sends.close()
    assert child.popen.returncode == 0, "it ended by itself when its socket closed"
    assert time.monotonic() - started < 2


def test_large_batches_from_several_threads_all_get_their_answers() -> None:
    """Answers flow back while large batches are still being written, even answers the
    child has at once (a connection that cannot send): neither side waits for the other."""
    sends = SendProcess(concurrency=2)
    try:
        with EVOLUTION.fake() as fake:
            broken = _sender({"api_url": fake.url, "api_key": fake.api_key})
            broken.config.options.pop("api_key")  # type: ignore[attr-defined]
            requests = _requests(20_000, "0")
            out: list[Future[list[Any]]] = []
            guard = threading.Lock()

            def submit_three() -> None:
                for _ in range(3):
                    future = sends.submit(broken, requests)
                    with guard:
                        out.append(future)

            threads = [threading.Thread(target=submit_three) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            answers = [future.result(timeout=60) for future in out]
            arrived = len(fake.requests)
    finally:
        sends.close()
    assert len(answers) == 9 and all(len(batch) == 20_000 for batch in answers)
    assert all(a.kind is SendFailure.CONFIG for batch in answers for a, _ in batch)
    assert arrived == 0


def test_a_config_that_cannot_be_passed_on_sends_nothing_and_says_so() -> None:
    sends = SendProcess(concurrency=2)
    try:
        with EVOLUTION.fake() as fake:
            sender = _sender(EVOLUTION.options(fake))
            odd = make_sender(
                "evolution",
                SenderConfig(connection="sales", options=EVOLUTION.options(fake), clock=lambda: 0),  # type: ignore[arg-type,return-value]
                None,
            )
            [(refused, _)] = sends.send_all(odd, _requests(1, "a"))
            [(after, _)] = sends.send_all(sender, _requests(1, "b"))
            arrived = len(fake.requests)
    finally:
        sends.close()
    assert isinstance(refused, SendError) and refused.kind is SendFailure.CONFIG
    assert not refused.outcome_unknown and "could not be passed" in str(refused)
    assert isinstance(after, str) and arrived == 1, "only the next batch went out"


def test_answers_this_process_cannot_read_stop_the_child_and_are_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An answer that cannot be unpickled here (say, a child running newer code): every batch
    out is answered, as unknown, instead of waiting forever."""

    def unreadable(*_args: object) -> SendError:
        raise TypeError("an answer from another version")

    monkeypatch.setattr(send_module, "_rebuilt", unreadable)
    sends = SendProcess(concurrency=2)
    try:
        with EVOLUTION.fake() as fake:
            fake.refuse("not_on_whatsapp")
            [(answer, status)] = sends.send_all(_sender(EVOLUTION.options(fake)), _requests(1, "c"))
            child = sends._child
            assert child is not None
            child.popen.wait(5)
    finally:
        sends.close()
    assert isinstance(answer, SendError) and answer.kind is SendFailure.INTERRUPTED
    assert answer.outcome_unknown and status is None


def _send_one_from_a_forked_child(url: str, api_key: str, answers: Queue[object]) -> None:
    sender = _sender({"api_url": url, "api_key": api_key})
    try:
        [(answer, status)] = send_process.shared(2).send_all(sender, _requests(1, "8"))
        answers.put((answer if isinstance(answer, str) else repr(answer), status))
    except Exception as error:  # reported to the test, which fails on it
        answers.put((repr(error), None))


def test_a_forked_worker_sends_from_a_process_of_its_own_and_the_parent_keeps_its_own() -> None:
    """A Celery prefork worker is a fork of a process that may have sent already: the child's
    campaign sends go out from a new send process, and the parent's goes on working."""
    with EVOLUTION.fake() as fake:
        sender = _sender(EVOLUTION.options(fake))
        parents = send_process.shared(2)
        [(before, _)] = parents.send_all(sender, _requests(1, "7"))
        forked = multiprocessing.get_context("fork")
        answers: Queue[object] = forked.Queue()
        child = forked.Process(
            target=_send_one_from_a_forked_child, args=(fake.url, fake.api_key, answers)
        )
        child.start()
        try:
            child_answer = answers.get(timeout=20)
        finally:
            child.join(5)
            if child.is_alive():
                child.kill()
        [(after, _)] = parents.send_all(sender, _requests(1, "9"))
        numbers = sorted(json.loads(r.body)["number"] for r in fake.requests)
    assert isinstance(before, str) and isinstance(after, str)
    answer, status = child_answer  # type: ignore[misc]
    assert status == 201 and isinstance(answer, str) and answer, child_answer
    assert child.exitcode == 0
    assert numbers == ["5531999997000", "5531999998000", "5531999999000"]


def test_started_by_hand_it_says_what_it_is_for_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tidings.send_process"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "tidings.send_process is started by tidings' campaign dispatch, not by hand"
    )
