"""Black-box audit of the clock, missed, timeout, threshold and recovery rules.

Scenarios `tests/scenarios/audit_clock_*.jsonl` run through `monitor-es simulate FILE
--json`, as in test_blackbox_scenarios.py. Each expectation was written from
shared/spec/crons-behaviour.md (§3, §4, §7, §8) and shared/design/domain.md before the
scenario was first run. They cover what the earlier judges left out: long backfills with
margins wider than the schedule, odd intervals, Sydney, Kolkata and Berlin schedules around
misses, mixed failure windows, edits and disabling during incidents, received times far
behind the broker time, and old runs that outlive the kept history.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from test_blackbox_scenarios import (
    ERROR,
    MISSED,
    TIMEOUT,
    Doc,
    ci,
    cid,
    contract_events,
    dates,
    env,
    generated_id,
    incident,
    issue_resolved,
    missed_of,
    occurrence,
    open_incident,
    opened,
    resolved,
    t,
)
from test_blackbox_scenarios import (
    simulate as blackbox_simulate,
)


def simulate(name: str) -> Doc:
    """The `simulate FILE --json` document of `audit_clock_<name>.jsonl`."""
    return blackbox_simulate(name, prefix="audit_clock_")


def f(n: int) -> str:
    return cid("f", n)


def every(start: str, stop: str, step_minutes: int) -> list[str]:
    """ISO instants from `start` to `stop` inclusive."""
    first = datetime.fromisoformat(start.replace("Z", "+00:00"))
    last = datetime.fromisoformat(stop.replace("Z", "+00:00"))
    out = []
    while first <= last:
        out.append(first.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        first += timedelta(minutes=step_minutes)
    return out


def occurrences(doc: Doc, slug: str) -> list[tuple[str, str, str]]:
    """(failed check-in, detection time, reason) of a monitor's occurrences, in order."""
    prefix = "Your monitor is failing: "
    return [
        (e["failed_check_in_id"], e["detection_time"], e["subtitle"][len(prefix) : -1])
        for e in doc["events"]
        if e["type"] == "issue_occurrence" and e["monitor_slug"] == slug
    ]


def event_types(doc: Doc, slug: str, kinds: tuple[str, ...]) -> list[tuple[str, str | None]]:
    return [
        (e["type"], e.get("ts") or e.get("status"))
        for e in doc["events"]
        if e["type"] in kinds and e.get("monitor_slug") == slug
    ]


# 1 ------------------------------------------------------------------------------------


def test_one_pulse_backfills_misses_with_margins_wider_than_the_schedule_gap() -> None:
    doc = simulate("backlog_wide_margin")
    # */5 with margin 12 (C-4, §8.8): a miss is due 12 minutes after its slot; the next
    # expectation is the slot after the last one before the tick, so misses land 15 minutes
    # apart (12:05 at 12:17, 12:20 at 12:32, ...) and the slots in between are never missed.
    assert dates(missed_of(doc, "five")) == every(t("12:05:00"), t("17:05:00"), 15)
    # [90, minute] with margin 200: 13:30 is missed at 16:50; the last slot anchored at
    # 13:30 before 16:50 is 16:30, so next is 18:00 (§4.1 step 4, §4.7 interval prev).
    assert dates(missed_of(doc, "ninety")) == [t("13:30:00")]
    # [2, hour] from 12:01:45: slots keep the minute the ok arrived in (seconds dropped).
    assert dates(missed_of(doc, "twohours")) == [t("14:01:00"), t("16:01:00")]
    incidents = {r["monitor_slug"]: r for r in doc["incidents"]}
    five, ninety, two = incidents["five"], incidents["ninety"], incidents["twohours"]
    assert [five["started_at"], ninety["started_at"], two["started_at"]] == [
        t("12:05:00"),
        t("13:30:00"),
        t("14:01:00"),
    ]
    assert all(r["resolved_at"] is None for r in doc["incidents"])
    assert doc["environments"] == [
        env("five", "missed", "12:00:30", "17:20:00", "17:32:00", open_incident(five)),
        env("ninety", "missed", "12:00:40", "18:00:00", "21:20:00", open_incident(ninety)),
        env("twohours", "missed", "12:01:45", "18:01:00", "18:02:00", open_incident(two)),
    ]
    # One occurrence per miss, dated at the missed slot; events follow tick order.
    assert [o[1] for o in occurrences(doc, "five")] == every(t("12:05:00"), t("17:05:00"), 15)
    assert [e["ts"] for e in doc["events"] if e["type"] == "mark_missing"] == sorted(
        [
            *every(t("12:17:00"), t("17:17:00"), 15),
            t("16:50:00"),
            t("14:02:00"),
            t("16:02:00"),
        ]
    )


