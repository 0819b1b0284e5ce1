"""Logging for tidings: one masked output for our loggers and uvicorn's.

Webhook bodies, intake URLs and provider errors carry phone numbers, email addresses and
secrets, and a line logged to debug them must not leak them. So every record passes
:class:`MaskingFilter` on the handler before anything is written, and the masking itself is a
pure function, :func:`mask_text`, that other code (the rejection log, say) can call too.

What is masked (case-insensitive):

- phone numbers of 8-15 digits, written ``+48601234567``, ``+48 601 234 567``,
  ``(11) 99999-8888``, ``whatsapp:+14155238886`` or URL-encoded ``%2B14155238886``: the
  first two and last two digits stay, the rest become ``*`` (``+48*******67``);
- WhatsApp JIDs: ``5511999998888@s.whatsapp.net`` -> ``55*********88@s.whatsapp.net``;
- email addresses: ``john@example.com`` -> ``j***@example.com``;
- values under secret-like keys (secret, token, signature, authorization, apikey, api_key,
  password, verify_token, cookie, credential, ...) in ``key=value``, ``key: value``, JSON
  ``"key": "value"``, Python ``'key': 'value'`` and ``?key=``/``&key=`` query forms -> ``***``;
  ``Bearer xyz`` -> ``Bearer ***``; ``scheme://user:pass@host`` -> ``scheme://user:***@host``.

Left alone: ISO timestamps, UUIDs, numbers of fewer than 8 digits, ids that mix letters and
digits (``3EB0B431E4B3F7E7BE49E97F7B8E5C8B``), decimals (``0.0123``), IP addresses. A bare
integer of 8-15 digits is masked whatever it means (a Unix timestamp too): when in doubt, hide.
"""

from __future__ import annotations

import json
import logging  # the standard library: absolute imports never pick this module itself
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import IO, Final, TypeAlias

__all__ = ["MaskingFilter", "configure_logging", "get_logger", "mask_text", "mask_value"]

_ExcInfo: TypeAlias = (
    tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
)

_MASK: Final = "***"
_MIN_DIGITS: Final = 8
_MAX_DIGITS: Final = 15
_KEEP: Final = 2  # digits kept at each end of a phone number

_ROOT_LOGGER: Final = "tidings"
_LOGGER_NAMES: Final = (_ROOT_LOGGER, "uvicorn", "uvicorn.access", "uvicorn.error")
_HANDLER_NAME: Final = "tidings-masked"
_TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s %(message)s"

_SENSITIVE_WORD: Final = (
    r"(?:secret|token|signature|authori[sz]ation|api[_-]?key|passw(?:or)?d|cookie|credential)"
)

# Value shapes after a secret-like key. A bare value after an unquoted key keeps inner commas
# that are not followed by a space, so "webhook-signature: v1,c2ln..." is masked whole.
_DQ_STRING: Final = r'"(?:[^"\\\n]|\\.)*"'
_SQ_STRING: Final = r"'(?:[^'\\\n]|\\.)*'"
_ESCAPED_DQ_STRING: Final = r'\\"[^"\n]*?\\"'  # JSON inside a JSON string: {\"token\": \"x\"}
_BARE: Final = r"""[^\s,;&"'<>(){}\[\]]+"""
_LOOSE: Final = r"""(?:[^\s,;&"'<>(){}\[\]]|,(?!\s))+"""
# Standard Webhooks sends several signatures in one header: "v1,c2ln... v1,b3Ro...".
_MORE_SIGNATURES: Final = r"""(?:\s+v\d+,[^\s,;&"'<>(){}\[\]]+)*"""

_NOT_IN_WORD: Final = r"(?<![\w.\-])"  # starts a token: not inside an id, decimal or UUID

