"""Masking and the logging setup, asserted on what real handlers write.

Every masked form is checked twice: on `mask_text` directly, and on the line a handler installed
by `configure_logging` writes for it.
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import given
from hypothesis import strategies as st

import tidings.logging as tidings_logging
from tidings.logging import MaskingFilter, configure_logging, get_logger, mask_text, mask_value

CONFIGURED_LOGGERS = ("tidings", "uvicorn", "uvicorn.access", "uvicorn.error")

PHONES = [
    ("+48601234567", "+48*******67"),
    ("sent to +48601234567.", "sent to +48*******67."),
    ("+48 601 234 567", "+48 *** *** *67"),
    ("+48-601-234-567", "+48-***-***-*67"),
    ("(11) 99999-8888", "(11) *****-**88"),
    ("+1 (555) 123-4567", "+1 (5**) ***-**67"),
    ("phone=48601234567", "phone=48*******67"),
    ("whatsapp:+14155238886", "whatsapp:+14*******86"),
    ("To=whatsapp%3A%2B14155238886&Status=read", "To=whatsapp%3A%2B14*******86&Status=read"),
    ("48601234567,48601234568", "48*******67,48*******68"),
    ("+48601234567 12345", "+48*******67 12345"),
    ('{"wa_id": "16315551181"}', '{"wa_id": "16*******81"}'),
]
JIDS = [
    ("5511999998888@s.whatsapp.net", "55*********88@s.whatsapp.net"),
    ("remoteJid=5511999998888:12@s.whatsapp.net", "remoteJid=55*********88:12@s.whatsapp.net"),
    ("5511999998888@c.us", "55*********88@c.us"),
    ("120363025246125486@g.us", "12**************86@g.us"),
]
EMAILS = [
    ("john.doe@example.com", "j***@example.com"),
    ("to <Jane+tag@mail.example.co.uk>", "to <J***@mail.example.co.uk>"),
    ("email=john%40example.com", "email=j***%40example.com"),
]
SECRETS = [
    ("secret=abc123", "secret=***"),
    ("token: abc", "token: ***"),
    ("signature = abc", "signature = ***"),
    ("PASSWORD=hunter2", "PASSWORD=***"),
    ("verify_token=abc", "verify_token=***"),
    ("apikey=XYZ api_key=XYZ API-KEY: XYZ", "apikey=*** api_key=*** API-KEY: ***"),
    ("client_secret='abc def'", "client_secret='***'"),
    ("Authorization: Bearer abc.def", "Authorization: Bearer ***"),
    ("authorization=Basic dXNlcjpwYXNz", "authorization=Basic ***"),
    ("sent with Bearer abc.def-ghi", "sent with Bearer ***"),
    ("X-Hub-Signature-256: sha256=abc", "X-Hub-Signature-256: ***"),
    ("webhook-signature: v1,abc= v1,def= next", "webhook-signature: *** next"),
    ('{"signature": "sha256=abc", "status": "read"}', '{"signature": "***", "status": "read"}'),
    ('{"Api_Key":"abc","x":1}', '{"Api_Key":"***","x":1}'),
    ('{"token": 12345, "x": 1}', '{"token": "***", "x": 1}'),
    ("{'token': 'abc', 'to': '+48601234567'}", "{'token': '***', 'to': '+48*******67'}"),
    ('body {\\"token\\": \\"abc\\"}', 'body {\\"token\\": \\"***\\"}'),
    (
        "POST /hooks/callbell/main?token=abc HTTP/1.1",
        "POST /hooks/callbell/main?token=*** HTTP/1.1",
    ),
    ("/hooks/infobip/main?x=1&TOKEN=abc", "/hooks/infobip/main?x=1&TOKEN=***"),
    (
        "/webhook?hub.mode=subscribe&hub.verify_token=abc&hub.challenge=ok",
        "/webhook?hub.mode=subscribe&hub.verify_token=***&hub.challenge=ok",
    ),
    ("postgresql://tidings:s3cret@db:5432/tidings", "postgresql://tidings:***@db:5432/tidings"),
]
MASKED = PHONES + JIDS + EMAILS + SECRETS
UNCHANGED = [
    "2026-11-23T06:17:30Z",
    "2026-11-23 06:17:30,123",
    "2026-11-23T06:17:30.123456+00:00",
    "due 23-11-2026",
    "123e4567-e89b-12d3-a456-426614174000",
    "12345678-1234-5678-1234-567812345678",
    "receipt 12345",
    "3EB0B431E4B3F7E7BE49E97F7B8E5C8B",
    "BAE594145F4C59B4",
    "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA",
    "SM1234567890abcdef1234567890abcdef",
    "took 0.0123s",
    "created 1763878650.123",
    "client 127.0.0.1:51234, peer 192.168.100.200:8000",
    "alembic 1.20.1",
    "group 120363025246125486",
    "invalid token for connection main",
    "signature verified",
]


@pytest.fixture(autouse=True)
def _fresh_loggers() -> Iterator[None]:
    """Start from unconfigured loggers and put them back afterwards: logging state is global,
    and other tests (the CLI's) call configure_logging too."""
    loggers = [logging.getLogger(name) for name in CONFIGURED_LOGGERS]
    saved = [(_own_handlers(lg), lg.level, lg.propagate) for lg in loggers]
    for logger in loggers:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
    yield
    for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            if handler not in handlers:
                handler.close()
        for handler in handlers:
            logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def _own_handlers(logger: logging.Logger) -> list[logging.Handler]:
    """The logger's handlers except pytest's, which pytest attaches and removes per phase."""
    return [h for h in logger.handlers if type(h).__module__ != "_pytest.logging"]


@pytest.fixture
def output() -> io.StringIO:
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)
    return stream