# 2 ------------------------------------------------------------------------------------


def test_threshold_three_over_mixed_failures_and_recovery_two_broken_by_an_error() -> None:
    doc = simulate("mixed_thresholds")
    s = "mixed"
    rows = doc["check_ins"]
    assert len(rows) == 8
    m1 = generated_id(rows[3])
    assert rows == [
        ci(s, f(1), "ok", "08:00:10", "08:00:10", None, None, None),
        ci(s, f(2), "error", "09:00:10", "09:00:10", "09:00:00", None, None),
        # Started 10:00:10 with max_runtime 90: times out at 11:30 (timeout_at kept).
        ci(s, f(3), "timeout", "10:00:10", "10:00:10", "10:00:00", "11:30:00", None),
        ci(s, m1, "missed", "11:00:00", "11:00:00", "11:00:00", None, None),
        ci(s, f(4), "ok", "12:00:10", "12:00:10", "12:00:00", None, None),
        ci(s, f(5), "error", "13:00:10", "13:00:10", "13:00:00", None, None),
        ci(s, f(6), "ok", "14:00:10", "14:00:10", "14:00:00", None, None),
        ci(s, f(7), "ok", "15:00:10", "15:00:10", "15:00:00", None, None),
    ]
    # The error alone has [ok, error] as window: no incident. The miss at 11:01 has
    # [error, in_progress, missed]: only an ok breaks a streak (§4.3, §8.16), so it opens,
    # starting at the oldest, with one occurrence per window check-in (§8.18).
    (i1,) = (r["id"] for r in doc["incidents"])
    inc = incident(i1, s, f(2), "09:00:10", f(7), "15:00:10")
    assert doc["incidents"] == [inc]
    assert doc["environments"] == [env(s, "ok", "15:00:10", "16:00:00", "16:01:00")]
    window = "1 error and 1 missed check-ins detected"
    assert contract_events(doc) == [
        opened(inc),
        occurrence(inc, f(2), "09:00:10", window, "08:00:10", s),
        occurrence(inc, f(3), "10:00:10", window, "08:00:10", s),
        occurrence(inc, m1, "11:00:00", window, "08:00:10", s),
        # The run times out while the incident is open: one more occurrence.
        occurrence(inc, f(3), "10:00:10", TIMEOUT, "08:00:10", s),
        # Recovery 2: [missed, ok] at 12:00 is not enough; the error at 13:00 restarts
        # the count; [ok, ok] at 15:00 resolves.
        occurrence(inc, f(5), "13:00:10", ERROR, "12:00:10", s),
        resolved(inc),
        issue_resolved(inc),
    ]
    assert event_types(doc, s, ("status_changed",)) == [
        ("status_changed", "ok"),
        ("status_changed", "failed"),
        ("status_changed", "missed"),
        ("status_changed", "timeout"),
        ("status_changed", "ok"),
        ("status_changed", "failed"),
        ("status_changed", "ok"),
    ]


# 3 ------------------------------------------------------------------------------------


