"""Schedules: crontab parsing (spec §2.10), slots (§4.7) and DST (domain.md, peers.md §3.2-3.3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec
import pytest
from dateutil.rrule import MONTHLY, YEARLY, rrule
from hypothesis import given
from hypothesis import strategies as st

from monitor_es.domain.schedule import (
    CrontabSchedule,
    IntervalSchedule,
    IntervalUnit,
    Schedule,
    ScheduleError,
    next_expected,
    parse_crontab,
    prev_expected,
)

MINUTE = timedelta(minutes=1)
RIGA = "Europe/Riga"
NEW_YORK = "America/New_York"


def at(text: str) -> datetime:
    """An aware datetime from ISO 8601 (`Z` or an explicit offset)."""
    return datetime.fromisoformat(text)


def utc(text: str) -> datetime:
    return at(text).astimezone(UTC)


def chain(schedule: Schedule, tz: str, start: datetime, count: int) -> list[datetime]:
    """Successive next_expected values, each computed from the previous one."""
    results = []
    for _ in range(count):
        start = next_expected(schedule, tz, start)
        results.append(start)
    return results


# --- Parsing (spec §2.10) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expr"),
    [
        ("0 12 * * *", "0 12 * * *"),
        ("  0   12\t* *\n*  ", "0 12 * * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        (" @DAILY ", "0 0 * * *"),
        ("0 0 * * MON-FRI", "0 0 * * MON-FRI"),
    ],
)
def test_parse_collapses_whitespace_and_expands_aliases(text: str, expr: str) -> None:
    assert parse_crontab(text) == CrontabSchedule(expr=expr)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("@reboot", "Schedule was not parseable"),
        ("@midnight", "Schedule was not parseable"),
        ("@every 5m", "Schedule was not parseable"),
        ("* * * * * *", "Only 5 field crontab syntax is supported"),
        ("0 0 * * * * 2030", "Only 5 field crontab syntax is supported"),
        ("* * * *", "Schedule is invalid"),
        ("", "Schedule is invalid"),
        ("60 * * * *", "Schedule is invalid"),
        ("*/0 * * * *", "Schedule is invalid"),
        ("* 24 * * *", "Schedule is invalid"),
        ("* * * * 1#0", "Schedule is invalid"),
        ("foo bar baz qux quux", "Schedule is invalid"),
        ("R * * * *", "Schedule is invalid"),
        ("H * * * *", "Schedule is invalid"),
        ("* * 31 2 *", "Schedule is invalid"),
        ("* * 30 2 *", "Schedule is invalid"),
        ("1 1 */100 * MON#4", "Schedule is invalid"),
    ],
)
def test_parse_rejects_bad_crontabs_with_the_spec_message(text: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_crontab(text)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("1 1 L * *", ["2020-01-31T01:01", "2020-02-29T01:01"]),
        ("1 1 * * 1#2", ["2020-01-13T01:01", "2020-02-10T01:01"]),
        # A day-of-week field starting with `*` ANDs with day-of-month (peers.md §3.8).
        ("1 1 1-7 * */7", ["2020-01-05T01:01", "2020-02-02T01:01", "2020-03-01T01:01"]),
        ("1 1 */100,1-7 * MON", ["2020-01-06T01:01", "2020-02-03T01:01", "2020-03-02T01:01"]),
        ("1 1 * * */3", ["2020-01-01T01:01", "2020-01-04T01:01", "2020-01-05T01:01"]),
        ("0 0 29 2 *", ["2020-02-29T00:00", "2024-02-29T00:00"]),
    ],
)
def test_crontab_dialect_matches_the_cron_acceptance_cases(expr: str, expected: list[str]) -> None:
    results = chain(parse_crontab(expr), "UTC", at("2020-01-01T00:00Z"), len(expected))
    assert results == [utc(text + "Z") for text in expected]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        # croniter 7 reads `a-a` as every value: `5-5 * * * *` ran every minute.
        ("5-5 * * * *", ["2020-01-01T00:05", "2020-01-01T01:05"]),
        ("5-5/10 * * * *", ["2020-01-01T00:05", "2020-01-01T01:05"]),
        ("0 0 * 2-2 *", ["2020-02-01T00:00", "2020-02-02T00:00"]),
        ("0 0 * FEB-feb *", ["2020-02-01T00:00", "2020-02-02T00:00"]),
        ("0 0 * * MON-MON", ["2020-01-06T00:00", "2020-01-13T00:00"]),
        # Both day fields restricted: cron ORs them, also with `#` (croniter ANDed it).
        ("0 0 1 * 1#2", ["2020-01-13T00:00", "2020-02-01T00:00", "2020-02-10T00:00"]),
        ("0 0 1 1 1#1", ["2020-01-06T00:00", "2021-01-01T00:00", "2021-01-04T00:00"]),
        ("0 0 L * 1#2", ["2020-01-13T00:00", "2020-01-31T00:00", "2020-02-10T00:00"]),
        ("0 0 13 * FRI", ["2020-01-03T00:00", "2020-01-10T00:00", "2020-01-13T00:00"]),
        ("0 0 31 2 MON", ["2020-02-03T00:00", "2020-02-10T00:00"]),
        # `<weekday>L`: the last such weekday of the month (CronSim's, Sentry's parser).
        ("0 0 * * 5L", ["2020-01-31T00:00", "2020-02-28T00:00", "2020-03-27T00:00"]),
        ("0 0 * * 7L", ["2020-01-26T00:00", "2020-02-23T00:00"]),  # 7 is Sunday too
        (
            "0 0 * * 5l,1",
            [
                "2020-01-06T00:00",
                "2020-01-13T00:00",
                "2020-01-20T00:00",
                "2020-01-27T00:00",
                "2020-01-31T00:00",
                "2020-02-03T00:00",
            ],
        ),
        ("0 0 13 * 5L", ["2020-01-13T00:00", "2020-01-31T00:00", "2020-02-13T00:00"]),
        ("30 2 * 2 1L", ["2020-02-24T02:30", "2021-02-22T02:30"]),
        # `LW`: the last weekday (Monday to Friday) of the month, which croniter lacks.
        ("1 1 LW 5 *", ["2020-05-29T01:01", "2021-05-31T01:01", "2022-05-31T01:01"]),
        (
            "1 1 LW * *",
            [
                "2020-01-31T01:01",
                "2020-02-28T01:01",
                "2020-03-31T01:01",
                "2020-04-30T01:01",
                "2020-05-29T01:01",
            ],
        ),
        ("1 1 lw,15 * *", ["2020-01-15T01:01", "2020-01-31T01:01", "2020-02-15T01:01"]),
        (
            "1 1 LW * MON",
            [
                "2020-01-06T01:01",
                "2020-01-13T01:01",
                "2020-01-20T01:01",
                "2020-01-27T01:01",
                "2020-01-31T01:01",
            ],
        ),
    ],
)
def test_single_value_ranges_and_ored_day_fields_follow_cron(
    expr: str, expected: list[str]
) -> None:
    results = chain(parse_crontab(expr), "UTC", at("2020-01-01T00:00Z"), len(expected))
    assert results == [utc(text + "Z") for text in expected]
    # prev walks the same slots back.
    walked = [
        prev_expected(parse_crontab(expr), "UTC", at("2000-01-01T00:00Z"), r) for r in results[1:]
    ]
    assert walked == results[:-1]


@pytest.mark.parametrize(
    "text",
    ["* * 5-1 * *", "0 22-2 * * *", "50-10 * * * *", "0 0 * * SAT-SUN",
     # peers.md §3.8: malformed last-day forms.
     "1 1 LL * *", "1 1 LWX * *", "1 1 * * LW", "1 1 LW/2 * *", "1 1 * * 5L-6", "1 1 * * MONL"],
)  # fmt: skip
def test_reversed_ranges_and_malformed_last_days_are_invalid(text: str) -> None:
    # peers.md §3.8: cron (and cronsim, which Sentry uses) rejects them; croniter wrapped
    # around. Spec §2.10: what CronSim refuses is "Schedule is invalid".
    with pytest.raises(ScheduleError, match="Schedule is invalid"):
        parse_crontab(text)


def test_schedules_round_trip_through_msgspec_with_their_tags() -> None:
    schedules: list[Schedule] = [parse_crontab("0 * * * *"), IntervalSchedule(3, "day")]
    encoded = msgspec.json.encode(schedules)
    assert b'"type":"crontab"' in encoded
    assert b'"type":"interval"' in encoded
    assert msgspec.json.decode(encoded, type=list[Schedule]) == schedules


# --- Crontab slots (spec §4.7) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "tz", "ref", "expected"),
    [
        ("* * * * *", "UTC", "2019-01-01T01:10:20Z", "2019-01-01T01:11Z"),
        ("*/5 * * * *", "UTC", "2019-01-01T01:10:20Z", "2019-01-01T01:15Z"),
        ("0 * * * *", "UTC", "2019-01-01T05:30:00Z", "2019-01-01T06:00Z"),
        ("30 * * * *", "UTC", "2019-01-01T05:30:00Z", "2019-01-01T06:30Z"),
        ("* * * * *", "UTC", "2019-01-01T01:10:00Z", "2019-01-01T01:11Z"),
        ("0 12 * * *", "Europe/Berlin", "2019-01-01T01:10:20Z", "2019-01-01T11:00Z"),
        ("0 12 * * *", "Asia/Kolkata", "2019-01-01T06:30:00Z", "2019-01-02T06:30Z"),
        ("0 0 * * *", "US/Arizona", "2019-01-31T07:00:00Z", "2019-02-01T07:00Z"),
    ],
)
def test_next_crontab_slot_is_strictly_after_the_reference_minute(
    expr: str, tz: str, ref: str, expected: str
) -> None:
    result = next_expected(parse_crontab(expr), tz, at(ref))
    assert result == at(expected)
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("expr", "ref", "expected"),
    [
        ("* * * * *", "2019-01-01T12:00:00Z", "2019-01-01T11:59Z"),
        ("* * * * *", "2019-01-01T12:00:30Z", "2019-01-01T12:00Z"),
        ("*/5 * * * *", "2019-01-01T01:10:00Z", "2019-01-01T01:05Z"),
        ("*/5 * * * *", "2019-01-01T01:14:59Z", "2019-01-01T01:10Z"),
        ("0 0 1 1 *", "2019-06-01T00:00:00Z", "2019-01-01T00:00Z"),
    ],
)
def test_prev_crontab_slot_is_strictly_before_the_reference(
    expr: str, ref: str, expected: str
) -> None:
    start = at("2000-01-01T00:00Z")  # ignored by crontabs
    assert prev_expected(parse_crontab(expr), "UTC", start, at(ref)) == at(expected)


# --- DST: Debian cron rules (peers.md §3.2, Europe/Riga 2021, America/New_York 2024) -----------

HOURS_0_TO_23 = ",".join(str(h) for h in range(24))
ODD_HOURS = ",".join(str(h) for h in range(1, 24, 2))
FALL_EVERY_15 = [f"2021-10-31T03:{m:02}+03:00" for m in (0, 15, 30, 45)] + [
    f"2021-10-31T03:{m:02}+02:00" for m in (0, 15, 30, 45)
]

DST_TABLE = [
    ("0 * * * *", RIGA, "2021-03-28T01:30+02:00", ["02:00+02:00", "04:00+03:00"]),
    ("0 * * * *", RIGA, "2021-10-31T01:30+03:00", ["02:00+03", "03:00+03", "03:00+02", "04:00+02"]),
    ("*/30 * * * *", RIGA, "2021-03-28T02:10+02:00", ["02:30+02", "04:00+03", "04:30+03"]),
    (
        "*/30 * * * *",
        RIGA,
        "2021-10-31T02:10+03:00",
        ["02:30+03", "03:00+03", "03:30+03", "03:00+02", "03:30+02", "04:00+02"],
    ),
    ("*/15 * * * *", RIGA, "2021-03-28T02:40+02:00", ["02:45+02", "04:00+03"]),
    (
        "*/15 * * * *",
        RIGA,
        "2021-10-31T02:40+03:00",
        ["2021-10-31T02:45+03:00", *FALL_EVERY_15, "2021-10-31T04:00+02:00"],
    ),
    ("0 */2 * * *", RIGA, "2021-03-28T01:30+02:00", ["02:00+02", "04:00+03", "06:00+03"]),
    ("0 */2 * * *", RIGA, "2021-10-31T01:30+03:00", ["02:00+03", "04:00+02", "06:00+02"]),
    ("30 */2 * * *", RIGA, "2021-03-28T01:30+02:00", ["02:30+02", "04:30+03"]),
    ("30 */2 * * *", RIGA, "2021-10-31T01:30+03:00", ["02:30+03", "04:30+02"]),
    ("0 */3 * * *", RIGA, "2021-10-31T01:30+03:00", ["03:00+03", "03:00+02", "06:00+02"]),
    ("0 1,2,3,4,5 * * *", RIGA, "2021-03-28T01:30+02:00", ["02:00+02", "04:00+03", "05:00+03"]),
    ("0 1,2,3,4,5 * * *", RIGA, "2021-10-31T01:30+03:00", ["02:00+03", "03:00+03", "04:00+02"]),
    ("30 1,2,3,4,5 * * *", RIGA, "2021-03-28T01:30+02:00", ["02:30+02", "04:00+03", "04:30+03"]),
    ("30 1,2,3,4,5 * * *", RIGA, "2021-10-31T01:30+03:00", ["02:30+03", "03:30+03", "04:30+02"]),
    ("0 2 * * *", RIGA, "2021-03-28T01:30+02:00", ["2021-03-28T02:00+02", "2021-03-29T02:00+03"]),
    ("0 2 * * *", RIGA, "2021-10-31T01:30+03:00", ["2021-10-31T02:00+03", "2021-11-01T02:00+02"]),
    (
        "0 3 * * *",
        RIGA,
        "2021-03-27T01:30+02:00",
        ["2021-03-27T03:00+02", "2021-03-28T04:00+03", "2021-03-29T03:00+03"],
    ),
    ("0 3 * * *", RIGA, "2021-10-31T01:30+03:00", ["2021-10-31T03:00+03", "2021-11-01T03:00+02"]),
    (
        "0 4 * * *",
        RIGA,
        "2021-03-27T01:30+02:00",
        ["2021-03-27T04:00+02", "2021-03-28T04:00+03", "2021-03-29T04:00+03"],
    ),
    (
        "0 4 * * *",
        RIGA,
        "2021-10-30T01:30+03:00",
        ["2021-10-30T04:00+03", "2021-10-31T04:00+02", "2021-11-01T04:00+02"],
    ),
    (
        f"0 {HOURS_0_TO_23} * * *",
        RIGA,
        "2021-03-28T01:30+02:00",
        ["02:00+02", "04:00+03", "05:00+03"],
    ),
    (
        f"0 {HOURS_0_TO_23} * * *",
        RIGA,
        "2021-10-31T01:30+03:00",
        ["02:00+03", "03:00+03", "04:00+02"],
    ),
    (f"0 {ODD_HOURS} * * *", RIGA, "2021-03-28T00:30+02:00", ["01:00+02", "04:00+03", "05:00+03"]),
    (f"0 {ODD_HOURS} * * *", RIGA, "2021-10-31T00:30+03:00", ["01:00+03", "03:00+03", "05:00+02"]),
    ("0 1-5 * * *", RIGA, "2021-03-28T01:30+02:00", ["02:00+02", "04:00+03", "05:00+03"]),
    ("0 1-5 * * *", RIGA, "2021-10-31T01:30+03:00", ["02:00+03", "03:00+03", "04:00+02"]),
    (
        "15 3 * * *",
        RIGA,
        "2021-03-27T00:00+02:00",
        ["2021-03-27T03:15+02", "2021-03-28T04:00+03", "2021-03-29T03:15+03"],
    ),
    (
        "15 3 * * *",
        RIGA,
        "2021-10-30T00:00+03:00",
        ["2021-10-30T03:15+03", "2021-10-31T03:15+03", "2021-11-01T03:15+02"],
    ),
    ("* * * * *", RIGA, "2021-03-28T02:58+02:00", ["02:59+02", "04:00+03"]),
    ("* * * * *", RIGA, "2021-10-31T03:58+03:00", ["03:59+03", "03:00+02", "03:01+02"]),
    ("* 1-6 * * *", RIGA, "2021-03-28T02:58+02:00", ["02:59+02", "04:00+03"]),
    ("* 1-6 * * *", RIGA, "2021-10-31T03:58+03:00", ["03:59+03", "03:00+02", "03:01+02"]),
    # America/New_York (Sentry's test_schedule.py and derived rows).
    ("* * * * *", NEW_YORK, "2024-11-03T01:59-04:00", ["01:00-05:00"]),
    ("* * * * *", NEW_YORK, "2024-03-10T01:59-05:00", ["03:00-04:00"]),
    ("0 12 * * *", NEW_YORK, "2024-11-02T12:00-04:00", ["2024-11-03T12:00-05:00"]),
    ("0 12 * * *", NEW_YORK, "2024-03-09T12:00-05:00", ["2024-03-10T12:00-04:00"]),
    (
        "30 2 * * *",
        NEW_YORK,
        "2024-03-09T12:00-05:00",
        ["2024-03-10T03:00-04:00", "2024-03-11T02:30-04:00"],
    ),
    (
        "30 1 * * *",
        NEW_YORK,
        "2024-11-02T12:00-04:00",
        ["2024-11-03T01:30-04:00", "2024-11-04T01:30-05:00"],
    ),
    (
        "*/30 * * * *",
        NEW_YORK,
        "2024-11-03T00:50-04:00",
        ["01:00-04", "01:30-04", "01:00-05", "01:30-05", "02:00-05"],
    ),
]


def expand(start: str, result: str) -> datetime:
    """A table result: a full ISO instant, or a local time on the start's date."""
    if "T" not in result:
        result = f"{start[:10]}T{result}"
    if result[-3] in "+-":
        result += ":00"  # `+03` is short for `+03:00`
    return utc(result)


