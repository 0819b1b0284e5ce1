"""A Callyzer connection's options are checked when it is stored: its time zone and default
region must exist, or every call would be read wrongly later."""

from __future__ import annotations

import pytest

from tidings.providers.options import InvalidConnection, check_connection


def test_a_callyzer_connection_takes_its_zone_region_and_header() -> None:
    check_connection(
        "callyzer",
        "s3cret",
        {"timezone": "Asia/Kolkata", "region": "in", "auth_header": "x-callyzer-token"},
    )


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"timezone": "IST"}, "no time zone of the tz database"),
        ({"timezone": "Asia/Mumbai"}, "no time zone of the tz database"),
        ({"region": "India"}, "not a region code"),
        ({"region": "XX"}, "not a region code"),
        ({"campaign": "x"}, "does not know the option"),
    ],
)
def test_an_option_that_cannot_work_is_refused(options: dict[str, str], reason: str) -> None:
    with pytest.raises(InvalidConnection, match=reason):
        check_connection("callyzer", "s3cret", options)