@pytest.fixture
def json_output() -> io.StringIO:
    stream = io.StringIO()
    configure_logging("DEBUG", json_format=True, stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def message_of(line: str) -> str:
    """The message part of "2026-11-23 06:17:30,123 INFO tidings.worker message"."""
    return line.split(" ", 4)[4]


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(stream)]


# -- the public surface ---------------------------------------------------------------------


def test_public_names() -> None:
    assert sorted(tidings_logging.__all__) == [
        "MaskingFilter",
        "configure_logging",
        "get_logger",
        "mask_text",
        "mask_value",
    ]


def test_import_logging_inside_the_module_is_the_standard_library() -> None:
    assert vars(tidings_logging)["logging"] is logging
    assert "tidings" not in (logging.__file__ or "")


def test_get_logger_puts_names_under_tidings() -> None:
    assert get_logger("worker").name == "tidings.worker"
    assert get_logger("tidings.intake.app").name == "tidings.intake.app"
    assert get_logger("tidings").name == "tidings"
    assert get_logger("tidingsx").name == "tidings.tidingsx"


# -- mask_text --------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "masked"), MASKED)
def test_mask_text(raw: str, masked: str) -> None:
    assert mask_text(raw) == masked


@pytest.mark.parametrize(("raw", "masked"), MASKED)
def test_masking_twice_changes_nothing(raw: str, masked: str) -> None:
    assert mask_text(masked) == masked


@pytest.mark.parametrize("text", UNCHANGED)
def test_mask_text_leaves_timestamps_ids_and_small_numbers(text: str) -> None:
    assert mask_text(text) == text


def test_any_bare_number_of_8_to_15_digits_is_masked_even_a_unix_timestamp() -> None:
    assert mask_text("ts=1763878650 receipt=12345") == "ts=17******50 receipt=12345"


@given(
    digits=st.text(alphabet="0123456789", min_size=8, max_size=15),
    before=st.sampled_from(["", "to ", "phone=", "whatsapp:", "(", '"', "tel: "]),
    after=st.sampled_from(["", ".", " ok", ",", ")", '"', "\n"]),
)
def test_e164_numbers_keep_two_digits_at_each_end(digits: str, before: str, after: str) -> None:
    hidden = "*" * (len(digits) - 4)
    assert (
        mask_text(f"{before}+{digits}{after}")
        == f"{before}+{digits[:2]}{hidden}{digits[-2:]}{after}"
    )


