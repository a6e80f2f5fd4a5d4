"""Pruning an environment's check-in history never changes what the fold derives.

Each environment keeps only its newest check-ins (plus what runs still in progress read when
they end), so state stays small. The property: for logs that never address a check-in
after it finished (the documented limit: a pruned id is forgotten), folding with the default
history gives exactly the events and verdicts of folding with a history that keeps everything.
Runs here never time out within the log (a day's max_runtime), so every run that is still
addressed is either in progress or being closed for the first time, possibly long after
newer runs, misses, errors and thresholds went by: the cases pruning must get right.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dsl import T, guid
from hypothesis import given, settings
from hypothesis import strategies as st
from log_strategies import encoded_events

from monitor_es.domain.events import CheckInReported, ClockPulsed, MonitorConfigured
from monitor_es.domain.partition import Limits, Partition
from monitor_es.domain.reducer import LogEntry, fold
from monitor_es.domain.time import to_ms

KEEP_ALL = Limits(history=100_000)

configs = st.builds(
    lambda schedule, margin, failures, recoveries: {
        **schedule,
        "checkin_margin": margin,
        "max_runtime": 1440,  # a day: no run times out within a log
        "failure_issue_threshold": failures,
        "recovery_threshold": recoveries,
    },
    st.sampled_from(
        [
            {"schedule_type": "crontab", "schedule": "* * * * *"},
            {"schedule_type": "crontab", "schedule": "*/5 * * * *"},
            {"schedule_type": "interval", "schedule": [3, "minute"]},
        ]
    ),
    st.sampled_from([None, 1, 3]),
    st.integers(1, 4),
    st.integers(1, 3),
)
# ("open", env) starts a run; ("close", env, k, status) closes the k-th oldest run of env
# still open; ("beat", env, k) is a heartbeat of one; ("once", env, status) is a run sent
# only closed; ("pulse",) moves the clock. Each run is closed at most once.
steps = st.one_of(
    st.tuples(st.just("open"), st.sampled_from(["production", "staging"])),
    st.tuples(
        st.just("close"),
        st.sampled_from(["production", "staging"]),
        st.integers(0, 8),
        st.sampled_from(["ok", "ok", "error"]),
    ),
    st.tuples(st.just("beat"), st.sampled_from(["production", "staging"]), st.integers(0, 8)),
    st.tuples(
        st.just("once"),
        st.sampled_from(["production", "staging"]),
        st.sampled_from(["ok", "error"]),
    ),
    st.tuples(st.just("pulse")),
)


@st.composite
def logs_without_reuse(draw: st.DrawFn) -> list[LogEntry]:
    """A log of one monitor whose runs are closed at most once, in any order."""
    ts = T
    entries = [LogEntry(f"{to_ms(ts)}-0", ts, _configured(draw(configs)))]
    open_runs: dict[str, list[int]] = {"production": [], "staging": []}
    runs = 0
    for step, gap in draw(st.lists(st.tuples(steps, st.integers(0, 400)), max_size=60)):
        ts += timedelta(seconds=gap)
        event: Any
        if step[0] == "pulse":
            event = ClockPulsed()
        elif step[0] in ("open", "once"):
            runs += 1
            env, status = step[1], "in_progress" if step[0] == "open" else step[2]
            if step[0] == "open":
                open_runs[env].append(runs)
            event = _check_in(env, runs, status)
        else:
            env, k = step[1], step[2]
            if not open_runs[env]:
                continue
            run = open_runs[env][k % len(open_runs[env])]
            if step[0] == "close":
                open_runs[env].remove(run)
                event = _check_in(env, run, step[3])
            else:
                event = _check_in(env, run, "in_progress")
        entries.append(LogEntry(f"{to_ms(ts)}-{len(entries)}", ts, event))
    return entries


def _configured(config: dict[str, Any]) -> MonitorConfigured:
    return MonitorConfigured(project="acme", monitor_slug="job", config=config)


def _check_in(env: str, run: int, status: str) -> CheckInReported:
    return CheckInReported(
        project="acme", monitor_slug="job", environment=env, check_in_id=guid(run), status=status
    )


def _verdicts(p: Partition) -> list[tuple[object, ...]]:
    return [
        (env.key, env.status, env.last_checkin, env.next_checkin_latest, env.incident)
        for env in p.all_environments()
    ]


@settings(max_examples=2000, deadline=None)  # fewer did not always find the bug fixed in bb1459b
@given(logs_without_reuse())
def test_pruned_history_derives_exactly_what_a_full_history_derives(
    entries: list[LogEntry],
) -> None:
    pruned, full = Partition(), Partition(KEEP_ALL)
    pruned_events, full_events = fold(pruned, entries), fold(full, entries)
    assert encoded_events(pruned_events) == encoded_events(full_events)
    assert _verdicts(pruned) == _verdicts(full)


def test_a_late_error_of_an_old_run_behind_misses_derives_what_a_full_history_does() -> None:
    # The shape the property found against the earlier pruning, fixed: run 1 opens, run 2
    # closes ok, then misses fill the kept history, then run 1 closes with an error. Run 2's
    # newer ok means that error changes nothing (spec §2.7 / §3.7.3), pruned or not.
    config = {"schedule_type": "crontab", "schedule": "* * * * *", "max_runtime": 1440}
    entries = [
        LogEntry(f"{to_ms(T)}-0", T, _configured(config)),
        LogEntry(f"{to_ms(T)}-1", T, _check_in("production", 1, "in_progress")),
    ]
    closed = T + timedelta(seconds=30)
    entries.append(LogEntry(f"{to_ms(closed)}-2", closed, _check_in("production", 2, "ok")))
    for n in range(3, 11):  # a pulse a minute: the slots after 12:01 are missed
        ts = T + timedelta(minutes=n)
        entries.append(LogEntry(f"{to_ms(ts)}-{n}", ts, ClockPulsed()))
    late = T + timedelta(minutes=10, seconds=30)
    entries.append(LogEntry(f"{to_ms(late)}-11", late, _check_in("production", 1, "error")))
    pruned, full = Partition(), Partition(KEEP_ALL)
    pruned_events, full_events = fold(pruned, entries), fold(full, entries)
    assert encoded_events(pruned_events) == encoded_events(full_events)
    assert _verdicts(pruned) == _verdicts(full)
    (env,) = pruned.all_environments()
    assert len(env.checkins) < len(full.all_environments()[0].checkins), "nothing was pruned"
