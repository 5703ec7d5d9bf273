"""Durations, timestamps, zones, business hours and holidays as typed by people."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time
from hypothesis import given, settings
from hypothesis import strategies as st

from chatctl.parsing.timeparse import (
    BusinessHours,
    format_duration,
    format_holidays,
    parse_business_hours,
    parse_duration,
    parse_holidays,
    parse_relative_or_timestamp,
    parse_timestamp,
    parse_zone,
)
from chatctl.errors import ExitCode, UsageError

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
JOHANNESBURG = ZoneInfo("Africa/Johannesburg")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


# ---------------------------------------------------------------------------
# Durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("90d", timedelta(days=90)),
        ("1w", timedelta(weeks=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        ("0s", timedelta(0)),
        ("1.5s", timedelta(seconds=1.5)),
        ("PT30M", timedelta(minutes=30)),
        ("P90D", timedelta(days=90)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("P2W", timedelta(weeks=2)),
        ("PT1H30M15S", timedelta(hours=1, minutes=30, seconds=15)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("PT0,5S", timedelta(milliseconds=500)),
        ("P0D", timedelta(0)),
    ],
)
def test_parse_duration_accepts_compact_and_iso_forms(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["1D12H", "pt30m", "P1dT2h", "  2h  "])
def test_parse_duration_ignores_case_and_surrounding_space(text: str) -> None:
    assert parse_duration(text) > timedelta(0)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty duration"),
        ("   ", "empty duration"),
        ("-2h", "cannot be negative"),
        ("-PT30M", "cannot be negative"),
        ("P1M", "months and years"),
        ("P1Y", "months and years"),
        ("P1Y2M3D", "months and years"),
        ("30", "needs a unit"),
        ("1.5h", "bad duration"),
        ("1m30m", "bad duration"),
        ("30m1h", "bad duration"),
        ("1h 30m", "bad duration"),
        ("2 hours", "bad duration"),
        ("P", "bad duration"),
        ("PT", "bad duration"),
        ("P1DT", "bad duration"),
        ("PYTHON", "bad duration"),
        ("1.1234567s", "6 decimal places"),
        ("9999999999d", "too long"),
        ("h", "bad duration"),
    ],
)
def test_parse_duration_refuses_bad_input_naming_accepted_forms(text: str, reason: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse_duration(text)
    message = str(raised.value)
    assert reason in message
    assert "90s, 30m, 2h, 1d12h, 90d" in message
    assert "PT30M, P90D" in message
    assert "\n" not in message
    assert raised.value.exit_code == ExitCode.USAGE


def test_parse_duration_accepts_the_largest_timedelta() -> None:
    assert parse_duration("999999999d23h59m59.999999s") == timedelta.max


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(minutes=30), "30m"),
        (timedelta(days=1, hours=12), "1d12h"),
        (timedelta(days=90), "90d"),
        (timedelta(weeks=1), "7d"),
        (timedelta(days=1, seconds=1), "1d1s"),
        (timedelta(milliseconds=1500), "1.5s"),
        (timedelta(microseconds=1), "0.000001s"),
    ],
)
def test_format_duration_prints_canonical_compact_form(duration: timedelta, expected: str) -> None:
    assert format_duration(duration) == expected


def test_format_duration_refuses_negative_durations() -> None:
    with pytest.raises(ValueError):
        format_duration(timedelta(seconds=-1))


@given(st.timedeltas(min_value=timedelta(0)))
def test_format_duration_round_trips_through_parse_duration(duration: timedelta) -> None:
    assert parse_duration(format_duration(duration)) == duration


@given(st.integers(min_value=0, max_value=10**9 * 86400 - 1))
def test_whole_second_durations_format_without_fractions(seconds: int) -> None:
    text = format_duration(timedelta(seconds=seconds))
    assert "." not in text
    assert parse_duration(text) == timedelta(seconds=seconds)


# ---------------------------------------------------------------------------
# Timestamps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-30T09:00:00Z", utc(2026, 11, 30, 9)),
        ("2026-11-30T09:00Z", utc(2026, 11, 30, 9)),
        ("2026-11-30t09:00z", utc(2026, 11, 30, 9)),
        ("2026-11-30T11:00+02:00", utc(2026, 11, 30, 9)),
        ("2026-11-30T04:00:00-05:00", utc(2026, 11, 30, 9)),
        ("2026-11-30T09:00:00.250Z", utc(2026, 11, 30, 9, 0, 0, 250000)),
        ("2026-11-30 09:00", utc(2026, 11, 30, 9)),
        ("2026-11-30", utc(2026, 11, 30)),
    ],
)
def test_parse_timestamp_returns_aware_utc(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)
    assert parsed.tzinfo is timezone.utc


def test_parse_timestamp_reads_naive_time_in_the_given_zone() -> None:
    assert parse_timestamp("2026-11-30T09:00", JOHANNESBURG) == utc(2026, 11, 30, 7)
    assert parse_timestamp("2026-07-01T09:00", LONDON) == utc(2026, 7, 1, 8)
    assert parse_timestamp("2026-07-01T09:00", NEW_YORK) == utc(2026, 7, 1, 13)


def test_parse_timestamp_reads_a_date_as_local_midnight() -> None:
    assert parse_timestamp("2026-11-30", JOHANNESBURG) == utc(2026, 11, 29, 22)


def test_parse_timestamp_explicit_offset_wins_over_the_zone() -> None:
    assert parse_timestamp("2026-11-30T09:00Z", JOHANNESBURG) == utc(2026, 11, 30, 9)


@pytest.mark.parametrize(
    ("text", "zone"),
    [("2026-03-29T01:30", LONDON), ("2026-03-08T02:30", NEW_YORK)],
)
def test_parse_timestamp_refuses_local_time_skipped_by_spring_forward(
    text: str, zone: ZoneInfo
) -> None:
    with pytest.raises(UsageError, match="does not exist in .*give the offset"):
        parse_timestamp(text, zone)


@pytest.mark.parametrize(
    ("text", "zone", "first_occurrence"),
    [
        ("2026-10-25T01:30", LONDON, utc(2026, 10, 25, 0, 30)),
        ("2026-11-01T01:30", NEW_YORK, utc(2026, 11, 1, 5, 30)),
    ],
)
def test_parse_timestamp_takes_first_occurrence_of_time_repeated_by_fall_back(
    text: str, zone: ZoneInfo, first_occurrence: datetime
) -> None:
    assert parse_timestamp(text, zone) == first_occurrence


def test_parse_timestamp_accepts_times_either_side_of_a_clock_change() -> None:
    assert parse_timestamp("2026-03-29T00:59", LONDON) == utc(2026, 3, 29, 0, 59)
    assert parse_timestamp("2026-03-29T02:00", LONDON) == utc(2026, 3, 29, 1, 0)


@pytest.mark.parametrize(
    "text",
    ["", "now", "yesterday", "2026-13-01", "2026-11-30T25:00", "30/11/2026", "-2h",
     "2026-11-30T09:00+25:00", "9999-12-31T23:59-05:00"],
)
def test_parse_timestamp_refuses_bad_input_naming_accepted_forms(text: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse_timestamp(text)
    message = str(raised.value)
    assert "2026-11-30" in message or "out of range" in message
    assert "\n" not in message


# ---------------------------------------------------------------------------
# Relative times

NOW = utc(2026, 11, 30, 9)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("NOW", NOW),
        ("-2h", NOW - timedelta(hours=2)),
        ("+30m", NOW + timedelta(minutes=30)),
        ("-1d12h", NOW - timedelta(days=1, hours=12)),
        ("-P1D", NOW - timedelta(days=1)),
        ("-0s", NOW),
        ("2026-11-01T00:00Z", utc(2026, 11, 1)),
    ],
)
def test_parse_relative_or_timestamp_is_relative_to_the_given_now(
    text: str, expected: datetime
) -> None:
    assert parse_relative_or_timestamp(text, NOW) == expected


def test_parse_relative_or_timestamp_reads_naive_time_in_the_given_zone() -> None:
    assert parse_relative_or_timestamp("2026-11-30T09:00", NOW, JOHANNESBURG) == utc(2026, 11, 30, 7)


def test_parse_relative_or_timestamp_returns_utc_for_a_non_utc_now() -> None:
    local_now = NOW.astimezone(JOHANNESBURG)
    parsed = parse_relative_or_timestamp("-1h", local_now)
    assert parsed == NOW - timedelta(hours=1)
    assert parsed.tzinfo is timezone.utc


@pytest.mark.parametrize("text", ["", "-", "+", "-x", "-P1M", "yesterday", "2 hours ago"])
def test_parse_relative_or_timestamp_refuses_bad_input_naming_accepted_forms(text: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse_relative_or_timestamp(text, NOW)
    assert "-2h" in str(raised.value)


def test_parse_relative_or_timestamp_refuses_results_beyond_the_calendar() -> None:
    with pytest.raises(UsageError, match="too far"):
        parse_relative_or_timestamp("+999999999d", NOW)


def test_parse_relative_or_timestamp_needs_an_aware_now() -> None:
    with pytest.raises(ValueError):
        parse_relative_or_timestamp("-2h", datetime(2026, 11, 30, 9))


@freeze_time("2031-06-15T12:00:00Z")
def test_relative_times_depend_on_the_now_argument_not_the_clock() -> None:
    # With the clock frozen years away from NOW, any clock read would show.
    assert parse_relative_or_timestamp("-2h", NOW) == NOW - timedelta(hours=2)
    assert parse_relative_or_timestamp("now", NOW) == NOW
    assert parse_timestamp("2026-11-30T09:00", JOHANNESBURG) == utc(2026, 11, 30, 7)
    assert parse_business_hours("mon-fri 08:00-17:00").is_open(NOW, JOHANNESBURG)


def test_timeparse_does_not_import_sqlalchemy() -> None:
    # Time parsing sits on the CLI start-up path, which must stay fast.
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    completed = subprocess.run(
        [sys.executable, "-c",
         "import sys, chatctl.parsing.timeparse; print('sqlalchemy' in sys.modules)"],
        capture_output=True, text=True, env=environment, check=True,
    )
    assert completed.stdout.strip() == "False"


# ---------------------------------------------------------------------------
# Time zones


@pytest.mark.parametrize("name", ["Africa/Johannesburg", "Europe/London", "America/New_York", "UTC"])
def test_parse_zone_accepts_iana_names(name: str) -> None:
    assert parse_zone(name).key == name


def test_parse_zone_forgives_case_and_returns_the_canonical_name() -> None:
    assert parse_zone("europe/london").key == "Europe/London"
    assert parse_zone(" utc ").key == "UTC"


@pytest.mark.parametrize(
    "name", ["Mars/Base", "", "America", "localtime", "posixrules", "zone.tab", "/etc/passwd",
             "Europe/../UTC", "UTC\x00", "x" * 5000, "+02:00"],
)
def test_parse_zone_refuses_unknown_names_with_an_example(name: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse_zone(name)
    assert "unknown time zone" in str(raised.value)
    assert "Africa/Johannesburg" in str(raised.value)


def test_parse_zone_refusal_matches_the_documented_message() -> None:
    with pytest.raises(UsageError) as raised:
        parse_zone("Mars/Base")
    assert str(raised.value) == (
        "unknown time zone 'Mars/Base': use an IANA name like Africa/Johannesburg, "
        "Europe/London or UTC"
    )


# ---------------------------------------------------------------------------
# Business hours

MONDAY_TO_FRIDAY = tuple(((8 * 60, 17 * 60),) if day < 5 else () for day in range(7))


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("mon-fri 08:00-17:00", "mon-fri 08:00-17:00"),
        ("mon-fri 08:00-17:00; sat 09:00-13:00", "mon-fri 08:00-17:00; sat 09:00-13:00"),
        ("mon,wed,fri 09:00-12:00 13:00-17:00", "mon,wed,fri 09:00-12:00 13:00-17:00"),
        ("Mon - Fri 8:00 - 12:00, 13:00-17:00", "mon-fri 08:00-12:00 13:00-17:00"),
        ("monday-friday 08:00-17:00", "mon-fri 08:00-17:00"),
        ("mon wed 09:00-10:00", "mon,wed 09:00-10:00"),
        ("24/7", "24/7"),
        ("always", "24/7"),
        ("ALWAYS", "24/7"),
        ("sun-sat 00:00-24:00", "24/7"),
        ("mon-sun 00:00-12:00 12:00-24:00", "24/7"),
        ("fri-mon 10:00-14:00", "fri-mon 10:00-14:00"),
        ("sat,sun 10:00-12:00", "sat-sun 10:00-12:00"),
        ("mon 09:00-12:00 11:00-13:00", "mon 09:00-13:00"),
        ("mon-fri 08:00-17:00; mon 18:00-20:00", "mon 08:00-17:00 18:00-20:00; tue-fri 08:00-17:00"),
        ("sat 09:00-13:00; mon-fri 08:00-17:00;", "mon-fri 08:00-17:00; sat 09:00-13:00"),
        ("mon 20:00-24:00", "mon 20:00-24:00"),
        ("never", "never"),
    ],
)
def test_parse_business_hours_accepts_schedules_and_prints_them_canonically(
    text: str, canonical: str
) -> None:
    hours = parse_business_hours(text)
    assert hours.canonical() == canonical
    assert str(hours) == canonical
    assert parse_business_hours(canonical) == hours


def test_parse_business_hours_builds_the_default_schedule() -> None:
    assert parse_business_hours("mon-fri 08:00-17:00") == BusinessHours(MONDAY_TO_FRIDAY)


def test_business_hours_written_differently_but_meaning_the_same_are_equal() -> None:
    assert parse_business_hours("fri-mon 09:00-10:00") == parse_business_hours(
        "mon,fri,sat,sun 09:00-10:00"
    )
    assert parse_business_hours("mon 09:00-12:00 12:00-17:00") == parse_business_hours(
        "mon 09:00-17:00"
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty business hours"),
        (";", "empty business hours"),
        ("mon 22:00-06:00", "crosses midnight, split it as 22:00-24:00"),
        ("mon 09:00-09:00", "is empty"),
        ("mon 24:00-24:00", "starts at 24:00"),
        ("mon 09:00-24:30", "bad time '24:30'"),
        ("mon 9am-5pm", "bad time '9am'"),
        ("mon 09:60-10:00", "bad time '09:60'"),
        ("mon 09:00", "bad time range '09:00'"),
        ("sat", "needs a time range"),
        ("09:00-17:00", "needs days first"),
        ("funday 09:00-17:00", "unknown day 'funday'"),
        ("mon-tue-wed 09:00-17:00", "bad day range"),
        ("mon 09:00-12:00 tue 13:00-14:00", "separate day groups with ';'"),
        ("weekdays 09:00-17:00", "unknown day"),
    ],
)
def test_parse_business_hours_refuses_bad_schedules_naming_the_accepted_form(
    text: str, reason: str
) -> None:
    with pytest.raises(UsageError) as raised:
        parse_business_hours(text)
    message = str(raised.value)
    assert reason in message
    assert "mon-fri 08:00-17:00; sat 09:00-13:00" in message
    assert "\n" not in message


def test_business_hours_constructor_rejects_impossible_ranges() -> None:
    with pytest.raises(ValueError):
        BusinessHours((((0, 1500),),) + ((),) * 6)
    with pytest.raises(ValueError):
        BusinessHours(((),) * 6)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (utc(2026, 11, 30, 7, 59, 59), False),  # Monday, before opening
        (utc(2026, 11, 30, 8, 0), True),  # opening minute is included
        (utc(2026, 11, 30, 16, 59, 59), True),
        (utc(2026, 11, 30, 17, 0), False),  # closing minute is excluded
        (utc(2026, 12, 5, 10, 0), False),  # Saturday
    ],
)
def test_is_open_includes_start_and_excludes_end(at: datetime, expected: bool) -> None:
    assert parse_business_hours("mon-fri 08:00-17:00").is_open(at, ZoneInfo("UTC")) is expected


def test_is_open_until_24_00_covers_the_last_minute_of_the_day() -> None:
    hours = parse_business_hours("mon 20:00-24:00")
    assert hours.is_open(utc(2026, 11, 30, 23, 59, 59), ZoneInfo("UTC"))
    assert not hours.is_open(utc(2026, 12, 1, 0, 0), ZoneInfo("UTC"))


def test_is_open_follows_london_spring_forward() -> None:
    hours = parse_business_hours("mon-sun 08:00-17:00")
    # Saturday 28 March 2026 is on GMT (UTC+0), Sunday 29 March on BST (UTC+1).
    assert not hours.is_open(utc(2026, 3, 28, 7, 30), LONDON)
    assert hours.is_open(utc(2026, 3, 29, 7, 30), LONDON)
    assert hours.is_open(utc(2026, 3, 28, 16, 30), LONDON)
    assert not hours.is_open(utc(2026, 3, 29, 16, 30), LONDON)


def test_is_open_never_opens_a_range_inside_the_skipped_hour() -> None:
    # In London 01:00-02:00 does not happen on 29 March 2026.
    hours = parse_business_hours("sun 01:00-02:00")
    for minutes in range(0, 180, 5):
        assert not hours.is_open(utc(2026, 3, 29) + timedelta(minutes=minutes), LONDON)
    assert hours.is_open(utc(2026, 4, 5, 0, 30), LONDON)


def test_is_open_keeps_a_range_open_through_the_repeated_hour_at_london_fall_back() -> None:
    # On 25 October 2026 London wall time runs 01:00-02:00 twice.
    hours = parse_business_hours("sun 01:00-02:00")
    assert not hours.is_open(utc(2026, 10, 24, 23, 59), LONDON)
    assert hours.is_open(utc(2026, 10, 25, 0, 0), LONDON)  # 01:00 BST
    assert hours.is_open(utc(2026, 10, 25, 0, 59), LONDON)  # 01:59 BST
    assert hours.is_open(utc(2026, 10, 25, 1, 0), LONDON)  # 01:00 GMT
    assert hours.is_open(utc(2026, 10, 25, 1, 59), LONDON)  # 01:59 GMT
    assert not hours.is_open(utc(2026, 10, 25, 2, 0), LONDON)  # 02:00 GMT


def test_is_open_follows_new_york_clock_changes() -> None:
    hours = parse_business_hours("mon-fri 09:00-17:00")
    # Friday 6 March 2026 is EST (UTC-5); Monday 9 March is EDT (UTC-4).
    assert not hours.is_open(utc(2026, 3, 6, 13, 30), NEW_YORK)
    assert hours.is_open(utc(2026, 3, 9, 13, 30), NEW_YORK)
    assert hours.is_open(utc(2026, 3, 9, 20, 59), NEW_YORK)
    assert not hours.is_open(utc(2026, 3, 9, 21, 0), NEW_YORK)
    # Friday 30 October is EDT; Monday 2 November is EST again.
    assert hours.is_open(utc(2026, 10, 30, 13, 30), NEW_YORK)
    assert not hours.is_open(utc(2026, 11, 2, 13, 30), NEW_YORK)
    assert hours.is_open(utc(2026, 11, 2, 14, 0), NEW_YORK)


def test_is_open_in_new_york_fall_back_night() -> None:
    hours = parse_business_hours("sun 01:00-02:00")
    assert hours.is_open(utc(2026, 11, 1, 5, 30), NEW_YORK)  # 01:30 EDT
    assert hours.is_open(utc(2026, 11, 1, 6, 30), NEW_YORK)  # 01:30 EST
    assert not hours.is_open(utc(2026, 11, 1, 7, 0), NEW_YORK)  # 02:00 EST


def test_is_open_in_johannesburg_has_no_clock_changes() -> None:
    hours = parse_business_hours("mon-fri 08:00-17:00")
    for day in (date(2026, 3, 30), date(2026, 7, 6), date(2026, 11, 2)):
        opening = datetime(day.year, day.month, day.day, 6, 0, tzinfo=timezone.utc)
        assert hours.is_open(opening, JOHANNESBURG)
        assert not hours.is_open(opening - timedelta(seconds=1), JOHANNESBURG)
        assert not hours.is_open(opening + timedelta(hours=9), JOHANNESBURG)


def test_is_open_uses_the_local_weekday_not_the_utc_one() -> None:
    hours = parse_business_hours("sat 00:00-02:00")
    # Friday 23:30 UTC is already Saturday 01:30 in Johannesburg.
    assert hours.is_open(utc(2026, 12, 4, 23, 30), JOHANNESBURG)
    assert not hours.is_open(utc(2026, 12, 4, 23, 30), ZoneInfo("UTC"))


def test_is_open_is_closed_all_day_on_a_local_holiday() -> None:
    always = parse_business_hours("24/7")
    christmas = frozenset({date(2026, 12, 25)})
    # 22:30 UTC on the 24th is already 00:30 on the 25th in Johannesburg.
    assert not always.is_open(utc(2026, 12, 24, 22, 30), JOHANNESBURG, christmas)
    assert always.is_open(utc(2026, 12, 24, 21, 59), JOHANNESBURG, christmas)
    assert always.is_open(utc(2026, 12, 24, 22, 30), ZoneInfo("UTC"), christmas)
    assert always.is_open(utc(2026, 12, 25, 22, 0), JOHANNESBURG, christmas)


def test_is_open_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError):
        parse_business_hours("24/7").is_open(datetime(2026, 11, 30, 9), LONDON)


def test_never_is_always_closed() -> None:
    assert not parse_business_hours("never").is_open(NOW, LONDON)


opening_ranges = st.tuples(
    st.integers(min_value=0, max_value=1439), st.integers(min_value=1, max_value=1440)
).filter(lambda opening: opening[0] < opening[1])
weeks = st.lists(st.lists(opening_ranges, max_size=4).map(tuple), min_size=7, max_size=7).map(tuple)


@given(weeks)
def test_business_hours_canonical_text_reads_back_equal(week) -> None:
    hours = BusinessHours(week)
    assert parse_business_hours(hours.canonical()) == hours


@given(weeks, st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                           timezones=st.just(timezone.utc)),
       st.sampled_from([LONDON, NEW_YORK, JOHANNESBURG]))
def test_is_open_agrees_with_the_canonical_text(week, at: datetime, zone: ZoneInfo) -> None:
    hours = BusinessHours(week)
    assert parse_business_hours(str(hours)).is_open(at, zone) == hours.is_open(at, zone)


# ---------------------------------------------------------------------------
# Holidays


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", frozenset()),
        ("   ", frozenset()),
        ("2026-12-25", frozenset({date(2026, 12, 25)})),
        ("2026-12-25, 2026-12-26", frozenset({date(2026, 12, 25), date(2026, 12, 26)})),
        ("2026-12-26 2026-12-25\n2027-01-01", frozenset({date(2026, 12, 25), date(2026, 12, 26), date(2027, 1, 1)})),
        ("2026-12-25,2026-12-25", frozenset({date(2026, 12, 25)})),
    ],
)
def test_parse_holidays_accepts_comma_or_space_separated_dates(
    text: str, expected: frozenset[date]
) -> None:
    assert parse_holidays(text) == expected


@pytest.mark.parametrize("text", ["christmas", "2026-13-01", "2026-02-30", "20261225", "25/12/2026"])
def test_parse_holidays_refuses_anything_but_iso_dates(text: str) -> None:
    with pytest.raises(UsageError, match="use dates like 2026-12-25"):
        parse_holidays(f"2026-01-01, {text}")


def test_format_holidays_sorts_and_separates_with_commas() -> None:
    holidays = {date(2026, 12, 26), date(2026, 1, 1), date(2026, 12, 25)}
    assert format_holidays(holidays) == "2026-01-01, 2026-12-25, 2026-12-26"
    assert format_holidays(frozenset()) == ""
    assert parse_holidays(format_holidays(holidays)) == holidays


# ---------------------------------------------------------------------------
# Garbage in: a value or a UsageError, never another exception

# Characters the parsers care about, so that generated text gets past the
# first check often enough to exercise the deeper ones.
TIME_ALPHABET = st.sampled_from(list("0123456789PTWDHMSYpwdhmsz.,:-+/; ZTmonfriatusew\n"))
garbage = st.one_of(st.text(), st.text(TIME_ALPHABET))


def value_or_usage_error(parse, *arguments) -> None:
    try:
        parse(*arguments)
    except UsageError as error:
        assert "\n" not in str(error)


@given(garbage)
def test_parse_duration_never_fails_with_anything_but_usage_error(text: str) -> None:
    value_or_usage_error(parse_duration, text)


@given(garbage, st.sampled_from([None, LONDON, NEW_YORK, JOHANNESBURG]))
def test_parse_timestamp_never_fails_with_anything_but_usage_error(text: str, zone) -> None:
    value_or_usage_error(parse_timestamp, text, zone)


@given(garbage, st.sampled_from([NOW, utc(1, 1, 1), utc(9999, 12, 31, 23, 59)]))
def test_parse_relative_or_timestamp_never_fails_with_anything_but_usage_error(
    text: str, now: datetime
) -> None:
    value_or_usage_error(parse_relative_or_timestamp, text, now, LONDON)


@settings(deadline=None)
@given(st.one_of(st.text(), st.text(st.sampled_from(list("abcdefghijklmnopqrstuvwxyzEUA/_.-+0123\x00")))))
def test_parse_zone_never_fails_with_anything_but_usage_error(text: str) -> None:
    value_or_usage_error(parse_zone, text)


@given(garbage)
def test_parse_business_hours_never_fails_with_anything_but_usage_error(text: str) -> None:
    value_or_usage_error(parse_business_hours, text)


@given(garbage)
def test_parse_holidays_never_fails_with_anything_but_usage_error(text: str) -> None:
    value_or_usage_error(parse_holidays, text)
