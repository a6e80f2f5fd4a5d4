"""One partition's state: monitors, environments and the indexes the clock reads.

The indexes (due deadlines, timeouts, check-in ownership) are derived from the records and
rebuilt on load, so only monitors, environments and the clock state are ever persisted.
Heaps are ordered by (deadline, key) alone, never by insertion, so a partition loaded
from Redis runs its clock tasks in exactly the order of one that never stopped.
"""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass
from datetime import datetime

import msgspec

from monitor_es.domain.config import MonitorConfig
from monitor_es.domain.deadlines import DeadlineIndex
from monitor_es.domain.state import (
    CHECKIN_IN_PROGRESS,
    USER_TERMINAL,
    CheckIn,
    Environment,
    EnvKey,
    Monitor,
    MonitorKey,
)
from monitor_es.domain.time import trunc_minute


@dataclass(frozen=True)
class Limits:
    """Configurable limits (spec §1.3 and §2.3)."""

    max_monitors_per_project: int = 10_000
    max_environments_per_monitor: int = 1_000
    checkins_per_minute: int = 6
    # Check-ins kept per environment beyond what the thresholds need; 4 are needed by
    # broken detection (spec §6.2), one more lets a duplicate close still be recognised.
    history: int = 5


# History is pruned in steps, not at every check-in; the slack costs a few stored check-ins.
_PRUNE_SLACK = 1


class ClockState(msgspec.Struct, array_like=True, kw_only=True):
    """The partition clock: the last tick and the system-incident decisions received."""

    last_tick: datetime | None = None
    # (minute, decision) pairs, oldest first, pruned as ticks pass.
    decisions: list[tuple[datetime, str]] = msgspec.field(default_factory=list)
    # Rate-limit counts of environments that do not exist yet, for `rate_minute`: kept so a
    # partition reloaded mid-minute judges the next attempt as a replay would.
    rate_minute: datetime | None = None
    rate_counts: dict[str, int] = msgspec.field(default_factory=dict)


def _rate_field(key: EnvKey) -> str:
    # Unambiguous: the project is length-prefixed and a slug never holds "\x1f".
    project, slug, name = key
    return f"{len(project)}:{project}{slug}\x1f{name}"


