"""Check-in processing: the ordered steps of spec §2.3, creation (§2.6), updates (§2.8)
and the environment update that follows (§2.7)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from monitor_es.domain.config import (
    DEFAULT_ENVIRONMENT,
    ENVIRONMENT_TOO_LONG,
    MAX_TIMEOUT,
    validate_environment_name,
)
from monitor_es.domain.effects import Effects
from monitor_es.domain.errors import ErrorType, Rejected, error
from monitor_es.domain.events import CheckInReported, EnvironmentCreated
from monitor_es.domain.incidents import mark_failed, try_resolution
from monitor_es.domain.monitors import checked_slug, upsert_from_checkin
from monitor_es.domain.partition import Partition
from monitor_es.domain.payload import (
    MAX_DURATION_MS,
    ZERO_GUID,
    CheckInPayload,
    validate_payload,
)
from monitor_es.domain.records import (
    expect_after,
    has_newer_result,
    record_checkin,
    set_status,
)
from monitor_es.domain.state import (
    CHECKIN_ERROR,
    CHECKIN_IN_PROGRESS,
    CHECKIN_OK,
    CHECKIN_TIMEOUT,
    ENV_FAILED,
    ENV_OK,
    USER_TERMINAL,
    CheckIn,
    Environment,
    Monitor,
)
from monitor_es.domain.time import shifted, trunc_minute

_NAMESPACE = uuid.UUID("0b9f3a56-2c1d-4f7e-8e6a-4b1d9c2e7f30")
_MAX_HEARTBEAT_EXTENSION = timedelta(minutes=MAX_TIMEOUT)


def process_check_in(
    p: Partition, fx: Effects, entry_id: str, ts: datetime, event: CheckInReported
) -> None:
    """Runs one check-in through validation, upsert, creation or update and the env update."""
    project = event.project
    received = event.received or ts
    raw_env = event.environment
    # A missing, empty or non-string name means production (a non-string is rejected later).
    env_name = raw_env if raw_env and isinstance(raw_env, str) else DEFAULT_ENVIRONMENT
    minute = p.minute_of(ts)
    # Slugs are stored slugified, and a sent slug that names an existing monitor is nearly
    # always its own slug, so the usual check-in skips slugify. Not one ending in "_": only
    # the 50-character cut leaves a stored slug so (spec §2.1), and slugify strips a sent
    # one's "_", so it names another monitor (the one the producer routed it to).
    sent_slug = event.monitor_slug
    monitor_key = (project, sent_slug)
    envs = p.environments.get(monitor_key)
    if envs is None or sent_slug[-1:] == "_":
        monitor_key = (project, checked_slug(event.monitor_slug))
        envs = p.environments.get(monitor_key)
    known = None if envs is None else envs.get(env_name)  # looked up once per check-in
    _rate_limit(p, known, monitor_key, env_name, minute)
    payload = validate_payload(
        event.check_in_id, event.status, event.duration, raw_env, event.trace_id
    )
    config = event.monitor_config
    found = p.monitors.get(monitor_key) if not config else None
    monitor = found if found is not None else upsert_from_checkin(p, fx, monitor_key, config)
    if monitor.disabled:
        raise Rejected([error(ErrorType.MONITOR_DISABLED)])
    if known is not None and (raw_env is None or isinstance(raw_env, str)):
        env = known  # an existing environment's name was validated when it was created
    else:
        env = _ensure_environment(p, fx, monitor, raw_env, env_name)
    existing = _find_existing(p, env, project, payload.guid)
    if existing is None:
        checkin = _create(
            p, fx, monitor, env, entry_id=entry_id, minute=minute, received=received,
            payload=payload,
        )  # fmt: skip
        if config is None and monitor.is_upserting:
            monitor.is_upserting = False
            p.touch_monitor(monitor)
    elif not _update(p, fx, monitor, env, existing, received=received, payload=payload):
        return
    else:
        checkin = existing
    # No touch needed here: the rate limiter (or the environment's creation) marked it.
    _after_check_in(p, fx, monitor, env, checkin, received=received)


def _rate_limit(
    p: Partition,
    env: Environment | None,
    monitor_key: tuple[str, str],
    env_name: str,
    minute: datetime,
) -> None:
    """Per environment and broker minute, so replaying a backlog is never throttled."""
    if env is not None:
        if env.rate_minute != minute:
            env.rate_minute, env.rate_count = minute, 0
        env.rate_count += 1
        count = env.rate_count
        p.dirty_envs[id(env)] = env  # p.touch(env), inline on the hot path
    else:
        count = p.count_orphan_attempt((*monitor_key, env_name), minute)
    if count > p.limits.checkins_per_minute:
        raise Rejected([error(ErrorType.MONITOR_ENVIRONMENT_RATELIMITED)])


def _ensure_environment(
    p: Partition, fx: Effects, monitor: Monitor, raw_name: object, name: str
) -> Environment:
    envs = p.envs_of(monitor)
    env = envs.get(name)
    if validate_environment_name(raw_name) is not None:
        # Sentry gives every name its Environment check refuses (too long, or a newline, a
        # form feed or "/") the same reason (spec §1.4 ensure_environment, §2.3 step 11).
        raise Rejected([error(ErrorType.MONITOR_INVALID_ENVIRONMENT, reason=ENVIRONMENT_TOO_LONG)])
    if env is not None:
        return env
    limit = p.limits.max_environments_per_monitor
    if len(envs) >= limit:
        reason = f"You may not exceed {limit} environments per monitor"
        raise Rejected([error(ErrorType.MONITOR_ENVIRONMENT_LIMIT_EXCEEDED, reason=reason)])
    env = Environment(
        project=monitor.project, monitor_slug=monitor.slug, name=name, muted=monitor.muted
    )
    # The attempt that created the environment was counted before it existed.
    env.rate_minute, env.rate_count = p.take_orphan_attempts(env.key)
    p.add_environment(env)
    fx.emit(
        EnvironmentCreated, project=env.project, monitor_slug=env.monitor_slug, environment=name
    )
    return env


def _find_existing(p: Partition, env: Environment, project: str, guid: str) -> CheckIn | None:
    """Spec §2.5: the zero GUID means the newest in-progress run of this environment."""
    if guid == ZERO_GUID:
        running = [c for c in env.checkins if c.status is CHECKIN_IN_PROGRESS]
        return running[-1] if running else None
    hit = p.find_checkin(project, guid)
    if hit is None:
        return None
    owner, checkin = hit
    if owner is not env:
        raise Rejected(
            [error(ErrorType.CHECKIN_ENVIRONMENT_MISMATCH, existingEnvironment=owner.name)]
        )
    return checkin


def _create(
    p: Partition,
    fx: Effects,
    monitor: Monitor,
    env: Environment,
    *,
    entry_id: str,
    minute: datetime,
    received: datetime,
    payload: CheckInPayload,
) -> CheckIn:
    """Spec §2.6, with the zero GUID's new id derived from the log entry (deterministic)."""
    guid = payload.guid
    if guid == ZERO_GUID:
        guid = str(uuid.uuid5(_NAMESPACE, f"zero-guid|{entry_id}"))
    running = payload.status is CHECKIN_IN_PROGRESS
    checkin = CheckIn(
        id=guid,
        status=payload.status,
        date_added=received,
        date_updated=received,
        date_clock=minute,
        expected_time=env.next_checkin,
        timeout_at=shifted(p.minute_of(received), monitor.config.runtime) if running else None,
        # A duration comes only with a closing message (domain.md).
        duration_ms=None if running else payload.duration_ms,
        date_in_progress=received if running else None,
        trace_id=payload.trace_id,
    )
    p.add_checkin(env, checkin, monitor.config)
    record_checkin(fx, env, checkin, created=True)
    return checkin


