"""System-incident decisions (spec §6.1): spot ingest volume drops and decide each clock tick.

The aggregator worker owns the I/O (volume counters, stored metrics and decisions, the
``clock_decision`` broadcast); this module only computes. Minutes are timezone-aware UTC
datetimes truncated to the minute.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

MINUTE = timedelta(minutes=1)

# Volume history is compared with the same minute on previous days: check-ins cluster on
# the hour and at midnight, so the same minute of a day is the comparable baseline.
VOLUME_DECISION_STEP = timedelta(days=1)
VOLUME_RETENTION_DAYS = 30

# Run-away guard: no anomaly should last a full day, so a backfill never walks further back.
BACKFILL_CUTOFF = 1440


class Decision(StrEnum):
    """The system-incident verdict for one clock tick."""

    NORMAL = "normal"
    ABNORMAL = "abnormal"
    INCIDENT = "incident"
    RECOVERING = "recovering"

    def is_pending(self) -> bool:
        """True for ABNORMAL and RECOVERING, which later resolve to NORMAL or INCIDENT."""
        return self in (Decision.ABNORMAL, Decision.RECOVERING)


class MetricClass(StrEnum):
    """The class of one minute's volume metric (only drops count)."""

    NORMAL = "normal"
    ABNORMAL = "abnormal"
    INCIDENT = "incident"


class Transition(StrEnum):
    """A change of decision between two consecutive ticks (rules A–F of spec §6.1)."""

    ABNORMALITY_STARTED = "abnormality_started"
    ABNORMALITY_RECOVERED = "abnormality_recovered"
    INCIDENT_STARTED = "incident_started"
    INCIDENT_RECOVERING = "incident_recovering"
    INCIDENT_RECOVERED = "incident_recovered"
    INCIDENT_RECOVERY_FAILED = "incident_recovery_failed"


@dataclass(frozen=True)
class Thresholds:
    """The tunables of spec §1.2 (`crons.system_incidents.*`)."""

    anomaly_pct: float = -10.0
    incident_pct: float = -30.0
    window: int = 5
    history_days: int = VOLUME_RETENTION_DAYS

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be at least 1, got {self.window}")
        if self.history_days < 1:
            raise ValueError(f"history_days must be at least 1, got {self.history_days}")


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class VolumeStats:
    """How one minute's ingest volume compares with the same minute on previous days."""

    volume: int
    history_count: int
    mean: float
    stdev: float
    pct_deviation: float
    z_score: float


def volume_stats(volume: int | None, history: Sequence[int | None]) -> VolumeStats | None:
    """Compare ``volume`` with ``history``; None when there is no metric (spec §6.1 step 1)."""
    # Counters only exist once incremented, so 0 (or None) means "no counter": Sentry then
    # records no metric, and a missing metric classifies as NORMAL.
    if volume is None or volume <= 0:
        return None
    present = [value for value in history if value is not None and value > 0]
    # A sample standard deviation needs at least two values.
    if len(present) < 2:
        return None
    mean = statistics.fmean(present)
    stdev = statistics.stdev(present)
    z_score = (volume - mean) / stdev if stdev != 0.0 else 0.0
    return VolumeStats(
        volume=volume,
        history_count=len(present),
        mean=mean,
        stdev=stdev,
        pct_deviation=(volume - mean) / mean * 100,
        z_score=z_score,
    )


def pct_deviation(volume: int | None, history: Sequence[int | None]) -> float | None:
    """Percentage deviation of ``volume`` from the historic mean; None when there is no metric."""
    stats = volume_stats(volume, history)
    return None if stats is None else stats.pct_deviation