@pytest.mark.parametrize(("expr", "tz", "start", "results"), DST_TABLE)
def test_next_follows_debian_cron_across_dst(
    expr: str, tz: str, start: str, results: list[str]
) -> None:
    expected = [expand(start, result) for result in results]
    assert chain(parse_crontab(expr), tz, at(start), len(expected)) == expected


@pytest.mark.parametrize(("expr", "tz", "start", "results"), DST_TABLE)
def test_prev_walks_the_same_dst_slots_backwards(
    expr: str, tz: str, start: str, results: list[str]
) -> None:
    expected = [expand(start, result) for result in results]
    schedule = parse_crontab(expr)
    walked = [prev_expected(schedule, tz, at(start), slot) for slot in expected[1:]]
    assert walked == expected[:-1]


def test_fixed_time_job_in_skipped_hour_runs_when_the_gap_ends() -> None:
    result = next_expected(parse_crontab("15 3 * * *"), RIGA, utc("2021-03-28T00:00+02:00"))
    assert result == utc("2021-03-28T04:00+03:00")


def test_fixed_time_job_runs_at_the_gap_end_from_the_last_minute_before_it() -> None:
    ref = at("2021-03-28T02:59+02:00")
    schedule = parse_crontab("15 3 * * *")
    assert next_expected(schedule, RIGA, ref) == utc("2021-03-28T04:00+03:00")
    assert prev_expected(schedule, RIGA, ref, utc("2021-03-28T04:01+03:00")) == utc(
        "2021-03-28T04:00+03:00"
    )


