"""Hypothesis strategies for random valid logs, shared by the unit and pipeline properties."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec
from dsl import T, guid
from hypothesis import settings
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


def other_events(
    slugs: Sequence[str], configs: st.SearchStrategy[Any], decide_offsets: tuple[int, int]
) -> st.SearchStrategy[Any]:
    """Every inbound event but a check-in, over `slugs` of project acme; a decision is a
    placeholder ("decide", minutes from the entry's minute, verdict) that `_resolve` fills."""
    slug = st.sampled_from(slugs)
    return st.one_of(
        st.just(ClockPulsed()),
        st.builds(
            lambda slug, config: MonitorConfigured(
                project="acme", monitor_slug=slug, config=config
            ),
            slug,
            configs,
        ),
        st.builds(
            lambda slug, env, muted: MonitorMuted(
                project="acme", monitor_slug=slug, environment=env, muted=muted
            ),
            slug,
            st.sampled_from((None, "production", "staging")),
            st.booleans(),
        ),
        st.builds(
            lambda slug, disabled: MonitorDisabled(
                project="acme", monitor_slug=slug, disabled=disabled
            ),
            slug,
            st.booleans(),
        ),
        st.builds(lambda slug: MonitorDeleted(project="acme", monitor_slug=slug), slug),
        st.tuples(
            st.just("decide"),
            st.integers(*decide_offsets),
            st.sampled_from(["normal", "abnormal", "incident", "recovering"]),
        ),
    )


_OTHERS = other_events(SLUGS, configs, (-2, 2))
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
