"""Infobip's `callbackData`: whatever the sender put there, as key/value text. Pure.

Senders store a JSON object, or `str(dict)` of a Python dict (single quotes), or plain text;
all three arrive in real traffic.
"""

from __future__ import annotations

import ast
import json
import warnings
from collections.abc import Mapping
from typing import Any

__all__ = ["callback_metadata"]

# Infobip limits callbackData to 4000 characters; anything much longer is not worth parsing
# as a Python literal (the parser's cost grows with it) and is kept as text.
_LITERAL_MAX_CHARS = 20_000


def callback_metadata(value: object) -> dict[str, str]:
    """callbackData as key/value text: a JSON object, a Python-literal dict, or raw text.

    Some senders store `str(dict)` (single quotes), so text that is not a JSON object is tried
    with `ast.literal_eval`, which only reads literals and never runs code; anything that is
    still not a dict is kept whole under "callbackData".
    """
    if value is None:
        return {}
    if isinstance(value, dict):
        return _as_text_map(value)
    if not isinstance(value, str):
        return {"callbackData": _as_text(value)}
    text = value.strip()
    if not text:
        return {}
    parsed = _json_dict(text)
    if parsed is None:
        parsed = _literal_dict(text)
    if parsed is None:
        return {"callbackData": value}
    return _as_text_map(parsed)


def _json_dict(text: str) -> dict[Any, Any] | None:
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _literal_dict(text: str) -> dict[Any, Any] | None:
    if not (text.startswith("{") and text.endswith("}")) or len(text) > _LITERAL_MAX_CHARS:
        return None
    try:
        with warnings.catch_warnings():
            # e.g. "invalid escape sequence" in someone's text: not ours to report.
            warnings.simplefilter("ignore")
            parsed = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _as_text_map(source: Mapping[Any, Any]) -> dict[str, str]:
    return {str(key): _as_text(item) for key, item in source.items() if item is not None}


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):  # sets, bytes... from a Python literal
        return str(value)