# The alternatives, in the order they are tried at each position: a phone number inside a
# secret value is hidden as a secret, and a JID is not read as an email. Secret keys are found
# with a lookahead and then taken whole with a possessive `++` (Python 3.11), which keeps a run
# like "tokentoken..." linear instead of quadratic. A phone candidate needs 8 digits (at most
# two separator characters apart) before anything else is tried.
_QUOTED_KEY: Final = rf"""
    (?P<qkey>(?P<q>\\?["'])(?=[^"'\\\n]*?(?i:{_SENSITIVE_WORD}))[^"'\\\n]*+(?P=q)\s*[:=]\s*)
    (?P<qval>{_DQ_STRING}|{_SQ_STRING}|{_ESCAPED_DQ_STRING}|{_BARE})
"""
_UNQUOTED_KEY: Final = rf"""
    {_NOT_IN_WORD}
    (?P<ukey>(?=[\w.\-]*?(?i:{_SENSITIVE_WORD}))[\w.\-]++
      \s*[:=]\s*(?:(?i:bearer|basic|token|digest)\s+)?)
    (?P<uval>{_DQ_STRING}|{_SQ_STRING}|{_LOOSE}{_MORE_SIGNATURES})
"""
_BEARER: Final = r"(?P<bearer>\b(?i:bearer)\s+)[\w\-.~+/]+=*"
_USERINFO: Final = r"(?<=://)(?P<userinfo>[^\s/:@]*:)[^\s/@]+(?=@)"
_JID: Final = rf"""
    {_NOT_IN_WORD}
    (?P<jid>\d[\d\-]*)
    (?P<jidtail>(?::\d+)?@(?:s\.whatsapp\.net|c\.us|g\.us|lid|broadcast)\b)
"""
_EMAIL: Final = r"""
    (?<![\w.%+\-])
    (?P<local>[\w.%+\-]+)(?P<at>@|%40)(?P<domain>(?:(?:[^\W_]|-)+\.)+[^\W\d_]{2,})\b
"""
_PHONE: Final = rf"""
    (?=[+%(\d])
    (?:{_NOT_IN_WORD}|(?<=%2B)|(?<=%2b)|(?<=%3A)|(?<=%3a))
    (?P<phone>
      (?:\+|%2[Bb])?
      (?=\(?\d(?:[ \-()]{{0,2}}\d){{7}})
      (?!\d{{4}}-\d\d-\d\d|\d\d-\d\d-\d{{4}}|[0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-)  # dates, UUIDs
      \(?\d+(?:(?:[ \-]\(?|\)[ \-]?|\()\d+)*
    )
    (?![\w]|\.\d)
"""

# Most lines hold no secret-like word, no URL and no "@", and the alternatives for those are
# the slow ones; so cheap checks on the line pick one of eight precompiled patterns that leave
# out what cannot match. Bits: what the line contains; 0 means the alternative always runs.
_HAS_SECRET_WORD: Final = 4
_HAS_URL: Final = 2
_HAS_AT: Final = 1
_ALTERNATIVES: Final = (
    (_HAS_SECRET_WORD, _QUOTED_KEY),
    (_HAS_SECRET_WORD, _UNQUOTED_KEY),
    (_HAS_SECRET_WORD, _BEARER),
    (_HAS_URL, _USERINFO),
    (_HAS_AT, _JID),
    (_HAS_AT, _EMAIL),
    (0, _PHONE),
)
_PATTERNS: Final = tuple(
    re.compile("|".join(alt for need, alt in _ALTERNATIVES if need & has == need), re.VERBOSE)
    for has in range(8)
)
_SECRET_HINT: Final = re.compile(rf"{_SENSITIVE_WORD}|bearer")  # run on the lower-cased line
_DIGIT_RUN: Final = re.compile(r"(\d+)")  # captured, so split() keeps the digits
_SENSITIVE_KEY: Final = re.compile(_SENSITIVE_WORD, re.IGNORECASE)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRS: Final = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
}
_JSON_SKIPPED: Final = frozenset({"color_message"})  # uvicorn's ANSI copy of the message


def mask_text(text: str) -> str:
    """Return ``text`` with phone numbers, emails and secrets masked; pure, safe to repeat."""
    has = (
        (_HAS_SECRET_WORD if _SECRET_HINT.search(text.lower()) else 0)
        | (_HAS_URL if "://" in text else 0)
        | (_HAS_AT if "@" in text or "%40" in text else 0)
    )
    return _PATTERNS[has].sub(_replace, text)


