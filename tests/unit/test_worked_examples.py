"""The worked examples of spec §7 (A–D), driven through log entries only.

Each example's starting state is reached with real check-ins at the right broker times
(the first one upserts the monitor), then the clock is moved with pulses. Statuses are
domain.md's verdicts (`missed`/`timeout` where Sentry says ERROR). Where monitor-es
deliberately differs (per-partition clocks that tick every minute, clock tasks run inside
the fold at their tick) the test is named for our documented behaviour.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dsl import EVERY_MINUTE, D, Run, T, errors_of, guid, minutes, of_type

from monitor_es.domain.events import DerivedEvent
from monitor_es.domain.state import Environment

FINGERPRINT = ["crons:acme/job/production"]
MISSED_SUBTITLE = "Your monitor is failing: A missed check-in was detected."
TIMEOUT_SUBTITLE = "Your monitor is failing: A timeout check-in was detected."
TASKS = ("mark_missing", "mark_timeout", "mark_unknown")
RUN = guid(1)
OTHER_RUN = guid(2)


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def days(n: float) -> timedelta:
    return timedelta(days=n)


def crontab(expr: str, **extra: Any) -> dict[str, Any]:
    return {"schedule_type": "crontab", "schedule": expr, **extra}


def interval(count: int, unit: str, **extra: Any) -> dict[str, Any]:
    return {"schedule_type": "interval", "schedule": [count, unit], **extra}


def kinds(events: list[DerivedEvent]) -> list[str]:
    return [str(type(e).__struct_config__.tag) for e in events]


def only(events: list[DerivedEvent], kind: str) -> Any:
    """The single derived event of a kind (fails if there are none or several)."""
    found = of_type(events, kind)
    assert len(found) == 1, f"expected one {kind}, got {kinds(events)}"
    return found[0]


def task_ticks(events: list[DerivedEvent]) -> list[datetime]:
    """The tick `ts` of every clock task (missing, timeout, unknown), in emission order."""
    tasks: list[Any] = [e for e in events if kinds([e])[0] in TASKS]
    return [e.ts for e in tasks]


def created_missed(events: list[DerivedEvent]) -> list[Any]:
    return [e for e in of_type(events, "check_in_created") if e.status == "missed"]


def times(env: Environment) -> tuple[datetime | None, datetime | None, datetime | None]:
    """(last_checkin, next_checkin, next_checkin_latest)."""
    return env.last_checkin, env.next_checkin, env.next_checkin_latest


def missed_rows(run: Run, slug: str = "job") -> list[Any]:
    return [c for c in run.checkins(slug) if c.status == "missed"]


# =============================================================================================
# A. Clock: one partition's ticks come from its own entries (A-2..A-4 replaced by
#    per-partition clocks, domain.md "The clock")
# =============================================================================================

RUNNING_EVERY_MINUTE = {**EVERY_MINUTE, "max_runtime": 1}


def started_partition(ts: datetime) -> tuple[Run, list[DerivedEvent]]:
    """A partition whose first entry is a run started at `ts`: it times out at the next
    minute's tick, and every later tick misses the minute before, so each tick is visible."""
    run = Run()
    return run, run.checkin(ts, "in_progress", config=RUNNING_EVERY_MINUTE)


def test_a1_one_partition_ticks_each_minute_once_and_backfills_a_jump() -> None:
    run, first = started_partition(T)
    assert (run.p.clock.last_tick, task_ticks(first)) == (T, [])
    assert run.pulse(T + seconds(5)) == []
    assert run.p.clock.last_tick == T
    assert task_ticks(run.pulse(T + minutes(1))) == [T + minutes(1)]  # the run's timeout
    assert run.pulse(T + minutes(1)) == []
    # T+3+5s: the minutes T+2 and T+3 are both ticked, in order (T+1 and T+2 missed).
    jump = run.pulse(T + minutes(3) + seconds(5))
    assert task_ticks(jump) == [T + minutes(2), T + minutes(3)]
    assert [e.date_added for e in created_missed(jump)] == [T + minutes(1), T + minutes(2)]
    assert run.p.clock.last_tick == T + minutes(3)