def test_fixed_time_job_runs_once_in_a_repeated_hour() -> None:
    results = chain(parse_crontab("15 3 * * *"), RIGA, utc("2021-10-31T00:00+03:00"), 2)
    assert results == [utc("2021-10-31T03:15+03:00"), utc("2021-11-01T03:15+02:00")]


def test_wildcard_job_runs_twice_in_a_repeated_hour() -> None:
    results = chain(parse_crontab("15 * * * *"), RIGA, utc("2021-10-31T03:00+03:00"), 2)
    assert results == [utc("2021-10-31T03:15+03:00"), utc("2021-10-31T03:15+02:00")]


def test_next_from_the_second_pass_of_a_repeated_hour_is_after_the_ping() -> None:
    # peers.md §3.3: cronsim answers 03:15+03:00 (00:15Z), before this ping.
    ping = at("2021-10-31T01:10:00Z")
    assert next_expected(parse_crontab("15 3 * * *"), RIGA, ping) == at("2021-11-01T01:15Z")


def test_next_from_the_second_1am_in_new_york_is_after_the_ping() -> None:
    # peers.md §3.3: 01:15 EDT (05:15Z) would precede this 01:10 EST ping.
    ping = at("2024-11-03T06:10:00Z")
    result = next_expected(parse_crontab("15 1 * * *"), NEW_YORK, ping)
    assert result > ping
    assert result == utc("2024-11-04T01:15-05:00")


