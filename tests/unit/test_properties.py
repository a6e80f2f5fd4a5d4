"""Properties of the fold over random valid logs (conventions.md "Tests prove behaviour").

* one batch equals entry by entry (same derived events, ids included, same encoded state);
* replaying the same log twice gives the same result;
* an environment's next expected check-in is strictly after its reference instant;
* derived event ids are unique.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from dsl import EVERY_MINUTE, T, guid
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor_es.domain.events import (
    CheckInReported,
    ClockDecided,
    ClockPulsed,
    DerivedEvent,
    InboundEvent,
    MonitorConfigured,
    MonitorDeleted,
    MonitorDisabled,
    MonitorMuted,
)
from monitor_es.domain.partition import Partition
from monitor_es.domain.payload import ZERO_GUID
from monitor_es.domain.reducer import LogEntry, fold
from monitor_es.domain.time import to_ms, trunc_minute

SLUGS = ("a", "b")
ENVS = (None, "staging")
SCHEDULES: list[dict[str, Any]] = [
    {"schedule_type": "crontab", "schedule": "* * * * *"},
    {"schedule_type": "crontab", "schedule": "*/5 * * * *"},
    {"schedule_type": "interval", "schedule": [3, "minute"]},
    {"schedule_type": "crontab", "schedule": "0 * * * *", "timezone": "Europe/Berlin"},
]
# A Berlin DST start (01:00 UTC on 2024-03-31) next to an ordinary day.
STARTS = (T, datetime.fromisoformat("2024-03-31T00:40:00+00:00"))
SETTINGS = settings(max_examples=100, deadline=None)

configs = st.builds(
    lambda schedule, margin, runtime, failures, recoveries: {
        **schedule,
        "checkin_margin": margin,
        "max_runtime": runtime,
        "failure_issue_threshold": failures,
        "recovery_threshold": recoveries,
    },
    st.sampled_from(SCHEDULES),
    st.sampled_from([None, 1, 3]),
    st.integers(1, 5),
    st.integers(1, 3),
    st.integers(1, 2),
)
check_ins = st.tuples(
    st.just("check_in"),
    st.sampled_from(SLUGS),
    st.sampled_from(ENVS),
    st.integers(0, 6),  # 0 is the zero GUID
    st.sampled_from(["in_progress", "ok", "error"]),
    st.one_of(st.none(), st.floats(0, 600)),
    st.sampled_from([0, 0, 0, 90]),  # seconds the edge received it before the broker did
)
_OTHERS = st.one_of(
    st.just(ClockPulsed()),
    st.builds(
        lambda slug, config: MonitorConfigured(project="acme", monitor_slug=slug, config=config),
        st.sampled_from(SLUGS),
        configs,
    ),
    st.builds(
        lambda slug, env, muted: MonitorMuted(
            project="acme", monitor_slug=slug, environment=env, muted=muted
        ),
        st.sampled_from(SLUGS),
        st.sampled_from((None, "production", "staging")),
        st.booleans(),
    ),
    st.builds(
        lambda slug, disabled: MonitorDisabled(
            project="acme", monitor_slug=slug, disabled=disabled
        ),
        st.sampled_from(SLUGS),
        st.booleans(),
    ),
    st.builds(
        lambda slug: MonitorDeleted(project="acme", monitor_slug=slug), st.sampled_from(SLUGS)
    ),
    st.tuples(
        st.just("decide"),
        st.integers(-2, 2),
        st.sampled_from(["normal", "abnormal", "incident", "recovering"]),
    ),
)
# Mostly check-ins: three in four entries.
inbound = st.sampled_from([True, True, True, False]).flatmap(
    lambda check_in: check_ins if check_in else _OTHERS
)


def _resolve(item: Any, ts: datetime) -> InboundEvent:
    """Turns the strategy's placeholders (times relative to the entry) into events."""
    if isinstance(item, tuple) and item[0] == "decide":
        return ClockDecided(minute=trunc_minute(ts) + timedelta(minutes=item[1]), decision=item[2])
    if isinstance(item, tuple) and item[0] == "check_in":
        _, slug, env, which, status, duration, early = item
        return CheckInReported(
            project="acme",
            monitor_slug=slug,
            environment=env,
            check_in_id=ZERO_GUID if which == 0 else guid(which),
            status=status,
            duration=duration,
            received=ts - timedelta(seconds=early) if early else None,
        )
    assert isinstance(item, InboundEvent)
    return item


@st.composite
def logs(draw: st.DrawFn, max_size: int = 25) -> list[LogEntry]:
    """A valid log: both monitors configured first, then random events, `ts` never falling."""
    ts = draw(st.sampled_from(STARTS))
    entries = [
        LogEntry(
            f"{to_ms(ts)}-{n}",
            ts,
            MonitorConfigured(project="acme", monitor_slug=slug, config=draw(configs)),
        )
        for n, slug in enumerate(SLUGS)
    ]
    for item, gap in draw(st.lists(st.tuples(inbound, st.integers(0, 400)), max_size=max_size)):
        ts += timedelta(seconds=gap)
        entries.append(LogEntry(f"{to_ms(ts)}-{len(entries)}", ts, _resolve(item, ts)))
    return entries


def encoded_state(p: Partition) -> bytes:
    """Every monitor and environment (and the clock), encoded as the store encodes them."""
    monitors = [p.monitors[key] for key in sorted(p.monitors)]
    state: Any = (monitors, p.all_environments(), p.clock)
    return msgspec.msgpack.encode(state)