def test_a2_a_lagging_partition_ticks_its_own_minutes_and_never_holds_back_another() -> None:
    p0, _ = started_partition(T + seconds(1))  # ticks T; its run times out at T+1
    p1, _ = started_partition(T - seconds(1))  # ticks T-1 (Sentry: ignored as too old)
    assert (p0.p.clock.last_tick, p1.p.clock.last_tick) == (T, T - minutes(1))
    # p1 reaches T: its run (timeout_at T) times out; p0 is not affected.
    assert task_ticks(p1.pulse(T + seconds(1))) == [T]
    # p0 ticks T+1 on its own entry, without waiting for p1 (Sentry: held by p1).
    assert task_ticks(p0.pulse(T + minutes(1) + seconds(1))) == [T + minutes(1)]
    assert p1.p.clock.last_tick == T
    # p1 then ticks T+1 itself: its run's slot T was not met (latest T+1).
    p1_new = p1.pulse(T + minutes(1) + seconds(1))
    assert task_ticks(p1_new) == [T + minutes(1)]
    assert [e.date_added for e in created_missed(p1_new)] == [T]


def test_a3_each_partition_ticks_a_minute_as_soon_as_its_own_entries_reach_it() -> None:
    parts = [started_partition(T)[0] for _ in range(4)]
    assert [p.p.clock.last_tick for p in parts] == [T] * 4
    for p in parts[:3]:
        assert task_ticks(p.pulse(T + minutes(1))) == [T + minutes(1)]
    assert parts[3].p.clock.last_tick == T
    assert parts[3].checkins()[0].status == "in_progress"
    assert task_ticks(parts[3].pulse(T + minutes(1))) == [T + minutes(1)]
    assert parts[3].checkins()[0].status == "timeout"


def test_a4_a_partition_that_falls_behind_backfills_its_own_ticks_in_order() -> None:
    p0, p1, p2, p3 = (started_partition(T)[0] for _ in range(4))
    for p in (p0, p1, p2):
        assert task_ticks(p.pulse(T + minutes(1))) == [T + minutes(1)]
    assert task_ticks(p0.pulse(T + minutes(2))) == [T + minutes(2)]
    assert task_ticks(p1.pulse(T + minutes(3))) == [T + minutes(2), T + minutes(3)]
    assert task_ticks(p2.pulse(T + minutes(3))) == [T + minutes(2), T + minutes(3)]
    # p3 stayed at T all along; reaching T+2 it ticks T+1 (timeout) then T+2 (miss).
    assert p3.p.clock.last_tick == T
    caught_up = p3.pulse(T + minutes(2))
    assert kinds(caught_up)[0] == "mark_timeout"
    assert task_ticks(caught_up) == [T + minutes(1), T + minutes(2)]


# =============================================================================================
# B. Tick consumer
# =============================================================================================