def test_a_late_ok_of_an_old_run_resolves_a_later_miss_and_keeps_last_checkin() -> None:
    doc = simulate("late_close_old_run")
    s = "late"
    rows = doc["check_ins"]
    assert len(rows) == 4
    m1, m2 = generated_id(rows[2]), generated_id(rows[3])
    assert rows == [
        # Closed at 10:24:00: duration 10:24:00 - 10:00:05.
        ci(s, f(1), "ok", "10:00:05", "10:24:00", None, None, 1_435_000),
        ci(s, f(2), "timeout", "10:10:05", "10:10:05", "10:10:00", "10:35:00", None),
        ci(s, m1, "missed", "10:20:00", "10:20:00", "10:20:00", None, None),
        ci(s, m2, "missed", "10:30:00", "10:30:00", "10:30:00", None, None),
    ]
    i1, i2 = (r["id"] for r in doc["incidents"])
    # §8.11: the ok of the 10:00 run resolves the incident the 10:20 miss opened; it is
    # resolved at the ok's date_added, before it started (domain.md recovery rule).
    inc1 = incident(i1, s, m1, "10:20:00", f(1), "10:00:05")
    inc2 = incident(i2, s, m2, "10:30:00")
    assert doc["incidents"] == [inc1, inc2]
    # last_checkin never moves back to 10:00:05 (domain.md difference 3); next comes from
    # the closing message's time 10:24 (§2.7), then the 10:30 miss moves it to 10:40.
    assert doc["environments"] == [
        env(s, "timeout", "10:10:05", "10:40:00", "10:41:00", open_incident(inc2))
    ]
    assert contract_events(doc) == [
        opened(inc1),
        occurrence(inc1, m1, "10:20:00", MISSED, None, s),
        resolved(inc1),
        issue_resolved(inc1),
        opened(inc2),
        occurrence(inc2, m2, "10:30:00", MISSED, "10:00:05", s),
        # The 10:10 run times out at 10:35: no newer ok/error than 10:10:05 exists.
        occurrence(inc2, f(2), "10:10:05", TIMEOUT, "10:00:05", s),
    ]


# 4 ------------------------------------------------------------------------------------


def test_a_backlog_interleaves_misses_and_a_timeout_under_threshold_two() -> None:
    doc = simulate("backlog_threshold_timeout")
    s = "jump"
    rows = doc["check_ins"]
    assert len(rows) == 5
    m1, m2, m3 = (generated_id(r) for r in rows[2:])
    assert rows == [
        ci(s, f(1), "ok", "08:00:10", "08:00:10", None, None, None),
        ci(s, f(2), "timeout", "09:00:10", "09:00:10", "09:00:00", "11:30:00", None),
        ci(s, m1, "missed", "10:00:00", "10:00:00", "10:00:00", None, None),
        ci(s, m2, "missed", "11:00:00", "11:00:00", "11:00:00", None, None),
        ci(s, m3, "missed", "12:00:00", "12:00:00", "12:00:00", None, None),
    ]
    # The 12:05 pulse ticks every minute since 09:00 in order (domain.md clock): the 10:01
    # miss has [running run, missed] as window, which opens the incident at the run.
    (i1,) = (r["id"] for r in doc["incidents"])
    inc = incident(i1, s, f(2), "09:00:10")
    assert doc["incidents"] == [inc]
    assert doc["environments"] == [
        env(s, "missed", "09:00:10", "13:00:00", "13:01:00", open_incident(inc))
    ]
    assert contract_events(doc) == [
        opened(inc),
        # The reason counts error/missed/timeout only: the running run is not one (§5.2).
        occurrence(inc, f(2), "09:00:10", MISSED, "08:00:10", s),
        occurrence(inc, m1, "10:00:00", MISSED, "08:00:10", s),
        occurrence(inc, m2, "11:00:00", MISSED, "08:00:10", s),
        occurrence(inc, f(2), "09:00:10", TIMEOUT, "08:00:10", s),
        occurrence(inc, m3, "12:00:00", MISSED, "08:00:10", s),
    ]
    assert event_types(doc, s, ("mark_missing", "mark_timeout")) == [
        ("mark_missing", t("10:01:00")),
        ("mark_missing", t("11:01:00")),
        ("mark_timeout", t("11:30:00")),
        ("mark_missing", t("12:01:00")),
    ]


# 5 ------------------------------------------------------------------------------------


