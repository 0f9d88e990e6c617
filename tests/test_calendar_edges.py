"""Calendars, plans and forecasts at the edges: holiday countries and years."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import kaprules
from kaprules import ClinicCalendar, InputError

pytest.importorskip("holidays", reason="public holidays need the calendar extra")


@pytest.mark.parametrize(
    "country",
    ["HolidayBase", "__init__", "list_supported_countries", "utils", "UnitedStates", "us", ""],
)
def test_a_name_of_the_holidays_package_that_is_no_country_is_refused(country: str) -> None:
    with pytest.raises(InputError) as info:
        ClinicCalendar(holidays=country)
    assert str(info.value).startswith("holidays: ")
    assert "not a country code" in str(info.value)


def test_a_calendar_file_with_a_name_that_is_no_country_is_refused() -> None:
    with pytest.raises(InputError, match=r"^holidays: 'HolidayBase' is not a country code"):
        kaprules.parse_calendar('holidays = "HolidayBase"\n')


@pytest.mark.parametrize(
    ("country", "date", "message"),
    [
        ("IN", "2040-03-02", "does not know all public holidays of IN in 2040: 'Requested"),
        ("US", "2101-03-01", "knows the public holidays of US from 1777 to 2100, not in 2101"),
    ],
)
def test_a_holiday_year_the_package_does_not_know_is_an_input_error(
    country: str, date: str, message: str, capfd: pytest.CaptureFixture[str]
) -> None:
    # pytest turns warnings into errors here: the package's warning must not escape either.
    calendar = ClinicCalendar(holidays=country)
    day = dt.date.fromisoformat(date)
    for look_up in (calendar.is_open, calendar.closure):
        with pytest.raises(InputError) as info:
            look_up(day)
        assert str(info.value).startswith("holidays: ")
        assert message in str(info.value)
    assert capfd.readouterr().err == ""


def test_the_years_the_package_knows_still_answer() -> None:
    india = ClinicCalendar(holidays="IN", weekdays=range(7))
    assert india.closure(dt.date(2035, 1, 26)) == "Republic Day (public holiday)"
    assert india.is_open(dt.date(2035, 1, 27))


def test_a_plan_into_an_unknown_holiday_year_exits_2_with_one_line(cli: Any) -> None:
    course = '{"timezone": "Asia/Kolkata", "sessions": []}'
    code, out, err = cli("plan", "-", "--as-of", "2040-03-01", "--holidays", "IN", stdin=course)
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1
    assert "holidays: the holidays package does not know all public holidays of IN in 2040" in err
