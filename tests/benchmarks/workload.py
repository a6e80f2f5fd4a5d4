"""A deterministic, realistic log: many monitors with mixed schedules, time zones and failures.

Everything comes from one seeded `random.Random` and the broker-time window the spec gives;
no clock is read, so two builds of the same spec are identical, entry ids included.
Every run is an in_progress / closing pair with one check_in_id; some runs are skipped
(the clock marks them missed), a few never close (they time out), 2% close with error.
A monitor is created by upsert: the first check-in it ever sends carries its config.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from monitor_es.codec import encode_event
from monitor_es.domain.events import CheckInReported, ClockPulsed, InboundEvent
from monitor_es.domain.reducer import LogEntry
from monitor_es.domain.schedule import next_expected, parse_crontab
from monitor_es.domain.time import from_ms, to_ms

START: Final = datetime(2024, 5, 1, tzinfo=UTC)
ENVIRONMENTS: Final = ("production", "staging")
TIME_ZONES: Final = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney")
PROJECTS: Final = ("web", "billing", "data", "platform")

_MINUTE_MS: Final = 60_000
_PULSE_MS: Final = 10_000

# (schedule_type, schedule, weight): frequent jobs dominate the volume, as in real fleets.
SCHEDULES: Final[tuple[tuple[str, Any, int], ...]] = (
    ("crontab", "* * * * *", 3),
    ("crontab", "*/2 * * * *", 3),
    ("crontab", "*/3 * * * *", 2),
    ("crontab", "*/5 * * * *", 12),
    ("crontab", "1-59/5 * * * *", 3),
    ("crontab", "*/10 * * * *", 8),
    ("crontab", "*/15 * * * *", 8),
    ("crontab", "*/20 * * * *", 3),
    ("crontab", "*/30 * * * *", 6),
    ("crontab", "5,35 * * * *", 2),
    ("crontab", "0,20,40 * * * *", 2),
    ("crontab", "0 * * * *", 8),
    ("crontab", "7 * * * *", 2),
    ("crontab", "15 * * * *", 2),
    ("crontab", "30 * * * *", 2),
    ("crontab", "45 * * * *", 2),
    ("crontab", "@hourly", 2),
    ("crontab", "*/5 8-18 * * 1-5", 2),
    ("crontab", "*/10 0-6 * * *", 1),
    ("crontab", "0 */2 * * *", 3),
    ("crontab", "30 */2 * * *", 1),
    ("crontab", "0 */3 * * *", 1),
    ("crontab", "0 */4 * * *", 2),
    ("crontab", "0 */6 * * *", 2),
    ("crontab", "0 */12 * * *", 1),
    ("crontab", "15 3 * * *", 2),
    ("crontab", "0 0 * * *", 2),
    ("crontab", "30 1 * * *", 1),
    ("crontab", "0 2 * * *", 1),
    ("crontab", "@daily", 1),
    ("crontab", "0 9 * * 1-5", 1),
    ("crontab", "0 18 * * 1-5", 1),
    ("crontab", "0 0 * * 0", 1),
    ("crontab", "0 4 * * 3", 1),
    ("crontab", "0 6 1 * *", 1),
    ("crontab", "0 0 1 1 *", 1),
    ("interval", [1, "minute"], 2),
    ("interval", [2, "minute"], 1),
    ("interval", [5, "minute"], 4),
    ("interval", [10, "minute"], 4),
    ("interval", [15, "minute"], 2),
    ("interval", [30, "minute"], 2),
    ("interval", [45, "minute"], 1),
    ("interval", [1, "hour"], 3),
    ("interval", [2, "hour"], 1),
    ("interval", [6, "hour"], 1),
    ("interval", [12, "hour"], 1),
    ("interval", [1, "day"], 1),
    ("interval", [1, "week"], 1),
    ("interval", [1, "month"], 1),
)

# Optional config fields and their choices; None leaves the field out of the payload.
_MARGINS: Final = (None, None, 1, 2, 5, 10)
_RUNTIMES: Final = (None, None, 10, 30, 60, 120)
_FAILURE_THRESHOLDS: Final = (None, None, 1, 2, 3)
_RECOVERY_THRESHOLDS: Final = (None, None, 1, 2)


@dataclass(frozen=True)
class WorkloadSpec:
    """The size and seed of a workload; `minutes` of broker time from START."""

    monitors: int = 10_000
    minutes: int = 90
    seed: int = 20240501
    skip_rate: float = 0.03
    hang_rate: float = 0.003
    error_rate: float = 0.02


QUICK: Final = WorkloadSpec(monitors=2_000, minutes=60)


@dataclass(frozen=True)
class Workload:
    """A built workload: its entries, their wire form and what they hold."""

    spec: WorkloadSpec
    entries: list[LogEntry]
    wire: list[tuple[str, bytes]]
    check_ins: int
    pulses: int
    environments: int

    @property
    def broker_seconds(self) -> float:
        """The broker time the log covers."""
        first, last = self.entries[0].ts, self.entries[-1].ts
        return (last - first).total_seconds()


@dataclass(frozen=True)
class _MonitorPlan:
    index: int
    project: str
    slug: str
    config: dict[str, Any]
    period_ms: int  # the typical gap between runs (bounds durations)


@dataclass(frozen=True)
class _Raw:
    """One check-in before ids and upsert configs are assigned."""

    ms: int
    received_ms: int
    monitor: int
    environment: str
    guid: str
    status: str
    duration: float | None


def build(spec: WorkloadSpec = WorkloadSpec()) -> Workload:
    """Builds the workload of `spec` (deterministic: same spec, same entries and bytes)."""
    rng = random.Random(spec.seed)
    plans = [_plan_monitor(rng, n) for n in range(spec.monitors)]
    start_ms = to_ms(START)
    window = (start_ms, start_ms + spec.minutes * _MINUTE_MS)
    raws: list[_Raw] = []
    for plan in plans:
        for environment in ENVIRONMENTS:
            raws.extend(_runs(rng, spec, plan, environment, window))
    raws.sort(key=lambda r: r.ms)  # stable: equal times keep their generation order
    timed = _with_pulses(rng, _check_ins(raws, plans), window)
    entries = _with_ids(timed)
    wire = [(entry.id, encode_event(entry.event)) for entry in entries]
    kinds = Counter(type(entry.event) for entry in entries)
    return Workload(
        spec=spec,
        entries=entries,
        wire=wire,
        check_ins=kinds[CheckInReported],
        pulses=kinds[ClockPulsed],
        environments=len({(r.monitor, r.environment) for r in raws}),
    )


def _plan_monitor(rng: random.Random, n: int) -> _MonitorPlan:
    schedule_type, schedule, _ = rng.choices(SCHEDULES, weights=[s[2] for s in SCHEDULES])[0]
    config: dict[str, Any] = {"schedule_type": schedule_type, "schedule": schedule}
    tz = rng.choice(TIME_ZONES)
    if tz != "UTC" or rng.random() < 0.5:
        config["timezone"] = tz
    for name, choices in (
        ("checkin_margin", _MARGINS),
        ("max_runtime", _RUNTIMES),
        ("failure_issue_threshold", _FAILURE_THRESHOLDS),
        ("recovery_threshold", _RECOVERY_THRESHOLDS),
    ):
        value = rng.choice(choices)
        if value is not None:
            config[name] = value
    kind = ("nightly-report", "sync", "cleanup", "billing-run", "etl", "backup", "digest")
    slug = f"{rng.choice(kind)}-{n:05d}"
    period = _period_ms(schedule_type, schedule)
    return _MonitorPlan(n, rng.choice(PROJECTS), slug, config, period)


def _period_ms(schedule_type: str, schedule: Any) -> int:
    if schedule_type == "interval":
        count, unit = schedule
        minutes = {"minute": 1, "hour": 60, "day": 1440, "week": 10080, "month": 43200}[unit]
        return int(count) * minutes * _MINUTE_MS
    expr = str(schedule)
    minute_field = expr.split(" ", maxsplit=1)[0]
    if minute_field == "*":
        return _MINUTE_MS
    if "/" in minute_field:
        return int(minute_field.split("/")[1]) * _MINUTE_MS
    return 60 * _MINUTE_MS  # hourly or rarer: durations are capped by max_runtime anyway


def _slots(plan: _MonitorPlan, first_ms: int, end_ms: int) -> list[int]:
    """The scheduled starts after the first (kick-off) run, up to the window's end."""
    config = plan.config
    if config["schedule_type"] == "interval":
        return list(range(first_ms + plan.period_ms, end_ms, plan.period_ms))
    schedule = parse_crontab(str(config["schedule"]))
    tz = str(config.get("timezone") or "UTC")
    slots: list[int] = []
    slot = next_expected(schedule, tz, from_ms(first_ms))
    while (ms := to_ms(slot)) < end_ms:
        slots.append(ms)
        slot = next_expected(schedule, tz, slot)
    return slots


