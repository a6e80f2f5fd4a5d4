"""Schedule rows written by hand from spec §4.7, domain.md difference 4 and peers.md §3.2-3.3.

Month ends (31st, `L`, Feb 29) and calendar intervals in zones, DST days on which midnight
does not exist (America/Santiago), repeated hours at 23:00, odd offsets (Kathmandu +05:45,
Chatham +12:45) and local weekdays on the other side of the date line from UTC. Each row's
expected instant was computed by hand from the zone's offsets, not from the code.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from monitor_es.domain.schedule import (
    IntervalSchedule,
    Schedule,
    next_expected,
    parse_crontab,
    prev_expected,
)

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
RIGA = "Europe/Riga"
KOLKATA = "Asia/Kolkata"
SANTIAGO = "America/Santiago"  # 2024: 7 Apr 00:00 -03 -> 6 Apr 23:00 -04; 8 Sep 00:00 -> 01:00


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def schedule_of(spec: str | tuple[int, str]) -> Schedule:
    if isinstance(spec, str):
        return parse_crontab(spec)
    count, unit = spec
    return IntervalSchedule(count, unit)  # type: ignore[arg-type]


NEXT_ROWS = [
    # Crontab month ends: Feb has no 31st; Mar 31 09:00 is CEST (the change day).
    ("0 9 31 * *", BERLIN, "2024-01-31T08:00:30Z", "2024-03-31T07:00Z"),
    ("0 9 31 * *", BERLIN, "2024-03-31T07:00Z", "2024-05-31T07:00Z"),
    ("0 12 29 2 *", NEW_YORK, "2024-02-29T17:00Z", "2028-02-29T17:00Z"),
    ("0 23 L * *", KOLKATA, "2024-01-31T17:30Z", "2024-02-29T17:30Z"),
    # A ref equal to a slot is not "after" it: next month's last day.
    ("0 0 L * *", BERLIN, "2024-02-28T23:00Z", "2024-03-30T23:00Z"),
    # Fixed time in the skipped hour: when the gap ends. A step in the minute field runs on
    # real time, so the skipped hour has no slot at all.
    ("30 2 * * *", BERLIN, "2024-03-30T01:30Z", "2024-03-31T01:00Z"),
    ("*/20 2 * * *", BERLIN, "2024-03-30T02:00Z", "2024-04-01T00:00Z"),
    # domain.md: a step without `*` (`0-59/30`) is no fixed time, so it runs in both passes
    # of Berlin's repeated 02:xx. Ambiguous: cronsim and Debian cron test only for a leading
    # `*` and would run it once (next 28 Oct 01:00Z); the project follows domain.md.
    ("0-59/30 2 * * *", BERLIN, "2024-10-27T00:45Z", "2024-10-27T01:00Z"),
    # Weekdays are local: Monday 01:00 JST is Sunday 16:00Z.
    ("0 1 * * MON", "Asia/Tokyo", "2024-05-01T00:00Z", "2024-05-05T16:00Z"),
    # Chile springs forward at midnight: a daily midnight job runs at 01:00 -03.
    ("0 0 * * *", SANTIAGO, "2024-09-07T16:00Z", "2024-09-08T04:00Z"),
    # Chile falls back at midnight: 23:00 happens twice on 6 Apr; a fixed job runs once,
    # a stepped one in both passes.
    ("0 23 * * *", SANTIAGO, "2024-04-06T12:00Z", "2024-04-07T02:00Z"),
    ("0 23 * * *", SANTIAGO, "2024-04-07T02:00Z", "2024-04-08T03:00Z"),
    ("*/30 23 * * *", SANTIAGO, "2024-04-07T02:30Z", "2024-04-07T03:00Z"),
    # Odd offsets: 05:45 NPT is 00:00Z; midnight at +12:45 is 11:15Z.
    ("45 5 * * *", "Asia/Kathmandu", "2024-05-01T00:00Z", "2024-05-02T00:00Z"),
    ("0 0 * * *", "Pacific/Chatham", "2024-05-01T00:00Z", "2024-05-01T11:15Z"),
    # Real-time (wildcard) jobs next to a gap: the first instant whose local wall matches.
    # cronsim 2.8 answers 30 minutes later in Lord Howe's half-hour shifts, 01:00 -03 for a
    # midnight that Santiago skips, and 02:00 -03 for hour 1 there; each of those instants
    # is either no slot or not the first one, so these rows keep real time (peers.md §3.2).
    ("*/5 3 * * *", "Australia/Lord_Howe", "2024-10-05T06:23Z", "2024-10-05T16:00Z"),
    ("* 2 * * *", "Australia/Lord_Howe", "2024-04-06T08:13Z", "2024-04-06T15:30Z"),
    ("* 1,2,3 * * SUN", SANTIAGO, "2024-09-07T00:08Z", "2024-09-08T04:00Z"),
    ("* 0 * * SUN", SANTIAGO, "2024-09-07T05:27Z", "2024-09-15T03:00Z"),
    # Calendar intervals keep the local wall time and skip days a month lacks.
    ((1, "month"), BERLIN, "2024-01-31T08:00Z", "2024-03-31T07:00Z"),
    ((1, "month"), BERLIN, "2024-03-31T07:00Z", "2024-05-31T07:00Z"),
    ((1, "month"), KOLKATA, "2024-01-31T18:00Z", "2024-03-31T18:00Z"),
    ((1, "month"), NEW_YORK, "2024-01-31T05:00Z", "2024-03-31T04:00Z"),
    ((1, "month"), RIGA, "2021-08-31T00:30Z", "2021-10-31T00:30Z"),  # first 03:30 pass
    ((1, "year"), NEW_YORK, "2024-02-29T17:00Z", "2028-02-29T17:00Z"),
    ((1, "week"), BERLIN, "2024-03-25T11:00Z", "2024-04-01T10:00Z"),
    ((2, "day"), NEW_YORK, "2024-11-02T05:30Z", "2024-11-04T06:30Z"),
    # A skipped wall time runs when the gap ends (domain.md difference 4). Ambiguous for
    # intervals: Sentry's rrule with zoneinfo would read 03:30 with the old offset (04:30+03);
    # the project keeps the gap's end, as for fixed-time crontabs.
    ((1, "day"), RIGA, "2021-03-27T01:30Z", "2021-03-28T01:00Z"),
    ((1, "day"), SANTIAGO, "2024-09-07T04:00Z", "2024-09-08T04:00Z"),  # midnight skipped
    # Hours are elapsed time whatever the zone does.
    ((12, "hour"), NEW_YORK, "2024-03-09T18:00Z", "2024-03-10T06:00Z"),
]


@pytest.mark.parametrize(("spec", "tz", "ref", "expected"), NEXT_ROWS)
def test_next_expected_in_zones_and_at_month_ends(
    spec: str | tuple[int, str], tz: str, ref: str, expected: str
) -> None:
    assert next_expected(schedule_of(spec), tz, at(ref)) == at(expected)


PREV_ROWS = [
    ("0 9 31 * *", BERLIN, None, "2024-05-01T00:00Z", "2024-03-31T07:00Z"),
    ("0 23 L * *", KOLKATA, None, "2024-03-15T00:00Z", "2024-02-29T17:30Z"),
    # The gap-end slot is a slot; strictly before it, the previous day's 02:30 CET.
    ("30 2 * * *", BERLIN, None, "2024-03-31T01:01Z", "2024-03-31T01:00Z"),
    ("30 2 * * *", BERLIN, None, "2024-03-31T01:00Z", "2024-03-30T01:30Z"),
    # Fall back (27 Oct, 01:00Z): the fixed job's second 02:30 is no slot, the stepped one's is.
    ("30 2 * * *", BERLIN, None, "2024-10-27T02:00Z", "2024-10-27T00:30Z"),
    ("*/30 2 * * *", BERLIN, None, "2024-10-27T02:00Z", "2024-10-27T01:30Z"),
    ("0 23 * * *", SANTIAGO, None, "2024-04-08T00:00Z", "2024-04-07T02:00Z"),
    ("0 0 * * *", SANTIAGO, None, "2024-09-08T04:01Z", "2024-09-08T04:00Z"),
    ("0 0 * * *", SANTIAGO, None, "2024-09-08T04:00Z", "2024-09-07T04:00Z"),
    # Intervals are anchored at `start` (the missed slot, spec §4.1 step 4).
    ((1, "month"), BERLIN, "2024-01-31T08:00Z", "2024-05-01T00:00Z", "2024-03-31T07:00Z"),
    ((1, "week"), BERLIN, "2024-03-25T11:00Z", "2024-04-09T00:00Z", "2024-04-08T10:00Z"),
    ((1, "day"), BERLIN, "2024-03-30T11:00Z", "2024-04-01T13:00Z", "2024-04-01T10:00Z"),
    ((1, "year"), NEW_YORK, "2024-02-29T17:00Z", "2028-03-01T00:00Z", "2028-02-29T17:00Z"),
    # No Feb 29 between: the anchor itself.
    ((1, "year"), NEW_YORK, "2024-02-29T17:00Z", "2027-12-31T00:00Z", "2024-02-29T17:00Z"),
    # A ref in the second 01:xx of New York's fall back sees the first pass's 01:30.
    ((1, "day"), NEW_YORK, "2024-11-02T05:30Z", "2024-11-03T06:45Z", "2024-11-03T05:30Z"),
    ((1, "day"), SANTIAGO, "2024-09-07T04:00Z", "2024-09-08T04:01Z", "2024-09-08T04:00Z"),
    ((1, "month"), RIGA, "2021-08-31T00:30Z", "2021-10-31T01:45Z", "2021-10-31T00:30Z"),
]


@pytest.mark.parametrize(("spec", "tz", "start", "ref", "expected"), PREV_ROWS)
def test_prev_expected_in_zones_and_at_month_ends(
    spec: str | tuple[int, str], tz: str, start: str | None, ref: str, expected: str
) -> None:
    anchor = at(start) if start else at("2000-01-01T00:00Z")  # crontabs ignore it
    assert prev_expected(schedule_of(spec), tz, anchor, at(ref)) == at(expected)
