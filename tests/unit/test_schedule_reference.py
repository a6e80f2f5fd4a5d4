"""A deliberately naive reference for crontab and interval slots, for tests only.

It shares no code with monitor_es.domain.schedule and uses no croniter: it walks UTC minutes,
reads each minute's local wall time with zoneinfo (zones read from the `tzdata` package) and
applies the written rules directly:

* crontab fields as in cron(5): lists, ranges, steps, JAN-DEC and SUN-SAT names, 0 and 7 both
  Sunday, `L` (last day of the month) and `n#k` (k-th weekday n) as cronsim reads them; day of
  month and day of week are ORed when neither field starts with `*`, ANDed otherwise;
* DST (domain.md "differs" item 4, peers.md §3.2): a fixed-time job (no `*` or `/` in the minute
  and hour fields) is a slot at a local match in the first pass of a repeated hour only, and at
  the first instant after a spring-forward gap whose skipped wall times match; any other job
  matches on the wall time of every real minute;
* intervals (domain.md "Precise rules"): minutes and hours are elapsed time; days, weeks, months
  and years step the local wall time (a month or year that lacks the day is skipped, as rrule
  does), and a stepped wall time maps to its first instant, or to the gap's end if skipped.

Speed comes only from skipping wall-clock hours and days that cannot match while the offset
stays put; every visited minute is judged from scratch.
"""

from __future__ import annotations

import bisect
import calendar
import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from importlib import resources
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor_es.domain import schedule

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_MONTHS = {name: i for i, name in enumerate(calendar.month_abbr) if name}
_DAYS = {name: (i + 1) % 7 for i, name in enumerate(calendar.day_abbr)}  # SUN = 0
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@cache
def zone(name: str) -> ZoneInfo:
    """The zone as the tzdata package has it (never the host's /usr/share/zoneinfo)."""
    with resources.files("tzdata.zoneinfo").joinpath(*name.split("/")).open("rb") as data:
        return ZoneInfo.from_file(data, key=name)


def _number(token: str, names: dict[str, int]) -> int:
    upper = token.upper()
    for name, value in names.items():
        if upper == name.upper():
            return value
    return int(token)


