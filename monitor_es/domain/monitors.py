"""Monitors: lookup and upsert from check-ins (spec §2.4) and the API events (§8.25)."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

import msgspec

from monitor_es.domain.config import (
    ConfigErrors,
    MonitorConfig,
    config_to_json,
    merge_config,
    schedule_to_json,
    slugify,
    validate_config,
)
from monitor_es.domain.effects import Effects
from monitor_es.domain.errors import ErrorType, Rejected, error
from monitor_es.domain.events import (
    MonitorConfigured,
    MonitorCreated,
    MonitorDeleted,
    MonitorDisabled,
    MonitorDisabledChanged,
    MonitorMuted,
    MonitorRemoved,
    MonitorUpdated,
    MuteChanged,
)
from monitor_es.domain.partition import Partition
from monitor_es.domain.records import about, expect_after, record_checkin
from monitor_es.domain.state import CHECKIN_IN_PROGRESS, Environment, Monitor
from monitor_es.domain.time import trunc_minute

_encoder = msgspec.msgpack.Encoder()
MAX_NAME_LENGTH = 128  # spec §1.3


def upsert_from_checkin(
    p: Partition, fx: Effects, key: tuple[str, str], raw_config: Any
) -> Monitor:
    """Finds the monitor, creating or merging it from a check-in's `monitor_config`."""
    monitor = p.monitors.get(key)
    project, slug = key
    if not raw_config:  # Sentry skips the upsert for any empty config (`{}` included)
        if monitor is None:
            raise Rejected([error(ErrorType.MONITOR_NOT_FOUND)])
        return monitor
    validated = _validate_upsert(raw_config)
    if not isinstance(validated, MonitorConfig):
        if monitor is None:
            raise Rejected(
                [
                    error(ErrorType.MONITOR_INVALID_CONFIG, errors=validated),
                    error(ErrorType.MONITOR_NOT_FOUND),
                ]
            )
        return monitor  # an invalid upsert leaves an existing monitor as it is (spec §2.4)
    if monitor is None:
        monitor = _create(p, fx, project=project, slug=slug, name=slug, config=validated)
    else:
        merged = merge_config(monitor.config, raw_config, validated)
        if merged != monitor.config:
            monitor.config = merged
            p.touch_monitor(monitor)
            _emit_updated(fx, monitor)
    if not monitor.is_upserting:
        monitor.is_upserting = True
        p.touch_monitor(monitor)
    return monitor


def _validate_upsert(raw_config: Any) -> MonitorConfig | ConfigErrors:
    """Validates an upsert config, memoised: SDKs send the same config with every check-in."""
    try:
        encoded = _encoder.encode(raw_config)
    except (TypeError, ValueError):
        return validate_config(raw_config, clamp=True)
    return _validate_encoded(encoded)


@lru_cache(maxsize=16384)
def _validate_encoded(encoded: bytes) -> MonitorConfig | ConfigErrors:
    return validate_config(msgspec.msgpack.decode(encoded), clamp=True)


def _create(
    p: Partition, fx: Effects, *, project: str, slug: str, name: str, config: MonitorConfig
) -> Monitor:
    limit = p.limits.max_monitors_per_project
    if p.monitor_counts.get(project, 0) >= limit:
        reason = f"You may not exceed {limit} monitors per organization"
        raise Rejected([error(ErrorType.MONITOR_LIMIT_EXCEEDED, reason=reason)])
    monitor = Monitor(project=project, slug=slug, name=name, config=config)
    p.add_monitor(monitor)
    fx.emit(
        MonitorCreated,
        project=project,
        monitor_slug=slug,
        name=name,
        config=config_to_json(config),
    )
    return monitor


def _emit_updated(fx: Effects, monitor: Monitor) -> None:
    fx.emit(
        MonitorUpdated,
        project=monitor.project,
        monitor_slug=monitor.slug,
        name=monitor.name,
        config=config_to_json(monitor.config),
    )


def _existing(p: Partition, project: str, raw_slug: str) -> Monitor:
    monitor = p.monitors.get((project, slugify(raw_slug)))
    if monitor is None:
        raise Rejected([error(ErrorType.MONITOR_NOT_FOUND)])
    return monitor


def checked_slug(raw_slug: str) -> str:
    """The slug of a check-in or API event; one with no slug character left is refused.

    Relay drops a check-in whose slug is empty (spec §2.2) before Sentry sees it; monitor-es
    has no Relay in front of its log, so such an event is an invalid event.
    """
    slug = slugify(raw_slug)
    if not slug:
        reason = f"monitor_slug {raw_slug!r} slugifies to an empty slug"
        raise Rejected([error(ErrorType.INVALID_EVENT, message=reason)])
    return slug


