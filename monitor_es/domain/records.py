"""Small writers shared by the reducer steps: check-in records and status changes."""

from __future__ import annotations

from datetime import datetime

from monitor_es.domain.effects import Effects
from monitor_es.domain.events import CheckInCreated, CheckInUpdated, StatusChanged
from monitor_es.domain.partition import Partition
from monitor_es.domain.schedule import next_after_minute
from monitor_es.domain.state import USER_TERMINAL, CheckIn, Environment, EnvStatus, Monitor
from monitor_es.domain.time import shifted


def about(env: Environment) -> dict[str, str]:
    """The fields that name an environment in every event about it."""
    return {"project": env.project, "monitor_slug": env.monitor_slug, "environment": env.name}


def record_checkin(fx: Effects, env: Environment, checkin: CheckIn, *, created: bool) -> None:
    """Emits the full record of a created or changed check-in (feeds the history model)."""
    kind = CheckInCreated if created else CheckInUpdated
    # Built directly (not through Effects.emit): this runs for every check-in.
    fx.events.append(
        kind(
            id=fx.next_id(),
            project=env.project,
            monitor_slug=env.monitor_slug,
            environment=env.name,
            check_in_id=checkin.id,
            status=checkin.status,
            date_added=checkin.date_added,
            date_updated=checkin.date_updated,
            date_clock=checkin.date_clock,
            expected_time=checkin.expected_time,
            timeout_at=checkin.timeout_at,
            duration_ms=checkin.duration_ms,
            date_in_progress=checkin.date_in_progress,
            trace_id=checkin.trace_id,
        )
    )


def set_status(fx: Effects, env: Environment, status: EnvStatus, at: datetime) -> None:
    """Sets the environment's verdict, emitting `status_changed` when it differs."""
    if env.status is status:
        return
    fx.emit(
        StatusChanged,
        **about(env),
        status=status,
        previous=env.status,
        at=at,
    )
    env.status = status


def has_newer_result(env: Environment, checkin: CheckIn) -> bool:
    """True if an ok/error check-in newer than this one exists (guard of spec §3.7.3)."""
    for other in reversed(env.checkins):
        if other.date_added <= checkin.date_added:
            return False
        if other is not checkin and other.status in USER_TERMINAL:
            return True
    return False


def expect_after(p: Partition, monitor: Monitor, env: Environment, reference: datetime) -> None:
    """Sets the next expected check-in (and its latest time) after a reference instant."""
    config = monitor.config
    # Slots are whole minutes: the next one after `reference` is the next after its minute.
    expected = next_after_minute(config.schedule, config.tz, p.minute_of(reference))
    latest = shifted(expected, config.margin)
    env.next_checkin = expected
    # A run's open and close usually expect the same slot: file the deadline only when it
    # moved, or when its bucket may already have been swept by a tick.
    last_tick = p.clock.last_tick
    if latest != env.next_checkin_latest or last_tick is None or latest <= last_tick:
        env.next_checkin_latest = latest
        p.schedule_due(env)
    p.dirty_envs[id(env)] = env  # p.touch(env), inline: this runs for nearly every check-in