def test_rare_wildcard_job_runs_in_the_second_pass_of_its_repeated_hour() -> None:
    # The next naive match is a year away; the repeated hour tonight must not be stepped over.
    schedule = parse_crontab("*/30 1 3 11 *")
    ref = utc("2024-11-03T01:45-04:00")
    assert next_expected(schedule, NEW_YORK, ref) == utc("2024-11-03T01:00-05:00")
    assert prev_expected(schedule, NEW_YORK, ref, utc("2025-01-01T00:00Z")) == utc(
        "2024-11-03T01:30-05:00"
    )


def test_slot_between_two_offset_changes_is_found_when_both_ends_share_an_offset() -> None:
    # 2027-10-25 03:00 is summer time again, like the ref: two changes lie in between.
    schedule = parse_crontab("*/30 3 25 10 *")
    ref = utc("2026-10-25T03:45+03:00")
    assert next_expected(schedule, RIGA, ref) == utc("2026-10-25T03:00+02:00")
    later = utc("2027-10-25T02:00+03:00")
    assert prev_expected(schedule, RIGA, ref, later) == utc("2026-10-25T03:30+02:00")


def test_half_hour_dst_shift_of_lord_howe_is_a_skipped_half_hour() -> None:
    # Australia/Lord_Howe springs forward 30 minutes: 02:00+10:30 -> 02:30+11:00.
    tz = "Australia/Lord_Howe"
    fixed = chain(parse_crontab("15 2 * * *"), tz, utc("2024-10-06T01:00+10:30"), 2)
    assert fixed == [utc("2024-10-06T02:30+11:00"), utc("2024-10-07T02:15+11:00")]
    wildcard = chain(parse_crontab("*/15 * * * *"), tz, utc("2024-10-06T01:50+10:30"), 2)
    assert wildcard == [utc("2024-10-06T02:30+11:00"), utc("2024-10-06T02:45+11:00")]


