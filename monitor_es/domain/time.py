"""Instants and minutes: the few time helpers the pure core needs (it never reads a clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

ONE_MINUTE = timedelta(minutes=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Instants a log may carry end here: schedule arithmetic (an instant plus a step of up to
# ~1,000 years, or a margin) must stay clear of datetime's year 9999.
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
_FLOAT_EXACT_MS = 7_258_118_400_000  # 2200-01-01T00:00Z


def trunc_minute(instant: datetime) -> datetime:
    """The instant with seconds and microseconds dropped."""
    if instant.second or instant.microsecond:
        # The constructor is the cheapest way to an aware datetime (replace() is slower).
        return datetime(
            instant.year, instant.month, instant.day, instant.hour, instant.minute,
            tzinfo=instant.tzinfo,
        )  # fmt: skip
    return instant


def from_ms(ms: int) -> datetime:
    """An aware UTC datetime from epoch milliseconds (the wire and stream-id form)."""
    if ms < _FLOAT_EXACT_MS:
        # ms / 1000 is off by less than half a microsecond before 2200, and fromtimestamp
        # rounds to the nearest microsecond, so the result is exact (and it is twice as
        # fast as adding a timedelta to the epoch).
        return datetime.fromtimestamp(ms / 1000, UTC)
    # Later the float is off by microseconds (a log may reach year 9000): exact arithmetic.
    try:
        return EPOCH + timedelta(milliseconds=ms)
    except OverflowError:  # raised as fromtimestamp raises it for the earlier instants
        raise ValueError(f"{ms} ms after the epoch is out of range") from None


def to_ms(instant: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    delta = instant - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def iso(instant: datetime | None) -> str | None:
    """ISO 8601 UTC with a `Z` suffix (fractions only when present), or None."""
    if instant is None:
        return None
    text = instant.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"


@lru_cache(maxsize=65_536)
def shifted(instant: datetime, delta: timedelta) -> datetime:
    """`instant + delta`, memoised: deadlines shared by many environments become one object.

    An aware datetime computes its hash (and equality) through its UTC offset, which is slow;
    a shared object hashes once and compares by identity in the deadline index.
    """
    return instant + delta
