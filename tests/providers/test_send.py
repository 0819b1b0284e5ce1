"""The pieces every send client shares: what a send request must hold, the one error type,
reading Retry-After, the callback fields, and the registry of clients."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from tests.fakes.sending import SETUPS, config, sender_for
from tidings.providers import send, senders
from tidings.providers.options import check_connection
from tidings.providers.registry import PROVIDERS
from tidings.providers.send import SendError, SendFailure, SendRequest, callback_fields
from tidings.providers.send_http import parse_retry_after
from tidings.providers.senders import SENDERS, make_sender

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"recipient": "+15558675310"}, "either text or a template"),
        ({"recipient": "+15558675310", "text": "a", "template": "t"}, "not both"),
        ({"recipient": "  ", "text": "a"}, "needs a recipient"),
        ({"recipient": "+15558675310", "text": "  "}, "text to send is empty"),
        ({"recipient": "+15558675310", "template": ""}, "template name is empty"),
    ],
)
def test_a_request_that_cannot_be_sent_is_refused_as_invalid(
    fields: dict[str, str], says: str
) -> None:
    with pytest.raises(SendError) as caught:
        SendRequest(**fields)  # type: ignore[arg-type]
    assert caught.value.kind is SendFailure.INVALID
    assert caught.value.permanent
    assert says in str(caught.value)


def test_variables_in_order_from_a_list_or_a_mapping() -> None:
    listed = SendRequest(recipient="+1555", template="t", variables=["a", "b"])
    named = SendRequest(recipient="+1555", template="t", variables={"x": "a", "y": "b"})
    assert listed.positional == named.positional == ["a", "b"]


def test_a_send_error_is_masked_when_shown_but_keeps_the_provider_words() -> None:
    error = SendError(
        "twilio answered HTTP 400: 21211: The 'To' number +15558675310 is not valid; "
        "apikey=abc123 for jane@example.com",
        provider="twilio",
        kind=SendFailure.REFUSED,
        http_status=400,
        code="21211",
        provider_message="The 'To' number +15558675310 is not valid",
        permanent=True,
    )
    shown = str(error)
    assert "+15558675310" not in shown and "+15*******10" in shown
    assert "abc123" not in shown and "jane@" not in shown
    assert error.reason == "The 'To' number +15558675310 is not valid"
    assert (error.http_status, error.code, error.permanent, error.outcome_unknown) == (
        400,
        "21211",
        True,
        False,
    )


def test_the_reason_falls_back_to_what_happened() -> None:
    error = SendError(
        "meta: no answer within 10 s",
        provider="meta",
        kind=SendFailure.TIMEOUT,
        outcome_unknown=True,
    )
    assert error.reason == "meta: no answer within 10 s"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("Fri, 04 Dec 2026 10:01:00 GMT", 60.0),
        ("Fri, 04 Dec 2026 09:59:00 GMT", 0.0),  # a date gone by: no wait
        ("-3", None),
        ("soon", None),
        ("nan", None),
        ("", None),
        (None, None),
        # The header repeated: httpx joins the values, aiohttp gives the first; both read it.
        ("5, 7", 5.0),
        ("Fri, 04 Dec 2026 10:01:00 GMT, 120", 60.0),
        ("Fri, 04 Dec 2026 10:01:00 GMT, Fri, 04 Dec 2026 10:02:00 GMT", 60.0),
        ("-3, 7", None),  # the first value says no usable wait: the second is not tried
        ("soon, 7", None),
        ("Fri, 04 Dec 2026 12:01:00 +0200, 5", 60.0),  # the date alone, as aiohttp gives it
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(
    header: str | None, seconds: float | None
) -> None:
    assert parse_retry_after(header, NOW) == seconds


def test_callback_fields_use_the_connection_keys_and_keep_the_request_metadata() -> None:
    request = SendRequest(
        recipient="+1555",
        text="t",
        campaign="c",
        contact_ref="r",
        metadata={"campaign": "not this one", "extra": "x"},
    )
    assert callback_fields(request, config({})) == {
        "campaign": "c",
        "contact_ref": "r",
        "extra": "x",
    }
    named = config({"campaign_key": "camp", "contact_ref_key": "lead"})
    assert callback_fields(request, named) == {
        "camp": "c",
        "lead": "r",
        "campaign": "not this one",
        "extra": "x",
    }
    assert callback_fields(SendRequest(recipient="+1555", text="t"), named) == {}


def test_every_provider_that_sends_has_a_client() -> None:
    # Callyzer logs calls made from phones; it has no API to send through.
    assert set(SENDERS) == set(PROVIDERS) - {"callyzer"}
    for name, factory in SENDERS.items():
        assert getattr(factory, "provider", None) == name


def test_an_unknown_provider_cannot_send() -> None:
    with httpx.Client() as http, pytest.raises(SendError) as caught:
        make_sender("callyzer", config({}), http)
    assert caught.value.kind is SendFailure.CONFIG
    assert "cannot send through 'callyzer'" in str(caught.value)
    assert "callbell, evolution, infobip, meta, twilio" in str(caught.value)


def test_an_evolution_connection_may_name_its_api_version() -> None:
    check_connection("evolution", None, {"api_version": "v1", "api_url": "http://evo:8080"})


def test_the_public_names() -> None:
    assert set(send.__all__) == {
        "Answer",
        "RetryPolicy",
        "SendError",
        "SendFailure",
        "SendRequest",
        "SendResult",
        "Sender",
        "SenderConfig",
        "answer_to_error",
        "callback_fields",
    }
    assert set(senders.__all__) == {"SENDERS", "SENDS_TEMPLATES", "SenderFactory", "make_sender"}


@pytest.mark.parametrize("provider", sorted(senders.SENDERS))
def test_sends_templates_says_which_clients_take_a_template(provider: str) -> None:
    """Campaigns refuse a template up front on the providers this set leaves out, so it must
    match what each client does with one: send it, or refuse it before any request."""
    setup = SETUPS[provider]
    request = SendRequest(recipient=setup.request.recipient, template="welcome",
                          language="en", variables=["Ana"])  # fmt: skip
    with setup.fake() as fake, httpx.Client() as http:
        sender = sender_for(setup, fake, http)
        if provider in senders.SENDS_TEMPLATES:
            assert sender.send(request).provider_message_id
        else:
            with pytest.raises(SendError) as caught:
                sender.send(request)
            assert "text" in str(caught.value) and fake.requests == []