def configure(p: Partition, fx: Effects, ts: datetime, event: MonitorConfigured) -> None:
    """Creates or edits a monitor through the API, recomputing what the edit changes."""
    slug = checked_slug(event.monitor_slug)
    monitor = p.monitors.get((event.project, slug))
    validated = validate_config(_edited(monitor, event.config))
    errors: ConfigErrors = {} if isinstance(validated, MonitorConfig) else dict(validated)
    if event.name is not None and len(event.name) > MAX_NAME_LENGTH:
        # Spec §1.3: `name` is at most 128 characters; Sentry's API refuses a longer one
        # (DRF CharField(max_length=128)) with the config's other field errors.
        errors["name"] = [f"Ensure this field has no more than {MAX_NAME_LENGTH} characters."]
    if errors or not isinstance(validated, MonitorConfig):
        raise Rejected([error(ErrorType.MONITOR_INVALID_CONFIG, errors=errors)])
    if monitor is None:
        _create(p, fx, project=event.project, slug=slug, name=event.name or slug, config=validated)
        return
    old = monitor.config
    raw = event.config if isinstance(event.config, dict) else {}
    monitor.config = merge_config(old, raw, validated)
    monitor.name = event.name or monitor.name
    p.touch_monitor(monitor)
    _emit_updated(fx, monitor)
    _apply_edit(p, fx, ts, monitor, old)


def _edited(monitor: Monitor | None, raw: Any) -> Any:
    """The config to validate: an edit that leaves the schedule out keeps the stored one.

    Sentry validates API edits partially, so `{"checkin_margin": 5}` changes the margin
    alone; a new monitor still needs its schedule.
    """
    if monitor is None or not isinstance(raw, dict) or "schedule" in raw:
        return raw
    schedule_type, schedule = schedule_to_json(monitor.config.schedule)
    return {"schedule_type": schedule_type, "schedule": schedule, **raw}


def _apply_edit(
    p: Partition, fx: Effects, ts: datetime, monitor: Monitor, old: MonitorConfig
) -> None:
    """Spec §8.25: a new margin, runtime or schedule recomputes the derived deadlines."""
    new = monitor.config
    # Only the schedule itself counts: Sentry leaves the deadlines alone when just the time
    # zone changes (they follow at the next check-in or miss).
    schedule_changed = new.schedule != old.schedule
    for env in _by_name(p.envs_of(monitor)):
        if schedule_changed:
            # The edit happens at the event's time, which stands in for Sentry's wall clock.
            if env.last_checkin is None:
                env.last_checkin = ts
            expect_after(p, monitor, env, ts)
        elif new.margin != old.margin and env.next_checkin is not None:
            env.next_checkin_latest = env.next_checkin + new.margin
            p.schedule_due(env)
            p.touch(env)
        # The stored values, as Sentry compares them: unset -> 30 re-times runs too.
        if new.max_runtime != old.max_runtime:
            _retime_running(p, fx, env, new)


def _by_name(envs: dict[str, Environment]) -> list[Environment]:
    # Never dict order: a partition loaded from Redis holds its environments in the store's
    # order, not in creation order, and the events of a sweep are numbered in sweep order.
    return [envs[name] for name in sorted(envs)]


def _retime_running(p: Partition, fx: Effects, env: Environment, config: MonitorConfig) -> None:
    for checkin in env.checkins:
        if checkin.status is CHECKIN_IN_PROGRESS:
            checkin.timeout_at = trunc_minute(checkin.date_added) + config.runtime
            p.schedule_timeout(env, checkin)
            record_checkin(fx, env, checkin, created=False)
    p.touch(env)


def mute(p: Partition, fx: Effects, event: MonitorMuted) -> None:
    """Mutes or unmutes one environment, or the monitor with all its environments."""
    monitor = _existing(p, event.project, event.monitor_slug)
    envs = p.envs_of(monitor)
    if event.environment is None:
        monitor.muted = event.muted
        p.touch_monitor(monitor)
        targets = _by_name(envs)
    else:
        env = envs.get(event.environment)
        if env is None:
            reason = f"Environment {event.environment!r} does not exist"
            raise Rejected([error(ErrorType.MONITOR_INVALID_ENVIRONMENT, reason=reason)])
        targets = [env]
    for env in targets:
        set_muted(p, fx, env, event.muted, reason="user")


def set_muted(p: Partition, fx: Effects, env: Environment, muted: bool, *, reason: str) -> None:
    """Sets an environment's muted flag, emitting `mute_changed` when it changes."""
    if env.muted == muted:
        return
    env.muted = muted
    p.touch(env)
    fx.emit(
        MuteChanged,
        **about(env),
        muted=muted,
        reason=reason,
    )


def disable(p: Partition, fx: Effects, ts: datetime, event: MonitorDisabled) -> None:
    """Disables a monitor, or enables it with fresh expectations (no miss for the gap)."""
    monitor = _existing(p, event.project, event.monitor_slug)
    if monitor.disabled == event.disabled:
        return
    monitor.disabled = event.disabled
    p.touch_monitor(monitor)
    fx.emit(
        MonitorDisabledChanged,
        project=monitor.project,
        monitor_slug=monitor.slug,
        disabled=monitor.disabled,
    )
    if not monitor.disabled:
        for env in _by_name(p.envs_of(monitor)):
            if env.next_checkin is not None:
                expect_after(p, monitor, env, ts)


def delete(p: Partition, fx: Effects, ts: datetime, event: MonitorDeleted) -> None:
    """Deletes a monitor and its environments."""
    monitor = _existing(p, event.project, event.monitor_slug)
    p.remove_monitor(monitor, p.minute_of(ts))
    fx.emit(MonitorRemoved, project=monitor.project, monitor_slug=monitor.slug)