@given(
    key=st.sampled_from(
        [
            "secret",
            "Token",
            "signature",
            "AUTHORIZATION",
            "apikey",
            "api_key",
            "password",
            "hub.verify_token",
            "x-api-key",
            "webhook_secret",
        ]
    ),
    value=st.text(alphabet="abcXYZ0123456789-_.+/=", min_size=1, max_size=40),
    form=st.sampled_from(["{k}={v}", "{k}: {v}", '"{k}": "{v}"', "'{k}': '{v}'", "/p?{k}={v}&n=1"]),
)
def test_secret_values_never_survive(key: str, value: str, form: str) -> None:
    masked = mask_text(form.format(k=key, v=value))
    assert masked == form.format(k=key, v="***")


@given(st.text(alphabet="0123456789+-() @.:=&?\"'abegknostw%/,", max_size=60))
def test_mask_text_is_idempotent(text: str) -> None:
    once = mask_text(text)
    assert mask_text(once) == once


def test_long_runs_stay_linear() -> None:
    started = time.perf_counter()
    for text in ("token" * 20_000, '"token' * 16_000, "1 " * 50_000, "a@a." * 25_000):
        mask_text(text)
    assert time.perf_counter() - started < 2.0


# -- mask_value -------------------------------------------------------------------------------


def test_mask_value_recurses_and_hides_secret_keys_whole() -> None:
    payload: dict[str, object] = {
        "to": "+48601234567",
        "contact": {"email": "john@example.com", "tags": ["vip", "+5511999998888"]},
        "api_key": {"nested": "anything"},
        "Authorization": "Bearer abc",
        "hub.verify_token": 12345,
        "pair": ("receipt 12345", "5511999998888@s.whatsapp.net"),
        "attempts": 3,
        "read": True,
        "error": None,
    }
    assert mask_value(payload) == {
        "to": "+48*******67",
        "contact": {"email": "j***@example.com", "tags": ["vip", "+55*********88"]},
        "api_key": "***",
        "Authorization": "***",
        "hub.verify_token": "***",
        "pair": ("receipt 12345", "55*********88@s.whatsapp.net"),
        "attempts": 3,
        "read": True,
        "error": None,
    }
    assert payload["to"] == "+48601234567"  # pure: the input is not touched


def test_mask_value_masks_keys_and_leaves_other_values() -> None:
    assert mask_value({"+48601234567": "failed"}) == {"+48*******67": "failed"}
    assert mask_value(48601234567) == 48601234567
    assert mask_value(None) is None
    assert mask_value("token=abc") == "token=***"


# -- MaskingFilter ----------------------------------------------------------------------------


def make_record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("tidings.test", logging.INFO, __file__, 1, msg, args, None)


def test_filter_masks_the_formatted_message_and_drops_args() -> None:
    record = make_record("sent to %s", "+48601234567")
    assert MaskingFilter().filter(record) is True
    assert record.msg == "sent to +48*******67"
    assert record.args is None
    assert record.getMessage() == "sent to +48*******67"


def test_filter_masks_extra_fields() -> None:
    extra = {
        "recipient": "john@example.com",
        "payload": {"token": "abc", "to": "+48601234567"},
        "numbers": ["+48601234567"],
        "api_key": 123,
        "receipt_id": 12345,
    }
    record = logging.makeLogRecord({"name": "tidings.test", "msg": "delivered", **extra})
    MaskingFilter().filter(record)
    assert {key: vars(record)[key] for key in extra} == {
        "recipient": "j***@example.com",
        "payload": {"token": "***", "to": "+48*******67"},
        "numbers": ["+48*******67"],
        "api_key": "***",
        "receipt_id": 12345,
    }


def test_filter_survives_args_that_do_not_fit() -> None:
    record = make_record("%s and %s", "+48601234567")
    assert MaskingFilter().filter(record) is True
    assert record.getMessage() == "%s and %s ('+48*******67',)"


def test_filter_masks_a_traceback_another_handler_cached() -> None:
    record = make_record("failed")
    record.exc_text = "ValueError: token=abc for +48601234567"
    MaskingFilter().filter(record)
    assert record.exc_text == "ValueError: token=*** for +48*******67"


