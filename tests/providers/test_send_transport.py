"""What every send client does the same way, checked against each provider's fake server and
over both transports (httpx for single sends, aiohttp for a campaign's batch):
time-outs leave the outcome unknown and are never retried, rate limits are waited out only
within bounds, a connection that never opened is retried, wrong credentials are said so, and
nothing is logged unmasked."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
import zlib
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from aiohttp.client_reqrep import ClientRequest

from tests.fakes.provider_apis import Answer, FakeProviderApi
from tests.fakes.sending import SETUPS, Setup, Waits, config, sender_for
from tidings.providers.send import (
    RetryPolicy,
    SenderConfig,
    SendError,
    SendFailure,
    SendRequest,
    SendResult,
)
from tidings.providers.send_async import new_session, send_async
from tidings.providers.send_http import HttpSender
from tidings.providers.senders import make_sender


@pytest.fixture(params=sorted(SETUPS))
def setup(request: pytest.FixtureRequest) -> Setup:
    return SETUPS[request.param]


@pytest.fixture
def fake(setup: Setup) -> Iterator[FakeProviderApi]:
    with setup.fake() as server:
        yield server


@pytest.fixture(params=["httpx", "aiohttp"])
def http(request: pytest.FixtureRequest) -> Iterator[httpx.Client | None]:
    """The transport: httpx as single sends use it, or None for aiohttp as a campaign's
    batch uses it (`providers.send_async`)."""
    if request.param == "aiohttp":
        yield None
        return
    with httpx.Client() as client:
        yield client


class _OverAiohttp:
    """A sender driven as a campaign drives it: prepare, POST over aiohttp, read."""

    def __init__(self, sender: HttpSender) -> None:
        self._sender = sender

    def send(self, request: SendRequest) -> SendResult:
        async def send() -> SendResult:
            async with new_session(4) as session:
                return await send_async(self._sender, session, request)

        return asyncio.run(send())


def _driven(sender: HttpSender, http: httpx.Client | None) -> HttpSender | _OverAiohttp:
    return sender if http is not None else _OverAiohttp(sender)


def _sender_for(
    setup: Setup, fake: Any, http: httpx.Client | None, **kwargs: Any
) -> HttpSender | _OverAiohttp:
    return _driven(sender_for(setup, fake, http, **kwargs), http)


def _make(
    provider: str, sender_config: SenderConfig, http: httpx.Client | None
) -> HttpSender | _OverAiohttp:
    return _driven(make_sender(provider, sender_config, http), http)


def test_accepts_and_names_the_message(
    setup: Setup, fake: FakeProviderApi, http: httpx.Client | None
) -> None:
    result = _sender_for(setup, fake, http).send(setup.request)
    assert result.provider_message_id
    assert 200 <= result.http_status < 300
    assert len(fake.requests) == 1


def test_a_time_out_leaves_the_outcome_unknown_and_is_not_retried(
    setup: Setup, fake: FakeProviderApi, http: httpx.Client | None
) -> None:
    fake.hang()
    waits = Waits()
    sender = _sender_for(setup, fake, http, timeout=0.3, waits=waits)
    with pytest.raises(SendError) as caught:
        sender.send(setup.request)
    error = caught.value
    assert error.kind is SendFailure.TIMEOUT
    assert error.outcome_unknown and not error.permanent
    assert "may have been sent" in str(error)
    assert len(fake.requests) == 1, "a request that may have gone out is never sent again"
    assert waits.asked == []


def test_a_dropped_connection_leaves_the_outcome_unknown(
    setup: Setup, fake: FakeProviderApi, http: httpx.Client | None
) -> None:
    fake.drop()
    with pytest.raises(SendError) as caught:
        _sender_for(setup, fake, http).send(setup.request)
    assert caught.value.kind is SendFailure.CONNECTION_LOST
    assert caught.value.outcome_unknown
    assert len(fake.requests) == 1


def test_a_429_with_a_short_retry_after_is_waited_out_and_sent_once_more(
    setup: Setup, fake: FakeProviderApi, http: httpx.Client | None
) -> None:
    fake.rate_limit("2")
    waits = Waits()
    result = _sender_for(setup, fake, http, waits=waits).send(setup.request)
    assert result.provider_message_id
    assert waits.asked == [2.0]
    assert len(fake.requests) == 2
    first, second = fake.requests
    assert first.body == second.body


def test_a_429_with_an_http_date_retry_after_is_read(
    setup: Setup, fake: FakeProviderApi, http: httpx.Client | None
) -> None:
    fake.rate_limit("Fri, 04 Dec 2026 10:00:05 GMT")  # the test clock says 10:00:00
    waits = Waits()
    _sender_for(setup, fake, http, waits=waits).send(setup.request)
    assert waits.asked == [5.0]


def test_a_repeated_retry_after_is_read_alike_by_both_transports(
    setup: Setup, fake: FakeProviderApi, http: httpx.Client | None
) -> None:
    """httpx joins a repeated header's values ("2, 9"), aiohttp gives the first: the first
    one is the wait either way."""
    fake.rate_limit("2", "9")
    waits = Waits()
    result = _sender_for(setup, fake, http, waits=waits).send(setup.request)
    assert result.provider_message_id
    assert waits.asked == [2.0]
    assert len(fake.requests) == 2


def test_a_429_asking_for_too_long_a_wait_is_handed_to_the_caller(
    setup: Setup, fake: FakeProviderApi, http: httpx.Client | None
) -> None:
    fake.rate_limit("120")
    waits = Waits()
    with pytest.raises(SendError) as caught:
        _sender_for(setup, fake, http, waits=waits).send(setup.request)
    error = caught.value
    assert error.kind is SendFailure.RATE_LIMITED
    assert error.retry_after == 120.0
    assert error.http_status == 429
    assert not error.permanent and not error.outcome_unknown
    assert waits.asked == []
    assert len(fake.requests) == 1


def test_a_429_without_retry_after_is_not_retried(
    setup: Setup, fake: FakeProviderApi, http: httpx.Client | None
) -> None:
    fake.rate_limit(None)
    with pytest.raises(SendError) as caught:
        _sender_for(setup, fake, http).send(setup.request)
    assert caught.value.kind is SendFailure.RATE_LIMITED
    assert caught.value.retry_after is None
    assert len(fake.requests) == 1


def test_429s_are_retried_a_bounded_number_of_times(
    setup: Setup, fake: FakeProviderApi, http: httpx.Client | None
) -> None:
    for _ in range(5):
        fake.rate_limit("1")
    waits = Waits()
    with pytest.raises(SendError) as caught:
        _sender_for(setup, fake, http, waits=waits, retry=RetryPolicy(attempts=3)).send(
            setup.request
        )
    assert caught.value.kind is SendFailure.RATE_LIMITED
    assert len(fake.requests) == 3
    assert waits.asked == [1.0, 1.0]


def test_wrong_credentials_are_an_auth_failure_not_a_refusal_of_the_message(
    setup: Setup, fake: FakeProviderApi, http: httpx.Client | None
) -> None:
    options, secret = setup.wrong_credentials(fake)
    sender = _make(setup.provider, config(options, secret=secret), http)
    with pytest.raises(SendError) as caught:
        sender.send(setup.request)
    error = caught.value
    assert error.kind is SendFailure.AUTH
    assert error.http_status == 401
    assert not error.permanent and not error.outcome_unknown
    assert error.provider == setup.provider
    assert "check the connection's api_key / secret" in str(error)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens there once the socket is closed


def test_a_connection_that_never_opens_is_retried_then_reported_as_unavailable(
    setup: Setup, http: httpx.Client | None
) -> None:
    class Nowhere:
        url = f"http://127.0.0.1:{_closed_port()}"
        api_key = "k"
        account_sid = "AC" + "0" * 32
        token = "t"

    waits = Waits()
    sender = _sender_for(setup, Nowhere(), http, waits=waits, retry=RetryPolicy(attempts=3))
    with pytest.raises(SendError) as caught:
        sender.send(setup.request)
    error = caught.value
    assert error.kind is SendFailure.UNAVAILABLE
    assert not error.outcome_unknown, "nothing left this process"
    assert "nothing was sent" in str(error)
    assert waits.asked == [0.5, 1.0]


def test_logs_and_errors_never_show_the_recipient_or_the_key(
    setup: Setup, fake: FakeProviderApi, http: httpx.Client | None
) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("tidings.providers.send")
    handler = Keep(level=logging.DEBUG)
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        fake.rate_limit("1")
        fake.rate_limit("600")
        options, secret = setup.wrong_credentials(fake)
        with pytest.raises(SendError) as first:
            _sender_for(setup, fake, http).send(setup.request)
        with pytest.raises(SendError) as second:
            _make(setup.provider, config(options, secret=secret), http).send(setup.request)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    digits = "".join(c for c in setup.request.recipient if c.isdigit())
    secrets = {
        setup.options(fake).get("api_key"),
        setup.secret(fake),
        options.get("api_key"),
        secret,
    } - {None}
    texts = [r.getMessage() for r in records] + [str(first.value), str(second.value)]
    assert len(records) >= 3, "the retry and both failures are logged"
    for text in texts:
        assert digits not in text and setup.request.recipient not in text, text
        for value in secrets:
            assert value not in text, text


def test_a_503_with_retry_after_is_retried_only_where_meta_says_it_did_nothing(
    setup: Setup, fake: FakeProviderApi, http: httpx.Client | None
) -> None:
    fake.answer(Answer(503, {"error": "busy"}, {"Retry-After": "1"}))
    waits = Waits()
    sender = _sender_for(setup, fake, http, waits=waits)
    if setup.provider == "meta":  # a synchronous Graph error: Meta did not take the message
        assert sender.send(setup.request).provider_message_id
        assert (waits.asked, len(fake.requests)) == ([1.0], 2)
        return
    with pytest.raises(SendError) as caught:
        sender.send(setup.request)
    assert caught.value.kind is SendFailure.UNAVAILABLE
    assert caught.value.retry_after == 1.0, "the wait is handed to the caller"
    assert not caught.value.outcome_unknown
    assert (waits.asked, len(fake.requests)) == ([], 1)


@pytest.mark.parametrize(
    "api_url", ["127.0.0.1:9/evolution", "ftp://127.0.0.1:9", "http://", "http://127.0.0.1:9/a\tb"]
)
def test_an_api_url_no_client_can_use_is_a_config_error_and_nothing_is_sent(
    http: httpx.Client | None, api_url: str
) -> None:
    sender = _make("evolution", config({"api_url": api_url, "api_key": "k"}), http)
    with pytest.raises(SendError) as caught:
        sender.send(SendRequest(recipient="+5531999990000", text="hi"))
    assert caught.value.kind is SendFailure.CONFIG
    assert not caught.value.outcome_unknown
    assert "nothing was sent" in str(caught.value)


def test_a_key_that_is_not_ascii_is_a_config_error_and_nothing_is_sent(
    http: httpx.Client | None,
) -> None:
    """A header can carry ASCII only: a pasted key with an accented letter is said so."""
    with SETUPS["evolution"].fake() as fake:
        sender = _make("evolution", config({"api_url": fake.url, "api_key": "clé"}), http)
        with pytest.raises(SendError) as caught:
            sender.send(SendRequest(recipient="+5531999990000", text="hi"))
        arrived = len(fake.requests)
    assert caught.value.kind is SendFailure.CONFIG and not caught.value.outcome_unknown
    assert arrived == 0


def test_a_compressed_answer_is_read(http: httpx.Client | None) -> None:
    """A provider (or the gateway in front of it) that gzips its JSON."""
    setup = SETUPS["evolution"]
    with setup.fake() as fake:
        answer = {"key": {"id": "3EB0C0FFEE"}, "status": "PENDING"}
        fake.answer(
            Answer(
                201,
                gzip.compress(json.dumps(answer).encode()),
                {"Content-Encoding": "gzip", "Content-Type": "application/json"},
            )
        )
        result = _sender_for(setup, fake, http).send(setup.request)
    assert result.provider_message_id == "3EB0C0FFEE"


@pytest.mark.parametrize(
    ("content_type", "body", "shown"),
    [
        ("text/plain; charset=iso-8859-1", "Número inválido".encode("latin-1"), "Número inválido"),
        ("text/plain; charset=no-such-charset", "Número inválido".encode(), "Número inválido"),
        ("text/plain", b"bad \xff byte", "bad \ufffd byte"),
    ],
)
def test_a_refusal_in_plain_text_reads_the_same_over_either_transport(
    http: httpx.Client | None, content_type: str, body: bytes, shown: str
) -> None:
    """A gateway's refusal that is not JSON: its text is the reason, decoded by the charset
    it names, else as UTF-8 (an unknown charset included), a bad byte replaced."""
    setup = SETUPS["callbell"]
    with setup.fake() as fake:
        fake.answer(Answer(422, body, {"Content-Type": content_type}))
        with pytest.raises(SendError) as caught:
            _sender_for(setup, fake, http).send(setup.request)
    assert caught.value.provider_message == shown
    assert caught.value.http_status == 422 and caught.value.permanent


def test_a_reason_phrase_beyond_ascii_reads_the_same_over_either_transport(
    http: httpx.Client | None,
) -> None:
    """A refusal with no body and a Latin-1 status line: its reason is read as httpx reads
    it (the bytes beyond ASCII left out) over both, so it can be stored."""
    setup = SETUPS["callbell"]
    with setup.fake() as fake:
        fake.answer(Answer(422, b"", {"Content-Type": "text/plain"}, reason="Não processado"))
        with pytest.raises(SendError) as caught:
            _sender_for(setup, fake, http).send(setup.request)
    assert caught.value.provider_message == "No processado"
    assert caught.value.http_status == 422 and not caught.value.outcome_unknown


def test_a_refusal_in_an_encoding_tidings_does_not_decode_is_read_by_its_status(
    http: httpx.Client | None,
) -> None:
    """Content-Encoding: br (a gateway that ignores Accept-Encoding): the body is kept as it
    came, as httpx keeps it, and the 400 is still a refusal, not an unknown outcome."""
    setup = SETUPS["callbell"]
    with setup.fake() as fake:
        fake.answer(Answer(400, b"\x0b\x02\x80bad\x03", {"Content-Encoding": "br"}))
        with pytest.raises(SendError) as caught:
            _sender_for(setup, fake, http).send(setup.request)
    assert caught.value.kind is SendFailure.REFUSED and caught.value.permanent
    assert caught.value.http_status == 400 and not caught.value.outcome_unknown


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_an_answer_that_does_not_decode_leaves_the_outcome_unknown(
    http: httpx.Client | None, coding: str
) -> None:
    """A body that claims gzip or deflate and is neither: whether the provider took the
    message cannot be read, so it is an unknown outcome over both transports (never sent
    again), not an exception."""
    setup = SETUPS["evolution"]
    with setup.fake() as fake:
        fake.answer(Answer(201, b"not compressed at all", {"Content-Encoding": coding}))
        with pytest.raises(SendError) as caught:
            _sender_for(setup, fake, http).send(setup.request)
        arrived = len(fake.requests)
    assert caught.value.kind is SendFailure.BAD_ANSWER and caught.value.outcome_unknown
    assert "does not decode" in str(caught.value)
    assert arrived == 1


def test_a_refusal_whose_gzip_is_cut_short_is_read_by_its_status(
    http: httpx.Client | None,
) -> None:
    """A gzip stream cut short gives what it holds (as httpx reads it), so a 400 is still
    a refusal with its reason over both transports."""
    setup = SETUPS["callbell"]
    body = gzip.compress(b"the number is not valid")[:-8]
    with setup.fake() as fake:
        fake.answer(Answer(400, body, {"Content-Encoding": "gzip", "Content-Type": "text/plain"}))
        with pytest.raises(SendError) as caught:
            _sender_for(setup, fake, http).send(setup.request)
    assert caught.value.http_status == 400 and not caught.value.outcome_unknown
    assert caught.value.provider_message == "the number is not valid"


def test_campaigns_ask_only_for_the_codings_they_decode(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider that honours Accept-Encoding must not answer in a coding the campaign
    path cannot read: where Brotli is installed aiohttp offers br by default (as here)."""
    offered = {**ClientRequest.DEFAULT_HEADERS, "Accept-Encoding": "gzip, deflate, br"}
    monkeypatch.setattr(ClientRequest, "DEFAULT_HEADERS", offered)
    with setup.fake() as fake:
        _sender_for(setup, fake, None).send(setup.request)
        [arrived] = fake.requests
    assert arrived.headers["accept-encoding"] == "gzip, deflate"


