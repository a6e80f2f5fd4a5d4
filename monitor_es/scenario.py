"""Scenario files: JSON Lines of inbound events with their broker time `ts` (domain.md).

Each valid line becomes a log entry whose id is `<ts ms>-<line number>`: strictly
increasing in any partition, and the same whether a scenario is folded in memory or
written into Redis with explicit ids.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Final, get_args

import msgspec

from monitor_es.codec import InvalidEvent, encode_valid_event
from monitor_es.domain.events import InboundEvent
from monitor_es.domain.reducer import LogEntry
from monitor_es.domain.time import EPOCH, LATEST, from_ms, iso, to_ms

# Instants a log can hold: stream ids are unsigned (no time before the epoch), and the
# schedule arithmetic must stay far from datetime's year 9999 (`ts` plus a schedule step).
EARLIEST: Final = EPOCH
_LATEST_SECONDS: Final = LATEST.timestamp()
# Instants inside an event, by event type (outside it, a field of that name is unknown).
_TIME_FIELDS: Final = {"check_in": "received", "clock_decision": "minute"}
_EVENT_TYPES: Final = frozenset(str(kind.__struct_config__.tag) for kind in get_args(InboundEvent))
_UTC_SUFFIX: Final = re.compile(r"[zZ]$")
_BOM: Final = "\ufeff"


class InvalidLine(msgspec.Struct, frozen=True):
    """A line that is not a valid event, with the reason."""

    line: int
    message: str


ScenarioLine = LogEntry | InvalidLine


def entry_id(ts: datetime, line: int) -> str:
    """The log entry id a scenario line gets (Redis explicit-id form)."""
    return f"{to_ms(ts)}-{line}"


def line_of(entry: str) -> int:
    """The scenario line an entry id came from."""
    return int(entry.split("-", 1)[1])


def parse_instant(value: Any) -> datetime:
    """An ISO 8601 instant (naive means UTC) or epoch seconds, at millisecond precision.

    Milliseconds, because that is what the log keeps (entry ids, wire times): a scenario
    folded in memory must see the instants a Redis-backed run sees.
    """
    try:
        instant = _instant(value)
    except OverflowError:  # an offset that pushes a date past year 1 or 9999
        instant = None
    if instant is None or not EARLIEST <= instant < LATEST:
        raise ValueError(f"must lie between {iso(EARLIEST)} and {iso(LATEST)}, got {value!r}")
    return from_ms(to_ms(instant))


def _instant(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not 0 <= value < _LATEST_SECONDS:  # also NaN and infinities
            return None
        return from_ms(round(value * 1000))
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(_UTC_SUFFIX.sub("+00:00", value))
        except ValueError:
            raise ValueError(f"is not an ISO 8601 instant: {value!r}") from None
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    raise ValueError(f"must be an ISO 8601 instant or epoch seconds, got {value!r}")


def parse_line(text: str, line: int) -> ScenarioLine:
    """One non-blank, non-comment line as a log entry, or why it is not one."""
    try:
        raw = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        return InvalidLine(line, f"not JSON: {exc}")
    except RecursionError:  # msgspec recurses once per nesting level
        return InvalidLine(line, "not JSON: nested too deeply")
    if not isinstance(raw, dict):
        return InvalidLine(line, "an event must be a JSON object")
    if "type" not in raw:
        return InvalidLine(line, "missing required field `type`")
    kind = raw["type"]
    if not isinstance(kind, str) or kind not in _EVENT_TYPES:
        known = ", ".join(sorted(_EVENT_TYPES))
        return InvalidLine(line, f"unknown event type {kind!r} (expected one of: {known})")
    if "ts" not in raw:
        return InvalidLine(line, "missing required field `ts`")
    try:
        ts = parse_instant(raw.pop("ts"))
    except ValueError as exc:
        return InvalidLine(line, f"`ts` {exc}")
    name = _TIME_FIELDS.get(kind)
    if name is not None and raw.get(name) is not None:
        try:
            raw[name] = parse_instant(raw[name])
        except ValueError as exc:
            return InvalidLine(line, f"`{name}` {exc}")
    try:
        event = msgspec.convert(raw, InboundEvent)
    except msgspec.ValidationError as exc:
        return InvalidLine(line, str(exc))
    try:
        # What the log could not hold (an int past 64 bits, nesting past the codec's limit)
        # is refused here too, so `simulate` and `simulate --redis-url` agree on every line.
        encode_valid_event(event)
    except InvalidEvent as exc:
        return InvalidLine(line, f"not a log entry: {exc}")
    return LogEntry(entry_id(ts, line), ts, event)


def read_scenario(lines: Iterable[str | bytes]) -> Iterator[ScenarioLine]:
    """Parses a scenario line by line; `ts` must not decrease (a line that goes back is invalid).

    Lines may be bytes (a file opened in binary mode): each is decoded on its own, so a
    line that is not UTF-8 is one invalid line and the numbering stays the file's.
    """
    last: LogEntry | None = None
    for number, item in enumerate(lines, start=1):
        if isinstance(item, bytes):
            try:
                text = item.decode("utf-8")
            except UnicodeDecodeError as exc:
                reason = f"not JSON: not UTF-8 text ({exc.reason} at byte {exc.start + 1})"
                yield InvalidLine(number, reason)
                continue
        else:
            text = item
        stripped = text.strip()
        if number == 1:
            stripped = stripped.removeprefix(_BOM).strip()
        if not stripped or stripped.startswith("#"):
            continue
        parsed = parse_line(stripped, number)
        if isinstance(parsed, LogEntry):
            if last is not None and parsed.ts < last.ts:
                yield InvalidLine(
                    number,
                    f"`ts` {iso(parsed.ts)} is before {iso(last.ts)} of line {line_of(last.id)}:"
                    " a scenario is in log order, so `ts` must not decrease",
                )
                continue
            last = parsed
        yield parsed


def split_scenario(
    lines: Iterable[str | bytes],
) -> tuple[list[LogEntry], list[InvalidLine]]:
    """A scenario's log entries and its invalid lines, each in file order."""
    entries: list[LogEntry] = []
    invalid: list[InvalidLine] = []
    for parsed in read_scenario(lines):
        if isinstance(parsed, InvalidLine):
            invalid.append(parsed)
        else:
            entries.append(parsed)
    return entries, invalid