def classify(pct: float | None, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> MetricClass:
    """Class of a volume metric: a missing metric is NORMAL and only drops count."""
    if pct is None:
        return MetricClass.NORMAL
    if pct <= thresholds.incident_pct:
        return MetricClass.INCIDENT
    if pct <= thresholds.anomaly_pct:
        return MetricClass.ABNORMAL
    return MetricClass.NORMAL


def history_minutes(past: datetime, days: int = VOLUME_RETENTION_DAYS) -> list[datetime]:
    """The baseline minutes for ``past``: the same minute 1 … ``days`` days earlier."""
    return [past - VOLUME_DECISION_STEP * step for step in range(1, days + 1)]


def pruned_minutes(start: datetime, end: datetime) -> list[datetime]:
    """Volume minutes to delete once an incident from ``start`` recovers at ``end``."""
    # Decisions are stored at the tick, volumes one minute earlier: hence [start-1, end-1).
    length = (end - start) // MINUTE
    first = start - MINUTE
    return [first + MINUTE * offset for offset in range(max(length, 0))]


@dataclass(frozen=True)
class DecisionResult:
    """The decision for ``tick`` and the earlier ticks whose stored decision it rewrites."""

    tick: datetime
    decision: Decision
    transition: Transition | None
    ts: datetime
    """When the state truly began: the oldest rewritten tick for incident_started and
    incident_recovered (the tick itself if nothing was rewritten), else the tick."""
    backfill: tuple[tuple[datetime, Decision], ...] = ()
    """Rewritten earlier ticks, newest first (from ``tick - 1 min`` backwards)."""
    runaway: bool = False
    """True when the backfill stopped at BACKFILL_CUTOFF rather than at the run's end."""


@dataclass(frozen=True)
class _Rule:
    decision: Decision
    rewrites: Decision | None  # the pending run, walked back from `past`, given `decision`
    backdated: bool  # ts is the oldest rewritten tick ("true start" / "true recovery")


_RULES: dict[Transition, _Rule] = {
    Transition.ABNORMALITY_STARTED: _Rule(Decision.ABNORMAL, None, backdated=False),
    Transition.ABNORMALITY_RECOVERED: _Rule(Decision.NORMAL, Decision.ABNORMAL, backdated=False),
    Transition.INCIDENT_RECOVERING: _Rule(Decision.RECOVERING, None, backdated=False),
    Transition.INCIDENT_RECOVERED: _Rule(Decision.NORMAL, Decision.RECOVERING, backdated=True),
    Transition.INCIDENT_RECOVERY_FAILED: _Rule(
        Decision.INCIDENT, Decision.RECOVERING, backdated=False
    ),
    Transition.INCIDENT_STARTED: _Rule(Decision.INCIDENT, Decision.ABNORMAL, backdated=True),
}


def _transition_for(
    last_decision: Decision, last_metric: MetricClass, window_normal: bool
) -> Transition | None:
    # Rules A–F in the spec's order: the first match wins (E before F matters for
    # RECOVERING with an INCIDENT metric).
    if last_decision is Decision.NORMAL and last_metric is MetricClass.ABNORMAL:
        return Transition.ABNORMALITY_STARTED
    if last_decision is Decision.ABNORMAL and window_normal:
        return Transition.ABNORMALITY_RECOVERED
    if last_decision is Decision.INCIDENT and last_metric is MetricClass.NORMAL:
        return Transition.INCIDENT_RECOVERING
    if last_decision is Decision.RECOVERING and window_normal:
        return Transition.INCIDENT_RECOVERED
    if last_decision is Decision.RECOVERING and last_metric is not MetricClass.NORMAL:
        return Transition.INCIDENT_RECOVERY_FAILED
    if last_decision is not Decision.INCIDENT and last_metric is MetricClass.INCIDENT:
        return Transition.INCIDENT_STARTED
    return None


def _run_back_from(
    start: datetime, run_of: Decision, stored_decision: Callable[[datetime], Decision | None]
) -> tuple[list[datetime], bool]:
    """Ticks from ``start`` backwards while stored as ``run_of``, and whether the cutoff hit."""
    minutes: list[datetime] = []
    for offset in range(BACKFILL_CUTOFF):
        minute = start - MINUTE * offset
        # A gap (no stored decision) ends the run just like a different decision.
        if stored_decision(minute) != run_of:
            return minutes, False
        minutes.append(minute)
    return minutes, True


def _require_minute(ts: datetime) -> None:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"minute must be timezone-aware, got {ts!r}")
    if ts.second or ts.microsecond:
        raise ValueError(f"minute must be truncated to the minute, got {ts.isoformat()}")


def decide(
    tick: datetime,
    metric_classes: Callable[[datetime], MetricClass],
    stored_decision: Callable[[datetime], Decision | None],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> DecisionResult:
    """Decide ``tick`` from the metric window ending at ``tick - 1 min`` (spec §6.1 step 3)."""
    _require_minute(tick)
    past = tick - MINUTE
    window = [metric_classes(past - MINUTE * offset) for offset in range(thresholds.window)]
    last_metric = window[0]
    stored = stored_decision(past)
    # No stored decision (first tick, or metrics collection just switched on) means NORMAL.
    last_decision = Decision.NORMAL if stored is None else stored
    window_normal = all(metric is MetricClass.NORMAL for metric in window)

    transition = _transition_for(last_decision, last_metric, window_normal)
    if transition is None:
        return DecisionResult(tick, last_decision, None, tick)

    rule = _RULES[transition]
    rewritten: list[datetime] = []
    runaway = False
    if rule.rewrites is not None:
        rewritten, runaway = _run_back_from(past, rule.rewrites, stored_decision)
    ts = rewritten[-1] if rule.backdated and rewritten else tick
    backfill = tuple((minute, rule.decision) for minute in rewritten)
    return DecisionResult(tick, rule.decision, transition, ts, backfill, runaway)


@dataclass
class DecisionLog:
    """Stored tick decisions in memory: the aggregator's working set and a test double."""

    decisions: dict[datetime, Decision] = field(default_factory=dict)

    def get(self, minute: datetime) -> Decision | None:
        """The stored decision for ``minute``, or None for a gap."""
        return self.decisions.get(minute)

    def apply(self, result: DecisionResult) -> None:
        """Store the result's decision at its tick and rewrite its backfilled ticks."""
        for minute, decision in result.backfill:
            self.decisions[minute] = decision
        self.decisions[result.tick] = result.decision

    def advance(
        self,
        tick: datetime,
        metric_classes: Callable[[datetime], MetricClass],
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
    ) -> DecisionResult:
        """Decide ``tick`` against this log, store the outcome and return it."""
        result = decide(tick, metric_classes, self.get, thresholds)
        self.apply(result)
        return result

    def forget_before(self, minute: datetime) -> None:
        """Drop decisions older than ``minute`` (retention; backfills never reach that far)."""
        for stale in [stored for stored in self.decisions if stored < minute]:
            del self.decisions[stale]