def test_b3_tick_marks_the_missed_slot_and_times_out_the_running_check_in() -> None:
    """Adapted: a real in_progress check-in moves next_checkin (§8.5), so the run that
    times out at T is the one that started at T-2 (max_runtime 2 instead of 1)."""
    run = Run()
    config = {**EVERY_MINUTE, "checkin_margin": 1, "max_runtime": 2}
    run.checkin(T - minutes(3), "ok", config=config)
    run.checkin(T - minutes(2), "in_progress", id=RUN)
    env = run.env()
    assert env.status == "ok"
    assert times(env) == (T - minutes(2), T - minutes(1), T)
    assert run.find(RUN).timeout_at == T

    new = run.pulse(T)

    assert kinds(new) == [
        "mark_missing",
        "check_in_created",
        "status_changed",
        "incident_opened",
        "issue_occurrence",
        "mark_timeout",
        "check_in_updated",
        "status_changed",
        "issue_occurrence",
    ]
    missed = only(new, "check_in_created")
    assert (missed.status, missed.date_added, missed.expected_time) == (
        "missed",
        T - minutes(1),  # when it should have happened, not T
        T - minutes(1),
    )
    timed_out = only(new, "check_in_updated")
    assert (timed_out.check_in_id, timed_out.status) == (RUN, "timeout")
    assert run.find(RUN).status == "timeout"
    incident = only(new, "incident_opened")
    assert incident.starting_check_in_id == missed.check_in_id
    assert incident.started_at == T - minutes(1)
    occurrences = of_type(new, "issue_occurrence")
    assert [(o.failed_check_in_id, o.subtitle, o.detection_time) for o in occurrences] == [
        (missed.check_in_id, MISSED_SUBTITLE, T - minutes(1)),
        (RUN, TIMEOUT_SUBTITLE, T - minutes(2)),
    ]
    assert {o.incident_id for o in occurrences} == {incident.incident_id}
    env = run.env()
    assert env.status == "timeout"
    assert env.incident is not None and env.incident.id == incident.incident_id
    assert times(env) == (T - minutes(2), T, T + minutes(1))


# =============================================================================================
# C. Missed detection
# =============================================================================================


def c1_run() -> Run:
    """C-1's start: `* * * * *`, margin and runtime null; OK at T-2 (next T-1, latest T)."""
    run = Run()
    run.checkin(T - minutes(2), "ok", config=EVERY_MINUTE)
    env = run.env()
    assert env.status == "ok"
    assert times(env) == (T - minutes(2), T - minutes(1), T)
    return run


def test_c1_missed_check_in_is_dated_at_its_expected_time() -> None:
    run = c1_run()
    new = run.pulse(T)

    task = only(new, "mark_missing")
    assert (task.project, task.monitor_slug, task.environment, task.ts) == (
        "acme",
        "job",
        "production",
        T,
    )
    missed = only(new, "check_in_created")
    assert missed.status == "missed"
    assert missed.date_added == missed.date_updated == missed.expected_time == T - minutes(1)
    assert missed.date_clock == T
    assert (missed.timeout_at, missed.duration_ms) == (None, None)
    [row] = missed_rows(run)
    assert (row.id, row.date_added, row.date_updated, row.expected_time) == (
        missed.check_in_id,
        T - minutes(1),
        T - minutes(1),
        T - minutes(1),
    )
    env = run.env()
    assert env.status == "missed"
    assert times(env) == (T - minutes(2), T, T + minutes(1))  # last_checkin unchanged


def test_c1_missed_check_in_opens_an_incident_and_sends_an_occurrence() -> None:
    run = c1_run()
    new = run.pulse(T)

    assert kinds(new) == [
        "mark_missing",
        "check_in_created",
        "status_changed",
        "incident_opened",
        "issue_occurrence",
    ]
    missed = only(new, "check_in_created")
    status = only(new, "status_changed")
    assert (status.previous, status.status, status.at) == ("ok", "missed", T)
    incident = only(new, "incident_opened")
    assert incident.fingerprint == FINGERPRINT
    assert incident.starting_check_in_id == missed.check_in_id
    assert incident.started_at == T - minutes(1)
    occurrence = only(new, "issue_occurrence")
    assert occurrence.fingerprint == FINGERPRINT
    assert occurrence.incident_id == incident.incident_id
    assert occurrence.failed_check_in_id == missed.check_in_id
    assert occurrence.issue_title == "Cron failure: job"
    assert occurrence.subtitle == MISSED_SUBTITLE
    assert occurrence.level == "error"
    assert occurrence.environment == "production"
    assert occurrence.detection_time == T - minutes(1)
    assert occurrence.received == T  # the tick, for a synthetic failure
    assert occurrence.evidence_display == [
        {"name": "Failure reason", "value": "A missed check-in was detected", "important": True},
        {"name": "Environment", "value": "production", "important": False},
        {"name": "Last successful check-in", "value": "2024-05-01T11:58:00Z", "important": False},
    ]
    env = run.env()
    assert env.incident is not None
    assert (env.incident.id, env.incident.starting_check_in_id, env.incident.started_at) == (
        incident.incident_id,
        missed.check_in_id,
        T - minutes(1),
    )


