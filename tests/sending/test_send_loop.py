"""The send loop a campaign's batches go out on: every request gets its own answer, in order,
at most `concurrency` at a time, and a client that breaks is an unknown outcome, never a lost
batch."""

from __future__ import annotations

import json
import threading
import time

from tests.fakes.sending import SETUPS, config
from tidings.providers.send import SendError, SendFailure, SendRequest, SendResult
from tidings.providers.send_http import Call, Reply
from tidings.providers.senders import make_sender
from tidings.send_loop import SendLoop

EVOLUTION = SETUPS["evolution"]


def test_each_request_gets_its_own_answer_in_order() -> None:
    sends = SendLoop(concurrency=4)
    try:
        with EVOLUTION.fake() as fake:
            sender = make_sender("evolution", config(EVOLUTION.options(fake)), None)
            refused = SendError("no such number", provider="", kind=SendFailure.INVALID)
            requests: list[SendRequest | SendError] = [
                SendRequest(recipient=f"+5531999990{i:03d}", text=f"hi {i}") for i in range(10)
            ]
            requests.insert(3, refused)
            answers = sends.send_all(sender, requests)
            sent_to = [json.loads(r.body)["number"] for r in fake.requests]
    finally:
        sends.close()
    assert answers[3] == (refused, None), "a request that could not be made is not sent"
    ids = [answer for i, (answer, _status) in enumerate(answers) if i != 3]
    assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == 10
    assert {status for i, (_a, status) in enumerate(answers) if i != 3} == {201}
    assert sorted(sent_to) == sorted(f"5531999990{i:03d}" for i in range(10))


def test_no_more_than_concurrency_requests_are_in_flight() -> None:
    sends = SendLoop(concurrency=3)
    try:
        with EVOLUTION.fake() as fake:
            sender = make_sender("evolution", config(EVOLUTION.options(fake)), None)
            in_flight = 0
            most = 0
            guard = threading.Lock()

            class Counting(type(sender)):  # type: ignore[misc]
                """Counts the requests between prepare and read (sent, not yet answered)."""

                def prepare(self, request: SendRequest) -> Call:
                    nonlocal in_flight, most
                    with guard:
                        in_flight += 1
                        most = max(most, in_flight)
                    return super().prepare(request)

                def read(self, call: Call, response: Reply) -> SendResult:
                    nonlocal in_flight
                    time.sleep(0.01)
                    with guard:
                        in_flight -= 1
                    return super().read(call, response)

            counting = Counting(sender.config, None)
            # Two batches out at once (a campaign records one while the next is out): the
            # bound holds for both together.
            batches = [
                sends.submit(
                    counting,
                    [SendRequest(recipient=f"+553199999{b}{i:03d}", text="hi") for i in range(6)],
                )
                for b in (1, 2)
            ]
            answers = [answer for batch in batches for answer in batch.result(timeout=30)]
    finally:
        sends.close()
    assert len(answers) == 12 and all(isinstance(answer, str) for answer, _ in answers)
    assert most <= 3


def test_a_client_that_breaks_after_sending_is_an_unknown_outcome() -> None:
    sends = SendLoop(concurrency=2)
    try:
        with EVOLUTION.fake() as fake:
            sender = make_sender("evolution", config(EVOLUTION.options(fake)), None)

            class Broken(type(sender)):  # type: ignore[misc]
                def read(self, call: Call, response: Reply) -> SendResult:
                    raise RuntimeError("a bug reading the answer")

            [(answer, status)] = sends.send_all(
                Broken(sender.config, None), [SendRequest(recipient="+5531999992000", text="x")]
            )
            arrived = len(fake.requests)
    finally:
        sends.close()
    assert arrived == 1
    assert isinstance(answer, SendError) and status is None
    assert answer.kind is SendFailure.BAD_ANSWER and answer.outcome_unknown
    assert "may have been sent" in str(answer)
