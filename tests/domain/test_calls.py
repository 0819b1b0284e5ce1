"""Call types, their labels per locale, and durations: plain values."""

from __future__ import annotations

import pytest

from tidings.domain.calls import CallType, call_type, duration_seconds, label, labels, locale_of


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("Incoming", CallType.INCOMING),
        ("OUTGOING", CallType.OUTGOING),
        (" missed ", CallType.MISSED),
        ("Rejected", CallType.REJECTED),
        ("Voicemail", CallType.UNKNOWN),
        ("", CallType.UNKNOWN),
        (None, CallType.UNKNOWN),
    ],
)
def test_call_types_keep_the_raw_word(raw: object, kind: CallType) -> None:
    assert call_type(raw) == (kind, "" if raw is None else str(raw).strip())


def test_polish_and_english_labels() -> None:
    assert labels("pl") == {
        "incoming": "Przychodzące",
        "outgoing": "Wychodzące",
        "missed": "Nieodebrane",
        "rejected": "Odrzucone",
        "unknown": "Nieznane",
    }
    assert label(CallType.MISSED, "en") == "Missed"
    assert label("rejected", "pl-PL") == "Odrzucone"
    assert label("voicemail", "pl") == "Nieznane"
    assert label("incoming", "xx") == "Incoming"  # no labels for xx: English


@pytest.mark.parametrize(
    ("value", "locale"), [("pl", "pl"), ("pl_PL", "pl"), ("EN-gb", "en"), ("de", None), ("", None)]
)
def test_locales(value: str, locale: str | None) -> None:
    assert locale_of(value) == locale


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        (0, 0),
        (3600, 3600),
        ("1:02:03", 3723),
        ("02:03", 123),
        ("1h 2m 3s", 3723),
        ("44s", 44),
        ("2m", 120),
        ("12.5", 12),
        (-1, None),
        (True, None),
        ("soon", None),
        ("1e99", None),
        ("¹", None),  # a digit to str.isdigit, not a number
    ],
)
def test_durations(raw: object, seconds: int | None) -> None:
    assert duration_seconds(raw) == seconds