def test_filter_with_caplog(caplog: pytest.LogCaptureFixture) -> None:
    caplog.handler.addFilter(MaskingFilter())
    with caplog.at_level(logging.INFO, logger="tidings"):
        get_logger("intake").info("401 for %s: token=%s", "john@example.com", "abc")
    assert caplog.messages == ["401 for j***@example.com: token=***"]


# -- configure_logging: text ------------------------------------------------------------------


def test_text_line_format(output: io.StringIO) -> None:
    get_logger("worker").info("sent to %s", "+48601234567")
    (line,) = lines(output)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO tidings\.worker sent to \+48\*{7}67", line
    )


@pytest.mark.parametrize(("raw", "masked"), MASKED)
def test_every_form_is_masked_in_written_lines(output: io.StringIO, raw: str, masked: str) -> None:
    get_logger("worker").warning("%s", raw)
    assert [message_of(line) for line in lines(output)] == [masked]


@pytest.mark.parametrize("text", UNCHANGED)
def test_written_lines_keep_timestamps_and_ids(output: io.StringIO, text: str) -> None:
    get_logger("worker").info(text)
    assert [message_of(line) for line in lines(output)] == [text]


def test_child_loggers_not_made_by_get_logger_are_masked(output: io.StringIO) -> None:
    logging.getLogger("tidings.providers.evolution").debug("jid %s", "5511999998888@s.whatsapp.net")
    assert [message_of(line) for line in lines(output)] == ["jid 55*********88@s.whatsapp.net"]


def test_uvicorn_access_line_is_masked(output: io.StringIO) -> None:
    # The call uvicorn's httptools and h11 protocols make for each request.
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:51234",
        "POST",
        "/hooks/callbell/main?token=abc",
        "1.1",
        200,
    )
    (line,) = lines(output)
    assert " INFO uvicorn.access " in line
    assert (
        message_of(line) == '127.0.0.1:51234 - "POST /hooks/callbell/main?token=*** HTTP/1.1" 200'
    )


def test_without_access_log_a_request_line_is_dropped_and_warnings_stay() -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream, access_log=False)
    logging.getLogger("uvicorn.access").info('%s - "%s %s" %d', "127.0.0.1:1", "POST", "/x", 202)
    logging.getLogger("uvicorn.access").warning("a warning still reaches the log")
    logging.getLogger("tidings.worker").debug("tidings' own debug lines stay")
    assert [message_of(line) for line in lines(stream)] == [
        "a warning still reaches the log",
        "tidings' own debug lines stay",
    ]


def test_uvicorn_error_lines_are_written_once(output: io.StringIO) -> None:
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 4321)
    assert [message_of(line) for line in lines(output)] == ["Started server process [4321]"]


def test_exception_text_is_masked(output: io.StringIO) -> None:
    try:
        raise ValueError("bad token=s3cr3t-value for +48601234567")
    except ValueError:
        get_logger("worker").exception("batch failed")
    text = output.getvalue()
    assert "ValueError: bad token=*** for +48*******67" in text
    assert "s3cr3t-value" not in text
    assert "601234567" not in text


def test_configure_twice_leaves_one_handler(capsys: pytest.CaptureFixture[str]) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(stream=first)
    configure_logging(stream=second)
    handlers = {name: logging.getLogger(name).handlers for name in CONFIGURED_LOGGERS}
    assert all(len(found) == 1 for found in handlers.values())
    assert len({id(found[0]) for found in handlers.values()}) == 1
    get_logger("worker").info("once")
    assert first.getvalue() == ""
    assert [message_of(line) for line in lines(second)] == ["once"]
    assert capsys.readouterr().err == ""


def test_a_handler_installed_before_receives_masked_records() -> None:
    # What uvicorn's own dictConfig, or a library, could have left on a logger.
    earlier = io.StringIO()
    logging.getLogger("uvicorn.access").addHandler(logging.StreamHandler(earlier))
    configure_logging(stream=io.StringIO())
    logging.getLogger("uvicorn.access").info("GET /hooks/x/y?token=abc")
    assert earlier.getvalue() == "GET /hooks/x/y?token=***\n"


