"""The clock, clock tasks, incidents and issue events, rule by rule against the spec.

Each test quotes the rule it checks (shared/spec/crons-behaviour.md, as amended by
shared/design/domain.md): edge cases the other rule tests did not reach.

T is 2024-05-01 12:00 UTC, a Wednesday.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dsl import EVERY_MINUTE, Run, T, guid, minutes, of_type

from monitor_es.replay import simulate
from monitor_es.scenario import line_of
from projections.report import build_report

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
HOURLY = {"schedule_type": "crontab", "schedule": "0 * * * *"}
DAILY_NOON = {"schedule_type": "crontab", "schedule": "0 12 * * *"}


def secs(n: float) -> timedelta:
    return timedelta(seconds=n)


def days(n: float) -> timedelta:
    return timedelta(days=n)


def failed_ids(events: list[Any]) -> list[str]:
    return [o.failed_check_in_id for o in of_type(events, "issue_occurrence")]


def created(events: list[Any], status: str) -> list[Any]:
    return [e for e in of_type(events, "check_in_created") if e.status == status]


def last_ok_evidence(occurrence: Any) -> str:
    (value,) = [
        e["value"] for e in occurrence.evidence_display if e["name"] == "Last successful check-in"
    ]
    return str(value)


# --- Deviations --------------------------------------------------------------------------------


def _threshold_two_with_a_running_member(pending: str | None) -> tuple[Run, str]:
    """OK at T, a run started at T+1 (still going), then the T+2 slot is missed at tick T+3.

    With threshold 2 the miss's window is [the running check-in, the miss]: no ok, so the
    incident opens and each of the two gets an occurrence.
    """
    run = Run()
    config = {**EVERY_MINUTE, "failure_issue_threshold": 2, "max_runtime": 60}
    run.checkin(T + secs(10), "ok", config=config)
    run.checkin(T + minutes(1) + secs(10), "in_progress", id=guid(1))  # latest T+3
    if pending is not None:
        run.decide(T + minutes(1) + secs(20), T + minutes(3), pending)
    events = run.pulse(T + minutes(3))
    (missed,) = created(events, "missed")
    return run, missed.check_in_id


def test_immediate_path_reports_every_check_in_of_the_opening_window() -> None:
    """§4.3: "for each check-in in the window dispatch one incident occurrence" (the window
    counts any status but ok, IN_PROGRESS included)."""
    run, missed_id = _threshold_two_with_a_running_member(None)
    assert failed_ids(run.events) == [guid(1), missed_id]


@pytest.mark.parametrize("pending", ["abnormal", "recovering"])
def test_held_occurrences_of_running_window_members_are_sent_when_the_decision_settles(
    pending: str,
) -> None:
    """§5.4: a queued occurrence waits while its tick's decision is ABNORMAL/RECOVERING;
    "Else send the occurrence" once it is NORMAL. §4.3 queues one per window check-in, the
    running one included, so the held path must send the same occurrences as the immediate
    one. (Deviation, fixed: release_held skipped every held check-in that was not a failure,
    so the running window member's occurrence was lost.)"""
    run, missed_id = _threshold_two_with_a_running_member(pending)
    assert failed_ids(run.events) == []
    held = [h.failed_check_in_id for h in of_type(run.events, "issue_occurrence_held")]
    assert held == [guid(1), missed_id]

    events = run.decide(T + minutes(3) + secs(30), T + minutes(3), "normal")

    occurrences = of_type(events, "issue_occurrence")
    assert [o.failed_check_in_id for o in occurrences] == [guid(1), missed_id]
    assert [o.detection_time for o in occurrences] == [T + minutes(1) + secs(10), T + minutes(2)]
    assert {o.subtitle for o in occurrences} == {
        "Your monitor is failing: A missed check-in was detected."
    }
    assert run.env().held == []


def test_held_window_keeps_the_failing_check_in_last_when_dates_tie() -> None:
    """§4.3: the window is the N most recent check-ins "with date_added <= failed.date_added";
    the failing check-in belongs to it even when another run shares its date_added. The other
    members of its window are reported on release (§5.4 "Else send the occurrence"), even
    when the failing run itself was revived by a heartbeat meanwhile and, by the project's
    choice in release_held (not in domain.md; Sentry would send it), is not reported."""
    run = Run()
    config = {**HOURLY, "failure_issue_threshold": 2, "max_runtime": 2}
    run.checkin(T + secs(10), "in_progress", id=guid(1), config=config)
    run.checkin(T + secs(10), "in_progress", id=guid(2))  # same instant, started later
    run.decide(T + secs(20), T + minutes(2), "abnormal")
    events = run.pulse(T + minutes(2))
    # guid(1) times out first: its window is both runs, then guid(2)'s timeout adds itself.
    held = of_type(events, "issue_occurrence_held")
    assert sorted(h.failed_check_in_id for h in held) == [guid(1), guid(2), guid(2)]
    run.checkin(T + minutes(2) + secs(5), "in_progress", id=guid(1))  # revives guid(1)
    released = run.decide(T + minutes(2) + secs(30), T + minutes(2), "normal")
    # guid(1)'s own occurrence is not sent (revived); guid(2) is reported for both windows.
    assert failed_ids(released) == [guid(2), guid(2)]


def test_held_window_whose_failures_were_all_revived_is_released_without_a_crash() -> None:
    """§5.4 with §8.15: the reducer is total (conventions.md). Two runs time out at one tick
    while its decision is pending; the second opens the incident (threshold 2) with both in
    its window, so both occurrences are held. Heartbeats revive both runs before the
    decision settles: no check-in of the window is a failure any more, so there is no
    failure reason to report and nothing is sent. (Deviation, fixed: release_held sent the
    first run's occurrence with an empty failure reason and the reducer raised IndexError.)"""
    run = Run()
    config = {**HOURLY, "failure_issue_threshold": 2, "max_runtime": 5}
    run.checkin(T + secs(5), "in_progress", id=guid(1), config=config)
    run.checkin(T + secs(10), "in_progress", id=guid(2))
    run.decide(T + secs(20), T + minutes(5), "abnormal")
    events = run.pulse(T + minutes(5))
    held = [h.failed_check_in_id for h in of_type(events, "issue_occurrence_held")]
    assert held == [guid(1), guid(2)]
    run.checkin(T + minutes(5) + secs(10), "in_progress", id=guid(1))
    run.checkin(T + minutes(5) + secs(20), "in_progress", id=guid(2))

    released = run.decide(T + minutes(5) + secs(30), T + minutes(5), "normal")

    assert failed_ids(released) == []
    assert run.env().held == []
    assert run.env().incident is not None  # incidents are not rolled back
    # Each revived run reports itself when it times out again.
    again = run.pulse(T + minutes(10))
    assert failed_ids(again) == [guid(1), guid(2)]


def test_recovery_threshold_counts_the_newest_check_ins_behind_an_old_running_one() -> None:
    """§4.5: "recovery > 1: take the `recovery` most recent check-ins of the environment by
    date_added (no upper bound), all must be OK"; domain.md: "the N most recent check-ins
    of the environment (by date_added) are all ok". A run started before the failure and
    still going is older than the five oks, so it is not among the five newest."""
    run = Run()
    config = {**HOURLY, "max_runtime": 600, "recovery_threshold": 5}
    run.checkin(T, "in_progress", id=guid(99), config=config)
    run.checkin(T + minutes(1), "error", id=guid(1))
    for k in range(2, 6):
        run.checkin(T + minutes(k), "ok", id=guid(k))
    assert of_type(run.events, "incident_resolved") == []
    events = run.checkin(T + minutes(6), "ok", id=guid(6))  # oks 2..6 are the newest five
    (resolved,) = of_type(events, "incident_resolved")
    assert resolved.resolving_check_in_id == guid(6)


def test_evidence_names_the_last_successful_check_in_after_many_failures() -> None:
    """§5.2 evidence_display: "Last successful check-in", "isoformat of newest OK date_added
    or 'Never'" (get_last_successful_checkin: the newest OK of the environment)."""
    run = Run()
    run.checkin(T, "ok", config=DAILY_NOON)
    run.pulse(T + days(8))  # seven daily misses
    occurrences = of_type(run.events, "issue_occurrence")
    assert len(occurrences) == 7
    assert {last_ok_evidence(o) for o in occurrences} == {"2024-05-01T12:00:00Z"}


# --- Rules checked (no test covered them) ----------------------------------------------------


def test_timeout_superseded_by_a_newer_error_feeds_no_failure() -> None:
    """§3.7.3: "a TIMEOUT only feeds the failure logic if there is no OK/ERROR check-in in the
    environment with date_added strictly greater"; domain.md: "a timeout that is not
    superseded sets timeout" (a superseded one leaves the status)."""
    run = Run()
    run.checkin(T + secs(5), "ok", config={**HOURLY, "max_runtime": 5})
    run.checkin(T + minutes(1), "in_progress", id=guid(1))
    run.checkin(T + minutes(2), "error", id=guid(2))
    assert failed_ids(run.events) == [guid(2)]
    events = run.pulse(T + minutes(6))
    assert [e.check_in_id for e in of_type(events, "mark_timeout")] == [guid(1)]
    assert run.find(guid(1)).status == "timeout"
    assert failed_ids(events) == []
    assert of_type(events, "status_changed") == []
    assert run.env().status == "failed"


def test_timeout_followed_only_by_a_newer_running_check_in_still_fails() -> None:
    """§3.7.3: only a newer OK/ERROR check-in supersedes a timeout; a newer IN_PROGRESS one
    does not."""
    run = Run()
    run.checkin(T + secs(5), "ok", config={**HOURLY, "max_runtime": 5})
    run.checkin(T + minutes(1), "in_progress", id=guid(1))
    run.checkin(T + minutes(2), "in_progress", id=guid(2))
    events = run.pulse(T + minutes(6))
    assert [e.check_in_id for e in of_type(events, "mark_timeout")] == [guid(1)]
    (opened,) = of_type(events, "incident_opened")
    assert opened.starting_check_in_id == guid(1)
    assert failed_ids(events) == [guid(1)]
    assert run.env().status == "timeout"


def test_unknown_check_ins_count_as_failures_in_the_threshold_window() -> None:
    """§4.3 / §8.16: the window holds check-ins of any status, "including IN_PROGRESS,
    UNKNOWN, ..."; "Only OK breaks a failure streak"."""
    run = Run()
    run.checkin(
        T + secs(5), "in_progress", id=guid(1), config={**HOURLY, "failure_issue_threshold": 2}
    )
    run.decide(T + secs(10), T + minutes(1), "incident")
    run.pulse(T + minutes(1))
    assert run.find(guid(1)).status == "unknown"
    run.decide(T + minutes(1) + secs(10), T + minutes(2), "normal")
    events = run.checkin(T + minutes(2) + secs(5), "error", id=guid(2))
    (opened,) = of_type(events, "incident_opened")
    assert opened.starting_check_in_id == guid(1)
    assert failed_ids(events) == [guid(1), guid(2)]
    # The failure reason counts only error, missed and timeout (§5.2).
    assert {o.subtitle for o in of_type(events, "issue_occurrence")} == {
        "Your monitor is failing: An error check-in was detected."
    }


def test_each_window_occurrence_is_detected_at_its_own_check_in() -> None:
    """§5.2: detection_time is "the failed check-in's date_added", for each window check-in
    the threshold reports (§4.3 fan-out)."""
    run = Run()
    run.configure(T, {**HOURLY, "failure_issue_threshold": 3})
    for k in range(1, 4):
        run.checkin(T + minutes(k) + secs(k), "error", id=guid(k))
    occurrences = of_type(run.events, "issue_occurrence")
    assert [(o.failed_check_in_id, o.detection_time) for o in occurrences] == [
        (guid(k), T + minutes(k) + secs(k)) for k in range(1, 4)
    ]
    assert {o.subtitle for o in occurrences} == {
        "Your monitor is failing: 3 error check-ins detected."
    }


def test_recovery_window_counts_a_newer_running_check_in_as_not_ok() -> None:
    """§4.5: the `recovery` most recent check-ins "all must be OK" (IN_PROGRESS is not OK);
    resolved_at is the resolving check-in's date_added (domain.md), even a late one."""
    run = Run()
    run.checkin(T + secs(5), "error", id=guid(1), config={**HOURLY, "recovery_threshold": 2})
    run.checkin(T + minutes(1), "ok", id=guid(2))
    run.checkin(T + minutes(2), "in_progress", id=guid(3))
    blocked = run.checkin(T + minutes(3), "ok", id=guid(4))  # newest two: running, ok
    assert of_type(blocked, "incident_resolved") == []
    events = run.checkin(T + minutes(4), "ok", id=guid(3))  # newest two: ok, ok
    (resolved,) = of_type(events, "incident_resolved")
    assert (resolved.resolving_check_in_id, resolved.resolved_at) == (guid(3), T + minutes(2))
    (issue,) = of_type(events, "issue_resolved")
    assert issue.update_date == T + minutes(2)


def test_muted_environment_is_still_marked_missed_and_opens_an_incident() -> None:
    """§3.5: "Muted environments are not excluded" from missed detection; §1.3: muting
    "only suppresses issue occurrences"."""
    run = Run()
    run.checkin(T + secs(10), "ok", config=EVERY_MINUTE)
    run.mute(T + secs(20), True)
    events = run.pulse(T + minutes(2))
    assert [c.date_added for c in created(events, "missed")] == [T + minutes(1)]
    assert len(of_type(events, "incident_opened")) == 1
    assert of_type(events, "issue_occurrence") == []
    assert run.env().status == "missed"


def test_incident_decision_drops_the_window_and_turns_only_synthetic_check_ins_unknown() -> None:
    """§5.4: on INCIDENT "set the failed check-in's status to UNKNOWN if it is synthetic
    (MISSED/TIMEOUT/UNKNOWN) and drop the occurrence"; incident rows are not rolled back."""
    run = Run()
    run.checkin(
        T + secs(10), "error", id=guid(1), config={**EVERY_MINUTE, "failure_issue_threshold": 2}
    )
    run.decide(T + secs(20), T + minutes(2), "incident")
    events = run.pulse(T + minutes(2))
    (missed,) = created(events, "missed")
    dropped = [d.failed_check_in_id for d in of_type(events, "issue_occurrence_dropped")]
    assert dropped == [guid(1), missed.check_in_id]
    assert of_type(events, "issue_occurrence") == []
    assert run.find(guid(1)).status == "error"
    assert run.find(missed.check_in_id).status == "unknown"
    assert run.env().incident is not None


def test_fixed_time_job_in_the_skipped_hour_is_missed_at_the_end_of_the_gap() -> None:
    """§4.1 + §8.9 + domain.md difference 4: a fixed-time job whose local time is skipped
    runs "right after a skipped one"; the miss is dated at that expected time and the next
    expectation is the next day's slot."""
    run = Run()
    config = {"schedule_type": "crontab", "schedule": "30 2 * * *", "timezone": "Europe/Berlin"}
    run.checkin(datetime(2024, 3, 30, 1, 30, 5, tzinfo=UTC), "ok", config=config)  # 02:30 CET
    gap_end = datetime(2024, 3, 31, 1, 0, tzinfo=UTC)  # 03:00 CEST
    assert run.env().next_checkin == gap_end
    assert run.pulse(gap_end) == []
    events = run.pulse(gap_end + minutes(1))
    assert [c.date_added for c in created(events, "missed")] == [gap_end]
    assert run.env().next_checkin == datetime(2024, 4, 1, 0, 30, tzinfo=UTC)  # 02:30 CEST


def test_the_clock_follows_the_broker_time_not_the_received_time() -> None:
    """§8.1: "Ticks come from ingest message timestamps", never from `start_time` (our
    `received`). A check-in received in a later minute does not move the clock there, and
    one received long before its broker time is applied after the ticks it crossed (§8.2)."""
    run = Run()
    run.checkin(T + secs(10), "ok", config=EVERY_MINUTE)  # next T+1, latest T+2
    ahead = run.checkin(T + minutes(1) + secs(30), "ok", slug="other", config=EVERY_MINUTE,
                        received=T + minutes(9))  # fmt: skip
    assert run.p.clock.last_tick == T + minutes(1)
    assert of_type(ahead, "mark_missing") == []
    assert run.env().status == "ok"
    # Broker time T+2: the tick of T+2 runs before this entry, although it was received
    # at T+1:30, so `job` is already missed (dated T+1) when the late-delivered ok lands.
    behind = run.checkin(T + minutes(2) + secs(5), "ok", received=T + minutes(1) + secs(30))
    assert [e.ts for e in of_type(behind, "mark_missing")] == [T + minutes(2)]
    assert [e.date_added for e in created(behind, "missed")] == [T + minutes(1)]
    assert [e.date_added for e in created(behind, "ok")] == [T + minutes(1) + secs(30)]


def test_a_miss_has_no_newer_check_in_guard() -> None:
    """§8.10: "MISSED rows have no such guard (their guard is next_checkin_latest)". An ok
    dated after the expected slot (received ahead of its broker time) does not stop a
    schedule edit's slot from being missed, nor its incident."""
    run = Run()
    run.checkin(T + secs(10), "ok", config=HOURLY)
    run.checkin(T + minutes(20), "ok", id=guid(2), received=T + minutes(70))
    run.configure(
        T + minutes(30) + secs(30), {"schedule_type": "crontab", "schedule": "*/10 * * * *"}
    )
    assert run.env().next_checkin_latest == T + minutes(41)
    events = run.pulse(T + minutes(41))
    (missed,) = created(events, "missed")
    assert missed.date_added == T + minutes(40) < run.find(guid(2)).date_added
    assert failed_ids(events) == [missed.check_in_id]
    assert run.env().status == "missed"
    assert run.env().last_checkin == T + minutes(70)  # a miss never moves it


def test_late_ok_of_an_older_run_resolves_the_incident_a_later_miss_opened() -> None:
    """§8.11: "an OK for an old run still resolves the current incident (even one opened by
    a *later* miss)"; domain.md difference 3: `last_checkin` keeps the newest date_added,
    and the next expected time is computed from the closing message (§2.7)."""
    run = Run()
    run.checkin(T + secs(10), "in_progress", id=guid(1), config={**HOURLY, "max_runtime": 120})
    opened = of_type(run.pulse(T + minutes(61)), "incident_opened")  # misses 13:00
    assert [o.started_at for o in opened] == [T + minutes(60)]
    run.checkin(T + minutes(62), "in_progress", id=guid(2))  # a newer run starts
    events = run.checkin(T + minutes(90), "ok", id=guid(1))
    (resolved,) = of_type(events, "incident_resolved")
    assert (resolved.resolving_check_in_id, resolved.resolved_at) == (guid(1), T + secs(10))
    assert run.env().incident is None
    assert run.env().status == "ok"
    assert run.env().last_checkin == T + minutes(62)  # not back to the old run's start
    assert run.env().next_checkin == T + minutes(120)


# --- Broken detection (§6.2) -------------------------------------------------------------------

WED_MAY_15_1500 = datetime(2024, 5, 15, 15, 0, tzinfo=UTC)
WED_MAY_29_1500 = datetime(2024, 5, 29, 15, 0, tzinfo=UTC)


def test_broken_detection_needs_four_check_ins() -> None:
    """§6.2: "the 4 most recent check-ins of the environment must exist (exactly 4) and all
    be ERROR, TIMEOUT or MISSED; otherwise skip"."""
    run = Run()
    monthly = {"schedule_type": "interval", "schedule": [1, "month"]}
    run.checkin(T + secs(10), "error", config=monthly)  # next expected June 1
    events = run.pulse(WED_MAY_29_1500)
    assert of_type(events, "monitor_environment_broken") == []
    assert run.env().incident is not None


def test_broken_detection_skips_disabled_monitors() -> None:
    """§6.2: candidate incidents need "monitor ACTIVE"."""
    run = Run()
    run.checkin(T + secs(10), "error", config=DAILY_NOON)
    run.pulse(T + days(5))  # four failures
    run.disable(T + days(5) + secs(1), True)
    events = run.pulse(WED_MAY_29_1500)
    assert of_type(events, "monitor_environment_broken") == []
    assert not run.env().muted


def test_auto_muted_environment_unmuted_by_the_user_is_never_muted_again() -> None:
    """§6.2: candidates exclude incidents with "a detection with env_muted_timestamp set";
    auto-muting happens once per incident."""
    run = Run()
    run.checkin(T + secs(10), "error", config=DAILY_NOON)
    run.pulse(WED_MAY_29_1500)
    assert run.env().muted
    run.mute(WED_MAY_29_1500 + secs(30), False)
    events = run.pulse(WED_MAY_29_1500 + days(14))
    assert of_type(events, "monitor_environment_broken") == []
    assert of_type(events, "mute_changed") == []
    assert not run.env().muted


def test_broken_detection_scenario_through_the_simulate_document() -> None:
    """§6.2 through `simulate --json` (domain.md): a daily job failing since May 1 is reported
    broken on Wednesday May 15 at 15:00 and muted 14 days later, on May 29 at 15:00; a
    monthly job failing as long has fewer than 4 check-ins and is left alone; a healthy job
    is never a candidate."""
    text = (SCENARIOS / "broken_detection.jsonl").read_text(encoding="utf-8")
    result = simulate(text.splitlines())
    assert result.invalid == []
    doc = build_report(result.partition.all_environments(), result.events, [], line_of)
    envs = {env["monitor_slug"]: env for env in doc["environments"]}
    assert (envs["daily"]["muted"], envs["daily"]["status"]) == (True, "missed")
    assert envs["daily"]["incident"]["started_at"] == "2024-05-01T12:00:10Z"
    assert (envs["monthly"]["muted"], envs["monthly"]["status"]) == (False, "failed")
    assert envs["monthly"]["incident"] is not None
    assert (envs["healthy"]["muted"], envs["healthy"]["incident"]) == (False, None)
    broken = [e for e in doc["events"] if e["type"] == "monitor_environment_broken"]
    assert [(e["monitor_slug"], e["detection_time"]) for e in broken] == [
        ("daily", "2024-05-15T15:00:00Z")
    ]
    muted = [e for e in doc["events"] if e["type"] == "mute_changed"]
    assert [(e["monitor_slug"], e["muted"], e["reason"]) for e in muted] == [
        ("daily", True, "broken")
    ]
    # Muting stops occurrences, not misses: the May 30 miss sends none.
    daily_occurrences = [
        e["detection_time"]
        for e in doc["events"]
        if e["type"] == "issue_occurrence" and e["monitor_slug"] == "daily"
    ]
    assert daily_occurrences[-1] == "2024-05-29T12:00:00Z"
    daily_missed = [
        c["date_added"]
        for c in doc["check_ins"]
        if c["monitor_slug"] == "daily" and c["status"] == "missed"
    ]
    assert daily_missed[-2:] == ["2024-05-29T12:00:00Z", "2024-05-30T12:00:00Z"]
    assert doc["rejected"] == []
