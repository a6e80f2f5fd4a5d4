"""Scenario files: JSON Lines of inbound events with their broker time `ts` (domain.md).

Each valid line becomes a log entry whose id is `<ts ms>-<line number>`: strictly
increasing in any partition, and the same whether a scenario is folded in memory or
written into Redis with explicit ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec

from monitor_es.domain.events import InboundEvent
from monitor_es.domain.reducer import LogEntry
from monitor_es.domain.time import from_ms, to_ms

_TIME_FIELDS = ("received", "minute")


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
    return from_ms(to_ms(_instant(value)))


def _instant(value: Any) -> datetime:
    if isinstance(value, bool):
        raise ValueError("expected an ISO 8601 instant or epoch seconds")
    if isinstance(value, int | float):
        return from_ms(round(value * 1000))
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    raise ValueError("expected an ISO 8601 instant or epoch seconds")


def parse_line(text: str, line: int) -> ScenarioLine:
    """One non-blank, non-comment line as a log entry, or why it is not one."""
    try:
        raw = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        return InvalidLine(line, f"not JSON: {exc}")
    if not isinstance(raw, dict):
        return InvalidLine(line, "an event must be a JSON object")
    try:
        ts = parse_instant(raw.pop("ts"))
        for name in _TIME_FIELDS:
            if raw.get(name) is not None:
                raw[name] = parse_instant(raw[name])
        event = msgspec.convert(raw, InboundEvent)
    except KeyError:
        return InvalidLine(line, "missing required field `ts`")
    except (ValueError, msgspec.ValidationError) as exc:
        return InvalidLine(line, str(exc))
    return LogEntry(entry_id(ts, line), ts, event)


def read_scenario(lines: Iterable[str]) -> Iterator[ScenarioLine]:
    """Parses a scenario; `ts` must not decrease (a line that goes back is invalid)."""
    last: datetime | None = None
    for number, text in enumerate(lines, start=1):
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parsed = parse_line(stripped, number)
        if isinstance(parsed, LogEntry):
            if last is not None and parsed.ts < last:
                yield InvalidLine(number, "`ts` goes backwards: scenario lines are in log order")
                continue
            last = parsed.ts
        yield parsed


def split_scenario(lines: Iterable[str]) -> tuple[list[LogEntry], list[InvalidLine]]:
    """A scenario's log entries and its invalid lines, each in file order."""
    entries: list[LogEntry] = []
    invalid: list[InvalidLine] = []
    for parsed in read_scenario(lines):
        if isinstance(parsed, InvalidLine):
            invalid.append(parsed)
        else:
            entries.append(parsed)
    return entries, invalid