def test_c1_missed_check_in_and_incident_ids_are_the_same_on_replay() -> None:
    first, second = c1_run(), c1_run()
    a, b = first.pulse(T), second.pulse(T)
    assert only(a, "check_in_created").check_in_id == only(b, "check_in_created").check_in_id
    assert only(a, "incident_opened").incident_id == only(b, "incident_opened").incident_id


def test_c2_daily_midnight_in_arizona_is_missed_one_minute_after_7_utc() -> None:
    z = datetime(2024, 2, 1, 7, 0, tzinfo=UTC)  # 1 Feb 00:00 in Arizona (UTC-7, no DST)
    run = Run()
    run.checkin(z - days(1), "ok", config=crontab("0 0 * * *", timezone="US/Arizona"))
    env = run.env()
    assert times(env) == (z - days(1), z, z + minutes(1))

    quiet: list[DerivedEvent] = []
    for hour in range(23, -1, -1):  # ticks every hour from Z-23h through Z
        quiet += run.pulse(z - hours(hour))
    assert task_ticks(quiet) == []

    new = run.pulse(z + minutes(1))
    assert task_ticks(new) == [z + minutes(1)]
    [missed] = created_missed(new)
    assert missed.date_added == missed.expected_time == z
    assert env.status == "missed"
    assert (env.next_checkin, env.next_checkin_latest) == (z + days(1), z + days(1) + minutes(1))


def test_c3_interval_miss_waits_for_the_margin_and_is_dated_at_the_expected_slot() -> None:
    """Ours ticks every minute: the deadline T+3 is met at the backfilled tick T+3 (Sentry's
    test jumps from tick T to tick T+4 and sees the task at T+4)."""
    run = Run()
    run.configure(T - minutes(13), interval(10, "minute", checkin_margin=5), name="Queue drain")
    run.checkin(T - minutes(12), "ok")
    env = run.env()
    assert times(env) == (T - minutes(12), T - minutes(2), T + minutes(3))

    assert task_ticks(run.pulse(T)) == []
    assert env.status == "ok"
    assert missed_rows(run) == []

    new = run.pulse(T + minutes(4))
    assert task_ticks(new) == [T + minutes(3)]
    [missed] = created_missed(new)
    assert missed.date_added == missed.date_updated == missed.expected_time == T - minutes(2)
    assert env.status == "missed"
    assert (env.next_checkin, env.next_checkin_latest) == (T + minutes(8), T + minutes(13))
    assert only(new, "issue_occurrence").issue_title == "Cron failure: Queue drain"


def test_c4_margin_wider_than_the_schedule_misses_the_first_slot_and_jumps_ahead() -> None:
    t = T + minutes(15)  # minute 15
    run = Run()
    run.checkin(t - minutes(5), "ok", config=crontab("*/5 * * * *", checkin_margin=10))
    env = run.env()
    assert times(env) == (t - minutes(5), t, t + minutes(10))

    for offset in (0, 5, 9):
        assert task_ticks(run.pulse(t + minutes(offset))) == []
    new = run.pulse(t + minutes(10))
    assert task_ticks(new) == [t + minutes(10)]
    [missed] = created_missed(new)
    assert missed.date_added == missed.date_updated == missed.expected_time == t
    assert env.status == "missed"
    # The slot after the last one before the tick (t+5), not after the missed one.
    assert (env.next_checkin, env.next_checkin_latest) == (t + minutes(10), t + minutes(20))