# --- A brute-force oracle around transitions ---------------------------------------------------


def field_matches(field: str, value: int, low: int, high: int) -> bool:
    """Whether a numeric cron field (lists, ranges, steps, `*`) admits `value`."""
    for part in field.split(","):
        base, _, step = part.partition("/")
        first, last = (
            (low, high) if base == "*" else (int(base.split("-")[0]), int(base.split("-")[-1]))
        )
        if first <= value <= last and (value - first) % int(step or 1) == 0:
            return True
    return False


def oracle_slots(expr: str, tz: str, lo: datetime, hi: datetime) -> list[datetime]:
    """Every slot in [lo, hi) by the Debian definition, checked minute by minute."""
    minute_field, hour_field = expr.split()[:2]
    fixed = not any(c in minute_field + hour_field for c in "*/")

    def matches(wall: datetime) -> bool:
        return field_matches(minute_field, wall.minute, 0, 59) and field_matches(
            hour_field, wall.hour, 0, 23
        )

    zone, slots, instant = ZoneInfo(tz), [], lo
    while instant < hi:
        local = instant.astimezone(zone)
        before = (instant - MINUTE).astimezone(zone).utcoffset()
        after = local.utcoffset()
        assert before is not None and after is not None
        real = matches(local) and not (fixed and local.fold == 1)
        jumped = False
        if fixed and after > before:  # the walls in [before, after) were skipped
            gap_start = instant.replace(tzinfo=None) + before
            skipped = (gap_start + k * MINUTE for k in range((after - before) // MINUTE))
            jumped = any(matches(wall) for wall in skipped)
        if real or jumped:
            slots.append(instant)
        instant += MINUTE
    return slots


TRANSITIONS = [
    (RIGA, "2021-03-28T01:00Z"),
    (RIGA, "2021-10-31T01:00Z"),
    (NEW_YORK, "2024-03-10T07:00Z"),
    (NEW_YORK, "2024-11-03T06:00Z"),
    ("Australia/Lord_Howe", "2024-04-06T15:00Z"),
    ("Australia/Lord_Howe", "2024-10-05T15:30Z"),
]
ORACLE_EXPRS = [
    "* * * * *",
    "*/20 * * * *",
    "0 * * * *",
    "30 */2 * * *",
    "15 1-4 * * *",
    "0,30 1,2,3 * * *",
    "0-59 2 * * *",
    "45 3 * * *",
    "10 2 * * *",
]


@pytest.mark.parametrize(("tz", "transition"), TRANSITIONS)
@pytest.mark.parametrize("expr", ORACLE_EXPRS)
def test_slots_around_transitions_match_a_minute_by_minute_oracle(
    expr: str, tz: str, transition: str
) -> None:
    center = at(transition)
    lo, hi = center - timedelta(hours=5), center + timedelta(hours=5)
    slots = oracle_slots(expr, tz, lo, hi)
    schedule = parse_crontab(expr)
    # Every 7th minute, plus each minute right around the offset change.
    for minutes in sorted({*range(60, 541, 7), *range(295, 306)}):
        ref = lo + minutes * MINUTE
        later = [slot for slot in slots if slot > ref]
        earlier = [slot for slot in slots if slot < ref]
        if later:
            assert next_expected(schedule, tz, ref) == later[0], ref
        if earlier:
            assert prev_expected(schedule, tz, lo, ref) == earlier[-1], ref


# --- Crontab properties -----------------------------------------------------------------------

REALISTIC_CRONTABS = [
    "* * * * *",
    "*/5 * * * *",
    "*/15 * * * *",
    "0 * * * *",
    "30 * * * *",
    "0 */2 * * *",
    "15 */6 * * *",
    "0 0 * * *",
    "30 2 * * *",
    "15 3 * * *",
    "45 1 * * *",
    "0 12 * * 1-5",
    "0 9,17 * * *",
    "0 0 * * 0",
    "0 0 1 * *",
    "0 0 1 1 *",
    "0 0 29 2 *",
    "*/10 1-4 * * *",
    "0,30 1,2,3 * * *",
    "0 0 L * *",
    "5 4 * * SUN",
]
ZONES = ["UTC", RIGA, NEW_YORK, "Australia/Lord_Howe", "Asia/Kolkata", "Europe/Berlin"]

crontabs = st.sampled_from(REALISTIC_CRONTABS).map(parse_crontab)
zones = st.sampled_from(ZONES)
instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
)


def is_utc_minute(value: datetime) -> bool:
    return value.tzinfo is UTC and value.second == 0 and value.microsecond == 0


@given(crontabs, zones, instants)
def test_next_crontab_slot_is_a_later_utc_minute(
    schedule: Schedule, tz: str, ref: datetime
) -> None:
    result = next_expected(schedule, tz, ref)
    assert result > ref
    assert is_utc_minute(result)
    assert next_expected(schedule, tz, ref.replace(second=0, microsecond=0)) == result


@given(crontabs, zones, instants)
def test_prev_crontab_slot_is_an_earlier_utc_minute(
    schedule: Schedule, tz: str, ref: datetime
) -> None:
    result = prev_expected(schedule, tz, ref, ref)
    assert result < ref
    assert is_utc_minute(result)


@given(crontabs, zones, instants)
def test_next_and_prev_agree_on_the_slots(schedule: Schedule, tz: str, ref: datetime) -> None:
    following = next_expected(schedule, tz, ref)
    preceding = prev_expected(schedule, tz, ref, ref)
    # No slot lies between prev and next: each one skips straight to the other side of ref.
    assert next_expected(schedule, tz, preceding) >= ref
    assert prev_expected(schedule, tz, ref, following) <= ref
    # And each recognises the other's answer as a slot.
    assert prev_expected(schedule, tz, ref, following + MINUTE) == following
    assert next_expected(schedule, tz, preceding - MINUTE) == preceding


# --- Intervals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "unit", "tz", "ref", "expected"),
    [
        (2, "hour", "UTC", "2019-01-01T05:30:00Z", "2019-01-01T07:30Z"),
        (2, "hour", "UTC", "2019-01-01T05:42:00Z", "2019-01-01T07:42Z"),
        (10, "minute", "UTC", "2019-01-01T05:42:59Z", "2019-01-01T05:52Z"),
        (1, "month", "UTC", "2019-01-01T01:10:20Z", "2019-02-01T01:10Z"),
        (1, "day", "UTC", "2019-12-31T23:59:59Z", "2020-01-01T23:59Z"),
        (2, "week", "UTC", "2019-01-01T00:00:00Z", "2019-01-15T00:00Z"),
        # Month ends and leap days are skipped, never clamped (dateutil rrule).
        (1, "month", "UTC", "2019-01-31T01:10:00Z", "2019-03-31T01:10Z"),
        (2, "month", "UTC", "2019-01-31T01:10:00Z", "2019-03-31T01:10Z"),
        (1, "month", "UTC", "2019-03-31T00:00:00Z", "2019-05-31T00:00Z"),
        (1, "month", "UTC", "2019-01-30T00:00:00Z", "2019-03-30T00:00Z"),
        (1, "month", "UTC", "2020-01-29T00:00:00Z", "2020-02-29T00:00Z"),
        (12, "month", "UTC", "2020-02-29T00:00:00Z", "2024-02-29T00:00Z"),
        (1, "year", "UTC", "2020-02-29T08:00:00Z", "2024-02-29T08:00Z"),
        (3, "year", "UTC", "2020-02-29T08:00:00Z", "2032-02-29T08:00Z"),
        (1, "year", "UTC", "2096-02-29T08:00:00Z", "2104-02-29T08:00Z"),
        # Minutes and hours are elapsed time, even across a DST jump.
        (1, "hour", NEW_YORK, "2024-03-10T01:30-05:00", "2024-03-10T03:30-04:00"),
        (1, "hour", NEW_YORK, "2024-11-03T01:30-04:00", "2024-11-03T01:30-05:00"),
        # Days, weeks and months keep the local wall-clock time.
        (1, "day", "Europe/Berlin", "2024-03-30T12:00+01:00", "2024-03-31T12:00+02:00"),
        (1, "week", "Europe/Berlin", "2024-10-24T12:00+02:00", "2024-10-31T12:00+01:00"),
        (1, "month", NEW_YORK, "2024-02-15T09:00-05:00", "2024-03-15T09:00-04:00"),
        # A wall time that is skipped runs when the gap ends; a repeated one runs the first time.
        (1, "day", NEW_YORK, "2024-03-09T02:30-05:00", "2024-03-10T03:00-04:00"),
        (1, "day", NEW_YORK, "2024-11-02T01:30-04:00", "2024-11-03T01:30-04:00"),
        (1, "day", NEW_YORK, "2024-11-03T01:30-05:00", "2024-11-04T01:30-05:00"),
    ],
)
def test_next_interval_slot(
    count: int, unit: IntervalUnit, tz: str, ref: str, expected: str
) -> None:
    result = next_expected(IntervalSchedule(count, unit), tz, at(ref))
    assert result == at(expected)
    assert is_utc_minute(result)


