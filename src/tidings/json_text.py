"""Reading and writing JSON text fast without changing what it means.

orjson reads JSON in a fraction of json's time and is the stricter of the two: it refuses NaN,
a byte-order mark, UTF-16 and lone surrogates, all of which json takes. So orjson is tried
first, and json, whose verdict is the rule, reads everything orjson refused, and raises its
own errors. Two things orjson reads differently are left to json: integers beyond 64 bits
(orjson makes them floats), so text with a number of 19 digits or more, and deep nesting (their
limits differ; json's is the recursion limit), so text of twice `MAX_OPENINGS` bytes or more
that holds `MAX_OPENINGS` brackets or more (`_shallow`).

Writing, orjson's text (without spaces, other than ASCII as UTF-8) reads back as json's does
for every value json writes. What orjson refuses (integers beyond 64 bits, keys that are not
text, lone surrogates, dates and dataclasses, which json refuses too) goes to json, whose
verdict stands. Differences kept: JSON has no NaN or infinity, which json writes as bare
words PostgreSQL refuses and orjson (and the fallback) as null; orjson writes a UUID as its
text and an Enum member as its value, where json refuses both.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

__all__ = ["MAX_OPENINGS", "check", "dumps", "loads"]

MAX_OPENINGS = 400

# A JSON number starts the text or follows `[`, `:` or `,` (whitespace between), with an
# optional minus. Translated, every digit reads "0", those three marks ":", and every other
# byte "x", whitespace left out; so a number of 19 digits or more reads ":" or ":-" and 19
# zeros. Digits inside strings (ids, phone numbers) never follow a mark directly, except in a
# string that itself holds JSON-like text: then json reads it, which is only slower. One
# translate and two substring searches cost a third of a regular expression's scan.


def _marks() -> bytes:
    table = bytearray(b"x" * 256)
    table[ord("0") : ord("9") + 1] = b"0" * 10
    for mark in b"[:,":
        table[mark] = ord(":")
    table[ord("-")] = ord("-")
    return bytes(table)


_MARKS = _marks()
_WHITESPACE = b" \t\n\r"
_LONG = b":" + b"0" * 19
_LONG_NEGATIVE = b":-" + b"0" * 19


def _has_long_number(text: bytes) -> bool:
    marked = b":" + text.translate(_MARKS, _WHITESPACE)
    return _LONG in marked or _LONG_NEGATIVE in marked


def _shallow(text: bytes) -> bool:
    """Too shallow for orjson's reading of nesting to differ from json's. Text shorter than
    twice `MAX_OPENINGS` bytes is not counted: each level of nesting takes an opening and a
    closing byte, so text orjson reads nests fewer than `MAX_OPENINGS` deep (brackets inside
    strings do not nest), and text it refuses goes to json anyway. Longer text is, when it
    holds `MAX_OPENINGS` brackets or more, however many of them nest."""
    return len(text) < 2 * MAX_OPENINGS or text.count(b"[") + text.count(b"{") < MAX_OPENINGS


def loads(text: bytes | str) -> Any:
    """`json.loads(text)`, faster: same values, same errors (ValueError, RecursionError)."""
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if _shallow(raw) and not _has_long_number(raw):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def check(text: bytes) -> None:
    """Raise what `loads(text)` raises, reading no values: for the intake, which only needs to
    know that the body is JSON. Whatever orjson reads json reads too (see above), so the scan
    for long numbers, which only changes what a number reads as, is left out."""
    if _shallow(text):
        try:
            orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
        else:
            return
    json.loads(text)


# Types orjson writes that json refuses: refused here too, by json.
_AS_JSON_DOES = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def dumps(value: Any) -> str:
    """`json.dumps(value)`, faster: text that reads back the same (NaN and infinity as null)."""
    try:
        return orjson.dumps(value, option=_AS_JSON_DOES).decode()
    except TypeError:
        return json.dumps(_finite(value))


def _finite(value: Any) -> Any:
    """The value with NaN and infinity as None, as orjson writes them (containers copied)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value