def _update(
    p: Partition,
    fx: Effects,
    monitor: Monitor,
    env: Environment,
    checkin: CheckIn,
    *,
    received: datetime,
    payload: CheckInPayload,
) -> bool:
    """Spec §2.8; returns False when nothing more follows (an out-of-order in_progress)."""
    status = payload.status
    complete = checkin.status in USER_TERMINAL
    closing = status in USER_TERMINAL
    duration = payload.duration_ms
    if closing and duration is None and checkin.duration_ms is None:
        # abs(): the closing message can overtake the opening one (spec §2.8 step 4).
        duration = abs(int((received - checkin.date_added).total_seconds() * 1000))
    if duration is not None and closing and not 0 <= duration <= MAX_DURATION_MS:
        # Errors are collected (spec §2.8 steps 3-6): a second close can report both.
        invalid = error(ErrorType.CHECKIN_INVALID_DURATION, duration=str(duration))
        raise Rejected([error(ErrorType.CHECKIN_FINISHED), invalid] if complete else [invalid])
    if complete and closing:
        raise Rejected([error(ErrorType.CHECKIN_FINISHED)])
    if complete:
        # An in_progress arriving after the close only records when the run started.
        checkin.date_in_progress = received
        record_checkin(fx, env, checkin, created=False)
        p.touch(env)
        return False
    if checkin.status is not CHECKIN_TIMEOUT or not closing:
        checkin.status = status  # TIMEOUT is sticky: a late close only adds its duration
    checkin.date_updated = received
    if closing and duration:
        checkin.duration_ms = duration
    checkin.timeout_at = None if closing else _heartbeat_timeout(monitor, checkin, received)
    p.schedule_timeout(env, checkin)
    record_checkin(fx, env, checkin, created=False)
    return True


def _heartbeat_timeout(monitor: Monitor, checkin: CheckIn, received: datetime) -> datetime:
    """A heartbeat extends the timeout, never past 28 days after the run started."""
    extended = trunc_minute(received) + monitor.config.runtime
    return min(extended, trunc_minute(checkin.date_added) + _MAX_HEARTBEAT_EXTENSION)


def _after_check_in(
    p: Partition,
    fx: Effects,
    monitor: Monitor,
    env: Environment,
    checkin: CheckIn,
    *,
    received: datetime,
) -> None:
    """Spec §2.7 with domain.md's statuses; `last_checkin` never moves backwards."""
    if checkin.status is CHECKIN_ERROR:
        if has_newer_result(env, checkin):
            return
        _note_last_checkin(env, checkin)
        expect_after(p, monitor, env, received)
        set_status(fx, env, ENV_FAILED, received)
        mark_failed(p, fx, monitor, env, checkin, received=received, tick=None)
        return
    if env.incident is not None:
        try_resolution(p, fx, monitor, env, checkin)
    last = env.last_checkin
    if last is None or last <= received:
        if last is None or last < checkin.date_added:
            env.last_checkin = checkin.date_added  # never backwards (domain.md difference 3)
        expect_after(p, monitor, env, received)
    if checkin.status is CHECKIN_OK:
        if env.last_ok is None or env.last_ok < checkin.date_added:
            env.last_ok = checkin.date_added
        if env.status is not ENV_OK:
            set_status(fx, env, ENV_OK, received)


def _note_last_checkin(env: Environment, checkin: CheckIn) -> None:
    if env.last_checkin is None or env.last_checkin < checkin.date_added:
        env.last_checkin = checkin.date_added
