"""A small given/when/then language over the pure reducer for the unit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from monitor_es.domain.events import (
    CheckInReported,
    ClockDecided,
    ClockPulsed,
    DerivedEvent,
    InboundEvent,
    MonitorConfigured,
    MonitorDeleted,
    MonitorDisabled,
    MonitorMuted,
)
from monitor_es.domain.partition import Limits, Partition
from monitor_es.domain.reducer import LogEntry, fold
from monitor_es.domain.state import CheckIn, Environment
from monitor_es.domain.time import to_ms

T = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
D = datetime(2024, 5, 2, 0, 0, tzinfo=UTC)
EVERY_MINUTE = {"schedule_type": "crontab", "schedule": "* * * * *"}


def minutes(n: float) -> timedelta:
    """A duration in minutes."""
    return timedelta(minutes=n)


def guid(n: int) -> str:
    """A readable check-in id."""
    return f"00000000-0000-4000-8000-{n:012d}"


class Run:
    """One partition under test: feeds events, keeps every derived event."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.p = Partition(limits)
        self.events: list[DerivedEvent] = []
        self._line = 0

    def feed(self, ts: datetime, event: InboundEvent) -> list[DerivedEvent]:
        """Appends one log entry at broker time `ts`; returns its derived events."""
        self._line += 1
        new = fold(self.p, [LogEntry(f"{to_ms(ts)}-{self._line}", ts, event)])
        self.events.extend(new)
        return new

    def checkin(
        self,
        ts: datetime,
        status: Any,
        *,
        id: Any = None,
        slug: str = "job",
        env: Any = None,
        config: Any = None,
        duration: Any = None,
        received: datetime | None = None,
        project: str = "acme",
        trace_id: Any = None,
    ) -> list[DerivedEvent]:
        """A check-in; `id` defaults to a fresh readable GUID."""
        self._ids = getattr(self, "_ids", 0) + 1
        return self.feed(
            ts,
            CheckInReported(
                project=project,
                monitor_slug=slug,
                check_in_id=guid(1000 + self._ids) if id is None else id,
                status=status,
                environment=env,
                duration=duration,
                monitor_config=config,
                received=received,
                trace_id=trace_id,
            ),
        )

    def configure(
        self, ts: datetime, config: Any, *, slug: str = "job", name: str | None = None
    ) -> list[DerivedEvent]:
        """Creates or edits a monitor through the API event."""
        return self.feed(
            ts, MonitorConfigured(project="acme", monitor_slug=slug, config=config, name=name)
        )

    def pulse(self, ts: datetime) -> list[DerivedEvent]:
        """A clock pulse at `ts`."""
        return self.feed(ts, ClockPulsed())

    def mute(self, ts: datetime, muted: bool, *, env: str | None = None) -> list[DerivedEvent]:
        """Mutes or unmutes the monitor `job` or one of its environments."""
        return self.feed(
            ts, MonitorMuted(project="acme", monitor_slug="job", muted=muted, environment=env)
        )

    def disable(self, ts: datetime, disabled: bool) -> list[DerivedEvent]:
        """Disables or enables the monitor `job`."""
        return self.feed(ts, MonitorDisabled(project="acme", monitor_slug="job", disabled=disabled))

    def delete(self, ts: datetime) -> list[DerivedEvent]:
        """Deletes the monitor `job`."""
        return self.feed(ts, MonitorDeleted(project="acme", monitor_slug="job"))

    def decide(self, ts: datetime, minute: datetime, decision: str) -> list[DerivedEvent]:
        """A system-incident decision entry."""
        return self.feed(ts, ClockDecided(minute=minute, decision=decision))

    def env(self, slug: str = "job", name: str = "production") -> Environment:
        """The environment under test."""
        env = self.p.environment(("acme", slug, name))
        assert env is not None, f"no environment {slug}/{name}"
        return env

    def checkins(self, slug: str = "job", name: str = "production") -> list[CheckIn]:
        """The environment's kept check-ins, oldest first."""
        return self.env(slug, name).checkins

    def find(self, check_in_id: str, slug: str = "job") -> CheckIn:
        """A kept check-in by id."""
        return next(c for c in self.checkins(slug) if c.id == check_in_id)


def of_type(events: list[DerivedEvent], kind: str) -> list[Any]:
    """The derived events of one type."""
    return [e for e in events if type(e).__struct_config__.tag == kind]


def errors_of(events: list[DerivedEvent]) -> list[str]:
    """The error types of every rejection among the events."""
    return [str(err["type"]) for e in of_type(events, "event_rejected") for err in e.errors]