def test_c5_ticks_are_never_skipped_so_each_slot_crossed_is_missed() -> None:
    """Ours backfills T+2 instead of skipping it: the jump to T+3 misses T+1 and T+2 and ends
    where Sentry's catch-up ends (next T+3). Catch-up itself: C-4 and test_clock."""
    run = Run()
    run.checkin(T - minutes(1), "ok", config=EVERY_MINUTE)
    env = run.env()
    assert times(env) == (T - minutes(1), T, T + minutes(1))

    assert task_ticks(run.pulse(T)) == []
    first = run.pulse(T + minutes(1))
    assert task_ticks(first) == [T + minutes(1)]
    assert [m.date_added for m in created_missed(first)] == [T]
    assert env.next_checkin == T + minutes(1)

    jump = run.pulse(T + minutes(3))
    assert task_ticks(jump) == [T + minutes(2), T + minutes(3)]
    assert [m.date_added for m in created_missed(jump)] == [T + minutes(1), T + minutes(2)]
    assert (env.next_checkin, env.next_checkin_latest) == (T + minutes(3), T + minutes(4))
    assert len(of_type(run.events, "mark_missing")) == 3


def disabled_c6_run() -> Run:
    """OK at T-2 (next T-1, latest T), then the monitor is disabled at T-1:30."""
    run = Run()
    run.checkin(T - minutes(2), "ok", config=EVERY_MINUTE)
    run.disable(T - minutes(1) + seconds(30), True)
    return run


def test_c6_disabled_monitor_is_never_marked_missed() -> None:
    run = disabled_c6_run()
    assert run.pulse(T) == []
    assert run.pulse(T + minutes(10)) == []
    env = run.env()
    assert env.status == "ok"
    assert missed_rows(run) == []
    assert times(env) == (T - minutes(2), T - minutes(1), T)


def test_c6_disabled_monitor_rejects_check_ins() -> None:
    run = disabled_c6_run()
    assert errors_of(run.checkin(T, "ok")) == ["monitor_disabled"]
    assert len(run.checkins()) == 1


def test_c6_reenabled_monitor_expects_the_slot_after_the_enable_without_missing_the_gap() -> None:
    run = disabled_c6_run()
    run.pulse(T + minutes(20))
    run.disable(T + minutes(20) + seconds(30), False)
    env = run.env()
    assert (env.next_checkin, env.next_checkin_latest) == (T + minutes(21), T + minutes(22))
    assert task_ticks(run.pulse(T + minutes(21) + seconds(59))) == []
    new = run.pulse(T + minutes(22))
    assert task_ticks(new) == [T + minutes(22)]
    assert [m.date_added for m in created_missed(new)] == [T + minutes(21)]
    assert [m.date_added for m in missed_rows(run)] == [T + minutes(21)]


def test_c6_deleted_monitor_has_nothing_left_to_miss() -> None:
    run = Run()
    run.checkin(T - minutes(2), "ok", config=EVERY_MINUTE)
    assert kinds(run.delete(T - minutes(1) + seconds(30))) == ["monitor_removed"]
    assert run.pulse(T) == []
    assert run.p.environment(("acme", "job", "production")) is None


def test_c6_disabled_monitor_still_times_out_running_check_ins() -> None:
    run = Run()
    run.checkin(T - minutes(3), "ok", config={**EVERY_MINUTE, "max_runtime": 2})
    run.checkin(T - minutes(2), "in_progress", id=RUN)  # timeout_at T; latest T
    run.disable(T - minutes(1) + seconds(30), True)
    new = run.pulse(T)
    assert kinds(new)[0] == "mark_timeout"
    assert of_type(new, "mark_missing") == []
    assert only(new, "mark_timeout").check_in_id == RUN
    assert run.find(RUN).status == "timeout"
    # A disabled monitor is out of the incident logic (spec §4.3).
    assert of_type(new, "incident_opened") == []
    assert of_type(new, "issue_occurrence") == []
    assert run.env().incident is None


