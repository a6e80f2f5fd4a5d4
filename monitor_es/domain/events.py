"""Events: what the log holds (inbound) and what the fold derives (outbound).

Inbound events carry no `ts`: a log entry's broker time is its stream id, passed next to
the event. Fields a user controls are typed `Any` where the reducer, not the decoder, must
judge them, so a bad value becomes a typed rejection (spec §2.3) instead of an unreadable
entry. Schema evolution adds fields with defaults and never renames a tag.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

# ---------------------------------------------------------------- inbound (the log)

# An instant on the log must carry its time zone: the fold compares it with broker times,
# and a naive one would make it raise (and, stored in the clock, every later tick too).
Instant = Annotated[datetime, msgspec.Meta(tz=True)]


class Inbound(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", gc=False):
    """Base of every event that can stand in the log."""


class CheckInReported(Inbound, frozen=True, tag="check_in"):
    """A job's check-in as the edge received it (SDK payload, Sentry's `start_time`)."""

    project: str
    monitor_slug: str
    check_in_id: Any
    status: Any
    environment: Any = None
    duration: Any = None
    monitor_config: Any = None
    received: Instant | None = None
    trace_id: Any = None


class MonitorConfigured(Inbound, frozen=True, tag="monitor_configured"):
    """A monitor created or edited through the API (spec §8.25)."""

    project: str
    monitor_slug: str
    config: Any
    name: str | None = None


class MonitorMuted(Inbound, frozen=True, tag="monitor_muted"):
    """Muting switched on or off, for one environment or (no environment) the monitor."""

    project: str
    monitor_slug: str
    muted: bool
    environment: str | None = None


class MonitorDisabled(Inbound, frozen=True, tag="monitor_disabled"):
    """A monitor disabled (check-ins rejected, no missed detection) or enabled again."""

    project: str
    monitor_slug: str
    disabled: bool


class MonitorDeleted(Inbound, frozen=True, tag="monitor_deleted"):
    """A monitor and all its environments removed."""

    project: str
    monitor_slug: str


class ClockPulsed(Inbound, frozen=True, tag="clock_pulse"):
    """Carries nothing but its broker time: keeps a quiet partition's clock moving."""


class ClockDecided(Inbound, frozen=True, tag="clock_decision"):
    """The system-incident verdict for one tick minute (spec §6.1), broadcast to partitions."""

    minute: Instant
    decision: Literal["normal", "abnormal", "incident", "recovering"]


InboundEvent = (
    CheckInReported
    | MonitorConfigured
    | MonitorMuted
    | MonitorDisabled
    | MonitorDeleted
    | ClockPulsed
    | ClockDecided
)

# ---------------------------------------------------------------- derived (the out stream)


class Derived(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", gc=False, array_like=True
):
    """Base of every event the fold derives; `id` is deterministic (replays reproduce it).

    Stored as arrays (`[type, id, ...fields]`): the out stream holds one per check-in, and
    field names would double its size. `event_json` gives the named JSON form.
    """

    id: str


class _MonitorRef(Derived, frozen=True, kw_only=True):
    project: str
    monitor_slug: str


class _EnvRef(_MonitorRef, frozen=True, kw_only=True):
    environment: str


class _CheckInRecord(_EnvRef, frozen=True, kw_only=True):
    check_in_id: str
    status: str
    date_added: datetime
    date_updated: datetime
    date_clock: datetime
    expected_time: datetime | None
    timeout_at: datetime | None
    duration_ms: int | None
    date_in_progress: datetime | None
    trace_id: str | None


class CheckInCreated(_CheckInRecord, frozen=True, tag="check_in_created"):
    """A check-in row was created (user, missed or zero-guid), with all its fields."""


class CheckInUpdated(_CheckInRecord, frozen=True, tag="check_in_updated"):
    """A check-in row changed (closed, heartbeat, timed out, unknown), with all its fields."""


class EventRejected(Derived, frozen=True, tag="event_rejected"):
    """An inbound event was rejected with typed errors; nothing else changed."""

    entry_id: str
    event_type: str
    project: str | None
    monitor_slug: str | None
    errors: list[dict[str, Any]]


class MonitorCreated(_MonitorRef, frozen=True, tag="monitor_created"):
    """A monitor came to be (upsert or API)."""

    name: str
    config: dict[str, Any]


class MonitorUpdated(_MonitorRef, frozen=True, tag="monitor_updated"):
    """A monitor's configuration changed."""

    name: str
    config: dict[str, Any]


class MonitorRemoved(_MonitorRef, frozen=True, tag="monitor_removed"):
    """A monitor and its environments were deleted."""


class MonitorDisabledChanged(_MonitorRef, frozen=True, tag="monitor_disabled_changed"):
    """A monitor was disabled or enabled."""

    disabled: bool


class EnvironmentCreated(_EnvRef, frozen=True, tag="environment_created"):
    """An environment appeared with its first check-in."""


class MuteChanged(_EnvRef, frozen=True, tag="mute_changed"):
    """An environment was muted or unmuted (`reason`: user or broken)."""

    muted: bool
    reason: str


