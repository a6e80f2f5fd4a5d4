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

from dsl import EVERY_MINUTE, T, guid
from hypothesis import example, given
from hypothesis import strategies as st
from log_strategies import (
    SETTINGS,
    STARTS,
    configs,
    encoded_events,
    encoded_state,
    fold_batch,
    logs,
)

from monitor_es.domain.events import (
    CheckInReported,
    ClockPulsed,
    DerivedEvent,
    InboundEvent,
    MonitorConfigured,
)
from monitor_es.domain.partition import Partition
from monitor_es.domain.payload import ZERO_GUID
from monitor_es.domain.reducer import LogEntry, fold
from monitor_es.domain.time import to_ms

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