def test_edits_of_margin_thresholds_and_schedule_while_incidents_are_open() -> None:
    doc = simulate("edits_mid_incident")
    s = "edited"
    rows = doc["check_ins"]
    assert len(rows) == 6
    m1, m2, m3 = generated_id(rows[1]), generated_id(rows[4]), generated_id(rows[5])
    assert rows == [
        ci(s, f(1), "ok", "10:00:30", "10:00:30", None, None, None),
        ci(s, m1, "missed", "10:10:00", "10:10:00", "10:10:00", None, None),
        # The margin edit at 10:12 moved the 10:20 deadline to 10:35: no miss at 10:21.
        ci(s, f(2), "ok", "10:25:00", "10:25:00", "10:20:00", None, None),
        ci(s, f(3), "ok", "10:31:00", "10:31:00", "10:30:00", None, None),
        # The schedule edit at 10:32 expects 11:00 (+ margin 15): missed at 11:15.
        ci(s, m2, "missed", "11:00:00", "11:00:00", "11:00:00", None, None),
        ci(s, m3, "missed", "12:00:00", "12:00:00", "12:00:00", None, None),
    ]
    i1, i2 = (r["id"] for r in doc["incidents"])
    # recovery_threshold 2 set mid-incident: the 10:25 ok ([missed, ok]) does not resolve,
    # the 10:31 ok does.
    inc1 = incident(i1, s, m1, "10:10:00", f(3), "10:31:00")
    inc2 = incident(i2, s, m2, "11:00:00")
    assert doc["incidents"] == [inc1, inc2]
    assert doc["environments"] == [
        env(s, "missed", "10:31:00", "13:00:00", "13:15:00", open_incident(inc2))
    ]
    assert contract_events(doc) == [
        opened(inc1),
        occurrence(inc1, m1, "10:10:00", MISSED, "10:00:30", s),
        resolved(inc1),
        issue_resolved(inc1),
        opened(inc2),
        occurrence(inc2, m2, "11:00:00", MISSED, "10:31:00", s),
        # failure_issue_threshold 3 set while the incident is open: each further failure
        # still adds one occurrence (§4.3 ERROR branch).
        occurrence(inc2, m3, "12:00:00", MISSED, "10:31:00", s),
    ]


# 6 ------------------------------------------------------------------------------------


def test_a_monitor_disabled_during_an_incident() -> None:
    doc = simulate("disabled_mid_incident")
    s = "paused"
    rows = doc["check_ins"]
    assert len(rows) == 4
    m1 = generated_id(rows[2])
    assert rows == [
        ci(s, f(1), "ok", "10:00:10", "10:00:10", None, None, None),
        # Disabled monitors still time out their runs (§1.3, §8.20).
        ci(s, f(2), "timeout", "10:03:00", "10:03:00", "10:05:00", "10:10:00", None),
        ci(s, m1, "missed", "10:05:00", "10:05:00", "10:05:00", None, None),
        ci(s, f(4), "ok", "10:25:10", "10:25:10", "10:25:00", None, None),
    ]
    # The 10:12 check-in is refused; no miss while disabled (10:10, 10:15, 10:20 slots);
    # enabling at 10:20:30 expects 10:25 (domain.md), and the 10:25 ok resolves.
    assert [(r["line"], [e["type"] for e in r["errors"]]) for r in doc["rejected"]] == [
        (5, ["monitor_disabled"])
    ]
    (i1,) = (r["id"] for r in doc["incidents"])
    inc = incident(i1, s, m1, "10:05:00", f(4), "10:25:10")
    assert doc["incidents"] == [inc]
    assert doc["environments"] == [env(s, "ok", "10:25:10", "10:30:00", "10:31:00")]
    # The timeout of the disabled monitor adds no occurrence: a disabled environment is
    # out of the incident logic (§4.3 "any other status"), though its verdict is timeout.
    assert contract_events(doc) == [
        opened(inc),
        occurrence(inc, m1, "10:05:00", MISSED, "10:00:10", s),
        resolved(inc),
        issue_resolved(inc),
    ]
    assert event_types(doc, s, ("mark_missing", "mark_timeout", "status_changed")) == [
        ("status_changed", "ok"),
        ("mark_missing", t("10:06:00")),
        ("status_changed", "missed"),
        ("mark_timeout", t("10:10:00")),
        ("status_changed", "timeout"),
        ("status_changed", "ok"),
    ]


# 7 ------------------------------------------------------------------------------------