def _runs(
    rng: random.Random,
    spec: WorkloadSpec,
    plan: _MonitorPlan,
    environment: str,
    window: tuple[int, int],
) -> list[_Raw]:
    """One environment's check-ins: a kick-off run in the first minutes, then its schedule."""
    start_ms, end_ms = window
    monitor = plan.index
    first = start_ms + rng.randrange(10 * _MINUTE_MS)
    starts = [first] + [s + rng.randrange(20_000) for s in _slots(plan, first, end_ms)]
    runtime_ms = int(plan.config.get("max_runtime") or 30) * _MINUTE_MS
    longest = max(2_000, min(plan.period_ms // 2, runtime_ms - 2 * _MINUTE_MS))
    raws: list[_Raw] = []
    for n, begin in enumerate(starts):
        if n and rng.random() < spec.skip_rate:
            continue  # the job did not run: the clock reports it missed
        guid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        # The edge stamps its receive time a few milliseconds before the broker's.
        received = begin - rng.randrange(5)
        raws.append(_Raw(begin, received, monitor, environment, guid, "in_progress", None))
        if rng.random() < spec.hang_rate:
            continue  # never closes: it times out
        duration = min(longest, int(rng.lognormvariate(8.5, 1.0)) + 200)
        status = "error" if rng.random() < spec.error_rate else "ok"
        end = begin + duration
        if end < end_ms:
            raws.append(_Raw(end, end - 1, monitor, environment, guid, status, duration / 1e3))
    return raws


def _check_ins(raws: list[_Raw], plans: list[_MonitorPlan]) -> list[tuple[int, InboundEvent]]:
    """Check-in events in broker order; a monitor's first check-in carries its config."""
    created: set[int] = set()
    events: list[tuple[int, InboundEvent]] = []
    for raw in raws:
        plan = plans[raw.monitor]
        config = None
        if raw.monitor not in created:
            created.add(raw.monitor)
            config = plan.config
        event = CheckInReported(
            project=plan.project,
            monitor_slug=plan.slug,
            check_in_id=raw.guid,
            status=raw.status,
            environment=raw.environment,
            duration=raw.duration,
            monitor_config=config,
            received=from_ms(raw.received_ms),
        )
        events.append((raw.ms, event))
    return events


def _with_pulses(
    rng: random.Random, events: list[tuple[int, InboundEvent]], window: tuple[int, int]
) -> list[tuple[int, InboundEvent]]:
    """Merges a clock pulse every ~10 s of broker time into the check-ins (stable order)."""
    start_ms, end_ms = window
    pulses: list[tuple[int, InboundEvent]] = []
    at = start_ms
    while at < end_ms:
        pulses.append((at, ClockPulsed()))
        at += _PULSE_MS + rng.randrange(-500, 500)
    merged = events + pulses
    merged.sort(key=lambda item: item[0])  # stable: check-ins keep their order within a ms
    return merged


def _with_ids(timed: list[tuple[int, InboundEvent]]) -> list[LogEntry]:
    """Log entries with increasing `<ms>-<seq>` ids; seq counts within one millisecond."""
    entries: list[LogEntry] = []
    last_ms, seq = -1, 0
    for ms, event in timed:
        seq = seq + 1 if ms == last_ms else 0
        last_ms = ms
        entries.append(LogEntry(f"{ms}-{seq}", from_ms(ms), event))
    return entries


def main() -> None:
    """Prints what the default workload holds."""
    workload = build()
    sizes = sorted(len(payload) for _, payload in workload.wire)
    print(
        f"{len(workload.entries):,} entries: {workload.check_ins:,} check-ins, "
        f"{workload.pulses:,} pulses, {workload.environments:,} environments over "
        f"{workload.broker_seconds / 3600:.2f} h; payload avg {sum(sizes) / len(sizes):.0f} B, "
        f"max {sizes[-1]} B"
    )


if __name__ == "__main__":
    main()
