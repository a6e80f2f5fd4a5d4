"""The event-time clock: ticks derived from broker time and the clock tasks they run.

Spec §3 and §4.1–4.2, §4.6, §6.2. Tasks run inside the fold at their tick, so a timeout
only hits a check-in still in progress at that tick (domain.md difference 2).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from monitor_es.domain.effects import Effects
from monitor_es.domain.events import (
    EnvironmentBroken,
    MarkMissing,
    MarkTimeout,
    MarkUnknown,
)
from monitor_es.domain.incidents import effective_decision, mark_failed
from monitor_es.domain.monitors import set_muted
from monitor_es.domain.partition import Partition
from monitor_es.domain.records import about, has_newer_result, record_checkin, set_status
from monitor_es.domain.schedule import next_expected, prev_expected
from monitor_es.domain.state import (
    CHECKIN_IN_PROGRESS,
    CHECKIN_MISSED,
    CHECKIN_TIMEOUT,
    CHECKIN_UNKNOWN,
    ENV_MISSED,
    ENV_TIMEOUT,
    FAILURES,
    CheckIn,
    Environment,
    Monitor,
)
from monitor_es.domain.system_incidents import Decision
from monitor_es.domain.time import ONE_MINUTE, iso, trunc_minute

_NAMESPACE = uuid.UUID("3c7d9e21-5b4a-4f8c-9d2e-1a6b8c0f4e52")
_BROKEN_PERIOD = timedelta(days=14)
_BROKEN_CHECKINS = 4
_DECISION_RETENTION = timedelta(days=2)


def advance(p: Partition, fx: Effects, ts: datetime) -> None:
    """Ticks every minute from the last tick up to `ts`'s minute, in order (backfill)."""
    upcoming = p.next_tick
    if upcoming is not None and ts < upcoming:
        return  # most entries: still inside the minute already ticked
    minute = trunc_minute(ts)
    last = p.clock.last_tick
    if last is None:
        run_tick(p, fx, minute)  # the first entry ever ticks its own minute
        return
    tick = last + ONE_MINUTE
    while tick <= minute:
        run_tick(p, fx, tick)
        tick += ONE_MINUTE
    p.next_tick = p.clock.last_tick + ONE_MINUTE if p.clock.last_tick else None


def run_tick(p: Partition, fx: Effects, tick: datetime) -> None:
    """Runs one tick: missed, then timeout (or unknown) tasks; idempotent per minute."""
    last = p.clock.last_tick
    if last is not None and tick <= last:
        return
    p.clock.last_tick = tick
    p.next_tick = tick + ONE_MINUTE
    p.clock_dirty = True
    decision = effective_decision(p, tick)
    missing = p.due_environments(tick)
    if decision is Decision.INCIDENT:
        running = _running_before(p, tick)
        for env in missing:
            _mark_missing(p, fx, env, tick)
        for env, checkin in running:
            _mark_unknown(fx, p, env, checkin, tick)
    else:
        timed_out = p.timed_out(tick)
        for env in missing:
            _mark_missing(p, fx, env, tick)
        for env, checkin in timed_out:
            _mark_timeout(p, fx, env, checkin, tick)
    if tick.weekday() < 5 and tick.hour == 15 and tick.minute == 0:
        _detect_broken(p, fx, tick)
    _forget_old_decisions(p, tick)


def _cause(fx: Effects, env: Environment, tick: datetime) -> None:
    fx.cause(f"tick:{iso(tick)}:{env.project}/{env.monitor_slug}/{env.name}")


def _monitor(p: Partition, env: Environment) -> Monitor:
    return p.monitors[(env.project, env.monitor_slug)]