def test_check_ins_received_long_before_their_broker_time() -> None:
    doc = simulate("received_before_ts")
    # An ok received 10:00 but logged 12:00:20 expects 10:05 (next from the received time,
    # §2.7), already past: the 12:01 tick misses 10:05 once and catches up to 12:05 (§3.7.5).
    assert dates(missed_of(doc, "lagged")) == [
        t("10:05:00"),
        *every(t("12:05:00"), t("13:00:00"), 5),
    ]
    # A run received 10:00 (timeout_at 10:30 from the received minute, §2.6) logged at
    # 12:00:30: the 12:01 tick misses 11:00 first, then times it out (§3.4 order).
    assert dates(missed_of(doc, "lagrun")) == [t("11:00:00"), t("13:00:00")]
    lagrun = [r for r in doc["check_ins"] if r["check_in_id"] == f(2)]
    assert lagrun == [ci("lagrun", f(2), "timeout", "10:00:00", "10:00:00", None, "10:30:00", None)]
    # A close logged at 13:00:05 but received 12:59:50 comes after the 13:00 tick (broker
    # time decides, §3.1): the run stays timeout (§8.12), its duration is from received,
    # and next is computed from the received time: 13:00, missed at 13:01.
    close = [r for r in doc["check_ins"] if r["monitor_slug"] == "close"]
    assert close[0] == ci("close", f(3), "timeout", "12:30:05", "12:59:50", None, None, 1_785_000)
    assert dates(close[1:]) == [t("13:00:00")]
    by_slug = {r["monitor_slug"]: r for r in doc["incidents"]}
    assert [by_slug[s]["started_at"] for s in ("lagged", "lagrun", "close")] == [
        t("10:05:00"),
        t("11:00:00"),
        t("12:30:05"),
    ]
    assert [
        (e["monitor_slug"], e["last_checkin"], e["next_checkin"], e["status"])
        for e in doc["environments"]
    ] == [
        ("close", t("12:30:05"), t("14:00:00"), "missed"),
        ("lagged", t("10:00:00"), t("13:05:00"), "missed"),
        ("lagrun", t("10:00:00"), t("14:00:00"), "missed"),
    ]
    assert occurrences(doc, "lagrun") == [
        (missed_of(doc, "lagrun")[0]["check_in_id"], t("11:00:00"), MISSED),
        (f(2), t("10:00:00"), TIMEOUT),
        (missed_of(doc, "lagrun")[1]["check_in_id"], t("13:00:00"), MISSED),
    ]
    assert doc["rejected"] == []


# 8 ------------------------------------------------------------------------------------


def test_sydney_spring_forward_around_misses() -> None:
    doc = simulate("dst_sydney_start")
    # 02:30 does not exist on 6 Oct 2024 in Sydney: the fixed-time job is due when the gap
    # ends, 03:00 AEDT = 16:00Z on the 5th (domain.md difference 4), missed at 16:01Z;
    # the next is 7 Oct 02:30 AEDT = 15:30Z on the 6th, and then the 7th's.
    assert dates(missed_of(doc, "syd230")) == [
        "2024-10-05T16:00:00Z",
        "2024-10-06T15:30:00Z",
    ]
    # */30 runs on real time; margin 45 makes each miss due at :45 and skip the :30 slot,
    # across the change as before it (§8.8).
    assert dates(missed_of(doc, "sydhalf")) == every(
        "2024-10-04T17:00:00Z", "2024-10-06T14:00:00Z", 60
    )
    assert [
        (e["monitor_slug"], e["next_checkin"], e["next_checkin_latest"])
        for e in doc["environments"]
    ] == [
        ("syd230", "2024-10-07T15:30:00Z", "2024-10-07T15:31:00Z"),
        ("sydhalf", "2024-10-06T15:00:00Z", "2024-10-06T15:45:00Z"),
    ]
    assert event_types(doc, "syd230", ("mark_missing",)) == [
        ("mark_missing", "2024-10-05T16:01:00Z"),
        ("mark_missing", "2024-10-06T15:31:00Z"),
    ]


# 9 ------------------------------------------------------------------------------------


