"""A skeleton fold: the least work any reducer of this design does per check-in.

It uses the domain's own records and events and does, per check-in, only what no faithful
fold can skip: find the environment, create or update the check-in (indexed by id, history
cut short), emit its full `check_in_created`/`check_in_updated` record, and read the next
expected slot from a memo. It leaves out everything else the reducer does (validation, the
rate limit, upserts, timeouts and due deadlines, incidents, the clock), so its rate is a
ceiling for the reducer on this machine, not a target: if the skeleton misses the fold
target, no tuning of the reducer's Python will meet it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime, timedelta

from monitor_es.domain.effects import Effects
from monitor_es.domain.events import CheckInReported
from monitor_es.domain.records import record_checkin
from monitor_es.domain.reducer import LogEntry
from monitor_es.domain.state import CheckIn, CheckInStatus, Environment
from monitor_es.domain.time import trunc_minute

_STATUSES = {status.value: status for status in CheckInStatus}
_HISTORY = 8  # newest check-ins kept per environment (the reducer keeps 5 plus slack)
_NEXT = timedelta(minutes=5)


class _Skeleton:
    """The skeleton's state: environments, check-ins by id, memoised next slots."""

    def __init__(self) -> None:
        self.environments: dict[tuple[str, str], dict[str, Environment]] = {}
        self.checkins: dict[str, tuple[Environment, CheckIn]] = {}
        self.slots: dict[tuple[str, str, datetime], datetime] = {}
        self.dirty: dict[int, Environment] = {}

    def environment(self, event: CheckInReported) -> Environment:
        envs = self.environments.setdefault((event.project, event.monitor_slug), {})
        name = str(event.environment or "production")
        env = envs.get(name)
        if env is None:
            env = envs[name] = Environment(
                project=event.project, monitor_slug=event.monitor_slug, name=name
            )
        return env

    def check_in(self, fx: Effects, ts: datetime, event: CheckInReported) -> None:
        env = self.environment(event)
        status = _STATUSES[str(event.status)]
        received = event.received or ts
        hit = self.checkins.get(str(event.check_in_id))
        if hit is None:
            checkin = CheckIn(
                id=str(event.check_in_id),
                status=status,
                date_added=received,
                date_updated=received,
                date_clock=trunc_minute(ts),
                expected_time=env.next_checkin,
            )
            env.checkins.append(checkin)
            if len(env.checkins) > _HISTORY:
                for old in env.checkins[:-_HISTORY]:
                    self.checkins.pop(old.id, None)
                del env.checkins[:-_HISTORY]
            self.checkins[checkin.id] = (env, checkin)
        else:
            checkin = hit[1]
            checkin.status = status
            checkin.date_updated = received
        record_checkin(fx, env, checkin, created=hit is None)
        minute = trunc_minute(received)
        key = (env.project, env.monitor_slug, minute)
        slot = self.slots.get(key)
        if slot is None:
            slot = self.slots[key] = minute + _NEXT
        env.next_checkin = slot
        self.dirty[id(env)] = env


def skeleton_once(batches: Iterable[list[LogEntry]]) -> float:
    """Folds the batches with the skeleton; returns seconds (decoding them included, when
    `batches` decodes lazily as the fold benchmark's batches do)."""
    skeleton = _Skeleton()
    started = time.perf_counter()
    for entries in batches:
        fx = Effects()
        for entry in entries:
            event = entry.event
            if type(event) is CheckInReported:
                fx.cause(entry.id)
                skeleton.check_in(fx, entry.ts, event)
        skeleton.dirty.clear()
    return time.perf_counter() - started
