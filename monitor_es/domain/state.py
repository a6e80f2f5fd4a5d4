"""The state a partition's fold builds: monitors, environments, recent check-ins, incidents.

Records are mutable msgspec Structs: the reducer updates them in place (the functional
core is the fold as a whole: same log in, same state and events out) and the store encodes
them compactly as arrays. They never form reference cycles, so they are kept out of the
cyclic garbage collector (`gc=False`), which otherwise spends a tenth of a fold scanning.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec

from monitor_es.domain.config import MonitorConfig


class EnvStatus(StrEnum):
    """An environment's latest verdict (domain.md)."""

    PENDING = "pending"
    OK = "ok"
    MISSED = "missed"
    TIMEOUT = "timeout"
    FAILED = "failed"


class CheckInStatus(StrEnum):
    """A check-in's status (spec §1.1 CheckInStatus)."""

    UNKNOWN = "unknown"
    OK = "ok"
    ERROR = "error"
    IN_PROGRESS = "in_progress"
    MISSED = "missed"
    TIMEOUT = "timeout"


# Enum members are descriptors on Python 3.11: `CheckInStatus.OK` costs ~50 ns, a module
# global ~6 ns. The reducer's hot paths compare statuses many times per check-in, so they
# use these aliases.
CHECKIN_UNKNOWN = CheckInStatus.UNKNOWN
CHECKIN_OK = CheckInStatus.OK
CHECKIN_ERROR = CheckInStatus.ERROR
CHECKIN_IN_PROGRESS = CheckInStatus.IN_PROGRESS
CHECKIN_MISSED = CheckInStatus.MISSED
CHECKIN_TIMEOUT = CheckInStatus.TIMEOUT
ENV_PENDING = EnvStatus.PENDING
ENV_OK = EnvStatus.OK
ENV_MISSED = EnvStatus.MISSED
ENV_TIMEOUT = EnvStatus.TIMEOUT
ENV_FAILED = EnvStatus.FAILED

USER_TERMINAL = frozenset({CheckInStatus.OK, CheckInStatus.ERROR})
SYNTHETIC = frozenset({CheckInStatus.MISSED, CheckInStatus.TIMEOUT, CheckInStatus.UNKNOWN})
FAILURES = frozenset({CheckInStatus.ERROR, CheckInStatus.MISSED, CheckInStatus.TIMEOUT})

MonitorKey = tuple[str, str]
EnvKey = tuple[str, str, str]


class CheckIn(msgspec.Struct, array_like=True, kw_only=True, gc=False):
    """One run of a job (spec §1.5), user-reported or synthetic."""

    id: str
    status: CheckInStatus
    date_added: datetime
    date_updated: datetime
    date_clock: datetime
    expected_time: datetime | None = None
    timeout_at: datetime | None = None
    duration_ms: int | None = None
    date_in_progress: datetime | None = None
    trace_id: str | None = None


class Incident(msgspec.Struct, array_like=True, kw_only=True, gc=False):
    """The open incident of an environment (spec §1.6) and its broken-detection marks."""

    id: str
    starting_check_in_id: str
    started_at: datetime
    occurrences: int = 0
    broken_notified_at: datetime | None = None
    broken_muted_at: datetime | None = None


class HeldOccurrence(msgspec.Struct, array_like=True, kw_only=True, gc=False):
    """A synthetic failure's occurrence waiting for its tick's system-incident decision."""

    incident_id: str
    check_in_id: str
    window: list[str]
    tick: datetime


class Environment(msgspec.Struct, array_like=True, kw_only=True, gc=False):
    """A monitor environment's state (domain.md "Environment state")."""

    project: str
    monitor_slug: str
    name: str
    status: EnvStatus = EnvStatus.PENDING
    muted: bool = False
    last_checkin: datetime | None = None
    next_checkin: datetime | None = None
    next_checkin_latest: datetime | None = None
    incident: Incident | None = None
    # Newest last, ordered by date_added; pruned to what thresholds and updates need.
    checkins: list[CheckIn] = msgspec.field(default_factory=list)
    rate_minute: datetime | None = None
    rate_count: int = 0
    held: list[HeldOccurrence] = msgspec.field(default_factory=list)
    # The newest ok check-in's date_added (evidence of §5.2): history is pruned, this is not.
    # Last, so records stored before it existed still decode (as None).
    last_ok: datetime | None = None

    @property
    def key(self) -> EnvKey:
        """(project, monitor_slug, environment)."""
        return (self.project, self.monitor_slug, self.name)

    @property
    def fingerprint(self) -> str:
        """The stable issue fingerprint of this environment."""
        return f"crons:{self.project}/{self.monitor_slug}/{self.name}"


class Monitor(msgspec.Struct, array_like=True, kw_only=True, gc=False):
    """A monitor (spec §1.3): configuration and flags; environments live beside it."""

    project: str
    slug: str
    name: str
    config: MonitorConfig
    disabled: bool = False
    # Muting the whole monitor also mutes environments created later (domain.md).
    muted: bool = False
    is_upserting: bool = False

    @property
    def key(self) -> MonitorKey:
        """(project, monitor_slug)."""
        return (self.project, self.slug)