@pytest.mark.parametrize(
    "body",
    [
        zlib.compress(b'{"key": {"id": "3EB0DEF1A7E"}, "status": "PENDING"}'),
        zlib.compress(b'{"key": {"id": "3EB0DEF1A7E"}, "status": "PENDING"}')[2:-4],  # raw
    ],
    ids=["zlib", "raw"],
)
def test_a_deflated_answer_is_read(http: httpx.Client | None, body: bytes) -> None:
    """deflate as HTTP means it (zlib-wrapped) and as some servers send it (raw)."""
    setup = SETUPS["evolution"]
    with setup.fake() as fake:
        fake.answer(Answer(201, body, {"Content-Encoding": "deflate"}))
        result = _sender_for(setup, fake, http).send(setup.request)
    assert result.provider_message_id == "3EB0DEF1A7E"


def test_a_tls_handshake_that_never_ends_sent_nothing(http: httpx.Client | None) -> None:
    """The connection is not made until TLS is: a time-out there is "nothing was sent",
    tried again, never an unknown outcome."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts, never speaks TLS
        port = silent.getsockname()[1]
        waits = Waits()
        options = {"api_url": f"https://127.0.0.1:{port}", "api_key": "k"}
        sender = _make(
            "evolution",
            config(options, waits=waits, timeout=0.3, retry=RetryPolicy(attempts=2)),
            http,
        )
        with pytest.raises(SendError) as caught:
            sender.send(SendRequest(recipient="+5531999990000", text="hi"))
    assert caught.value.kind is SendFailure.UNAVAILABLE
    assert not caught.value.outcome_unknown
    assert waits.asked == [0.5]


def test_a_campaigns_batch_sends_the_bytes_a_single_send_sends(setup: Setup) -> None:
    """aiohttp (a campaign) and httpx (a single send) put the same body and content type on
    the wire for each provider: JSON encoded by tidings, forms and multipart by httpx."""
    request = replace(setup.request, text='Olá, João: código 7 ✓ "quoted"')
    with setup.fake() as fake, httpx.Client() as client:
        options = config(setup.options(fake), secret=setup.secret(fake))
        _make(setup.provider, options, client).send(request)
        _make(setup.provider, options, None).send(request)
    single, batch = fake.requests
    assert batch.body == single.body
    assert batch.headers["content-type"] == single.headers["content-type"]
    assert batch.headers["content-length"] == str(len(single.body))