def test_c7_check_in_expected_this_minute_is_not_missed_until_the_next_minute() -> None:
    run = Run()
    run.checkin(T - minutes(1), "ok", config=EVERY_MINUTE)
    assert times(run.env()) == (T - minutes(1), T, T + minutes(1))
    assert task_ticks(run.pulse(T)) == []
    assert task_ticks(run.pulse(T + seconds(59.999))) == []
    new = run.pulse(T + minutes(1))
    assert task_ticks(new) == [T + minutes(1)]
    assert [m.date_added for m in created_missed(new)] == [T]


def test_c8_invalid_interval_is_rejected_and_another_monitor_is_still_marked_missed() -> None:
    """Ours validates config, so an invalid interval cannot reach state (Sentry: the task
    raised at execution and was isolated)."""
    run = Run()
    run.checkin(T - minutes(2), "ok", slug="good", config=EVERY_MINUTE)
    bad = run.checkin(T - minutes(2), "ok", slug="bad", config=interval(-2, "minute"))
    assert errors_of(bad) == ["monitor_invalid_config", "monitor_not_found"]
    [rejected] = of_type(bad, "event_rejected")
    assert rejected.errors[0]["errors"] == {"schedule": ["Interval must be greater than zero"]}
    assert ("acme", "bad") not in run.p.monitors

    new = run.pulse(T)
    task = only(new, "mark_missing")
    assert (task.monitor_slug, task.ts) == ("good", T)
    assert run.env("good").status == "missed"
    assert [m.date_added for m in missed_rows(run, "good")] == [T - minutes(1)]


def test_c9_backlogged_ticks_produce_one_miss_for_one_missed_slot() -> None:
    run = Run()
    run.checkin(D - minutes(10), "ok", config=crontab("*/10 * * * *"))
    env = run.env()
    assert times(env) == (D - minutes(10), D, D + minutes(1))
    assert task_ticks(run.pulse(D)) == []
    new = run.pulse(D + minutes(1))
    assert task_ticks(new) == [D + minutes(1)]
    [missed] = created_missed(new)
    assert missed.date_added == missed.date_updated == missed.expected_time == D
    assert (env.next_checkin, env.next_checkin_latest) == (D + minutes(10), D + minutes(11))
    # Sentry's second task (tick D+2) was a no-op; ours is never produced.
    assert run.pulse(D + minutes(2)) == []
    assert run.pulse(D + minutes(10) + seconds(59)) == []
    assert len(missed_rows(run)) == 1


def test_c10_disable_logged_before_the_tick_prevents_the_miss() -> None:
    run = Run()
    run.checkin(T - minutes(2), "ok", config=EVERY_MINUTE)  # next T-1, latest T
    run.disable(T - seconds(0.001), True)
    assert run.pulse(T) == []
    assert missed_rows(run) == []
    assert run.env().status == "ok"


def test_c10_disable_logged_in_the_tick_minute_comes_after_the_tick() -> None:
    run = Run()
    run.checkin(T - minutes(2), "ok", config=EVERY_MINUTE)
    new = run.disable(T, True)
    # Tick T runs before the entry at T is applied: the miss is already recorded.
    assert kinds(new)[0] == "mark_missing"
    assert kinds(new)[-1] == "monitor_disabled_changed"
    assert [m.date_added for m in missed_rows(run)] == [T - minutes(1)]
    assert run.pulse(T + minutes(5)) == []


# =============================================================================================
# D. Timeouts
# =============================================================================================


def daily_run_started_at_d(max_runtime: int | None = 30) -> Run:
    """D-1's start: `0 0 * * *`, OK a day before D, run `RUN` started at D."""
    run = Run()
    run.checkin(D - days(1), "ok", config=crontab("0 0 * * *", max_runtime=max_runtime))
    run.checkin(D, "in_progress", id=RUN)
    return run


