"""Schedules: crontab parsing and expected check-in slots (spec §4.7 and §2.10).

Every computation is at minute precision, in the monitor's time zone, and returns aware UTC
datetimes. Crontabs follow Debian cron across DST (peers.md §3.2): a fixed-time job (no `*` or
step in the minute and hour fields) runs once in a repeated hour and, when its local time is
skipped, at the instant the gap ends; any other job runs on real time.
"""

import calendar
import copy
import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from importlib import resources
from typing import Final, Literal, assert_never
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from croniter import CroniterBadDateError, croniter

from monitor_es.domain.cron_syntax import cronsim_accepts

__all__ = [
    "INVALID",
    "NOT_PARSEABLE",
    "TOO_MANY_FIELDS",
    "CrontabSchedule",
    "IntervalSchedule",
    "IntervalUnit",
    "Schedule",
    "ScheduleError",
    "known_zones",
    "next_expected",
    "parse_crontab",
    "prev_expected",
]

IntervalUnit = Literal["minute", "hour", "day", "week", "month", "year"]


class CrontabSchedule(msgspec.Struct, frozen=True, tag="crontab"):
    """A 5-field crontab, whitespace collapsed and `@aliases` expanded."""

    expr: str


class IntervalSchedule(msgspec.Struct, frozen=True, tag="interval"):
    """Every `count` units; minutes and hours are elapsed time, longer units keep wall time."""

    count: int
    unit: IntervalUnit


Schedule = CrontabSchedule | IntervalSchedule


class ScheduleError(ValueError):
    """Raised with the user-facing message of spec §2.10."""


NOT_PARSEABLE: Final = "Schedule was not parseable"
TOO_MANY_FIELDS: Final = "Only 5 field crontab syntax is supported"
INVALID: Final = "Schedule is invalid"

_ALIASES: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# croniter 7 reads a range `a-b` with a >= b as wrapping around: `5-5` as every value.
_RANGE: Final = re.compile(r"(\w+)-(\w+)(/\d+)?")
_NAMES: Final[tuple[dict[str, int], ...]] = (
    {},
    {},
    {},
    {name: i for i, name in enumerate(calendar.month_abbr) if name},
    {name: (i + 1) % 7 for i, name in enumerate(calendar.day_abbr)},
)
# Validation and the parsed template start here, never at the wall clock.
_REFERENCE: Final = datetime(2000, 1, 1)

_MINUTE: Final = timedelta(minutes=1)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# Offset changes are probed once a day: the closest pair of changes in tzdata since 1970 is
# about 7 days apart, so a probe can never step over two of them.
_PROBE: Final = timedelta(days=1)
_MAX_STEPS: Final = 5000
_CACHE_SIZE: Final = 65536
_ELAPSED: Final = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1)}
_DAYS: Final = {"day": 1, "week": 7}
_MONTHS: Final = {"month": 1, "year": 12}


class _Cron:
    """A validated crontab with parsed croniter templates that are copied for each search."""

    __slots__ = ("expr", "fixed", "templates")

    def __init__(
        self, expr: str, templates: "tuple[croniter[datetime] | _LastWeekdays, ...]"
    ) -> None:
        self.expr = expr
        # One template, or one per day field when cron ORs them (see _day_sides).
        self.templates = templates
        minute, hour = expr.split(" ")[:2]
        self.fixed = not any(c in minute + hour for c in "*/")

    def after(self, wall: datetime) -> datetime:
        """The first naive local match strictly after `wall`."""
        # Copying skips re-parsing, which is half of croniter's cost; the copy keeps it stateless.
        return min(copy.copy(t).get_next(datetime, start_time=wall) for t in self.templates)

    def before(self, wall: datetime) -> datetime:
        """The last naive local match strictly before `wall`."""
        return max(copy.copy(t).get_prev(datetime, start_time=wall) for t in self.templates)


def _normalise(expr: str) -> str:
    """Collapse whitespace, expand aliases and check the field count."""
    text = " ".join(expr.split())
    if text.startswith("@"):
        alias = _ALIASES.get(text.lower())
        if alias is None:
            raise ScheduleError(NOT_PARSEABLE)
        return alias
    fields = text.split(" ")
    if len(fields) > 5:
        raise ScheduleError(TOO_MANY_FIELDS)
    # Sentry says "not parseable" only for an unknown alias; every other crontab its parser
    # (CronSim) refuses, too few fields, reversed ranges and croniter's H/R included, is
    # "invalid" (spec §2.10).
    if not cronsim_accepts(fields):
        raise ScheduleError(INVALID)
    return text


