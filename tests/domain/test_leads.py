"""What makes a lead valid, with plain values (the API and the CSV import share it)."""

from __future__ import annotations

import pytest

from tidings.domain.errors import Invalid
from tidings.domain.leads import Lead, lead


def test_phones_in_e164_once_each_in_the_order_given() -> None:
    phones = ["+91 91234 56780", "", "09123456780", "+48 601 234 567"]
    found = lead(" L-1 ", " Ravi ", "", phones, "IN")
    assert found == Lead("L-1", "Ravi", None, ("+919123456780", "+48601234567"))


def test_without_a_region_a_number_is_read_with_its_own_country_code() -> None:
    assert lead("L", None, None, ["+48 601 234 567"]).phones == ("+48601234567",)


@pytest.mark.parametrize(
    ("external_id", "phones", "reason"),
    [
        ("", [], "external_id is empty"),
        ("x" * 201, [], "longer than 200"),
        ("L", ["12"], "phone '12' is not a phone number"),
        ("L", ["call me"], "is not a phone number"),
    ],
)
def test_what_cannot_be_a_lead_is_invalid(external_id: str, phones: list[str], reason: str) -> None:
    with pytest.raises(Invalid, match=reason):
        lead(external_id, None, None, phones, "IN")


def test_long_names_are_refused() -> None:
    with pytest.raises(Invalid, match="owner is longer than 200"):
        lead("L", None, "o" * 201, [])