@pytest.mark.parametrize(
    ("count", "unit", "tz", "start", "ref", "expected"),
    [
        (2, "hour", "UTC", "2019-01-01T01:30Z", "2019-01-01T05:35Z", "2019-01-01T05:30Z"),
        (2, "hour", "UTC", "2019-01-01T01:30:45Z", "2019-01-01T05:35Z", "2019-01-01T05:30Z"),
        (2, "hour", "UTC", "2019-01-01T01:30Z", "2019-01-01T05:30Z", "2019-01-01T03:30Z"),
        (2, "hour", "UTC", "2019-01-01T01:30Z", "2019-01-01T05:30:01Z", "2019-01-01T05:30Z"),
        (10, "minute", "UTC", "2019-01-01T00:00Z", "2019-01-01T00:00Z", "2019-01-01T00:00Z"),
        (10, "minute", "UTC", "2019-01-01T01:30:45Z", "2019-01-01T01:00Z", "2019-01-01T01:30Z"),
        (1, "month", "UTC", "2019-01-31T06:00Z", "2019-04-15T00:00Z", "2019-03-31T06:00Z"),
        # A ref in the second pass of a repeated hour still sees the first pass's slot.
        (
            1,
            "day",
            RIGA,
            "2021-10-28T03:30+03:00",
            "2021-10-31T03:10+02:00",
            "2021-10-31T03:30+03:00",
        ),
        (1, "year", "UTC", "2020-02-29T06:00Z", "2025-01-01T00:00Z", "2024-02-29T06:00Z"),
        (1, "day", "UTC", "2019-01-01T06:00Z", "2019-01-01T06:30Z", "2019-01-01T06:00Z"),
        (
            1,
            "day",
            "Europe/Berlin",
            "2024-03-29T12:00+01:00",
            "2024-04-02T00:00Z",
            "2024-04-01T12:00+02:00",
        ),
    ],
)
def test_prev_interval_slot_is_anchored_at_start(
    count: int, unit: IntervalUnit, tz: str, *, start: str, ref: str, expected: str
) -> None:
    schedule = IntervalSchedule(count, unit)
    assert prev_expected(schedule, tz, at(start), at(ref)) == at(expected)