class MarkMissing(_EnvRef, frozen=True, tag="mark_missing"):
    """Clock task: the environment's deadline passed at tick `ts`."""

    ts: datetime


class MarkTimeout(_EnvRef, frozen=True, tag="mark_timeout"):
    """Clock task: an in-progress check-in ran past its timeout at tick `ts`."""

    ts: datetime
    check_in_id: str


class MarkUnknown(_EnvRef, frozen=True, tag="mark_unknown"):
    """Clock task: during a system incident an in-progress check-in's fate is unknown."""

    ts: datetime
    check_in_id: str


class StatusChanged(_EnvRef, frozen=True, tag="status_changed"):
    """The environment's verdict changed."""

    status: str
    previous: str
    at: datetime


class IncidentOpened(_EnvRef, frozen=True, tag="incident_opened"):
    """The failure threshold was reached: an incident is open (contract form)."""

    incident_id: str
    fingerprint: list[str]
    starting_check_in_id: str
    started_at: datetime


class IncidentResolved(_EnvRef, frozen=True, tag="incident_resolved"):
    """The recovery threshold was reached: the incident is closed (contract form)."""

    incident_id: str
    fingerprint: list[str]
    starting_check_in_id: str
    started_at: datetime
    resolving_check_in_id: str
    resolved_at: datetime


class IssueOccurrence(_EnvRef, frozen=True, tag="issue_occurrence"):
    """One occurrence for the issue platform, per failing check-in (spec §5.2)."""

    fingerprint: list[str]
    incident_id: str
    failed_check_in_id: str
    issue_title: str
    subtitle: str
    level: str
    detection_time: datetime
    received: datetime
    evidence_display: list[dict[str, Any]]


class IssueResolved(_EnvRef, frozen=True, tag="issue_resolved"):
    """The issue's status change to resolved (spec §5.3)."""

    fingerprint: list[str]
    incident_id: str
    update_date: datetime


class OccurrenceHeld(_EnvRef, frozen=True, tag="issue_occurrence_held"):
    """A synthetic failure's occurrence waits for the system-incident decision of its tick."""

    incident_id: str
    failed_check_in_id: str
    tick: datetime


class OccurrenceDropped(_EnvRef, frozen=True, tag="issue_occurrence_dropped"):
    """A synthetic failure's occurrence was dropped: its tick fell in a system incident."""

    incident_id: str
    failed_check_in_id: str
    tick: datetime


class EnvironmentBroken(_EnvRef, frozen=True, tag="monitor_environment_broken"):
    """Broken detection (spec §6.2): an incident open 14 days with only failures since."""

    incident_id: str
    started_at: datetime
    detection_time: datetime


def event_json(event: Derived) -> dict[str, Any]:
    """A derived event in its JSON form: `type` and every field by name."""
    kind = type(event)
    named: dict[str, Any] = {"type": kind.__struct_config__.tag}
    for name in _json_order(kind):
        named[name] = msgspec.to_builtins(getattr(event, name))
    return named


_LEADING = ("id", "project", "monitor_slug", "environment")
# The four contract events list their fields in domain.md's order (after `type` and `id`);
# the fields domain.md does not list follow.
_CONTRACT_ORDER: dict[str, tuple[str, ...]] = {
    "incident_opened": (
        "incident_id", "project", "monitor_slug", "environment", "fingerprint",
        "starting_check_in_id", "started_at",
    ),
    "incident_resolved": (
        "incident_id", "project", "monitor_slug", "environment", "fingerprint",
        "starting_check_in_id", "started_at", "resolving_check_in_id", "resolved_at",
    ),
    "issue_occurrence": (
        "fingerprint", "incident_id", "failed_check_in_id", "issue_title", "subtitle",
        "level", "detection_time", "environment",
    ),
    "issue_resolved": ("fingerprint", "incident_id", "update_date"),
}  # fmt: skip
_ORDERS: dict[type[Derived], tuple[str, ...]] = {}


def _json_order(kind: type[Derived]) -> tuple[str, ...]:
    order = _ORDERS.get(kind)
    if order is None:
        fields = kind.__struct_fields__
        # Identity first (id, project, monitor, environment), then the event's own fields.
        first = ("id", *_CONTRACT_ORDER.get(str(kind.__struct_config__.tag), ()))
        first += tuple(name for name in _LEADING if name not in first)
        order = tuple(n for n in first if n in fields)
        order += tuple(n for n in fields if n not in order)
        _ORDERS[kind] = order
    return order


DerivedEvent = (
    CheckInCreated
    | CheckInUpdated
    | EventRejected
    | MonitorCreated
    | MonitorUpdated
    | MonitorRemoved
    | MonitorDisabledChanged
    | EnvironmentCreated
    | MuteChanged
    | MarkMissing
    | MarkTimeout
    | MarkUnknown
    | StatusChanged
    | IncidentOpened
    | IncidentResolved
    | IssueOccurrence
    | IssueResolved
    | OccurrenceHeld
    | OccurrenceDropped
    | EnvironmentBroken
)