def test_root_handlers_get_no_copy(output: io.StringIO) -> None:
    root_output = io.StringIO()
    root_handler = logging.StreamHandler(root_output)
    logging.getLogger().addHandler(root_handler)
    try:
        get_logger("worker").info("to +48601234567")
    finally:
        logging.getLogger().removeHandler(root_handler)
    assert root_output.getvalue() == ""
    assert len(lines(output)) == 1


def test_caplog_sees_masked_records_after_configure(
    output: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    # pytest attaches its handler to non-propagating loggers when the test starts, after ours.
    get_logger("worker").info("to %s", "+48601234567")
    assert caplog.messages == ["to +48*******67"]


def test_level_is_applied() -> None:
    stream = io.StringIO()
    configure_logging("warning", stream=stream)
    get_logger("worker").info("quiet")
    logging.getLogger("uvicorn.access").info("quiet too")
    get_logger("worker").warning("loud")
    assert [message_of(line) for line in lines(stream)] == ["loud"]


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        configure_logging("LOUD")


# -- configure_logging: JSON ------------------------------------------------------------------


def test_json_lines_carry_masked_message_and_extra_fields(json_output: io.StringIO) -> None:
    get_logger("worker").info(
        "delivered to %s",
        "+48601234567",
        extra={
            "receipt_id": 12345,
            "recipient": "john@example.com",
            "payload": {"token": "s3cr3t-value", "to": "+48601234567"},
            "api_key": "s3cr3t-value",
            "at": datetime(2026, 11, 23, 6, 17, 30, tzinfo=UTC),
        },
    )
    (entry,) = json_lines(json_output)
    assert list(entry)[:4] == ["time", "level", "logger", "message"]
    assert datetime.fromisoformat(entry["time"]).tzinfo is not None
    assert entry["level"] == "INFO"
    assert entry["logger"] == "tidings.worker"
    assert entry["message"] == "delivered to +48*******67"
    assert entry["receipt_id"] == 12345
    assert entry["recipient"] == "j***@example.com"
    assert entry["payload"] == {"token": "***", "to": "+48*******67"}
    assert entry["api_key"] == "***"
    assert entry["at"] == "2026-11-23 06:17:30+00:00"
    assert "s3cr3t-value" not in json_output.getvalue()


def test_json_access_line(json_output: io.StringIO) -> None:
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:51234",
        "GET",
        "/webhook?hub.verify_token=abc",
        "1.1",
        200,
    )
    (entry,) = json_lines(json_output)
    assert entry["logger"] == "uvicorn.access"
    assert entry["message"] == '127.0.0.1:51234 - "GET /webhook?hub.verify_token=*** HTTP/1.1" 200'


def test_json_exception_is_masked(json_output: io.StringIO) -> None:
    try:
        raise RuntimeError("Authorization: Bearer s3cr3t-value")
    except RuntimeError:
        get_logger("worker").exception("call to %s failed", "john@example.com")
    (entry,) = json_lines(json_output)
    assert entry["message"] == "call to j***@example.com failed"
    assert entry["exc_info"].endswith("RuntimeError: Authorization: Bearer ***")
    assert "s3cr3t-value" not in json_output.getvalue()


# -- a real uvicorn server --------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_real_uvicorn_access_log_is_masked() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(ok_app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        response = httpx.post(f"http://127.0.0.1:{port}/hooks/callbell/main?token=abc&n=1")
        assert response.status_code == 200
        while "uvicorn.access" not in stream.getvalue():
            assert time.monotonic() < deadline, "no access line"
            time.sleep(0.02)
    finally:
        server.should_exit = True
        thread.join(10)
    access = [line for line in lines(stream) if " uvicorn.access " in line]
    assert len(access) == 1
    assert message_of(access[0]).endswith('"POST /hooks/callbell/main?token=***&n=1 HTTP/1.1" 200')
    assert "token=abc" not in stream.getvalue()