@pytest.mark.parametrize("count", [0, -2])
def test_non_positive_interval_is_invalid(count: int) -> None:
    schedule = IntervalSchedule(count, "minute")
    ref = at("2019-01-01T00:00Z")
    with pytest.raises(ScheduleError, match="Schedule is invalid"):
        next_expected(schedule, "UTC", ref)
    with pytest.raises(ScheduleError, match="Schedule is invalid"):
        prev_expected(schedule, "UTC", ref, ref + timedelta(days=1))


def test_interval_beyond_the_calendar_is_invalid() -> None:
    with pytest.raises(ScheduleError, match="Schedule is invalid"):
        next_expected(IntervalSchedule(10_000, "year"), "UTC", at("2019-01-01T00:00Z"))


def test_naive_reference_is_refused() -> None:
    with pytest.raises(TypeError):
        next_expected(parse_crontab("* * * * *"), "UTC", datetime(2019, 1, 1))


units = st.sampled_from(["minute", "hour", "day", "week", "month", "year"])
counts = st.integers(min_value=1, max_value=30)


@given(counts, units, zones, instants)
def test_next_interval_slot_is_a_later_utc_minute(
    count: int, unit: IntervalUnit, tz: str, ref: datetime
) -> None:
    result = next_expected(IntervalSchedule(count, unit), tz, ref)
    assert result > ref
    assert is_utc_minute(result)