def mask_value(value: object) -> object:
    """Mask strings inside dicts, lists and tuples; a secret-like key hides its whole value.

    Other values (numbers, None, objects) are returned as they are.
    """
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {
            (mask_text(key) if isinstance(key, str) else key): (
                _MASK if _is_secret_key(key) else mask_value(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [mask_value(item) for item in value]
    if isinstance(value, tuple):
        return tuple(mask_value(item) for item in value)
    return value


class MaskingFilter(logging.Filter):
    """Masks a record in place so that no handler after it can write what it hides.

    The message is formatted first (``msg % args``) and masked as a whole, because a phone
    number may arrive in the args; ``args`` is then cleared. Fields given with ``extra=`` are
    masked too, and a cached traceback text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(_message_of(record))
        record.args = None
        for key, value in list(vars(record).items()):
            if key in _RECORD_ATTRS:
                continue
            if _is_secret_key(key):
                setattr(record, key, _MASK)
            elif isinstance(value, str | Mapping | list | tuple):
                setattr(record, key, mask_value(value))
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        return True


def configure_logging(
    level: str = "INFO",
    json_format: bool = False,
    *,
    stream: IO[str] | None = None,
    access_log: bool = True,
) -> None:
    """Send tidings' and uvicorn's logs through one masked handler; safe to call again.

    Each call installs one stream handler (``stream``, default stderr) carrying
    :class:`MaskingFilter` on the ``tidings``, ``uvicorn``, ``uvicorn.access`` and
    ``uvicorn.error`` loggers, replacing the one an earlier call installed. It goes first on
    each logger: the filter masks the record in place, so a handler that was already there (a
    test's capture handler, say) receives it masked too. The loggers stop propagating, so a
    root handler writes no second copy. Uvicorn must be started with ``log_config=None``, or
    its own configuration replaces these handlers. ``access_log=False`` keeps uvicorn's line per
    request out (its logger then writes warnings only): at thousands of webhooks a second that
    line costs a quarter of the intake's rate, and the receipts table and the Prometheus
    counters already record each request.

    Raises:
        ValueError: ``level`` is not a standard level name.
    """
    numeric_level = _parse_level(level)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(_JsonFormatter() if json_format else _TextFormatter(_TEXT_FORMAT))
    handler.addFilter(MaskingFilter())
    replaced: set[logging.Handler] = set()
    for name in _LOGGER_NAMES:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
            logger.removeHandler(old)
            replaced.add(old)
        logger.handlers.insert(0, handler)
        quiet = name == "uvicorn.access" and not access_log
        logger.setLevel(max(numeric_level, logging.WARNING) if quiet else numeric_level)
        logger.propagate = False
    for old in replaced:
        old.close()


def get_logger(name: str) -> logging.Logger:
    """Return a logger under ``tidings``, so the masked handler receives its records."""
    if name == _ROOT_LOGGER or name.startswith(_ROOT_LOGGER + "."):
        return logging.getLogger(name)
    return logging.getLogger(f"{_ROOT_LOGGER}.{name}")


class _TextFormatter(logging.Formatter):
    """The standard formatter, with tracebacks and stacks masked like messages."""

    def formatException(self, ei: _ExcInfo) -> str:
        return mask_text(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return mask_text(super().formatStack(stack_info))


class _JsonFormatter(_TextFormatter):
    """One JSON object per line: time, level, logger, message, then the ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and key not in _JSON_SKIPPED:
                payload.setdefault(key, value)  # an extra named like a base key is dropped
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            payload["exc_info"] = record.exc_text
        if record.stack_info:
            payload["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=_json_default, ensure_ascii=False)


def _replace(match: re.Match[str]) -> str:
    group = match.group
    kind = match.lastgroup  # each alternative's last group closes last, so it names the match
    if kind == "qval":
        return group("qkey") + _masked_value(group("qval"), quote=group("q"))
    if kind == "uval":
        return group("ukey") + _masked_value(group("uval"), quote="")
    if kind == "bearer":
        return group("bearer") + _MASK
    if kind == "userinfo":
        return group("userinfo") + _MASK
    if kind == "jidtail":
        return _DIGIT_RUN.sub(_mask_jid_run, group("jid")) + group("jidtail")
    if kind == "domain":
        return group("local")[0] + _MASK + group("at") + group("domain")
    return _mask_phone(group("phone"))


def _masked_value(value: str, quote: str) -> str:
    """Replace a secret but keep its quoting, so masked JSON stays JSON."""
    if value.startswith('\\"'):
        quote = '\\"'
    elif value[0] in "\"'":
        quote = value[0]
    return quote + _MASK + quote


def _mask_jid_run(match: re.Match[str]) -> str:
    digits = match.group(0)
    return _mask_digits(digits) if len(digits) > 2 * _KEEP else digits


def _mask_digits(digits: str) -> str:
    return digits[:_KEEP] + "*" * (len(digits) - 2 * _KEEP) + digits[-_KEEP:]


def _mask_phone(candidate: str) -> str:
    """Mask the phone numbers in a run of digit groups, keeping its punctuation.

    A run can hold more than one number ("+48601234567 12345"): a group of 8 or more digits is
    a number of its own, and smaller groups are joined up to 15 digits.
    """
    parts = _DIGIT_RUN.split(candidate)  # separators at even indexes, digit groups at odd
    groups = parts[1::2]
    numbers: list[list[int]] = []
    current: list[int] = []
    count = 0
    for index, digits in enumerate(groups):
        whole = len(digits) >= _MIN_DIGITS
        if current and (whole or count + len(digits) > _MAX_DIGITS):
            numbers.append(current)
            current, count = [], 0
        current.append(index)
        count += len(digits)
        if whole:
            numbers.append(current)
            current, count = [], 0
    if current:
        numbers.append(current)
    for number in numbers:
        joined = "".join(groups[i] for i in number)
        if not _MIN_DIGITS <= len(joined) <= _MAX_DIGITS:
            continue
        masked = _mask_digits(joined)
        for i in number:
            groups[i], masked = masked[: len(groups[i])], masked[len(groups[i]) :]
    parts[1::2] = groups
    return "".join(parts)


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and _SENSITIVE_KEY.search(key) is not None


def _message_of(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except (TypeError, ValueError, KeyError):  # args that do not fit msg: keep both, masked
        return f"{record.msg!s} {record.args!r}"


def _parse_level(level: str) -> int:
    numeric = logging.getLevelNamesMapping().get(level.strip().upper())
    if numeric is None:
        raise ValueError(
            f"unknown log level {level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL"
        )
    return numeric


def _json_default(value: object) -> str:
    return mask_text(str(value))