def test_sydney_fall_back_runs_a_fixed_job_on_the_first_pass_only() -> None:
    doc = simulate("dst_sydney_end")
    s = "sydend"
    rows = doc["check_ins"]
    assert len(rows) == 3
    missed = generated_id(rows[2])
    apr = "2025-04-{}Z".format
    assert rows == [
        ci(s, f(1), "ok", apr("04T15:30:10"), apr("04T15:30:10"), None, None, None),
        # 6 Apr 02:30 AEDT (first pass) = 15:30Z on the 5th.
        ci(s, f(2), "ok", apr("05T15:30:20"), apr("05T15:30:20"), apr("05T15:30:00"), None, None),
        # The second 02:30 (AEST, 16:30Z on the 5th) is no slot: the 16:45Z pulse misses
        # nothing; the next is 7 Apr 02:30 AEST = 16:30Z on the 6th.
        ci(
            s,
            missed,
            "missed",
            apr("06T16:30:00"),
            apr("06T16:30:00"),
            apr("06T16:30:00"),
            None,
            None,
        ),
    ]
    (i1,) = (r["id"] for r in doc["incidents"])
    inc = incident(i1, s, missed, apr("06T16:30:00"))
    assert doc["environments"] == [
        env(
            s,
            "missed",
            apr("05T15:30:20"),
            apr("07T16:30:00"),
            apr("07T16:31:00"),
            open_incident(inc),
        )
    ]


# 10 -----------------------------------------------------------------------------------


def test_kolkata_weekday_job_is_missed_after_the_weekend_at_its_half_hour_slot() -> None:
    doc = simulate("kolkata_weekdays")
    s = "ist"
    rows = doc["check_ins"]
    assert len(rows) == 3
    missed = generated_id(rows[1])
    may = "2024-05-{}Z".format
    assert rows == [
        ci(s, f(1), "ok", may("03T03:30:05"), may("03T03:30:05"), None, None, None),
        # 09:00 IST Monday = 03:30Z; margin 30: not at the 03:59 pulse, at the 04:00 tick.
        ci(
            s,
            missed,
            "missed",
            may("06T03:30:00"),
            may("06T03:30:00"),
            may("06T03:30:00"),
            None,
            None,
        ),
        ci(s, f(2), "ok", may("06T04:10:00"), may("06T04:10:00"), may("07T03:30:00"), None, None),
    ]
    (i1,) = (r["id"] for r in doc["incidents"])
    inc = incident(i1, s, missed, may("06T03:30:00"), f(2), may("06T04:10:00"))
    assert doc["incidents"] == [inc]
    assert doc["environments"] == [
        env(s, "ok", may("06T04:10:00"), may("07T03:30:00"), may("07T04:00:00"))
    ]
    assert event_types(doc, s, ("mark_missing",)) == [("mark_missing", may("06T04:00:00"))]


# 11 -----------------------------------------------------------------------------------


def test_a_one_day_interval_in_berlin_keeps_its_wall_time_across_the_change() -> None:
    doc = simulate("berlin_day_interval")
    # 11:00 CET on the 30th; day intervals keep wall time (domain.md): 11:00 CEST = 09:00Z,
    # and each miss is anchored at its own slot, so the next stays 09:00Z.
    assert dates(missed_of(doc, "berday")) == [
        "2024-03-31T09:00:00Z",
        "2024-04-01T09:00:00Z",
        "2024-04-02T09:00:00Z",
    ]
    (row,) = doc["environments"]
    assert (row["next_checkin"], row["next_checkin_latest"]) == (
        "2024-04-03T09:00:00Z",
        "2024-04-03T09:01:00Z",
    )


# 12 -----------------------------------------------------------------------------------