def _numeric(field: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    """The values a plain cron field (`*`, N, N-M, each with an optional /S, in lists) admits."""
    values: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first, last = (_number(x, names) for x in base.split("-"))
        else:
            first = _number(base, names)
            last = high if step_text else first
        assert low <= first <= last <= high and step > 0, field
        values.update(range(first, last + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class _DayField:
    """A day-of-month or day-of-week field: plain values plus `L` / `n#k` specials."""

    values: frozenset[int]
    last_day: bool = False
    nth: frozenset[tuple[int, int]] = frozenset()


def _dom(field: str) -> _DayField:
    parts = field.split(",")
    plain = [p for p in parts if p != "L"]
    values = _numeric(",".join(plain), 1, 31, {}) if plain else frozenset()
    return _DayField(values, last_day="L" in parts)


def _dow(field: str) -> _DayField:
    parts = field.split(",")
    nth = frozenset(
        (_number(p.split("#")[0], _DAYS) % 7, int(p.split("#")[1])) for p in parts if "#" in p
    )
    plain = [p for p in parts if "#" not in p]
    values = _numeric(",".join(plain), 0, 7, _DAYS) if plain else frozenset()
    return _DayField(frozenset(v % 7 for v in values), nth=nth)


def _weekday(day: date) -> int:
    return (day.weekday() + 1) % 7  # cron counts from Sunday = 0


@dataclass(frozen=True)
class RefCron:
    """A parsed 5-field crontab."""

    minutes: frozenset[int]
    hours: frozenset[int]
    dom: _DayField
    months: frozenset[int]
    dow: _DayField
    day_and: bool  # either day field starts with `*`: cron ANDs them, else ORs
    fixed: bool  # no `*` or `/` in minute and hour: Debian's DST handling applies

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        last = calendar.monthrange(day.year, day.month)[1]
        by_dom = day.day in self.dom.values or (self.dom.last_day and day.day == last)
        weekday = _weekday(day)
        by_dow = weekday in self.dow.values or any(
            weekday == wd and (day.day - 1) // 7 + 1 == k for wd, k in self.dow.nth
        )
        return (by_dom and by_dow) if self.day_and else (by_dom or by_dow)

    def hour_matches(self, wall: datetime) -> bool:
        return wall.hour in self.hours and self.day_matches(wall.date())

    def matches(self, wall: datetime) -> bool:
        return wall.minute in self.minutes and self.hour_matches(wall)


@cache
def parse(expr: str) -> RefCron:
    """Parse a 5-field crontab or an @alias."""
    text = _ALIASES.get(expr.strip().lower(), expr)
    minute, hour, dom, month, dow = text.split()
    return RefCron(
        minutes=_numeric(minute, 0, 59, {}),
        hours=_numeric(hour, 0, 23, {}),
        dom=_dom(dom),
        months=_numeric(month, 1, 12, _MONTHS),
        dow=_dow(dow),
        day_and=dom.startswith("*") or dow.startswith("*"),
        fixed=not any(c in minute + hour for c in "*/"),
    )


# --- Instants, walls and offsets --------------------------------------------------------------


def offset(tz: ZoneInfo, instant: datetime) -> timedelta:
    value = instant.astimezone(tz).utcoffset()
    assert value is not None
    return value


def wall(tz: ZoneInfo, instant: datetime) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None, fold=0)


def floor_minute(instant: datetime) -> datetime:
    return _EPOCH + (instant - _EPOCH) // MINUTE * MINUTE


def ceil_minute(instant: datetime) -> datetime:
    return _EPOCH - (_EPOCH - instant) // MINUTE * MINUTE


def skipped_walls(tz: ZoneInfo, instant: datetime) -> list[datetime]:
    """The wall times that a forward jump ending exactly at `instant` skipped (often none)."""
    before, after = offset(tz, instant - MINUTE), offset(tz, instant)
    first = instant.replace(tzinfo=None) + before
    return [first + k * MINUTE for k in range((after - before) // MINUTE)]


def is_slot(cron: RefCron, tz: ZoneInfo, instant: datetime) -> bool:
    """Whether the whole UTC minute `instant` is a slot of the crontab (Debian DST rules)."""
    local = instant.astimezone(tz)
    if cron.matches(local.replace(tzinfo=None, fold=0)) and not (cron.fixed and local.fold == 1):
        return True
    return cron.fixed and any(cron.matches(w) for w in skipped_walls(tz, instant))


def _forward_skip(cron: RefCron, local: datetime) -> timedelta:
    """How far a walk forward may jump from a non-matching wall time: to the next hour or day."""
    if not cron.day_matches(local.date()):
        return (24 * 60 - local.hour * 60 - local.minute) * MINUTE
    if local.hour not in cron.hours:
        return (60 - local.minute) * MINUTE
    return MINUTE


def _backward_skip(cron: RefCron, local: datetime) -> timedelta:
    """How far a walk backward may jump: to the last minute of the previous hour or day."""
    if not cron.day_matches(local.date()):
        return (local.hour * 60 + local.minute + 1) * MINUTE
    if local.hour not in cron.hours:
        return (local.minute + 1) * MINUTE
    return MINUTE


# A jump is taken only when the offset is the same at both ends, so that no offset change (and
# no gap end) lies inside: this assumes a zone never changes its offset twice within a day.


def cron_next(expr: str, tz_name: str, ref: datetime, horizon: timedelta) -> datetime | None:
    """The first slot strictly after `ref`, or None within `horizon`."""
    cron, tz = parse(expr), zone(tz_name)
    instant, end = floor_minute(ref) + MINUTE, ref + horizon
    while instant <= end:
        if is_slot(cron, tz, instant):
            return instant
        jump = _forward_skip(cron, wall(tz, instant))
        same = offset(tz, instant + jump) == offset(tz, instant)
        instant += jump if same else MINUTE
    return None


def cron_prev(expr: str, tz_name: str, ref: datetime, horizon: timedelta) -> datetime | None:
    """The last slot strictly before `ref`, or None within `horizon`."""
    cron, tz = parse(expr), zone(tz_name)
    instant, end = ceil_minute(ref) - MINUTE, ref - horizon
    while instant >= end:
        if is_slot(cron, tz, instant):
            return instant
        jump = _backward_skip(cron, wall(tz, instant))
        same = offset(tz, instant - jump) == offset(tz, instant)
        instant -= jump if same else MINUTE
    return None


def cron_slots(expr: str, tz_name: str, lo: datetime, hi: datetime) -> list[datetime]:
    """Every slot in [lo, hi)."""
    slots: list[datetime] = []
    slot = cron_next(expr, tz_name, lo - MINUTE, hi - lo)
    while slot is not None and slot < hi:
        slots.append(slot)
        slot = cron_next(expr, tz_name, slot, hi - slot)
    return slots


# --- Intervals ---------------------------------------------------------------------------------

ELAPSED = {"minute": MINUTE, "hour": HOUR}


def first_instant_at_or_after_wall(tz: ZoneInfo, target: datetime) -> datetime:
    """The first instant whose wall time reaches `target`: the first pass, or a gap's end."""
    as_utc = target.replace(tzinfo=UTC)
    offsets = {offset(tz, as_utc + h * HOUR) for h in range(-16, 17)}
    instant = as_utc - max(offsets) - HOUR  # its wall time is at least an hour before target
    while wall(tz, instant) < target:
        instant += MINUTE
    return instant


def shifted_wall(anchor: datetime, unit: str, steps: int) -> datetime | None:
    """`anchor` moved by `steps` units of local wall time, or None if that day does not exist."""
    if unit in ("day", "week"):
        return anchor + timedelta(days=steps * (7 if unit == "week" else 1))
    months = steps * (12 if unit == "year" else 1)
    year, month = divmod(anchor.year * 12 + anchor.month - 1 + months, 12)
    if anchor.day > calendar.monthrange(year, month + 1)[1]:
        return None
    return anchor.replace(year=year, month=month + 1)


def interval_occurrence(
    tz_name: str, anchor: datetime, count: int, unit: str, k: int
) -> datetime | None:
    """The k-th step (k >= 1) of a rule anchored at the UTC minute `anchor`."""
    if unit in ELAPSED:
        return anchor + k * count * ELAPSED[unit]
    tz = zone(tz_name)
    target = shifted_wall(wall(tz, anchor), unit, k * count)
    return None if target is None else first_instant_at_or_after_wall(tz, target)


def interval_next(tz_name: str, ref: datetime, count: int, unit: str) -> datetime:
    """The first step after `ref` of the rule anchored at `ref` (spec §4.7)."""
    anchor = floor_minute(ref)
    for k in range(1, 200):
        slot = interval_occurrence(tz_name, anchor, count, unit, k)
        if slot is not None and slot > ref:
            return slot
    raise AssertionError("no interval slot")


def interval_prev(tz_name: str, start: datetime, ref: datetime, count: int, unit: str) -> datetime:
    """The last occurrence before `ref` of the rule anchored at `start` (`start` if none)."""
    anchor, best, k = floor_minute(start), floor_minute(start), 1
    while True:
        slot = interval_occurrence(tz_name, anchor, count, unit, k)
        if slot is not None:
            if slot >= ref:
                return best
            best = slot
        k += 1


# ==============================================================================================
# Comparisons with monitor_es.domain.schedule
# ==============================================================================================

# The 5 workload zones, zones with 30/45-minute offsets, southern-hemisphere DST (Lord Howe
# shifts by 30 minutes) and zones that change offset at local midnight.
WORKLOAD_ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney"]
ODD_ZONES = [
    "Australia/Lord_Howe",
    "Australia/Adelaide",
    "Asia/Kathmandu",
    "Australia/Eucla",
    "America/St_Johns",
    "Pacific/Chatham",
    "Europe/Riga",
    "America/Santiago",
    "America/Havana",
    "Asia/Beirut",
]
ALL_ZONES = WORKLOAD_ZONES + ODD_ZONES
YEARS = (2019, 2027)
HORIZON = timedelta(days=366 * 9)


@cache
def transitions(tz_name: str) -> tuple[datetime, ...]:
    """Every offset change of the zone in YEARS, found by daily probes and minute bisection."""
    tz, found = zone(tz_name), []
    lo, end = datetime(YEARS[0], 1, 1, tzinfo=UTC), datetime(YEARS[1], 12, 31, tzinfo=UTC)
    while lo < end:
        hi = lo + timedelta(days=1)
        if offset(tz, hi) != offset(tz, lo):
            a, b = lo, hi
            while b - a > MINUTE:
                mid = a + (b - a) // MINUTE // 2 * MINUTE
                a, b = (mid, b) if offset(tz, mid) == offset(tz, a) else (a, mid)
            found.append(b)
        lo = hi
    return tuple(found)


def local(tz_name: str, text: str, fold: int = 0) -> datetime:
    """A naive ISO local time in the zone, as a UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=zone(tz_name), fold=fold).astimezone(UTC)


def is_utc_minute(value: datetime) -> bool:
    return value.tzinfo is UTC and value.second == 0 and value.microsecond == 0


def clear_schedule_caches() -> None:
    for cached in (
        schedule._compile,
        schedule._next_cached,
        schedule.next_after_minute,
        schedule._prev_cron_cached,
        schedule._prev_interval_cached,
    ):
        cached.cache_clear()


def assert_cron_next(expr: str, tz_name: str, ref: datetime) -> None:
    """monitor-es's next slot is the reference's: after `ref`, and no slot in between."""
    expected = cron_next(expr, tz_name, ref, HORIZON)
    result = schedule.next_expected(schedule.parse_crontab(expr), tz_name, ref)
    assert result > ref
    assert is_utc_minute(result)
    # A rare expression may have no slot within the reference's horizon: then neither has ours.
    assert result == (expected or max(result, ref + HORIZON)), (expr, tz_name, ref, result)


def assert_cron_prev(expr: str, tz_name: str, ref: datetime) -> None:
    """monitor-es's previous slot is the reference's: strictly before `ref`."""
    expected = cron_prev(expr, tz_name, ref, HORIZON)
    result = schedule.prev_expected(schedule.parse_crontab(expr), tz_name, ref, ref)
    assert result < ref
    assert is_utc_minute(result)
    assert result == (expected or min(result, ref - HORIZON)), (expr, tz_name, ref, result)


# --- Strategies ---------------------------------------------------------------------------------


def numeric_field(low: int, high: int, steps: list[int]) -> st.SearchStrategy[str]:
    value = st.integers(low, high)
    ranges = st.tuples(value, value).map(sorted).map(lambda ab: f"{ab[0]}-{ab[1]}")
    return st.one_of(
        st.just("*"),
        st.sampled_from(steps).map(lambda n: f"*/{n}"),
        value.map(str),
        ranges,
        st.tuples(ranges, st.sampled_from(steps)).map(lambda rs: f"{rs[0]}/{rs[1]}"),
        st.lists(value, min_size=2, max_size=3, unique=True).map(
            lambda vs: ",".join(map(str, sorted(vs)))
        ),
    )


MINUTE_FIELDS = numeric_field(0, 59, [1, 2, 5, 7, 13, 15, 20, 30, 45])
HOUR_FIELDS = numeric_field(0, 23, [1, 2, 3, 5, 7, 12])
DOM_FIELDS = st.one_of(
    numeric_field(1, 31, [2, 3, 10, 15]),
    st.sampled_from(["L", "1,L", "29", "30", "31", "1,15", "28-31"]),
)
MONTH_FIELDS = st.one_of(
    numeric_field(1, 12, [2, 3, 6]),
    st.sampled_from(["JAN", "feb", "Mar-Jun", "DEC", "JAN,JUL", "2,FEB"]),
)
DOW_FIELDS = st.one_of(
    numeric_field(0, 7, [2, 3]),
    st.sampled_from(["MON", "mon-fri", "SAT,SUN", "7", "5-7", "FRI", "1#2", "5#3", "0#1", "MON#5"]),
)
CRONTABS = st.one_of(
    st.tuples(MINUTE_FIELDS, HOUR_FIELDS, DOM_FIELDS, MONTH_FIELDS, DOW_FIELDS).map(" ".join),
    st.sampled_from(list(_ALIASES)),
    st.sampled_from(["* * * * *", "*/15 * * * *", "0 * * * *", "30 2 * * *", "0 0 * * *"]),
)
ZONES = st.sampled_from(ALL_ZONES)
SECONDS = st.sampled_from([0, 0, 0, 1, 30, 59])


def uniform_instants() -> st.SearchStrategy[datetime]:
    return st.datetimes(
        min_value=datetime(YEARS[0], 1, 1),
        max_value=datetime(YEARS[1], 12, 1),
        timezones=st.just(UTC),
    )


@st.composite
def refs_near_transitions(draw: st.DrawFn, tz_name: str) -> datetime:
    """An instant within a day of one of the zone's offset changes, often on a whole minute."""
    changes = transitions(tz_name)
    if not changes:
        return draw(uniform_instants())
    change = draw(st.sampled_from(changes))
    minutes = draw(st.one_of(st.integers(-90, 90), st.integers(-1500, 1500)))
    return change + minutes * MINUTE + draw(SECONDS) * timedelta(seconds=1)


@st.composite
def zone_and_ref(draw: st.DrawFn) -> tuple[str, datetime]:
    tz_name = draw(ZONES)
    return tz_name, draw(st.one_of(uniform_instants(), refs_near_transitions(tz_name)))


def parsed_or_none(expr: str) -> str | None:
    """The expression when monitor-es accepts it; a rejection must be "no slot at all"."""
    try:
        schedule.parse_crontab(expr)
    except schedule.ScheduleError as exc:
        assert str(exc) == schedule.INVALID, (expr, str(exc))
        start = datetime(2020, 1, 1, tzinfo=UTC)
        assert cron_next(expr, "UTC", start, timedelta(days=366 * 30)) is None, expr
        return None
    return expr


FAST = settings(max_examples=200, deadline=None)


# --- Crontab properties -------------------------------------------------------------------------


@FAST
@given(CRONTABS, zone_and_ref())
def test_next_crontab_slot_is_the_references_first_slot_after_ref(
    expr: str, zone_ref: tuple[str, datetime]
) -> None:
    if parsed_or_none(expr) is not None:
        assert_cron_next(expr, *zone_ref)


@FAST
@given(CRONTABS, zone_and_ref())
def test_prev_crontab_slot_is_the_references_last_slot_before_ref(
    expr: str, zone_ref: tuple[str, datetime]
) -> None:
    if parsed_or_none(expr) is not None:
        assert_cron_prev(expr, *zone_ref)


@settings(max_examples=60, deadline=None)
@given(CRONTABS, zone_and_ref())
def test_crontab_slots_are_stable_under_caching(expr: str, zone_ref: tuple[str, datetime]) -> None:
    if parsed_or_none(expr) is None:
        return
    tz_name, ref = zone_ref
    sched = schedule.parse_crontab(expr)
    clear_schedule_caches()
    cold = (
        schedule.next_expected(sched, tz_name, ref),
        schedule.prev_expected(sched, tz_name, ref, ref),
    )
    warm = (
        schedule.next_expected(sched, tz_name, ref),
        schedule.prev_expected(sched, tz_name, ref, ref),
    )
    # The same instant written in another zone is the same reference.
    elsewhere = ref.astimezone(zone("Asia/Tokyo"))
    other = (
        schedule.next_expected(sched, tz_name, elsewhere),
        schedule.prev_expected(sched, tz_name, elsewhere, elsewhere),
    )
    assert cold == warm == other
    minute = floor_minute(ref)
    assert schedule.next_after_minute(sched, tz_name, minute) == schedule.next_expected(
        sched, tz_name, minute
    )


# --- Crontab tables: the dialect, and every minute around real offset changes ---------------

DIALECT = [
    "*/7 * * * *",  # steps restart at each hour boundary: :56 is followed by :00
    "*/45 * * * *",
    "*/13 */5 * * *",
    "5,35 9-17 * * *",
    "0-10/5 22-23 * * *",
    "0 9 * * MON-FRI",
    "0 9 * * mon,wed,FRI",
    "30 6 * JAN,jul *",
    "0 0 1 jan-mar *",
    "0 0 * * 7",
    "0 0 * * 5-7",
    "0 0 29 2 *",
    "0 12 31 * *",
    "59 23 L * *",
    "0 0 L 2 *",
    "0 0 1-7 * MON",  # both restricted: the 1st-7th OR any Monday
    "0 0 */7 * MON",  # day of month starts with `*`: AND
    "0 0 1,15 * FRI",
    "0 0 13 * FRI",
    "15 10 * * 5#3",
    "0 0 1 * 1#2",
    "0 0 * * */2",
    "0 0 */2 * *",
    "1 1 1-7 * */7",
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@hourly",
]


@pytest.mark.parametrize("tz_name", ["UTC", "America/New_York", "Australia/Lord_Howe"])
@pytest.mark.parametrize("expr", DIALECT)
def test_crontab_dialect_matches_the_reference(expr: str, tz_name: str) -> None:
    sched = schedule.parse_crontab(expr)
    ref = datetime(2024, 1, 1, tzinfo=UTC)
    expected = [ref]
    for _ in range(8):
        nxt = cron_next(expr, tz_name, expected[-1], HORIZON)
        assert nxt is not None
        expected.append(nxt)
    for earlier, later in itertools.pairwise(expected):
        assert schedule.next_expected(sched, tz_name, earlier) == later
    for earlier, later in itertools.pairwise(expected[1:]):
        assert schedule.prev_expected(sched, tz_name, ref, later) == earlier


SWEEP_ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Australia/Adelaide",
    "America/St_Johns",
    "Pacific/Chatham",
    "America/Santiago",
    "America/Havana",
    "Asia/Beirut",
]
SWEEP_EXPRS = [
    "* * * * *",
    "*/20 * * * *",
    "0 * * * *",
    "45 */2 * * *",
    "30 2 * * *",
    "0,30 1-3 * * *",
    "15 0 * * *",  # midnight changes (Santiago, Havana, Beirut) skip or repeat it
    "@daily",
]


def sweep_refs(change: datetime, slots: list[datetime]) -> list[datetime]:
    """Each minute within 40 of the change, every 11th in 3 hours, a third of near slots +-1."""
    minutes = {*range(-40, 41), *range(-180, 181, 11)}
    refs = {change + m * MINUTE for m in minutes}
    near = [slot for slot in slots if abs(slot - change) <= 90 * MINUTE][::3]
    refs |= {slot + d * MINUTE for slot in near for d in (-1, 0, 1)}
    refs |= {ref + timedelta(seconds=30) for ref in sorted(refs)[::5]}
    return sorted(r for r in refs if abs(r - change) <= timedelta(hours=3))


@pytest.mark.parametrize("tz_name", SWEEP_ZONES)
@pytest.mark.parametrize("expr", SWEEP_EXPRS)
def test_slots_around_2024_offset_changes_match_the_reference(expr: str, tz_name: str) -> None:
    sched = schedule.parse_crontab(expr)
    for change in [c for c in transitions(tz_name) if c.year == 2024]:
        slots = cron_slots(expr, tz_name, change - 30 * HOUR, change + 30 * HOUR)
        for ref in sweep_refs(change, slots):
            following = slots[bisect.bisect_right(slots, ref)]
            preceding = slots[bisect.bisect_left(slots, ref) - 1]
            assert schedule.next_expected(sched, tz_name, ref) == following, (change, ref)
            assert schedule.prev_expected(sched, tz_name, ref, ref) == preceding, (change, ref)


@pytest.mark.parametrize(
    ("expr", "tz_name", "ref", "expected"),
    [
        # Lord Howe springs forward half an hour (02:00+10:30 -> 02:30+11:00) and falls back
        # half an hour (02:00+11:00 -> 01:30+10:30).
        ("15 2 * * *", "Australia/Lord_Howe", "2024-10-06T01:59", "2024-10-06T02:30"),
        ("45 1 * * *", "Australia/Lord_Howe", "2024-04-07T01:50", "2024-04-08T01:45"),
        # Santiago skips 00:00-00:59 on 2024-09-08: a midnight job runs at 01:00 once.
        ("0 0 * * *", "America/Santiago", "2024-09-07T23:59", "2024-09-08T01:00"),
        ("30 0 * * *", "America/Santiago", "2024-09-07T12:00", "2024-09-08T01:00"),
        # Beirut skips 00:00-00:59 on 2024-03-31.
        ("15 0 * * *", "Asia/Beirut", "2024-03-30T12:00", "2024-03-31T01:00"),
        # Chatham (+12:45/+13:45) jumps 02:45 -> 03:45.
        ("0 3 * * *", "Pacific/Chatham", "2024-09-29T02:44", "2024-09-29T03:45"),
        # St John's (-03:30/-02:30) repeats 01:00-01:59 on 2024-11-03: a fixed job runs once.
        ("30 1 * * *", "America/St_Johns", "2024-11-03T01:31", "2024-11-04T01:30"),
    ],
)
def test_fixed_time_jobs_in_odd_offset_zones(
    expr: str, tz_name: str, ref: str, expected: str
) -> None:
    start, want = local(tz_name, ref), local(tz_name, expected)
    assert cron_next(expr, tz_name, start, HORIZON) == want
    assert schedule.next_expected(schedule.parse_crontab(expr), tz_name, start) == want


# --- Intervals -----------------------------------------------------------------------------------

INTERVALS = st.one_of(
    st.tuples(st.integers(1, 90), st.just("minute")),
    st.tuples(st.integers(1, 50), st.just("hour")),
    st.tuples(st.integers(1, 10), st.sampled_from(["day", "week"])),
    st.tuples(st.integers(1, 14), st.just("month")),
    st.tuples(st.integers(1, 3), st.just("year")),
)
# How far after `start` a prev reference may lie, per unit, to keep the reference quick.
SPANS = {"minute": 3, "hour": 60, "day": 200, "week": 400, "month": 2000, "year": 8000}


@FAST
@given(INTERVALS, zone_and_ref())
def test_next_interval_slot_is_the_references(
    interval: tuple[int, str], zone_ref: tuple[str, datetime]
) -> None:
    (count, unit), (tz_name, ref) = interval, zone_ref
    result = schedule.next_expected(schedule.IntervalSchedule(count, unit), tz_name, ref)  # type: ignore[arg-type]
    assert result > ref
    assert is_utc_minute(result)
    assert result == interval_next(tz_name, ref, count, unit)


@FAST
@given(INTERVALS, zone_and_ref(), st.floats(-0.05, 1))
def test_prev_interval_slot_is_the_references(
    interval: tuple[int, str], zone_ref: tuple[str, datetime], fraction: float
) -> None:
    (count, unit), (tz_name, start) = interval, zone_ref
    ref = start + fraction * timedelta(days=SPANS[unit])
    result = schedule.prev_expected(schedule.IntervalSchedule(count, unit), tz_name, start, ref)  # type: ignore[arg-type]
    assert is_utc_minute(result)
    assert result == interval_prev(tz_name, start, ref, count, unit)
    if ref > ceil_minute(start):
        assert result < ref
