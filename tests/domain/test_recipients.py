"""One spelling per recipient: phone numbers in E.164, email domains lower-case."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.domain.recipients import InvalidRecipient, normalise_recipient, same_party

E164 = "+5531982968010"


@pytest.mark.parametrize(
    ("written", "region"),
    [
        ("+5531982968010", None),
        ("+55 31 98296-8010", None),
        ("55 31 98296-8010", None),  # no +: read as international
        ("5531982968010", "US"),  # impossible in the US: read as international
        ("5531982968010", "BR"),
        ("(31) 98296-8010", "BR"),  # national, in the default region
        ("  +55 (31) 98296.8010 ", None),
    ],
)
def test_phone_numbers_come_out_in_e164(written: str, region: str | None) -> None:
    assert normalise_recipient(written, region) == E164


def test_a_national_number_needs_its_region() -> None:
    assert normalise_recipient("202 555 0123", "US") == "+12025550123"
    with pytest.raises(InvalidRecipient, match="country code"):
        normalise_recipient("80-10", None)


@pytest.mark.parametrize(
    "written",
    ["hello", "123", "", "   ", "+", "+55 31 98296-8010 ext 5", "1-800-FLOWERS", "++5531982968010"],
)
def test_what_is_no_phone_number_is_refused(written: str) -> None:
    with pytest.raises(InvalidRecipient):
        normalise_recipient(written, "BR")


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("Joao@Example.COM", "Joao@example.com"),  # the local part keeps its case
        (" ana@mail.example.org ", "ana@mail.example.org"),
        ("x.y+tag@sub-domain.example", "x.y+tag@sub-domain.example"),
        ("jose@EXEMPLO.BR", "jose@exemplo.br"),
        ("maria@ÉCOLE.fr", "maria@école.fr"),
    ],
)
def test_email_domains_are_lower_cased(written: str, stored: str) -> None:
    assert normalise_recipient(written) == stored


@pytest.mark.parametrize(
    "written",
    [
        "a@b",
        "@example.com",
        "a b@example.com",
        "a@-example.com",
        "a@example-.com",
        "a@exa_mple.com",
        "a@example..com",
        "a@@example.com",
        "a@example.com.",
        f"{'x' * 65}@example.com",
    ],
)
def test_what_is_no_email_address_is_refused(written: str) -> None:
    with pytest.raises(InvalidRecipient, match="not an email address"):
        normalise_recipient(written)


@given(st.text(max_size=40))
def test_any_text_is_normalised_or_refused_and_normalising_is_stable(text: str) -> None:
    try:
        once = normalise_recipient(text, "BR")
    except InvalidRecipient:
        return
    assert normalise_recipient(once, "BR") == once
    assert once.startswith("+") or "@" in once


@given(st.sampled_from([" ", "-", ".", ""]), st.booleans())
def test_any_spelling_of_one_number_is_one_recipient(separator: str, plus: bool) -> None:
    written = ("+" if plus else "") + separator.join(["55", "31", "98296", "8010"])
    assert normalise_recipient(written, None) == E164


@pytest.mark.parametrize(
    ("given", "known", "same"),
    [
        ("+55 31 98296-8010", "5531982968010", True),
        ("whatsapp:+5531982968010", "+55 (31) 98296-8010", True),
        ("+5531982968010", "+5531982968011", False),
        ("ana@Example.com", "ana@example.COM", True),
        ("lead-42", "LEAD-42", True),
        ("lead-42", "lead-43", False),
    ],
)
def test_two_spellings_of_one_party_are_the_same(given: str, known: str, same: bool) -> None:
    assert same_party(given, known) is same
