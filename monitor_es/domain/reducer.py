"""The reducer: folds log entries into partition state and derived events.

Total over every event it can read: a bad event becomes an `event_rejected` record and
the fold goes on. No I/O, no clock, no randomness: the same log gives the same state and
the same events, ids included.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import assert_never

import msgspec

from monitor_es.domain import clock, monitors
from monitor_es.domain.checkins import process_check_in
from monitor_es.domain.effects import Effects
from monitor_es.domain.errors import Rejected
from monitor_es.domain.events import (
    CheckInReported,
    ClockDecided,
    ClockPulsed,
    DerivedEvent,
    EventRejected,
    InboundEvent,
    MonitorConfigured,
    MonitorDeleted,
    MonitorDisabled,
    MonitorMuted,
)
from monitor_es.domain.incidents import release_held
from monitor_es.domain.partition import Partition
from monitor_es.domain.system_incidents import Decision
from monitor_es.domain.time import trunc_minute


class LogEntry(msgspec.Struct, frozen=True, gc=False):
    """One log entry: its stream id, its broker time and the event it carries."""

    id: str
    ts: datetime
    event: InboundEvent


def fold(p: Partition, entries: Iterable[LogEntry]) -> list[DerivedEvent]:
    """Applies entries in order; returns every derived event in order."""
    fx = Effects()
    for entry in entries:
        apply(p, fx, entry)
    return fx.events


def apply(p: Partition, fx: Effects, entry: LogEntry) -> None:
    """Ticks the clock up to the entry's minute, then applies the entry."""
    upcoming = p.next_tick
    if upcoming is None or entry.ts >= upcoming:  # most entries stay in the ticked minute
        clock.advance(p, fx, entry.ts)
    fx.cause(entry.id)
    event = entry.event
    try:
        if type(event) is CheckInReported:  # nearly every entry: skip the dispatch
            process_check_in(p, fx, entry.id, entry.ts, event)
        else:
            _dispatch(p, fx, entry, event)
    except Rejected as rejected:
        fx.emit(
            EventRejected,
            entry_id=entry.id,
            event_type=_type_of(event),
            project=getattr(event, "project", None),
            monitor_slug=getattr(event, "monitor_slug", None),
            errors=rejected.errors,
        )


def _dispatch(p: Partition, fx: Effects, entry: LogEntry, event: InboundEvent) -> None:
    match event:
        case CheckInReported():
            process_check_in(p, fx, entry.id, entry.ts, event)
        case MonitorConfigured():
            monitors.configure(p, fx, entry.ts, event)
        case MonitorMuted():
            monitors.mute(p, fx, event)
        case MonitorDisabled():
            monitors.disable(p, fx, entry.ts, event)
        case MonitorDeleted():
            monitors.delete(p, fx, entry.ts, event)
        case ClockPulsed():
            pass  # it only moved the clock
        case ClockDecided():
            _record_decision(p, fx, entry, event)
        case _:
            assert_never(event)


def _type_of(event: InboundEvent) -> str:
    return str(type(event).__struct_config__.tag)


def _record_decision(p: Partition, fx: Effects, entry: LogEntry, event: ClockDecided) -> None:
    """Stores a system-incident decision, then settles held occurrences it decides."""
    minute = trunc_minute(event.minute)
    decisions = [d for d in p.clock.decisions if d[0] != minute]
    decisions.append((minute, Decision(event.decision).value))
    decisions.sort()
    p.clock.decisions = decisions
    p.clock_dirty = True
    for env in p.all_environments():
        if env.held:
            # One cause per environment: the same decision entry reaches every partition.
            fx.cause(f"{entry.id}:{env.project}/{env.monitor_slug}/{env.name}")
            release_held(p, fx, p.monitors[(env.project, env.monitor_slug)], env)
