"""The crontab grammar Sentry accepts: CronSim's, which is narrower than croniter's.

Sentry validates a crontab by building a CronSim (spec §2.10): whatever CronSim refuses is
"Schedule is invalid". croniter, which computes our slots, also takes reversed ranges
(`5-1`), `?`, `W` and `L5`; a config that Sentry refuses must not be accepted here.
"""

from __future__ import annotations

from typing import Final

__all__ = ["cronsim_accepts"]

_RANGES: Final = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_NAMES: Final[dict[int, tuple[str, ...]]] = {
    3: ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
    4: ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"),
}
_DAY: Final = 2
_MONTH: Final = 3
_DOW: Final = 4
_DIGITS: Final = frozenset("0123456789")


def cronsim_accepts(fields: list[str]) -> bool:
    """Whether CronSim parses these five fields (its day-of-month range check aside)."""
    return len(fields) == 5 and all(
        _term(index, field.upper()) for index, field in enumerate(fields)
    )


def _number(text: str) -> int | None:
    # CronSim takes plain ASCII digits only: no sign, no blank, no other script's digits.
    return int(text) if text and _DIGITS.issuperset(text) else None


def _value_of(index: int, text: str) -> int | None:
    """A field's value (a number in range, or a month or weekday name), or None."""
    names = _NAMES.get(index, ())
    if text in names:
        return names.index(text) + (1 if index == _MONTH else 0)
    number = _number(text)
    low, high = _RANGES[index]
    return number if number is not None and low <= number <= high else None


def _term(index: int, text: str) -> bool:
    """One field or list item, checked in the order CronSim's Field.parse checks it."""
    if text == "*":
        return True
    if "," in text:
        return all(_term(index, item) for item in text.split(","))
    if index == _DOW and "L" in text:
        # Only `<weekday number>L` (the last such weekday of the month).
        return _number(text[:-1]) is not None and _value_of(index, text[:-1]) is not None
    if "#" in text and index == _DOW:
        day, nth = text.split("#", 1)
        count = _number(nth)
        return count is not None and 1 <= count <= 5 and _value_of(index, day) is not None
    if "/" in text:
        start, step = text.split("/", 1)
        return bool(_number(step)) and _term(index, start)
    if "-" in text:
        first, last = text.split("-", 1)
        low, high = _value_of(index, first), _value_of(index, last)
        return low is not None and high is not None and low <= high
    if index == _DAY and text in ("L", "LW"):  # the last day, the last weekday
        return True
    return _value_of(index, text) is not None