def test_d1_run_times_out_at_its_deadline_tick_and_opens_an_incident() -> None:
    run = daily_run_started_at_d()
    opened = next(e for e in of_type(run.events, "check_in_created") if e.check_in_id == RUN)
    assert (opened.status, opened.date_added, opened.date_updated) == ("in_progress", D, D)
    assert (opened.expected_time, opened.timeout_at) == (D, D + minutes(30))
    env = run.env()
    assert env.status == "ok"
    assert times(env) == (D, D + days(1), D + days(1) + minutes(1))

    assert task_ticks(run.pulse(D + minutes(29))) == []
    new = run.pulse(D + minutes(30))

    task = only(new, "mark_timeout")
    assert (task.project, task.monitor_slug, task.environment, task.ts, task.check_in_id) == (
        "acme",
        "job",
        "production",
        D + minutes(30),
        RUN,
    )
    updated = only(new, "check_in_updated")
    assert (updated.check_in_id, updated.status) == (RUN, "timeout")
    assert run.find(RUN).status == "timeout"
    incident = only(new, "incident_opened")
    assert (incident.starting_check_in_id, incident.started_at) == (RUN, D)
    occurrence = only(new, "issue_occurrence")
    assert (occurrence.failed_check_in_id, occurrence.subtitle) == (RUN, TIMEOUT_SUBTITLE)
    assert (occurrence.detection_time, occurrence.received) == (D, D + minutes(30))
    assert env.status == "timeout"
    assert times(env) == (D, D + days(1), D + days(1) + minutes(1))  # unchanged by a timeout


def test_d2_only_the_concurrent_run_past_its_deadline_times_out() -> None:
    run = Run()
    run.checkin(D - hours(2), "ok", config=crontab("0 * * * *", max_runtime=90))
    run.checkin(D - hours(1), "in_progress", id=RUN)  # A: timeout_at D+30
    run.checkin(D, "in_progress", id=OTHER_RUN)  # B: timeout_at D+90
    env = run.env()
    assert env.status == "ok"
    assert times(env) == (D, D + hours(1), D + hours(1) + minutes(1))
    assert (run.find(RUN).timeout_at, run.find(OTHER_RUN).timeout_at) == (
        D + minutes(30),
        D + minutes(90),
    )

    assert task_ticks(run.pulse(D + minutes(29))) == []
    new = run.pulse(D + minutes(30))
    assert only(new, "mark_timeout").check_in_id == RUN
    assert run.find(RUN).status == "timeout"
    assert run.find(OTHER_RUN).status == "in_progress"
    assert only(new, "incident_opened").starting_check_in_id == RUN
    assert env.status == "timeout"
    assert env.next_checkin == D + hours(1)


def test_d3_run_timing_out_at_the_next_expected_time_leaves_that_slot_expected() -> None:
    t = D + hours(1)  # 01:00
    run = Run()
    run.checkin(D - hours(1), "ok", config=crontab("0 * * * *", max_runtime=60))
    run.checkin(D, "in_progress", id=RUN)  # timeout_at 01:00
    env = run.env()
    assert times(env) == (D, t, t + minutes(1))

    new = run.pulse(t)
    assert kinds(new)[0] == "mark_timeout"
    assert task_ticks(new) == [t]
    assert run.find(RUN).status == "timeout"
    assert env.status == "timeout"
    assert (env.next_checkin, env.next_checkin_latest) == (t, t + minutes(1))
    # The slot t is still expected: a minute later it is missed.
    later = run.pulse(t + minutes(1))
    assert [m.date_added for m in created_missed(later)] == [t]