def _range_value(token: str, names: dict[str, int]) -> int | None:
    """A range end as a number (names are case-insensitive), or None if it is neither."""
    if token.isdigit():
        return int(token)
    return names.get(token.capitalize())


def _pin_range(part: str, names: dict[str, int]) -> str:
    """One list item of a field: `a-a` becomes `a`; `a-b` with a > b is invalid."""
    match = _RANGE.fullmatch(part)
    if match is None:
        return part
    low, high = (_range_value(match[i], names) for i in (1, 2))
    if low is not None and high is not None and low > high:
        raise ScheduleError(INVALID)  # cronsim_accepts refused it already
    return match[1] if low is not None and low == high else part  # one value, whatever the step


def _pin_ranges(text: str) -> str:
    """Ranges as cron reads them (peers.md §3.8), for croniter, which wraps `a-b` if a >= b."""
    return " ".join(
        ",".join(_pin_range(part, names) for part in field.split(","))
        for field, names in zip(text.split(" "), _NAMES, strict=True)
    )


def _day_sides(text: str) -> list[str]:
    """The crontab as one search, or as two when cron ORs day of month and day of week.

    Cron ORs the day fields when neither starts with `*`; croniter also ANDs a `#` or `W` into
    both sides of its OR (`0 0 1 * 1#2` never matched), so each side is searched on its own.
    """
    minute, hour, dom, month, dow = text.split(" ")
    if dom.startswith(("*", "?")) or dow.startswith(("*", "?")):
        return [text]
    return [f"{minute} {hour} {dom} {month} *", f"{minute} {hour} * {month} {dow}"]


class _LastWeekdays:
    """Slots on the last weekday (Monday to Friday) of the month: cron's `LW`, which croniter
    lacks. It walks croniter's days 26-31 (a month's last weekday is never earlier) and keeps
    the days no later weekday of the month follows."""

    __slots__ = ("base",)

    def __init__(self, base: "croniter[datetime]") -> None:
        self.base = base

    def get_next(self, ret_type: type[datetime], start_time: datetime) -> datetime:
        """The first slot strictly after `start_time` (croniter's signature)."""
        probe = copy.copy(self.base)
        found = probe.get_next(ret_type, start_time=start_time)
        while not _is_last_weekday(found):
            found = probe.get_next(ret_type)
        return found

    def get_prev(self, ret_type: type[datetime], start_time: datetime) -> datetime:
        """The last slot strictly before `start_time` (croniter's signature)."""
        probe = copy.copy(self.base)
        found = probe.get_prev(ret_type, start_time=start_time)
        while not _is_last_weekday(found):
            found = probe.get_prev(ret_type)
        return found


def _is_last_weekday(day: datetime) -> bool:
    last = calendar.monthrange(day.year, day.month)[1]
    later = range(day.day + 1, last + 1)
    return day.weekday() < 5 and all(day.replace(day=d).weekday() >= 5 for d in later)


def _template(side: str) -> "croniter[datetime] | _LastWeekdays | None":
    """A croniter template for one search, or None if that search never matches."""
    minute, hour, dom, month, dow = side.split(" ")
    last_weekday = dom.upper() == "LW"
    if last_weekday:
        side = f"{minute} {hour} 26-31 {month} {dow}"  # dow is `*` here (_day_sides)
    try:
        # The cron "bug" mode is Vixie/Debian cron (and cronsim): day-of-month and day-of-week
        # are ANDed when either field starts with `*`.
        base = croniter(side, _REFERENCE, datetime, implement_cron_bug=True)
        template = _LastWeekdays(base) if last_weekday else base
        copy.copy(template).get_next(datetime, start_time=_REFERENCE)
        copy.copy(template).get_prev(datetime, start_time=_REFERENCE)
    except CroniterBadDateError:  # valid syntax that never matches, e.g. `* * 31 2 *`
        return None
    except ValueError as exc:  # every croniter syntax error is a ValueError
        raise ScheduleError(INVALID) from exc
    return template


def _last_weekday_of_month_sides(side: str) -> list[str]:
    """A day-of-month list holding `LW` as one search for `LW` and one for the other days."""
    minute, hour, dom, month, dow = side.split(" ")
    items = dom.split(",")
    if len(items) == 1 or not any(item.upper() == "LW" for item in items):
        return [side]
    rest = ",".join(item for item in items if item.upper() != "LW")
    return [f"{minute} {hour} LW {month} {dow}", f"{minute} {hour} {rest} {month} {dow}"]