def _mark_missing(p: Partition, fx: Effects, env: Environment, tick: datetime) -> None:
    """Spec §4.1: a missed check-in dated at its expected time, then the failure logic."""
    monitor = _monitor(p, env)
    expected = env.next_checkin
    latest = env.next_checkin_latest
    # Guards of §3.7.1: re-checked at execution; disabled monitors are skipped.
    if monitor.disabled or expected is None or latest is None or latest > tick:
        return
    _cause(fx, env, tick)
    fx.emit(
        MarkMissing,
        **about(env),
        ts=tick,
    )
    config = monitor.config
    missed = CheckIn(
        id=str(uuid.uuid5(_NAMESPACE, f"missed|{env.fingerprint}|{iso(expected)}|{iso(tick)}")),
        status=CHECKIN_MISSED,
        date_added=expected,
        date_updated=expected,
        date_clock=tick,
        expected_time=expected,
    )
    p.add_checkin(env, missed, config)
    record_checkin(fx, env, missed, created=True)
    # The last slot strictly before the tick: skipped ticks catch up instead of
    # producing a miss for every past slot (§3.7.5).
    recent = prev_expected(config.schedule, config.tz, expected, tick)
    env.next_checkin = next_expected(config.schedule, config.tz, recent)
    env.next_checkin_latest = env.next_checkin + config.margin
    p.schedule_due(env)
    p.touch(env)
    set_status(fx, env, ENV_MISSED, tick)
    mark_failed(p, fx, monitor, env, missed, received=tick, tick=tick)


def _mark_timeout(
    p: Partition, fx: Effects, env: Environment, checkin: CheckIn, tick: datetime
) -> None:
    """Spec §4.2: the run becomes TIMEOUT; failure logic unless a newer result exists."""
    if checkin.status is not CHECKIN_IN_PROGRESS:
        return
    _cause(fx, env, tick)
    fx.emit(
        MarkTimeout,
        **about(env),
        ts=tick,
        check_in_id=checkin.id,
    )
    checkin.status = CHECKIN_TIMEOUT
    record_checkin(fx, env, checkin, created=False)
    p.touch(env)
    if has_newer_result(env, checkin):
        return
    set_status(fx, env, ENV_TIMEOUT, tick)
    mark_failed(p, fx, _monitor(p, env), env, checkin, received=tick, tick=tick)


def _running_before(p: Partition, tick: datetime) -> list[tuple[Environment, CheckIn]]:
    """In-progress check-ins started at or before the tick (spec §3.5 mark_unknown)."""
    return [
        (env, checkin)
        for env in p.all_environments()
        for checkin in env.checkins
        if checkin.status is CHECKIN_IN_PROGRESS and checkin.date_added <= tick
    ]


def _mark_unknown(
    fx: Effects, p: Partition, env: Environment, checkin: CheckIn, tick: datetime
) -> None:
    """Spec §4.6: during a system incident a running check-in's result cannot be known."""
    _cause(fx, env, tick)
    fx.emit(
        MarkUnknown,
        **about(env),
        ts=tick,
        check_in_id=checkin.id,
    )
    checkin.status = CHECKIN_UNKNOWN
    record_checkin(fx, env, checkin, created=False)
    p.touch(env)


def _detect_broken(p: Partition, fx: Effects, tick: datetime) -> None:
    """Spec §6.2 on event time: notify once, auto-mute 14 days after the notice."""
    for env in p.all_environments():
        incident = env.incident
        monitor = _monitor(p, env)
        if incident is None or monitor.disabled or env.muted:
            continue
        if incident.started_at > tick - _BROKEN_PERIOD or incident.broken_muted_at:
            continue
        recent = env.checkins[-_BROKEN_CHECKINS:]
        if len(recent) < _BROKEN_CHECKINS or any(c.status not in FAILURES for c in recent):
            continue
        _cause(fx, env, tick)
        if incident.broken_notified_at is None:
            incident.broken_notified_at = tick
            p.touch(env)
            fx.emit(
                EnvironmentBroken,
                **about(env),
                incident_id=incident.id,
                started_at=incident.started_at,
                detection_time=tick,
            )
        elif incident.broken_notified_at <= tick - _BROKEN_PERIOD:
            incident.broken_muted_at = tick
            set_muted(p, fx, env, True, reason="broken")


def _forget_old_decisions(p: Partition, tick: datetime) -> None:
    """Keeps the decision in force plus two days of history for held occurrences."""
    decisions = p.clock.decisions
    horizon = tick - _DECISION_RETENTION
    while len(decisions) > 1 and decisions[1][0] <= horizon:
        decisions.pop(0)