def test_d4_interval_run_times_out_and_keeps_the_next_interval_slot() -> None:
    run = Run()
    run.checkin(D - minutes(10), "ok", config=interval(10, "minute", max_runtime=5))
    run.checkin(D, "in_progress", id=RUN)
    env = run.env()
    assert times(env) == (D, D + minutes(10), D + minutes(11))
    assert run.find(RUN).timeout_at == D + minutes(5)

    assert task_ticks(run.pulse(D + minutes(4))) == []
    new = run.pulse(D + minutes(5))
    assert only(new, "mark_timeout").check_in_id == RUN
    assert run.find(RUN).status == "timeout"
    assert env.status == "timeout"
    assert (env.next_checkin, env.next_checkin_latest) == (D + minutes(10), D + minutes(11))


def test_d5_timeout_superseded_by_a_newer_ok_keeps_the_environment_ok() -> None:
    """Adapted: ticks are never late, so the newer OK must arrive before A's deadline."""
    run = daily_run_started_at_d(max_runtime=None)  # A = RUN, timeout_at D+30
    run.checkin(D + minutes(10), "ok", id=OTHER_RUN)  # B, a newer finished run
    env = run.env()
    assert times(env) == (D + minutes(10), D + days(1), D + days(1) + minutes(1))

    new = run.pulse(D + minutes(30))

    assert kinds(new) == ["mark_timeout", "check_in_updated"]
    assert only(new, "mark_timeout").check_in_id == RUN
    assert run.find(RUN).status == "timeout"
    assert run.find(OTHER_RUN).status == "ok"
    assert env.status == "ok"
    assert env.incident is None
    assert times(env) == (D + minutes(10), D + days(1), D + days(1) + minutes(1))


def test_d6_a_timed_out_run_is_never_timed_out_again() -> None:
    run = daily_run_started_at_d()
    first = run.pulse(D + minutes(30))
    assert only(first, "mark_timeout").check_in_id == RUN
    assert len(of_type(first, "issue_occurrence")) == 1

    assert run.pulse(D + minutes(31)) == []
    assert run.pulse(D + hours(12)) == []
    assert run.find(RUN).status == "timeout"
    assert len(of_type(run.events, "mark_timeout")) == 1
    assert len(of_type(run.events, "issue_occurrence")) == 1


# =============================================================================================
# Time zones (§4.7, §8.9, domain.md difference 4)
# =============================================================================================


def test_daily_berlin_job_is_expected_an_hour_earlier_in_utc_after_the_march_change() -> None:
    run = Run()
    # 2024-03-30 09:00 CET (UTC+1); the clocks go forward on 2024-03-31.
    run.checkin(
        datetime(2024, 3, 30, 8, 0, tzinfo=UTC),
        "ok",
        config=crontab("0 9 * * *", timezone="Europe/Berlin"),
    )
    env = run.env()
    sunday = datetime(2024, 3, 31, 7, 0, tzinfo=UTC)  # 09:00 CEST (UTC+2)
    assert (env.next_checkin, env.next_checkin_latest) == (sunday, sunday + minutes(1))

    assert task_ticks(run.pulse(sunday)) == []
    new = run.pulse(sunday + minutes(1))
    assert task_ticks(new) == [sunday + minutes(1)]
    assert [m.date_added for m in created_missed(new)] == [sunday]
    assert env.next_checkin == datetime(2024, 4, 1, 7, 0, tzinfo=UTC)


def test_berlin_job_in_the_skipped_hour_is_expected_right_after_the_change() -> None:
    run = Run()
    # 02:30 does not exist on 2024-03-31 in Berlin: the job runs at 03:00 CEST (01:00Z).
    run.checkin(
        datetime(2024, 3, 30, 1, 30, tzinfo=UTC),
        "ok",
        config=crontab("30 2 * * *", timezone="Europe/Berlin"),
    )
    env = run.env()
    assert env.next_checkin == datetime(2024, 3, 31, 1, 0, tzinfo=UTC)
    run.checkin(datetime(2024, 3, 31, 1, 0, 20, tzinfo=UTC), "ok")
    assert env.next_checkin == datetime(2024, 4, 1, 0, 30, tzinfo=UTC)  # 02:30 CEST
