"""The event-time clock: ticks derived from broker time (spec §3, §8.2–8.4; domain.md "The clock").

Every test drives the pure reducer with log entries only; ticks are observed through the
clock tasks they run (`mark_missing` / `mark_timeout` with the tick as `ts`) and through
the partition's `last_tick`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec
from dsl import EVERY_MINUTE, Run, T, minutes, of_type
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor_es.domain import clock
from monitor_es.domain.effects import Effects
from monitor_es.domain.events import DerivedEvent
from monitor_es.domain.partition import Partition

DAILY = {"schedule_type": "crontab", "schedule": "0 0 * * *"}


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def task_ticks(events: list[DerivedEvent], kind: str = "mark_missing") -> list[datetime]:
    """The `ts` of every clock task of one kind, in emission order."""
    return [e.ts for e in of_type(events, kind)]


def missed_dates(events: list[DerivedEvent]) -> list[datetime]:
    """`date_added` of every missed check-in created, in order."""
    return [e.date_added for e in of_type(events, "check_in_created") if e.status == "missed"]


def encoded(p: Partition) -> bytes:
    """Everything a partition persists, encoded (monitors, environments, clock)."""
    state: Any = (list(p.monitors.values()), p.all_environments(), p.clock)
    return msgspec.msgpack.encode(state)


def missing_every_minute() -> Run:
    """A `* * * * *` monitor that missed at tick T+2 and so is due again at every tick.

    OK at T: next T+1, latest T+2. Tick T+2 misses T+1; from then on every tick misses
    the previous minute (next = tick, latest = tick + 1).
    """
    run = Run()
    run.checkin(T, "ok", config=EVERY_MINUTE)
    run.pulse(T + minutes(2))
    assert task_ticks(run.events) == [T + minutes(2)]
    return run


# --- Tick derivation ---------------------------------------------------------------------


def test_first_entry_ever_ticks_its_own_minute() -> None:
    run = Run()
    run.pulse(T + seconds(42))
    assert run.p.clock.last_tick == T


def test_the_first_tick_does_not_backfill_anything_before_it() -> None:
    run = Run()
    run.checkin(T + seconds(30), "ok", config=EVERY_MINUTE)
    # Next T+1, latest T+2: the next tick to act is T+2, and nothing happened before.
    assert run.p.clock.last_tick == T
    assert of_type(run.events, "mark_missing") == []
    run.pulse(T + minutes(1))
    assert run.p.clock.last_tick == T + minutes(1)
    assert of_type(run.events, "mark_missing") == []


def test_every_minute_crossed_is_ticked_in_order() -> None:
    run = missing_every_minute()  # last tick T+2
    new = run.pulse(T + minutes(5))
    # A pulse 3 minutes after the last tick: ticks T+3, T+4, T+5, each missing the minute before.
    assert task_ticks(new) == [T + minutes(3), T + minutes(4), T + minutes(5)]
    assert missed_dates(new) == [T + minutes(2), T + minutes(3), T + minutes(4)]
    assert run.p.clock.last_tick == T + minutes(5)


def test_backfill_has_no_bound() -> None:
    run = missing_every_minute()  # last tick T+2
    new = run.pulse(T + minutes(2) + timedelta(hours=6))
    ticks = task_ticks(new)
    assert len(ticks) == 360
    assert ticks == [T + minutes(3 + k) for k in range(360)]
    assert run.env().next_checkin == T + minutes(362)


def test_two_entries_in_one_minute_tick_once() -> None:
    run = missing_every_minute()
    first = run.pulse(T + minutes(3))
    second = run.pulse(T + minutes(3) + seconds(59.999))
    assert task_ticks(first) == [T + minutes(3)]
    assert second == []
    assert run.p.clock.last_tick == T + minutes(3)


def test_an_entry_older_than_the_last_tick_does_not_move_the_clock_back() -> None:
    run = missing_every_minute()  # last tick T+2
    assert run.pulse(T + seconds(30)) == []
    assert run.p.clock.last_tick == T + minutes(2)
    # And the minutes already ticked are not ticked again when time moves on.
    assert task_ticks(run.pulse(T + minutes(3))) == [T + minutes(3)]


def test_ticks_run_before_the_entry_that_crosses_the_minute() -> None:
    run = Run()
    run.checkin(T, "ok", config=EVERY_MINUTE)  # next T+1, latest T+2
    late = "00000000-0000-4000-8000-000000000777"
    new = run.checkin(T + minutes(2) + seconds(10), "ok", id=late)
    kinds = [type(e).__struct_config__.tag for e in new]
    created: list[Any] = of_type(new, "check_in_created")
    late_created = new.index(next(e for e in created if e.check_in_id == late))
    # Tick T+2 marks T+1 missed before the check-in of minute T+2 is applied (spec §8.2) ...
    assert kinds.index("mark_missing") < late_created
    assert missed_dates(new) == [T + minutes(1)]
    # ... and the check-in then resolves the incident that miss opened.
    assert len(of_type(new, "incident_opened")) == 1
    assert of_type(new, "incident_resolved")[0].resolving_check_in_id == late
    assert run.env().status == "ok"
    assert run.env().incident is None


def test_a_check_in_in_the_minute_before_the_deadline_tick_prevents_the_miss() -> None:
    run = Run()
    run.checkin(T, "ok", config=EVERY_MINUTE)  # next T+1, latest T+2
    run.checkin(T + minutes(1) + seconds(59.999), "ok")  # next T+2, latest T+3
    new = run.pulse(T + minutes(2))
    assert of_type(new, "mark_missing") == []
    assert run.env().next_checkin_latest == T + minutes(3)


# --- run_tick is idempotent ----------------------------------------------------------------


def test_running_the_same_tick_twice_changes_nothing_the_second_time() -> None:
    run = Run()
    run.checkin(T, "ok", config={**EVERY_MINUTE, "max_runtime": 2})  # next T+1, latest T+2
    run.checkin(T + seconds(30), "in_progress")  # timeout_at T+2; next T+1, latest T+2
    fx = Effects()
    clock.run_tick(run.p, fx, T + minutes(1))
    assert fx.events == []
    clock.run_tick(run.p, fx, T + minutes(2))
    # The tick did work: T+1 missed and the run timed out.
    assert task_ticks(fx.events) == [T + minutes(2)]
    assert task_ticks(fx.events, "mark_timeout") == [T + minutes(2)]
    before, produced = encoded(run.p), len(fx.events)

    clock.run_tick(run.p, fx, T + minutes(2))
    clock.run_tick(run.p, fx, T + minutes(1))  # an older minute is no tick either

    assert encoded(run.p) == before
    assert len(fx.events) == produced


# --- Inclusive deadlines (§8.3) --------------------------------------------------------------


def test_missed_deadline_equal_to_the_tick_is_due_at_that_tick() -> None:
    run = Run()
    run.checkin(T, "ok", config=EVERY_MINUTE)  # latest T+2
    assert of_type(run.pulse(T + minutes(1) + seconds(59.999)), "mark_missing") == []
    assert task_ticks(run.pulse(T + minutes(2))) == [T + minutes(2)]


def test_timeout_equal_to_the_tick_is_due_at_that_tick() -> None:
    run = Run()
    run.checkin(T, "in_progress", config={**DAILY, "max_runtime": 5})
    assert run.checkins()[0].timeout_at == T + minutes(5)
    assert of_type(run.pulse(T + minutes(4) + seconds(59.999)), "mark_timeout") == []
    assert task_ticks(run.pulse(T + minutes(5)), "mark_timeout") == [T + minutes(5)]
    assert run.checkins()[0].status == "timeout"


# --- Minute granularity (§8.4) ----------------------------------------------------------------


def test_run_received_at_the_end_of_a_minute_times_out_at_the_next_minute_tick() -> None:
    run = Run()
    run.checkin(T + seconds(59), "in_progress", config={**DAILY, "max_runtime": 1})
    # 12:00:59 + 1 minute is due at the 12:01 tick, not at 12:01:59.
    assert run.checkins()[0].timeout_at == T + minutes(1)
    new = run.pulse(T + minutes(1))
    assert task_ticks(new, "mark_timeout") == [T + minutes(1)]
    assert run.checkins()[0].status == "timeout"


# --- Backfill of a long gap catches up (C-5 / §3.7.5) ------------------------------------------


def test_long_gap_catches_up_to_the_newest_slot_instead_of_missing_every_slot() -> None:
    run = Run()
    run.checkin(T, "ok", config={**EVERY_MINUTE, "checkin_margin": 10})  # next T+1, latest T+11
    new = run.pulse(T + minutes(25))
    # Tick T+11 misses T+1 and jumps to the slot after T+10 (the last before the tick):
    # next T+11, latest T+21. Tick T+21 misses T+11; next T+21, latest T+31. The 23
    # slots in between produce no miss of their own.
    assert task_ticks(new) == [T + minutes(11), T + minutes(21)]
    assert missed_dates(new) == [T + minutes(1), T + minutes(11)]
    env = run.env()
    assert env.next_checkin == T + minutes(21)
    assert env.next_checkin_latest == T + minutes(31)
    assert env.last_checkin == T


# --- Timeouts against the tick order (§8.2) and moved deadlines -------------------------------

RUN = "00000000-0000-4000-8000-000000000001"


def test_closing_in_the_minute_before_the_timeout_tick_beats_the_timeout() -> None:
    run = Run()
    run.checkin(T, "in_progress", id=RUN, config={**DAILY, "max_runtime": 5})  # timeout T+5
    new = run.checkin(T + minutes(4) + seconds(59.999), "ok", id=RUN)
    assert of_type(new, "mark_timeout") == []
    assert of_type(run.pulse(T + minutes(10)), "mark_timeout") == []
    assert run.find(RUN).status == "ok"
    assert run.env().status == "ok"


def test_closing_in_the_timeout_minute_comes_after_the_tick_and_the_run_stays_timed_out() -> None:
    run = Run()
    run.checkin(T, "in_progress", id=RUN, config={**DAILY, "max_runtime": 5})  # timeout T+5
    new = run.checkin(T + minutes(5) + seconds(30), "ok", id=RUN)
    kinds = [type(e).__struct_config__.tag for e in new]
    assert kinds[0] == "mark_timeout"
    assert task_ticks(new, "mark_timeout") == [T + minutes(5)]
    # TIMEOUT is sticky (§8.12): the late close only records its duration.
    closed = of_type(new, "check_in_updated")[-1]
    assert (closed.check_in_id, closed.status, closed.duration_ms) == (RUN, "timeout", 330_000)
    assert run.find(RUN).status == "timeout"
    assert run.env().status == "timeout"
    assert run.env().incident is not None


def test_a_heartbeat_moves_the_timeout_and_the_old_deadline_does_nothing() -> None:
    run = Run()
    run.checkin(T, "in_progress", id=RUN, config={**DAILY, "max_runtime": 5})  # timeout T+5
    run.checkin(T + minutes(3) + seconds(10), "in_progress", id=RUN)  # heartbeat: T+3 + 5
    assert run.find(RUN).timeout_at == T + minutes(8)
    assert of_type(run.pulse(T + minutes(7)), "mark_timeout") == []
    assert run.find(RUN).status == "in_progress"
    assert task_ticks(run.pulse(T + minutes(8)), "mark_timeout") == [T + minutes(8)]
    assert run.find(RUN).status == "timeout"


# --- Backfill equals pulsing every minute ------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    pulses=st.lists(st.integers(min_value=0, max_value=90 * 60), max_size=6),
    schedule=st.sampled_from(["* * * * *", "*/5 * * * *", "7 * * * *"]),
    margin=st.integers(min_value=1, max_value=12),
    runtime=st.integers(min_value=1, max_value=40),
)
def test_a_jump_produces_exactly_what_finer_pulses_would(
    pulses: list[int], schedule: str, margin: int, runtime: int
) -> None:
    config: dict[str, Any] = {"schedule_type": "crontab", "schedule": schedule}
    config |= {"checkin_margin": margin, "max_runtime": runtime}
    end = T + minutes(91)
    fine, coarse = Run(), Run()
    for run in (fine, coarse):
        run.checkin(T, "ok", config=config)
        run.checkin(T + seconds(20), "in_progress")
    # Tick work is caused by the tick, not the entry, so ids match too.
    fine_events = [e for ts in sorted(pulses) for e in fine.pulse(T + seconds(ts))]
    fine_events += fine.pulse(end)
    assert fine_events == coarse.pulse(end)
    assert encoded(fine.p) == encoded(coarse.p)