def _last_weekday_sides(side: str) -> list[str]:
    """Cron's `<weekday>L` (the last such weekday of the month) in croniter's `L<weekday>`.

    croniter reads `L5` alone but not inside a list, so each such item becomes a search of
    its own; their slots merge like the OR of the day fields.
    """
    minute, hour, dom, month, dow = side.split(" ")
    items = dow.split(",")
    last = [item for item in items if item.upper().endswith("L")]
    if not last:
        return [side]
    head = f"{minute} {hour} {dom} {month}"
    # cronsim_accepts let through only `<0-7>L`; 7 is Sunday, which croniter spells 0.
    sides = [f"{head} L{int(item[:-1]) % 7}" for item in last]
    rest = [item for item in items if not item.upper().endswith("L")]
    if rest:
        sides.append(f"{head} {','.join(rest)}")
    return sides


@lru_cache(maxsize=4096)
def _compile(expr: str) -> _Cron:
    """Validate a crontab and build its reusable croniter templates."""
    text = _normalise(expr)
    sides = [
        _template(search)
        for side in _day_sides(_pin_ranges(text))
        for by_weekday in _last_weekday_sides(side)
        for search in _last_weekday_of_month_sides(by_weekday)
    ]
    templates = tuple(t for t in sides if t is not None)
    if not templates:
        raise ScheduleError(INVALID)
    return _Cron(text, templates)


def parse_crontab(expr: str) -> CrontabSchedule:
    """Parse a user crontab into its normalised schedule or raise ScheduleError."""
    return CrontabSchedule(expr=_compile(expr).expr)


