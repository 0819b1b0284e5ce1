"""What a provider's answer records (`sending.outcome_of`): only what every store can keep,
so one odd answer never fails the batch of answers it is recorded with."""

from __future__ import annotations

import pytest

from tidings.domain.sending import SendStatus
from tidings.providers.send import SendError, SendFailure
from tidings.sending import outcome_of


@pytest.mark.parametrize(
    "message_id", ["BAE5\x00F00D", "BAE5\ud800F00D", "x" * 201], ids=["nul", "surrogate", "long"]
)
def test_an_id_no_store_can_keep_is_an_unknown_outcome(message_id: str) -> None:
    """The provider took the request, but its id cannot be stored: the message may have
    been sent (never sent again), and the note says why, storable itself."""
    outcome = outcome_of(message_id, 201, defer=True)
    assert outcome.status is SendStatus.UNKNOWN and outcome.provider_message_id is None
    assert outcome.error_kind == SendFailure.BAD_ANSWER.value and outcome.http_status == 201
    assert outcome.error_message and "\x00" not in outcome.error_message
    outcome.error_message.encode("utf-8")  # no lone surrogate left


def test_an_id_of_200_characters_is_sent() -> None:
    outcome = outcome_of("x" * 200, 201, defer=True)
    assert outcome.status is SendStatus.SENT and outcome.provider_message_id == "x" * 200


def test_a_refusals_code_and_message_are_made_storable() -> None:
    error = SendError(
        "refused",
        provider="evolution",
        kind=SendFailure.REFUSED,
        http_status=400,
        code="E" * 150 + "\x00",
        provider_message="bad \ud800 and \x00 text",
        permanent=True,
    )
    outcome = outcome_of(error, defer=True)
    assert outcome.status is SendStatus.FAILED
    assert outcome.error_code == "E" * 100
    assert outcome.error_message == "bad ? and ? text"