@given(counts, st.sampled_from(["minute", "hour"]), zones, instants)
def test_minute_and_hour_intervals_are_elapsed_time(
    count: int, unit: IntervalUnit, tz: str, ref: datetime
) -> None:
    step = count * timedelta(**{f"{unit}s": 1})
    result = next_expected(IntervalSchedule(count, unit), tz, ref)
    assert result == ref.replace(second=0, microsecond=0) + step


@given(counts, st.sampled_from(["minute", "hour"]), zones, instants, instants)
def test_prev_elapsed_interval_is_the_last_step_from_start_before_ref(
    count: int, unit: IntervalUnit, tz: str, start: datetime, ref: datetime
) -> None:
    schedule = IntervalSchedule(count, unit)
    result = prev_expected(schedule, tz, start, ref)
    anchor = start.replace(second=0, microsecond=0)
    if ref <= start:
        assert result == anchor
        return
    step = count * timedelta(**{f"{unit}s": 1})
    assert anchor <= result < ref
    assert (result - anchor) % step == timedelta(0)
    assert result + step >= ref


@given(counts, st.sampled_from(["month", "year"]), instants)
def test_month_and_year_intervals_step_like_rrule(
    count: int, unit: IntervalUnit, ref: datetime
) -> None:
    naive = ref.replace(second=0, microsecond=0, tzinfo=None)
    rule = rrule(MONTHLY if unit == "month" else YEARLY, interval=count, dtstart=naive)
    expected = rule.after(naive)
    assert expected is not None
    assert next_expected(IntervalSchedule(count, unit), "UTC", ref) == expected.replace(tzinfo=UTC)


@given(counts, st.sampled_from(["month", "year"]), instants, instants)
def test_prev_month_and_year_intervals_match_rrule(
    count: int, unit: IntervalUnit, start: datetime, ref: datetime
) -> None:
    anchor = start.replace(second=0, microsecond=0, tzinfo=None)
    rule = rrule(MONTHLY if unit == "month" else YEARLY, interval=count, dtstart=anchor)
    before = rule.before(ref.replace(tzinfo=None))
    expected = anchor if before is None else before
    result = prev_expected(IntervalSchedule(count, unit), "UTC", start, ref)
    assert result == expected.replace(tzinfo=UTC)


@given(counts, st.sampled_from(["day", "week"]), zones, instants)
def test_day_and_week_intervals_keep_the_local_wall_time(
    count: int, unit: IntervalUnit, tz: str, ref: datetime
) -> None:
    zone = ZoneInfo(tz)
    wall = ref.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0, fold=0)
    target = wall + count * timedelta(**{f"{unit}s": 1})
    result = next_expected(IntervalSchedule(count, unit), tz, ref)
    local = result.astimezone(zone)
    exists = target.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if exists == target:
        assert local.replace(tzinfo=None) == target
        assert local.fold == 0  # a repeated wall time runs the first time
    else:  # a skipped wall time runs at the first instant past it: when the gap ends
        assert local.replace(tzinfo=None) > target
        assert (result - MINUTE).astimezone(zone).replace(tzinfo=None) < target


def wall_to_utc(zone: ZoneInfo, wall: datetime) -> datetime:
    """A local wall time in UTC: its first occurrence, or the first instant after a gap."""
    instant = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    while (instant - MINUTE).astimezone(zone).replace(tzinfo=None) > wall:
        instant -= MINUTE
    return instant


@given(counts, st.sampled_from(["day", "week"]), zones, instants, st.integers(0, 60 * 24 * 60))
def test_prev_day_and_week_interval_is_the_last_local_step_before_ref(
    count: int, unit: IntervalUnit, tz: str, start: datetime, minutes: int
) -> None:
    zone, ref = ZoneInfo(tz), start + minutes * MINUTE
    anchor = start.replace(second=0, microsecond=0)
    wall = anchor.astimezone(zone).replace(tzinfo=None, fold=0)
    step = count * timedelta(**{f"{unit}s": 1})
    expected, k = anchor, 1
    while (slot := wall_to_utc(zone, wall + k * step)) < ref:
        expected, k = slot, k + 1
    assert prev_expected(IntervalSchedule(count, unit), tz, start, ref) == expected