def next_expected(schedule: Schedule, tz: str, ref: datetime) -> datetime:
    """The first slot strictly after the aware `ref`, as a UTC minute."""
    try:
        return _next_cached(schedule, tz, (ref - _EPOCH) // _MINUTE)
    except OverflowError as exc:  # beyond datetime's year 9999
        raise ScheduleError(INVALID) from exc


@lru_cache(maxsize=_CACHE_SIZE)
def next_after_minute(schedule: Schedule, tz: str, minute: datetime) -> datetime:
    """next_expected for a whole-minute UTC reference, memoised on the minute itself.

    The reducer's references are mostly the current tick's minute (one shared object), so
    this skips the arithmetic next_expected needs to turn an arbitrary instant into a key.
    """
    return next_expected(schedule, tz, minute)


def prev_expected(schedule: Schedule, tz: str, start: datetime, ref: datetime) -> datetime:
    """The last slot strictly before `ref` (intervals anchored at `start`), as a UTC minute."""
    # Slots are whole minutes, so "before ref" is "before ref rounded up to the minute".
    limit = -((_EPOCH - ref) // _MINUTE)
    try:
        if isinstance(schedule, CrontabSchedule):
            return _prev_cron_cached(schedule.expr, tz, limit)
        return _prev_interval_cached(schedule, tz, (start - _EPOCH) // _MINUTE, limit)
    except OverflowError as exc:
        raise ScheduleError(INVALID) from exc


def _at(minute: int) -> datetime:
    """The aware UTC instant of an epoch minute."""
    return _EPOCH + minute * _MINUTE


@lru_cache(maxsize=1)
def known_zones() -> frozenset[str]:
    """Every zone name of the `tzdata` package, the one tz database the domain reads."""
    names = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return frozenset(names.split())


@lru_cache(maxsize=1024)  # more than the zones there are
def _zone(tz: str) -> ZoneInfo:
    """The cached ZoneInfo of a tz-database name, read from the `tzdata` package.

    Never `ZoneInfo(tz)`: it prefers the host's /usr/share/zoneinfo, whose release differs
    between machines (a changed DST rule moves slots), so a replay elsewhere would diverge.
    """
    if tz not in known_zones():  # also keeps a stored name from walking out of the package
        raise ZoneInfoNotFoundError(f"No time zone found with key {tz}")
    with resources.files("tzdata.zoneinfo").joinpath(*tz.split("/")).open("rb") as data:
        return ZoneInfo.from_file(data, key=tz)


@lru_cache(maxsize=_CACHE_SIZE)
def _next_cached(schedule: Schedule, tz: str, minute: int) -> datetime:
    """next_expected for the reference minute `minute`, memoised."""
    match schedule:
        case CrontabSchedule(expr=expr):
            return _cron_next(_compile(expr), _zone(tz), _at(minute + 1))
        case IntervalSchedule(count=count, unit=unit):
            _check_count(count)
            if unit in _ELAPSED:
                return _at(minute) + count * _ELAPSED[unit]
            return _calendar_next(count, unit, _zone(tz), _at(minute))
        case _:
            assert_never(schedule)


@lru_cache(maxsize=_CACHE_SIZE)
def _prev_cron_cached(expr: str, tz: str, limit: int) -> datetime:
    """prev_expected of a crontab for slots before the minute `limit`, memoised."""
    return _cron_prev(_compile(expr), _zone(tz), _at(limit - 1))


@lru_cache(maxsize=_CACHE_SIZE)
def _prev_interval_cached(schedule: IntervalSchedule, tz: str, start: int, limit: int) -> datetime:
    """prev_expected of an interval anchored at minute `start`, before minute `limit`, memoised."""
    _check_count(schedule.count)
    anchor = _at(start)
    if limit <= start:
        return anchor
    if schedule.unit in _ELAPSED:
        step = schedule.count * _ELAPSED[schedule.unit]
        return anchor + ((_at(limit - 1) - anchor) // step) * step
    return _calendar_prev(schedule.count, schedule.unit, _zone(tz), anchor, _at(limit))


def _check_count(count: int) -> None:
    """Reject an interval that would never advance."""
    if count <= 0:
        raise ScheduleError(INVALID)


# --- Time-zone helpers. Instants are aware UTC minutes; walls are naive local times. ---------


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta:
    """The zone's UTC offset at an instant."""
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None  # a ZoneInfo always knows its offset
    return offset


def _wall(instant: datetime, offset: timedelta) -> datetime:
    """The naive local wall time of an instant whose offset is known."""
    return instant.replace(tzinfo=None) + offset


def _instant(wall: datetime, offset: timedelta) -> datetime:
    """The UTC instant of a naive wall time under a known offset."""
    return (wall - offset).replace(tzinfo=UTC)


def _change_within(zone: ZoneInfo, lo: datetime, hi: datetime) -> datetime:
    """The first minute in (lo, hi] whose offset differs from lo's; there is exactly one change."""
    base = _offset(zone, lo)
    while hi - lo > _MINUTE:
        mid = lo + (hi - lo) // _MINUTE // 2 * _MINUTE
        if _offset(zone, mid) == base:
            lo = mid
        else:
            hi = mid
    return hi


def _first_change(zone: ZoneInfo, lo: datetime, base: timedelta, hi: datetime) -> datetime | None:
    """The first offset change in (lo, hi], given lo's offset `base`, or None."""
    while lo < hi:
        probe = min(lo + _PROBE, hi)
        if _offset(zone, probe) != base:
            return _change_within(zone, lo, probe)
        lo = probe
    return None


def _last_change(zone: ZoneInfo, lo: datetime, hi: datetime, base: timedelta) -> datetime | None:
    """The last offset change in (lo, hi], given hi's offset `base`, or None."""
    while lo < hi:
        probe = max(hi - _PROBE, lo)
        if _offset(zone, probe) != base:
            return _change_within(zone, probe, hi)
        hi = probe
    return None


def _in_repeat(zone: ZoneInfo, instant: datetime) -> bool:
    """True when the instant's wall time already happened once (second pass of a fall-back)."""
    return instant.astimezone(zone).fold == 1


def _repeat_bounds(zone: ZoneInfo, instant: datetime) -> tuple[datetime, datetime]:
    """The UTC span [start, end) of the second pass of the repeated hour holding `instant`."""
    wall = instant.astimezone(zone).replace(tzinfo=None)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)  # the first pass
    start = _change_within(zone, first, instant)
    return start, start + (instant - first)


def _from_wall(zone: ZoneInfo, wall: datetime) -> datetime:
    """The UTC instant of a local wall time: the first pass in a fold, the gap's end in a gap."""
    early = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if early.astimezone(zone).replace(tzinfo=None) == wall:
        return early
    # A skipped wall time: fold=1 reads it with the later offset, which lands before the jump.
    late = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return _change_within(zone, late, early)


# --- Crontab search. -------------------------------------------------------------------------


def _gap_matches(cron: _Cron, zone: ZoneInfo, instant: datetime) -> bool:
    """True when `instant` ends a spring-forward gap whose skipped walls match the crontab."""
    before, after = _offset(zone, instant - _MINUTE), _offset(zone, instant)
    if after <= before:
        return False
    return cron.after(_wall(instant, before) - _MINUTE) < _wall(instant, after)


def _cron_next(cron: _Cron, zone: ZoneInfo, lo: datetime) -> datetime:
    """The earliest crontab slot at or after the UTC minute `lo`."""
    # A fixed-time job whose local time was skipped right before `lo` runs at `lo` (Debian).
    if cron.fixed and _gap_matches(cron, zone, lo):
        return lo
    for _ in range(_MAX_STEPS):
        offset = _offset(zone, lo)
        candidate = _instant(cron.after(_wall(lo, offset) - _MINUTE), offset)
        change = _first_change(zone, lo, offset, candidate)
        if change is None:
            if cron.fixed and _in_repeat(zone, candidate):
                lo = _repeat_bounds(zone, candidate)[1]  # fixed-time jobs skip the second pass
                continue
            return candidate
        # The offset changes before the candidate: nothing matched up to the change.
        if cron.fixed and _gap_matches(cron, zone, change):
            return change
        lo = change
    raise OverflowError("no crontab slot found")


def _cron_prev(cron: _Cron, zone: ZoneInfo, hi: datetime) -> datetime:
    """The latest crontab slot at or before the UTC minute `hi`."""
    for _ in range(_MAX_STEPS):
        offset = _offset(zone, hi)
        candidate = _instant(cron.before(_wall(hi, offset) + _MINUTE), offset)
        change = _last_change(zone, candidate, hi, offset)
        if change is None:
            if cron.fixed and _in_repeat(zone, candidate):
                hi = _repeat_bounds(zone, candidate)[0] - _MINUTE  # only the first pass counts
                continue
            return candidate
        # The offset changed after the candidate: nothing matched from the change up to `hi`.
        if cron.fixed and _gap_matches(cron, zone, change):
            return change
        hi = change - _MINUTE
    raise OverflowError("no crontab slot found")


# --- Calendar intervals (day, week, month, year): local wall-clock arithmetic. ----------------


def _shift(wall: datetime, unit: str, steps: int) -> datetime | None:
    """`wall` moved by `steps` units, or None when that date does not exist (Jan 31 + 1 month)."""
    if unit in _DAYS:
        return wall + timedelta(days=steps * _DAYS[unit])
    year, month = divmod(wall.year * 12 + wall.month - 1 + steps * _MONTHS[unit], 12)
    if not 1 <= year <= 9999:
        raise OverflowError("date out of range")
    # Like dateutil's rrule, a day that the target month lacks is skipped, not clamped.
    if wall.day > calendar.monthrange(year, month + 1)[1]:
        return None
    return wall.replace(year=year, month=month + 1)


def _occurrence(zone: ZoneInfo, anchor: datetime, unit: str, steps: int) -> datetime | None:
    """The UTC instant of the local `anchor` moved by `steps` units, or None if none exists."""
    wall = _shift(anchor, unit, steps)
    return None if wall is None else _from_wall(zone, wall)


def _calendar_next(count: int, unit: str, zone: ZoneInfo, ref: datetime) -> datetime:
    """The first step of `count` units from `ref`'s local wall time that lands after `ref`."""
    anchor = ref.astimezone(zone).replace(tzinfo=None)
    for k in range(1, _MAX_STEPS):
        slot = _occurrence(zone, anchor, unit, k * count)
        # Defensive: only a forward jump of a day or more could pull a slot back onto `ref`.
        if slot is not None and slot > ref:
            return slot
    raise OverflowError("no interval slot found")


def _calendar_prev(
    count: int, unit: str, zone: ZoneInfo, start: datetime, limit: datetime
) -> datetime:
    """The last occurrence before `limit` of `count` units stepped from `start`'s local time."""
    anchor = start.astimezone(zone).replace(tzinfo=None)
    end = limit.astimezone(zone).replace(tzinfo=None)
    if unit in _DAYS:
        units = (end - anchor).days // _DAYS[unit]
    else:
        units = ((end.year - anchor.year) * 12 + end.month - anchor.month) // _MONTHS[unit]
    # One step of headroom: across a fall-back, `limit`'s wall time can lag its last slot's.
    for k in range(units // count + 1, 0, -1):
        slot = _occurrence(zone, anchor, unit, k * count)
        if slot is not None and slot < limit:
            return slot
    return start