def encoded_events(events: list[DerivedEvent]) -> bytes:
    return msgspec.msgpack.encode(events)


def fold_batch(entries: list[LogEntry]) -> tuple[Partition, list[DerivedEvent]]:
    p = Partition()
    return p, fold(p, entries)


# A `* * * * *` monitor whose run times out at the very tick that also misses its slot:
# the clock works twice on one environment within one tick.
MISS_AND_TIMEOUT_IN_ONE_TICK = [
    LogEntry(
        f"{to_ms(T)}-0",
        T,
        MonitorConfigured(
            project="acme", monitor_slug="a", config={**EVERY_MINUTE, "max_runtime": 2}
        ),
    ),
    LogEntry(
        f"{to_ms(T)}-1",
        T + timedelta(seconds=10),
        CheckInReported(
            project="acme", monitor_slug="a", check_in_id=guid(1), status="in_progress"
        ),
    ),
    LogEntry(f"{to_ms(T)}-2", T + timedelta(minutes=2), ClockPulsed()),
]


# --- batch = incremental, replay ----------------------------------------------------------


@SETTINGS
@given(logs())
@example(MISS_AND_TIMEOUT_IN_ONE_TICK)
def test_folding_in_one_batch_equals_folding_entry_by_entry(entries: list[LogEntry]) -> None:
    batch, batch_events = fold_batch(entries)
    stepwise = Partition()
    step_events: list[DerivedEvent] = []
    for entry in entries:
        step_events.extend(fold(stepwise, [entry]))
    assert [e.id for e in step_events] == [e.id for e in batch_events]
    assert encoded_events(step_events) == encoded_events(batch_events)
    assert encoded_state(stepwise) == encoded_state(batch)


@SETTINGS
@given(logs())
def test_replaying_a_log_gives_identical_events_and_state(entries: list[LogEntry]) -> None:
    first, first_events = fold_batch(entries)
    second, second_events = fold_batch(entries)
    assert encoded_events(first_events) == encoded_events(second_events)
    assert encoded_state(first) == encoded_state(second)


# --- ids -----------------------------------------------------------------------------------


def test_miss_and_timeout_in_one_tick_get_distinct_event_ids() -> None:
    _, events = fold_batch(MISS_AND_TIMEOUT_IN_ONE_TICK)
    kinds = {type(e).__struct_config__.tag for e in events}
    assert {"mark_missing", "mark_timeout"} <= kinds
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids))


@SETTINGS
@given(logs())
@example(MISS_AND_TIMEOUT_IN_ONE_TICK)
def test_derived_event_ids_are_unique(entries: list[LogEntry]) -> None:
    _, events = fold_batch(entries)
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids))


# --- next expected check-in ------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    gap: int  # seconds after the previous entry
    action: str  # "new", "close" (the newest running one), "zero" or "pulse"
    status: str


steps = st.lists(
    st.builds(
        Step,
        st.integers(0, 900),
        st.sampled_from(["new", "new", "close", "zero", "pulse"]),
        st.sampled_from(["in_progress", "ok", "error"]),
    ),
    min_size=1,
    max_size=20,
)


def _superseded(p: Partition, check_in_id: str) -> bool:
    """An error with a newer ok/error check-in does not touch the environment (§2.7)."""
    env = p.environment(("acme", "a", "production"))
    assert env is not None
    mine = next(c for c in env.checkins if c.id == check_in_id)
    return mine.status == "error" and any(
        c.status in ("ok", "error") and c.date_added > mine.date_added for c in env.checkins
    )


@SETTINGS
@given(st.sampled_from(STARTS), configs, steps)
def test_next_checkin_is_always_strictly_after_its_reference(
    start: datetime, config: dict[str, Any], plan: list[Step]
) -> None:
    p = Partition()
    ts = start
    fold(
        p, [LogEntry("0-0", ts, MonitorConfigured(project="acme", monitor_slug="a", config=config))]
    )
    fresh = 100
    for n, step in enumerate(plan, start=1):
        ts += timedelta(seconds=step.gap)
        env = p.environment(("acme", "a", "production"))
        running = [c.id for c in env.checkins if c.status == "in_progress"] if env else []
        if step.action == "pulse":
            event: InboundEvent = ClockPulsed()
            check_in_id = None
        else:
            if step.action == "close" and running and step.status != "in_progress":
                check_in_id = running[-1]
            elif step.action == "zero":
                check_in_id = ZERO_GUID
            else:
                fresh += 1
                check_in_id = guid(fresh)
            event = CheckInReported(
                project="acme", monitor_slug="a", check_in_id=check_in_id, status=step.status
            )
        out = fold(p, [LogEntry(f"{to_ms(ts)}-{n}", ts, event)])
        env = p.environment(("acme", "a", "production"))
        if env is None or env.next_checkin is None:
            continue
        assert env.next_checkin_latest is not None
        assert env.next_checkin_latest > env.next_checkin
        assert env.last_checkin is not None
        assert env.next_checkin > env.last_checkin
        touched = [
            e.check_in_id
            for e in out
            if type(e).__struct_config__.tag in ("check_in_created", "check_in_updated")
            and e.date_updated == ts
        ]
        rejected = any(type(e).__struct_config__.tag == "event_rejected" for e in out)
        counted = check_in_id is not None and touched and not rejected
        if counted and not _superseded(p, touched[-1]):
            # The reference is the message's time (spec §2.7).
            assert env.next_checkin > ts
