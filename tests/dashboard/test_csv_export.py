"""What a CSV download holds: text that a spreadsheet never runs as a formula (pure)."""

from __future__ import annotations

from tidings.dashboard.csv_export import safe_text


def test_csv_cells_from_outside_are_never_read_as_formulas() -> None:
    assert safe_text('=HYPERLINK("http://x","click")') == '\'=HYPERLINK("http://x","click")'
    assert safe_text("@SUM(A1)") == "'@SUM(A1)"
    assert safe_text("-2+3") == "'-2+3"
    assert safe_text("+48601234567") == "+48601234567"  # a number computes nothing
    assert safe_text("+48*******67") == "+48*******67"
    assert safe_text("Ana") == "Ana"
    assert safe_text(None) == ""
    assert safe_text(42) == "42"