def test_edits_that_move_deadlines_before_the_last_tick_are_due_at_the_next_tick() -> None:
    doc = simulate("edits_into_the_past")
    rows = {r["check_in_id"]: r for r in doc["check_ins"]}
    # max_runtime 60 -> 10 at 10:20: timeout_at = trunc(10:00:40) + 10 = 10:10, already
    # past, so the 10:21 tick times it out (§8.25, §3.5 inclusive).
    assert rows[f(2)] == ci(
        "runtime", f(2), "timeout", "10:00:40", "10:00:40", None, "10:10:00", None
    )
    # A heartbeat at 10:14 extended the run to 10:44; the edit to 40 recomputes from the
    # start, 10:40 (§8.25), and the heartbeat's extension is gone.
    assert rows[f(3)] == ci("beat", f(3), "timeout", "10:00:50", "10:14:00", None, "10:40:00", None)
    # Margin 8 -> 2 at 10:15: latest 10:12, already past: the 10:16 tick misses 10:10.
    assert dates(missed_of(doc, "margin")) == every(t("10:10:00"), t("10:40:00"), 10)
    assert event_types(doc, "runtime", ("mark_timeout",)) == [("mark_timeout", t("10:21:00"))]
    assert event_types(doc, "beat", ("mark_timeout",)) == [("mark_timeout", t("10:40:00"))]
    assert event_types(doc, "margin", ("mark_missing",))[0] == ("mark_missing", t("10:16:00"))
    by_slug = {r["monitor_slug"]: r for r in doc["environments"]}
    assert (by_slug["margin"]["next_checkin"], by_slug["margin"]["next_checkin_latest"]) == (
        t("10:50:00"),
        t("10:52:00"),
    )


# 13 -----------------------------------------------------------------------------------


def test_after_a_timeout_a_zero_guid_ok_is_a_new_run_and_a_late_error_changes_nothing() -> None:
    doc = simulate("after_a_timeout")
    rows = doc["check_ins"]
    assert len(rows) == 3
    new = generated_id(rows[2])
    assert rows == [
        ci("zero", f(1), "timeout", "10:00:10", "10:00:10", None, "10:20:00", None),
        # A late error close of a timed-out run: status stays timeout (§8.12), only the
        # duration and date_updated are recorded, and timeout_at is cleared.
        ci("lateerr", f(2), "timeout", "10:00:20", "10:40:00", None, None, 2_380_000),
        # The zero GUID matches no running check-in (the run timed out): a new ok (§8.14).
        ci("zero", new, "ok", "10:30:00", "10:30:00", "11:00:00", None, None),
    ]
    i_late, i_zero = (r["id"] for r in doc["incidents"])
    inc_late = incident(i_late, "lateerr", f(2), "10:00:20")
    inc_zero = incident(i_zero, "zero", f(1), "10:00:10", new, "10:30:00")
    assert doc["incidents"] == [inc_late, inc_zero]
    assert doc["environments"] == [
        # The late close went through §2.7 with status timeout: no failure, no resolution,
        # the verdict stays timeout; next comes from 10:40.
        env("lateerr", "timeout", "10:00:20", "11:00:00", "11:01:00", open_incident(inc_late)),
        env("zero", "ok", "10:30:00", "11:00:00", "11:01:00"),
    ]
    assert contract_events(doc) == [
        opened(inc_late),
        occurrence(inc_late, f(2), "10:00:20", TIMEOUT, None, "lateerr"),
        opened(inc_zero),
        occurrence(inc_zero, f(1), "10:00:10", TIMEOUT, None, "zero"),
        resolved(inc_zero),
        issue_resolved(inc_zero),
    ]


# 14 -----------------------------------------------------------------------------------


def test_a_timeout_whose_window_holds_an_ok_opens_nothing_until_the_next_miss() -> None:
    doc = simulate("timeout_then_miss")
    s = "tm"
    rows = doc["check_ins"]
    assert len(rows) == 3
    missed = generated_id(rows[2])
    assert rows == [
        ci(s, f(1), "ok", "08:00:10", "08:00:10", None, None, None),
        ci(s, f(2), "timeout", "09:00:10", "09:00:10", "09:00:00", "09:45:00", None),
        ci(s, missed, "missed", "10:00:00", "10:00:00", "10:00:00", None, None),
    ]
    # Threshold 2: the timeout's window is anchored at the run's start, [ok, run] (§4.3),
    # so nothing opens; the miss's window [timeout, missed] opens at the run.
    (i1,) = (r["id"] for r in doc["incidents"])
    inc = incident(i1, s, f(2), "09:00:10")
    assert doc["environments"] == [
        env(s, "missed", "09:00:10", "11:00:00", "11:01:00", open_incident(inc))
    ]
    reason = "1 timeout and 1 missed check-ins detected"  # first-seen order (§5.2)
    assert contract_events(doc) == [
        opened(inc),
        occurrence(inc, f(2), "09:00:10", reason, "08:00:10", s),
        occurrence(inc, missed, "10:00:00", reason, "08:00:10", s),
    ]