class Partition:
    """Everything one reducer owns, plus change tracking for the commit."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.monitors: dict[MonitorKey, Monitor] = {}
        self.environments: dict[MonitorKey, dict[str, Environment]] = {}
        self.monitor_counts: dict[str, int] = {}
        # project -> check-in id -> where it is kept: ids are unique per project (spec §2.5).
        # Nested rather than keyed by (project, id): no key tuple to build on the hot path.
        self.checkin_owner: dict[str, dict[str, tuple[Environment, CheckIn]]] = {}
        self.clock = ClockState()
        # Derived from clock.last_tick (not stored): lets most entries skip the tick check.
        self.next_tick: datetime | None = None
        self._due: DeadlineIndex[Environment] = DeadlineIndex()
        self._timeouts: DeadlineIndex[tuple[Environment, CheckIn]] = DeadlineIndex()
        self.dirty_monitors: set[MonitorKey] = set()
        # By identity: cheaper than building key tuples on the hot path.
        self.dirty_envs: dict[int, Environment] = {}
        self.removed_monitors: set[MonitorKey] = set()
        self.removed_envs: set[EnvKey] = set()
        # Environments removed since the last commit, by identity (held, so no id is reused):
        # a stale reference touched after its removal must not be written back.
        self._removed_env_objects: dict[int, Environment] = {}
        self.clock_dirty = False

    def count_orphan_attempt(self, key: EnvKey, minute: datetime) -> int:
        """Counts a check-in for an environment that does not exist (yet) in this minute."""
        clock = self.clock
        if clock.rate_minute != minute:
            clock.rate_minute, clock.rate_counts = minute, {}
        field = _rate_field(key)
        count = clock.rate_counts[field] = clock.rate_counts.get(field, 0) + 1
        self.clock_dirty = True
        return count

    def take_orphan_attempts(self, key: EnvKey) -> tuple[datetime | None, int]:
        """Hands the minute's counted attempts over to a newly created environment."""
        clock = self.clock
        count = clock.rate_counts.pop(_rate_field(key), 0)
        self.clock_dirty = True
        return clock.rate_minute, count

    def _keep_attempts(self, env: Environment, minute: datetime) -> None:
        # Sentry's bucket is keyed by project, slug, environment and minute (spec §2.3 step
        # 2), not by the row: deleting the monitor does not reset the minute's count.
        if env.rate_minute != minute or not env.rate_count:
            return
        clock = self.clock
        if clock.rate_minute != minute:
            clock.rate_minute, clock.rate_counts = minute, {}
        field = _rate_field(env.key)
        clock.rate_counts[field] = clock.rate_counts.get(field, 0) + env.rate_count
        self.clock_dirty = True

    def restore_clock(self, clock: ClockState) -> None:
        """Takes a stored clock record (with the rate-limit counts it carries)."""
        self.clock = clock

    # ------------------------------------------------------------ monitors

    def add_monitor(self, monitor: Monitor) -> None:
        """Registers a new monitor."""
        self.monitors[monitor.key] = monitor
        self.environments.setdefault(monitor.key, {})
        self.monitor_counts[monitor.project] = self.monitor_counts.get(monitor.project, 0) + 1
        self.removed_monitors.discard(monitor.key)
        self.dirty_monitors.add(monitor.key)

    def remove_monitor(self, monitor: Monitor, minute: datetime) -> None:
        """Forgets a monitor and all of its environments (`minute`: the removal's minute)."""
        for env in self.environments.pop(monitor.key, {}).values():
            self._keep_attempts(env, minute)
            owners = self.checkin_owner.get(env.project, {})
            for checkin in env.checkins:
                owners.pop(checkin.id, None)
            self.removed_envs.add(env.key)
            self.dirty_envs.pop(id(env), None)
            self._removed_env_objects[id(env)] = env
        del self.monitors[monitor.key]
        self.monitor_counts[monitor.project] -= 1
        self.removed_monitors.add(monitor.key)
        self.dirty_monitors.discard(monitor.key)

    def touch_monitor(self, monitor: Monitor) -> None:
        """Marks a monitor as changed for the next commit."""
        self.dirty_monitors.add(monitor.key)

    # ------------------------------------------------------------ environments

    def envs_of(self, monitor: Monitor) -> dict[str, Environment]:
        """The environments of a monitor, by name."""
        return self.environments[monitor.key]

    def add_environment(self, env: Environment) -> None:
        """Registers a new environment (or one loaded from the store) and indexes it."""
        self.environments.setdefault((env.project, env.monitor_slug), {})[env.name] = env
        owners = self._owners(env.project)
        for checkin in env.checkins:
            owners[checkin.id] = (env, checkin)
            self.schedule_timeout(env, checkin)
        self.schedule_due(env)
        self.removed_envs.discard(env.key)
        self.dirty_envs[id(env)] = env

    def touch(self, env: Environment) -> None:
        """Marks an environment as changed for the next commit."""
        self.dirty_envs[id(env)] = env

    def environment(self, key: EnvKey) -> Environment | None:
        """An environment by key, if it exists."""
        envs = self.environments.get((key[0], key[1]))
        return None if envs is None else envs.get(key[2])

    def all_environments(self) -> list[Environment]:
        """Every environment, sorted by key (a deterministic order for sweeps)."""
        found = [env for envs in self.environments.values() for env in envs.values()]
        found.sort(key=lambda env: env.key)
        return found

    # ------------------------------------------------------------ check-ins

    def add_checkin(self, env: Environment, checkin: CheckIn, config: MonitorConfig) -> None:
        """Files a check-in in date order, indexes it and prunes old history."""
        checkins = env.checkins
        if not checkins or checkins[-1].date_added <= checkin.date_added:
            checkins.append(checkin)
        else:
            insort(checkins, checkin, key=lambda c: c.date_added)
        self._owners(env.project)[checkin.id] = (env, checkin)
        if checkin.timeout_at is not None:
            self.schedule_timeout(env, checkin)
        if len(checkins) > self.limits.history + _PRUNE_SLACK:
            # Thresholds read the newest N check-ins, so N of them are always kept.
            keep = max(
                self.limits.history, config.failure_threshold, config.recovery_threshold_value
            )
            if len(checkins) > keep + _PRUNE_SLACK:
                self._prune(env, keep, config.failure_threshold)

    def _prune(self, env: Environment, keep: int, window: int) -> None:
        # In-progress runs stay whatever their age: they can still be closed or time out.
        checkins = env.checkins
        excess = len(checkins) - keep
        oldest = checkins[:excess]
        # A run's failure window reaches `window - 1` check-ins back from it (spec §4.3).
        reach = min(len(checkins), excess + window - 1)
        running = [i for i in range(reach) if checkins[i].status is CHECKIN_IN_PROGRESS]
        if not running:
            del checkins[:excess]  # the usual case: the oldest are all finished
            dropped = oldest
        else:
            # The newest `keep` stay whatever they are (threshold and recovery windows read
            # them); older runs still in progress stay too, with what their close or timeout
            # reads: the check-ins of their failure window and the newest ok/error after
            # them (the newer-result guard of §3.7.3). Older finished ones go.
            kept = _read_by_running(checkins, running, window, excess)
            dropped = [c for i, c in enumerate(oldest) if i not in kept]
            env.checkins = [c for i, c in enumerate(oldest) if i in kept]
            env.checkins += checkins[excess:]
        owners = self.checkin_owner[env.project]
        for checkin in dropped:
            owners.pop(checkin.id, None)

    def find_checkin(self, project: str, checkin_id: str) -> tuple[Environment, CheckIn] | None:
        """The environment and check-in with this id in the project, if still kept."""
        owners = self.checkin_owner.get(project)
        return None if owners is None else owners.get(checkin_id)

    def _owners(self, project: str) -> dict[str, tuple[Environment, CheckIn]]:
        owners = self.checkin_owner.get(project)
        if owners is None:
            owners = self.checkin_owner[project] = {}
        return owners

    # ------------------------------------------------------------ clock indexes

    def minute_of(self, instant: datetime) -> datetime:
        """`instant` truncated to the minute: the last tick's own object when it falls in it.

        Nearly every instant the reducer handles lies in the minute just ticked, and sharing
        that object lets the schedule and deadline caches hash it once (aware datetimes hash
        slowly).
        """
        last, upcoming = self.clock.last_tick, self.next_tick
        if last is not None and upcoming is not None and last <= instant < upcoming:
            return last
        return trunc_minute(instant)

    def schedule_due(self, env: Environment) -> None:
        """Indexes the environment's missed deadline (`next_checkin_latest`)."""
        if env.next_checkin_latest is not None:
            self._due.add(env.next_checkin_latest, env)

    def schedule_timeout(self, env: Environment, checkin: CheckIn) -> None:
        """Indexes an in-progress check-in's timeout."""
        if checkin.status is CHECKIN_IN_PROGRESS and checkin.timeout_at is not None:
            self._timeouts.add(checkin.timeout_at, (env, checkin))

    def _current(self, env: Environment) -> bool:
        envs = self.environments.get((env.project, env.monitor_slug))
        return envs is not None and envs.get(env.name) is env

    def due_environments(self, tick: datetime) -> list[Environment]:
        """Pops environments whose `next_checkin_latest <= tick` (inclusive, spec §3.5)."""
        due: list[Environment] = []
        for deadline, filed in self._due.pop_due(tick):
            # Entries are never removed eagerly; a stale one no longer has this deadline.
            fresh = {
                id(env): env
                for env in filed
                if env.next_checkin_latest == deadline and self._current(env)
            }
            # By key, never by filing order, so a reloaded partition runs the same order.
            due.extend(sorted(fresh.values(), key=lambda env: env.key))
        return due

    def timed_out(self, tick: datetime) -> list[tuple[Environment, CheckIn]]:
        """Pops in-progress check-ins whose `timeout_at <= tick`."""
        found: list[tuple[Environment, CheckIn]] = []
        for deadline, items in self._timeouts.pop_due(tick):
            fresh = {
                id(checkin): (env, checkin)
                for env, checkin in items
                if checkin.status is CHECKIN_IN_PROGRESS
                and checkin.timeout_at == deadline
                and self._current(env)
            }
            found.extend(sorted(fresh.values(), key=lambda hit: (hit[0].key, hit[1].id)))
        return found

    # ------------------------------------------------------------ commit support

    def take_changes(self) -> Changes:
        """Returns and clears what changed since the last call (for the commit)."""
        # Change order, not key order: a hash write does not depend on it.
        environments = list(self.dirty_envs.values())
        removed = self._removed_env_objects
        if removed:
            environments = [e for e in environments if id(e) not in removed]
        changes = Changes(
            monitors=[self.monitors[k] for k in sorted(self.dirty_monitors)],
            environments=environments,
            removed_monitors=sorted(self.removed_monitors),
            removed_environments=sorted(self.removed_envs),
            clock=self.clock if self.clock_dirty else None,
        )
        self.dirty_monitors.clear()
        self.dirty_envs.clear()
        self.removed_monitors.clear()
        self.removed_envs.clear()
        removed.clear()
        self.clock_dirty = False
        return changes


def _read_by_running(
    checkins: list[CheckIn], running: list[int], window: int, excess: int
) -> set[int]:
    """Positions before `excess` that a run still in progress reads when it ends."""
    kept: set[int] = set()
    for i in running:
        kept.update(range(max(0, i - window + 1), min(i + 1, excess)))
    for i in range(excess - 1, running[0], -1):
        if checkins[i].status in USER_TERMINAL:
            kept.add(i)  # the newest ok/error newer than the oldest run: enough for the guard
            break
    return kept


@dataclass(frozen=True)
class Changes:
    """What a batch changed: the records to write and the keys to delete."""

    monitors: list[Monitor]
    environments: list[Environment]
    removed_monitors: list[MonitorKey]
    removed_environments: list[EnvKey]
    clock: ClockState | None