# 15 -----------------------------------------------------------------------------------


def test_the_newer_ok_guard_still_sees_an_ok_the_kept_history_would_have_pruned() -> None:
    doc = simulate("old_run_guard")
    # guard: a run from 09:50:10 (max_runtime 60), an ok at 10:00:10, then five newer runs
    # still in progress. At 10:50 the old run times out, but a newer ok exists: D-5 and
    # §3.7.3 say the failure logic is skipped, so no incident opens and the verdict stays
    # ok. (Before the fix the ok had been pruned from the kept history and the timeout
    # opened an incident.) The 10:50 slot is then missed at 10:51 and opens one.
    guard = [r for r in doc["check_ins"] if r["monitor_slug"] == "guard"]
    assert guard[0] == ci("guard", f(1), "timeout", "09:50:10", "09:50:10", None, "10:50:00", None)
    (guard_missed,) = missed_of(doc, "guard")
    by_slug = {r["monitor_slug"]: r for r in doc["incidents"]}
    assert by_slug["guard"]["starting_check_in_id"] == guard_missed["check_in_id"]
    assert occurrences(doc, "guard") == [(guard_missed["check_in_id"], t("10:50:00"), MISSED)]
    assert event_types(doc, "guard", ("status_changed", "mark_timeout", "mark_missing")) == [
        ("status_changed", "ok"),
        ("mark_timeout", t("10:50:00")),
        ("mark_missing", t("10:51:00")),
        ("status_changed", "missed"),
    ]
    # lateerr: a run from 09:50:20, an ok at 10:00:20, then five misses. The run closes
    # with error at 10:55: a newer ok exists, so the error is ignored entirely (§2.7):
    # the row records it, but no occurrence and no status change follow.
    late = [r for r in doc["check_ins"] if r["check_in_id"] == f(11)]
    assert late == [ci("lateerr", f(11), "error", "09:50:20", "10:55:00", None, None, 3_880_000)]
    assert dates(missed_of(doc, "lateerr")) == every(t("10:10:00"), t("10:50:00"), 10)
    assert [o[0] for o in occurrences(doc, "lateerr")] == [
        r["check_in_id"] for r in missed_of(doc, "lateerr")
    ]
    envs = {r["monitor_slug"]: r for r in doc["environments"]}
    assert envs["lateerr"]["status"] == "missed"
    assert envs["lateerr"]["last_checkin"] == t("10:00:20")
    assert envs["guard"]["status"] == "missed"


# 16 -----------------------------------------------------------------------------------


def test_an_old_runs_failure_window_survives_history_pruning() -> None:
    doc = simulate("old_run_window")
    s = "window"
    # Threshold 3: errors at 09:30:10 and 09:40:10 (windows too short), a run at 09:50:10
    # that times out at 10:50, and five newer runs still in progress. The timeout's window
    # is the 3 newest check-ins up to 09:50:10 (§4.3): [error, error, timeout], so the
    # incident opens at the first error. (Before the fix both errors had been pruned and
    # nothing opened.)
    (i1,) = (r["id"] for r in doc["incidents"])
    inc = incident(i1, s, f(1), "09:30:10")
    assert doc["incidents"] == [inc]
    reason = "2 error and 1 timeout check-ins detected"
    assert contract_events(doc) == [
        opened(inc),
        occurrence(inc, f(1), "09:30:10", reason, None, s),
        occurrence(inc, f(2), "09:40:10", reason, None, s),
        occurrence(inc, f(3), "09:50:10", reason, None, s),
    ]
    assert doc["environments"] == [
        env(s, "timeout", "10:40:10", "10:50:00", "10:51:00", open_incident(inc))
    ]
