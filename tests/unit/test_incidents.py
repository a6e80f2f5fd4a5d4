"""Incidents, issue events, muting, disabling, edits, deletion, system incidents and broken
detection over the pure reducer (spec §4.3–4.5, §5, §6.1 effects, §6.2, §8.25; domain.md).

T is 2024-05-01 12:00 UTC, a Wednesday.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from dsl import EVERY_MINUTE, Run, T, guid, minutes, of_type

from monitor_es.scenario import InvalidLine, line_of, parse_line
from projections.report import build_report

HOURLY = {"schedule_type": "crontab", "schedule": "0 * * * *"}
DAILY_NOON = {"schedule_type": "crontab", "schedule": "0 12 * * *"}
FINGERPRINT = "crons:acme/job/production"


def secs(n: float) -> timedelta:
    return timedelta(seconds=n)


def days(n: float) -> timedelta:
    return timedelta(days=n)


def hourly(**extra: Any) -> dict[str, Any]:
    return {**HOURLY, **extra}


def occurrences(events: list[Any]) -> list[Any]:
    return of_type(events, "issue_occurrence")


def failed_ids(events: list[Any]) -> list[str]:
    return [o.failed_check_in_id for o in occurrences(events)]


def evidence(occurrence: Any, name: str) -> Any:
    (value,) = [e["value"] for e in occurrence.evidence_display if e["name"] == name]
    return value


def fields(event: Any) -> dict[str, Any]:
    return msgspec.structs.asdict(event)


def errors_in(run: Run, n: int) -> None:
    """`n` error check-ins one minute apart, ids guid(1)..guid(n)."""
    for k in range(n):
        run.checkin(T + minutes(k + 1), "error", id=guid(k + 1))


# --- failure threshold (domain.md difference 1) ----------------------------------------------


def test_threshold_three_opens_the_incident_at_the_third_consecutive_failure() -> None:
    run = Run()
    run.configure(T, hourly(failure_issue_threshold=3))
    errors_in(run, 2)
    assert of_type(run.events, "incident_opened") == []
    assert occurrences(run.events) == []
    assert run.env().incident is None
    assert run.env().status == "failed"  # the verdict is given even without an incident
    third = run.checkin(T + minutes(3), "error", id=guid(3))
    (opened,) = of_type(third, "incident_opened")
    assert opened.starting_check_in_id == guid(1)
    assert opened.started_at == T + minutes(1)
    assert failed_ids(third) == [guid(1), guid(2), guid(3)]
    assert {o.incident_id for o in occurrences(third)} == {opened.incident_id}


def test_each_failure_while_the_incident_is_open_adds_one_occurrence() -> None:
    run = Run()
    run.configure(T, hourly(failure_issue_threshold=3))
    errors_in(run, 3)
    incident = run.env().incident
    assert incident is not None
    fourth = run.checkin(T + minutes(4), "error", id=guid(4))
    assert of_type(fourth, "incident_opened") == []
    assert failed_ids(fourth) == [guid(4)]
    assert occurrences(fourth)[0].incident_id == incident.id


def test_brand_new_environment_does_not_open_an_incident_at_its_first_failure() -> None:
    run = Run()
    run.configure(T, hourly(failure_issue_threshold=2))
    events = run.checkin(T + minutes(1), "error")
    assert of_type(events, "incident_opened") == []
    assert run.env().incident is None


def test_only_an_ok_check_in_breaks_a_failure_streak() -> None:
    run = Run()
    run.configure(T, hourly(failure_issue_threshold=3))
    run.checkin(T + minutes(1), "error", id=guid(1))
    run.checkin(T + minutes(2), "ok", id=guid(2))
    run.checkin(T + minutes(3), "error", id=guid(3))
    run.checkin(T + minutes(4), "error", id=guid(4))
    assert of_type(run.events, "incident_opened") == []
    fifth = run.checkin(T + minutes(5), "error", id=guid(5))
    (opened,) = of_type(fifth, "incident_opened")
    assert opened.starting_check_in_id == guid(3)
    assert failed_ids(fifth) == [guid(3), guid(4), guid(5)]


def test_in_progress_check_in_counts_in_the_failure_window() -> None:
    run = Run()
    run.configure(T, hourly(failure_issue_threshold=2))
    run.checkin(T + minutes(1), "in_progress", id=guid(1))
    events = run.checkin(T + minutes(2), "error", id=guid(2))
    (opened,) = of_type(events, "incident_opened")
    assert opened.starting_check_in_id == guid(1)
    assert failed_ids(events) == [guid(1), guid(2)]


def test_threshold_above_the_kept_history_still_counts_every_failure() -> None:
    run = Run()
    run.configure(T, hourly(failure_issue_threshold=7))
    errors_in(run, 6)
    assert of_type(run.events, "incident_opened") == []
    seventh = run.checkin(T + minutes(7), "error", id=guid(7))
    (opened,) = of_type(seventh, "incident_opened")
    assert opened.starting_check_in_id == guid(1)
    assert failed_ids(seventh) == [guid(k) for k in range(1, 8)]


def test_failure_window_is_anchored_at_the_failed_check_in() -> None:
    run = Run()
    run.configure(T, hourly(failure_issue_threshold=2, max_runtime=5))
    run.checkin(T + secs(10), "error", id=guid(1))
    run.checkin(T + minutes(1), "in_progress", id=guid(2))  # times out at T+6
    run.checkin(T + minutes(3), "in_progress", id=guid(3))
    events = run.pulse(T + minutes(6))
    # guid(3) started after the timed-out run: it is not in that run's window.
    (opened,) = of_type(events, "incident_opened")
    assert opened.starting_check_in_id == guid(1)
    assert failed_ids(events) == [guid(1), guid(2)]


def test_timeout_superseded_by_a_newer_ok_feeds_no_failure() -> None:
    run = Run()
    run.configure(T, hourly(max_runtime=5))
    run.checkin(T + minutes(1), "in_progress", id=guid(1))
    run.checkin(T + minutes(2), "ok", id=guid(2))
    events = run.pulse(T + minutes(6))
    assert run.find(guid(1)).status == "timeout"
    assert of_type(events, "incident_opened") == []
    assert run.env().status == "ok"


# --- recovery threshold ----------------------------------------------------------------------


def test_first_ok_resolves_with_the_default_recovery_threshold() -> None:
    run = Run()
    run.checkin(T + minutes(1), "error", id=guid(1), config=HOURLY)
    events = run.checkin(T + minutes(2), "ok", id=guid(2))
    (resolved,) = of_type(events, "incident_resolved")
    assert resolved.resolving_check_in_id == guid(2)
    assert resolved.resolved_at == T + minutes(2)
    assert run.env().incident is None
    assert run.env().status == "ok"


def test_recovery_threshold_two_resolves_only_when_the_two_newest_are_ok() -> None:
    run = Run()
    run.checkin(T + minutes(1), "error", id=guid(1), config=hourly(recovery_threshold=2))
    first_ok = run.checkin(T + minutes(2), "ok", id=guid(2))
    assert of_type(first_ok, "incident_resolved") == []
    assert run.env().incident is not None
    assert run.env().status == "ok"  # the verdict follows the run; the incident stays open
    second_ok = run.checkin(T + minutes(3), "ok", id=guid(3))
    (resolved,) = of_type(second_ok, "incident_resolved")
    assert resolved.resolving_check_in_id == guid(3)
    assert resolved.resolved_at == T + minutes(3)


def test_failure_between_oks_restarts_the_recovery_count() -> None:
    run = Run()
    run.checkin(T + minutes(1), "error", id=guid(1), config=hourly(recovery_threshold=2))
    run.checkin(T + minutes(2), "ok", id=guid(2))
    run.checkin(T + minutes(3), "error", id=guid(3))
    run.checkin(T + minutes(4), "ok", id=guid(4))
    assert of_type(run.events, "incident_resolved") == []
    events = run.checkin(T + minutes(5), "ok", id=guid(5))
    assert [r.resolving_check_in_id for r in of_type(events, "incident_resolved")] == [guid(5)]


def test_recovery_threshold_above_the_kept_history_needs_every_ok() -> None:
    run = Run()
    run.checkin(T + minutes(1), "error", id=guid(1), config=hourly(recovery_threshold=7))
    for k in range(2, 8):
        run.checkin(T + minutes(k), "ok", id=guid(k))
    assert of_type(run.events, "incident_resolved") == []
    events = run.checkin(T + minutes(8), "ok", id=guid(8))
    assert len(of_type(events, "incident_resolved")) == 1


def test_recovery_window_is_the_newest_check_ins_not_those_before_a_late_ok() -> None:
    run = Run()
    run.checkin(T + secs(5), "ok", id=guid(1), config=hourly(recovery_threshold=2))
    run.checkin(T + secs(10), "in_progress", id=guid(2))
    run.checkin(T + minutes(1), "error", id=guid(3))
    run.checkin(T + minutes(2), "ok", id=guid(4))
    # guid(2) closes late: the two check-ins before it are ok, the two newest are not.
    events = run.checkin(T + minutes(3), "ok", id=guid(2))
    assert of_type(events, "incident_resolved") == []
    assert run.env().incident is not None


def test_in_progress_never_resolves_an_incident() -> None:
    run = Run()
    run.checkin(T + minutes(1), "error", config=HOURLY)
    events = run.checkin(T + minutes(2), "in_progress")
    assert of_type(events, "incident_resolved") == []
    assert run.env().incident is not None
    assert run.env().status == "failed"


def test_late_ok_for_an_older_run_resolves_the_incident_dated_at_that_run() -> None:
    run = Run()
    run.checkin(T + secs(10), "in_progress", id=guid(1), config=HOURLY)
    opened = of_type(run.checkin(T + minutes(1), "error", id=guid(2)), "incident_opened")
    assert [o.starting_check_in_id for o in opened] == [guid(2)]
    events = run.checkin(T + minutes(2), "ok", id=guid(1))
    (resolved,) = of_type(events, "incident_resolved")
    assert resolved.resolving_check_in_id == guid(1)
    assert resolved.resolved_at == T + secs(10)
    assert resolved.resolved_at < resolved.started_at == T + minutes(1)


# --- contract fields ----------------------------------------------------------------------------


def test_incident_opened_carries_exactly_the_contract_fields() -> None:
    run = Run()
    events = run.checkin(T + secs(10), "error", id=guid(1), config=HOURLY)
    (opened,) = of_type(events, "incident_opened")
    incident = run.env().incident
    assert incident is not None
    body = fields(opened)
    assert body.pop("id")
    assert body == {
        "project": "acme",
        "monitor_slug": "job",
        "environment": "production",
        "incident_id": incident.id,
        "fingerprint": [FINGERPRINT],
        "starting_check_in_id": guid(1),
        "started_at": T + secs(10),
    }


def test_incident_resolved_and_issue_resolved_carry_the_contract_fields() -> None:
    run = Run()
    run.checkin(T + secs(10), "error", id=guid(1), config=HOURLY)
    incident = run.env().incident
    assert incident is not None
    events = run.checkin(T + minutes(2), "ok", id=guid(2))
    (resolved,) = of_type(events, "incident_resolved")
    body = fields(resolved)
    assert body.pop("id")
    assert body == {
        "project": "acme",
        "monitor_slug": "job",
        "environment": "production",
        "incident_id": incident.id,
        "fingerprint": [FINGERPRINT],
        "starting_check_in_id": guid(1),
        "started_at": T + secs(10),
        "resolving_check_in_id": guid(2),
        "resolved_at": T + minutes(2),
    }
    (issue,) = of_type(events, "issue_resolved")
    assert issue.fingerprint == [FINGERPRINT]
    assert issue.incident_id == incident.id
    assert issue.update_date == T + minutes(2)


def test_issue_occurrence_carries_the_contract_fields() -> None:
    run = Run()
    run.configure(T, HOURLY, name="Nightly backup")
    events = run.checkin(T + secs(10), "error", id=guid(1))
    incident = run.env().incident
    assert incident is not None
    (occurrence,) = occurrences(events)
    assert occurrence.fingerprint == [FINGERPRINT]
    assert occurrence.incident_id == incident.id
    assert occurrence.failed_check_in_id == guid(1)
    assert occurrence.issue_title == "Cron failure: Nightly backup"
    assert occurrence.subtitle == "Your monitor is failing: An error check-in was detected."
    assert occurrence.level == "error"
    assert occurrence.detection_time == T + secs(10)
    assert occurrence.environment == "production"


def test_fingerprint_names_the_project_monitor_and_environment() -> None:
    run = Run()
    events = run.checkin(T, "error", env="staging", config=HOURLY)
    assert of_type(events, "incident_opened")[0].fingerprint == ["crons:acme/job/staging"]
    assert occurrences(events)[0].fingerprint == ["crons:acme/job/staging"]


def test_later_incidents_of_an_environment_share_the_fingerprint_but_not_the_id() -> None:
    run = Run()
    run.checkin(T + minutes(1), "error", config=HOURLY)
    run.checkin(T + minutes(2), "ok")
    run.checkin(T + minutes(3), "error")
    first, second = of_type(run.events, "incident_opened")
    assert first.fingerprint == second.fingerprint == [FINGERPRINT]
    assert first.incident_id != second.incident_id


def test_missed_occurrence_is_detected_at_the_expected_time() -> None:
    run = Run()
    run.checkin(T + secs(10), "ok", config=EVERY_MINUTE)  # next T+1, latest T+2
    events = run.pulse(T + minutes(2))
    (occurrence,) = occurrences(events)
    assert occurrence.detection_time == T + minutes(1)
    assert occurrence.subtitle == "Your monitor is failing: A missed check-in was detected."


# --- failure reasons (spec §5.2) -----------------------------------------------------------------


def test_reason_lists_error_missed_and_timeout_in_window_order() -> None:
    run = Run()
    config = {
        "schedule_type": "crontab",
        "schedule": "*/10 * * * *",
        "max_runtime": 3,
        "failure_issue_threshold": 3,
    }
    run.checkin(T + secs(30), "error", id=guid(1), config=config)  # next 12:10
    run.checkin(T + minutes(12), "in_progress", id=guid(2))  # tick 12:11 missed 12:10
    events = run.pulse(T + minutes(15))  # guid(2) times out
    subtitles = {o.subtitle for o in occurrences(events)}
    assert subtitles == {
        "Your monitor is failing: 1 error, 1 missed and 1 timeout check-ins detected."
    }
    assert len(occurrences(events)) == 3


def test_reason_keeps_first_seen_order_of_statuses() -> None:
    run = Run()
    run.configure(T, hourly(max_runtime=2, failure_issue_threshold=2))
    run.checkin(T + secs(10), "in_progress", id=guid(1))
    run.pulse(T + minutes(2))  # timeout
    events = run.checkin(T + minutes(3), "error", id=guid(2))
    assert {o.subtitle for o in occurrences(events)} == {
        "Your monitor is failing: 1 timeout and 1 error check-ins detected."
    }


def test_reason_counts_repeated_statuses() -> None:
    run = Run()
    run.configure(T, hourly(failure_issue_threshold=2))
    errors_in(run, 2)
    assert {o.subtitle for o in occurrences(run.events)} == {
        "Your monitor is failing: 2 error check-ins detected."
    }


def test_reason_for_a_single_timeout() -> None:
    run = Run()
    run.checkin(T + secs(10), "in_progress", config=hourly(max_runtime=2))
    events = run.pulse(T + minutes(2))
    (occurrence,) = occurrences(events)
    assert occurrence.subtitle == "Your monitor is failing: A timeout check-in was detected."
    assert evidence(occurrence, "Failure reason") == "A timeout check-in was detected"


def test_reason_ignores_in_progress_check_ins_of_the_window() -> None:
    run = Run()
    run.configure(T, hourly(failure_issue_threshold=2))
    run.checkin(T + minutes(1), "in_progress")
    events = run.checkin(T + minutes(2), "error")
    assert {o.subtitle for o in occurrences(events)} == {
        "Your monitor is failing: An error check-in was detected."
    }


def test_evidence_shows_the_newest_successful_check_in() -> None:
    run = Run()
    run.checkin(T + secs(10), "ok", config=HOURLY)
    run.checkin(T + secs(40), "ok")
    (occurrence,) = occurrences(run.checkin(T + minutes(1), "error"))
    last = evidence(occurrence, "Last successful check-in")
    assert datetime.fromisoformat(last) == T + secs(40)
    assert evidence(occurrence, "Environment") == "production"


def test_evidence_says_never_without_a_successful_check_in() -> None:
    run = Run()
    (occurrence,) = occurrences(run.checkin(T, "error", config=HOURLY))
    assert evidence(occurrence, "Last successful check-in") == "Never"


# --- muting -------------------------------------------------------------------------------------


def test_muting_a_monitor_mutes_its_environments_and_later_ones() -> None:
    run = Run()
    run.checkin(T, "ok", config=HOURLY)
    events = run.mute(T + secs(10), True)
    assert [(m.environment, m.muted, m.reason) for m in of_type(events, "mute_changed")] == [
        ("production", True, "user")
    ]
    run.checkin(T + secs(20), "ok", env="staging")
    assert run.env().muted
    assert run.env(name="staging").muted


def test_muted_environment_opens_incidents_without_occurrences() -> None:
    run = Run()
    run.checkin(T, "ok", config=HOURLY)
    run.mute(T + secs(10), True)
    events = run.checkin(T + minutes(1), "error")
    events += run.checkin(T + minutes(2), "error", env="staging")
    assert len(of_type(events, "incident_opened")) == 2
    assert occurrences(events) == []
    assert run.env().status == "failed"
    assert run.env(name="staging").incident is not None


def test_muting_one_environment_leaves_the_others_alerting() -> None:
    run = Run()
    run.checkin(T, "ok", config=HOURLY)
    run.checkin(T + secs(1), "ok", env="staging")
    run.mute(T + secs(10), True, env="staging")
    assert not run.env().muted
    events = run.checkin(T + minutes(1), "error", env="staging")
    events += run.checkin(T + minutes(2), "error", id=guid(5))
    assert len(of_type(events, "incident_opened")) == 2
    assert failed_ids(events) == [guid(5)]
    run.checkin(T + minutes(3), "ok", env="dev")
    assert not run.env(name="dev").muted


def test_unmuting_the_monitor_unmutes_its_environments() -> None:
    run = Run()
    run.checkin(T, "ok", config=HOURLY)
    run.mute(T + secs(10), True)
    run.mute(T + secs(20), False)
    assert not run.env().muted
    assert len(occurrences(run.checkin(T + minutes(1), "error"))) == 1


def test_incident_without_occurrences_resolves_without_issue_resolved() -> None:
    run = Run()
    run.checkin(T, "ok", config=HOURLY)
    run.mute(T + secs(10), True)
    run.checkin(T + minutes(1), "error")
    run.mute(T + minutes(2), False)
    events = run.checkin(T + minutes(3), "ok")
    assert len(of_type(events, "incident_resolved")) == 1
    assert of_type(events, "issue_resolved") == []


def test_incident_with_an_occurrence_resolves_with_issue_resolved_even_when_muted() -> None:
    run = Run()
    run.checkin(T + minutes(1), "error", config=HOURLY)
    run.mute(T + minutes(2), True)
    events = run.checkin(T + minutes(3), "ok")
    assert len(of_type(events, "issue_resolved")) == 1


def test_muting_an_unknown_environment_is_rejected() -> None:
    run = Run()
    run.checkin(T, "ok", config=HOURLY)
    events = run.mute(T + secs(10), True, env="nope")
    assert [e["type"] for e in of_type(events, "event_rejected")[0].errors] == [
        "monitor_invalid_environment"
    ]


# --- disabling ----------------------------------------------------------------------------------


def test_disabled_monitor_rejects_check_ins() -> None:
    run = Run()
    run.checkin(T, "ok", config=HOURLY)
    run.disable(T + secs(10), True)
    events = run.checkin(T + secs(20), "error")
    assert [e["type"] for e in of_type(events, "event_rejected")[0].errors] == ["monitor_disabled"]
    assert run.env().status == "ok"


def test_disabled_monitor_is_never_marked_missed() -> None:
    run = Run()
    run.checkin(T + secs(10), "ok", config=EVERY_MINUTE)
    run.disable(T + secs(30), True)
    events = run.pulse(T + minutes(10))
    assert of_type(events, "mark_missing") == []
    assert of_type(events, "check_in_created") == []
    assert run.env().status == "ok"


def test_disabling_does_not_change_the_status() -> None:
    run = Run()
    run.checkin(T + secs(10), "error", config=HOURLY)
    events = run.disable(T + secs(30), True)
    assert of_type(events, "status_changed") == []
    assert run.env().status == "failed"
    assert [e.disabled for e in of_type(events, "monitor_disabled_changed")] == [True]


def test_running_check_in_of_a_disabled_monitor_still_times_out() -> None:
    run = Run()
    run.checkin(T + secs(10), "in_progress", id=guid(1), config=hourly(max_runtime=2))
    run.disable(T + secs(30), True)
    events = run.pulse(T + minutes(2))
    assert [e.check_in_id for e in of_type(events, "mark_timeout")] == [guid(1)]
    assert run.find(guid(1)).status == "timeout"


def test_enabling_expects_the_next_slot_after_the_enabling_event() -> None:
    run = Run()
    run.checkin(T + secs(10), "ok", config=EVERY_MINUTE)
    run.disable(T + secs(30), True)
    run.disable(T + minutes(10) + secs(30), False)
    assert (run.env().next_checkin, run.env().next_checkin_latest) == (
        T + minutes(11),
        T + minutes(12),
    )
    assert of_type(run.pulse(T + minutes(11) + secs(59)), "mark_missing") == []
    events = run.pulse(T + minutes(12))
    missed = [c for c in of_type(events, "check_in_created") if c.status == "missed"]
    assert [c.date_added for c in missed] == [T + minutes(11)]


# --- monitor_configured edits (spec §8.25) ----------------------------------------------------


def test_configure_creates_a_monitor_named_after_its_slug_without_environments() -> None:
    run = Run()
    events = run.configure(T, HOURLY)
    (created,) = of_type(events, "monitor_created")
    assert (created.monitor_slug, created.name) == ("job", "job")
    assert of_type(events, "environment_created") == []
    assert run.p.environment(("acme", "job", "production")) is None
    first = run.checkin(T + secs(10), "ok")
    assert [e.environment for e in of_type(first, "environment_created")] == ["production"]


def test_configure_with_an_invalid_config_is_rejected() -> None:
    run = Run()
    events = run.configure(T, {"schedule_type": "crontab", "schedule": "61 * * * *"})
    assert [e["type"] for e in of_type(events, "event_rejected")[0].errors] == [
        "monitor_invalid_config"
    ]
    assert run.p.monitors == {}


def test_margin_edit_recomputes_the_latest_check_in_time() -> None:
    run = Run()
    run.checkin(T + secs(10), "ok", config=HOURLY)  # next 13:00, latest 13:01
    run.configure(T + minutes(5), hourly(checkin_margin=5))
    assert run.env().next_checkin == T + minutes(60)
    assert run.env().next_checkin_latest == T + minutes(65)
    assert of_type(run.pulse(T + minutes(64)), "mark_missing") == []
    missed = [c for c in of_type(run.pulse(T + minutes(65)), "check_in_created")]
    assert [(c.status, c.date_added) for c in missed] == [("missed", T + minutes(60))]


def test_runtime_edit_recomputes_the_timeout_of_running_check_ins() -> None:
    run = Run()
    run.checkin(T + secs(10), "in_progress", id=guid(1), config=HOURLY)  # times out at T+30
    run.configure(T + minutes(2), hourly(max_runtime=5))
    assert run.find(guid(1)).timeout_at == T + minutes(5)
    assert of_type(run.pulse(T + minutes(4)), "mark_timeout") == []
    run.pulse(T + minutes(5))
    assert run.find(guid(1)).status == "timeout"


def test_schedule_edit_recomputes_the_next_check_in_from_the_edit_time() -> None:
    run = Run()
    run.checkin(T + secs(10), "ok", config=HOURLY)
    run.configure(
        T + minutes(20) + secs(30), {"schedule_type": "crontab", "schedule": "*/15 * * * *"}
    )
    assert run.env().next_checkin == T + minutes(30)
    assert run.env().next_checkin_latest == T + minutes(31)


def test_deleted_monitor_forgets_its_environments_and_rejects_check_ins() -> None:
    run = Run()
    run.checkin(T + secs(10), "ok", config=EVERY_MINUTE)
    events = run.delete(T + secs(20))
    assert [(e.project, e.monitor_slug) for e in of_type(events, "monitor_removed")] == [
        ("acme", "job")
    ]
    assert run.p.environment(("acme", "job", "production")) is None
    assert of_type(run.pulse(T + minutes(5)), "mark_missing") == []
    rejected = of_type(run.checkin(T + minutes(6), "ok"), "event_rejected")
    assert [e["type"] for e in rejected[0].errors] == ["monitor_not_found"]


def test_deleting_an_unknown_monitor_is_rejected() -> None:
    run = Run()
    rejected = of_type(run.delete(T), "event_rejected")
    assert [e["type"] for e in rejected[0].errors] == ["monitor_not_found"]


def test_recreated_monitor_starts_fresh() -> None:
    run = Run()
    run.checkin(T + secs(10), "in_progress", id=guid(1), config=HOURLY)
    run.checkin(T + secs(20), "error", id=guid(2))
    run.delete(T + secs(30))
    events = run.checkin(T + secs(40), "in_progress", id=guid(1), config=HOURLY)
    (created,) = of_type(events, "check_in_created")
    assert created.expected_time is None
    assert run.env().incident is None
    assert run.env().status == "pending"


def test_the_simulate_document_drops_a_deleted_monitors_check_ins_and_incidents() -> None:
    """Deleting a monitor deletes its history as Sentry's deletion does: the document shows
    no check-in or (still open) incident of an environment that no longer exists, and a
    recreated monitor reusing a check-in id gets a new row in creation order."""
    run = Run()
    run.checkin(T + secs(5), "ok", id=guid(9), config=HOURLY, slug="other")
    run.checkin(T + secs(10), "in_progress", id=guid(1), config=HOURLY)
    run.checkin(T + secs(20), "error", id=guid(2))
    run.delete(T + secs(30))
    run.checkin(T + secs(40), "in_progress", id=guid(1), config=HOURLY)
    doc = build_report(run.p.all_environments(), run.events, [], line_of)
    assert [(c["monitor_slug"], c["check_in_id"], c["status"]) for c in doc["check_ins"]] == [
        ("other", guid(9), "ok"),
        ("job", guid(1), "in_progress"),
    ]
    assert doc["incidents"] == []
    # The derived events themselves are the log: they keep everything.
    assert [e["type"] for e in doc["events"]].count("incident_opened") == 1


# --- system-incident decisions (spec §6.1 effects, §5.4) -----------------------------------------


def test_incident_decision_marks_running_check_ins_unknown_instead_of_timing_out() -> None:
    run = Run()
    run.checkin(T + secs(10), "in_progress", id=guid(1), config=hourly(max_runtime=2))
    run.decide(T + secs(20), T + minutes(2), "incident")
    events = run.pulse(T + minutes(2))
    assert of_type(events, "mark_timeout") == []
    assert [(e.check_in_id, e.ts) for e in of_type(events, "mark_unknown")] == [
        (guid(1), T + minutes(2))
    ]
    assert run.find(guid(1)).status == "unknown"
    assert run.env().status == "pending"
    assert run.env().incident is None


def test_incident_decision_still_marks_missed_check_ins() -> None:
    run = Run()
    run.checkin(T + secs(10), "ok", config=EVERY_MINUTE)  # latest T+2
    run.decide(T + secs(20), T + minutes(2), "incident")
    events = run.pulse(T + minutes(2))
    created = of_type(events, "check_in_created")
    assert [(c.status, c.date_added) for c in created] == [("missed", T + minutes(1))]
    assert run.env().status == "missed"
    # The synthetic failure's occurrence is dropped: its result is unknown.
    assert occurrences(events) == []
    (dropped,) = of_type(events, "issue_occurrence_dropped")
    assert dropped.failed_check_in_id == created[0].check_in_id
    assert run.find(created[0].check_in_id).status == "unknown"


def _held_miss(pending: str = "abnormal") -> tuple[Run, str]:
    """A miss detected at tick T+2 while T+2's decision is pending: its occurrence waits."""
    run = Run()
    run.checkin(T + secs(10), "ok", config=EVERY_MINUTE)
    run.decide(T + secs(20), T + minutes(2), pending)
    events = run.pulse(T + minutes(2) + secs(10))
    (missed,) = of_type(events, "check_in_created")
    assert occurrences(events) == []
    (held,) = of_type(events, "issue_occurrence_held")
    assert held.failed_check_in_id == missed.check_in_id
    assert len(of_type(events, "incident_opened")) == 1
    return run, missed.check_in_id


@pytest.mark.parametrize("pending", ["abnormal", "recovering"])
def test_pending_decision_holds_synthetic_occurrences_until_normal(pending: str) -> None:
    run, missed_id = _held_miss(pending)
    events = run.decide(T + minutes(2) + secs(30), T + minutes(2), "normal")
    (occurrence,) = occurrences(events)
    assert occurrence.failed_check_in_id == missed_id
    assert occurrence.detection_time == T + minutes(1)
    assert run.find(missed_id).status == "missed"
    assert run.env().held == []


def test_abnormal_decision_drops_held_occurrences_when_it_becomes_an_incident() -> None:
    run, missed_id = _held_miss()
    events = run.decide(T + minutes(2) + secs(30), T + minutes(2), "incident")
    assert occurrences(events) == []
    assert [d.failed_check_in_id for d in of_type(events, "issue_occurrence_dropped")] == [
        missed_id
    ]
    assert run.find(missed_id).status == "unknown"
    assert run.env().incident is not None  # incidents are not rolled back
    assert run.env().held == []


def test_decision_for_another_minute_does_not_release_held_occurrences() -> None:
    run, _ = _held_miss()
    events = run.decide(T + minutes(2) + secs(30), T + minutes(1), "normal")
    assert occurrences(events) == []
    assert len(run.env().held) == 1


def test_held_occurrence_of_a_run_that_is_running_again_is_not_sent() -> None:
    run = Run()
    run.checkin(T + secs(10), "in_progress", id=guid(1), config=hourly(max_runtime=1))
    run.decide(T + secs(20), T + minutes(1), "abnormal")
    held = of_type(run.pulse(T + minutes(1)), "issue_occurrence_held")
    assert [h.failed_check_in_id for h in held] == [guid(1)]
    # A heartbeat revives the timed-out run (only a close is sticky, spec §2.8).
    run.checkin(T + minutes(1) + secs(30), "in_progress", id=guid(1))
    assert run.find(guid(1)).status == "in_progress"
    events = run.decide(T + minutes(1) + secs(40), T + minutes(1), "normal")
    assert occurrences(events) == []
    assert run.env().held == []


def test_user_error_occurrences_are_never_held() -> None:
    run = Run()
    run.checkin(T, "ok", config=HOURLY)
    run.decide(T + secs(10), T + minutes(1), "abnormal")
    events = run.checkin(T + minutes(1) + secs(30), "error", id=guid(1))
    assert failed_ids(events) == [guid(1)]
    assert of_type(events, "issue_occurrence_held") == []


def test_unknown_decision_is_not_a_valid_event() -> None:
    line = '{"type": "clock_decision", "ts": 0, "minute": 0, "decision": "panic"}'
    parsed = parse_line(line, 7)
    assert isinstance(parsed, InvalidLine)
    assert parsed.line == 7
    assert "decision" in parsed.message


def test_user_error_occurrences_are_sent_during_a_system_incident() -> None:
    run = Run()
    run.checkin(T, "ok", config=HOURLY)
    run.decide(T + secs(10), T + minutes(1), "incident")
    events = run.checkin(T + minutes(1) + secs(30), "error", id=guid(1))
    assert failed_ids(events) == [guid(1)]
    assert run.find(guid(1)).status == "error"


# --- broken detection (spec §6.2, on event time) --------------------------------------------------

WED_MAY_15_1500 = datetime(2024, 5, 15, 15, 0, tzinfo=UTC)
WED_MAY_29_1500 = datetime(2024, 5, 29, 15, 0, tzinfo=UTC)


def _failing_daily(at: datetime | None = None) -> Run:
    """A daily job that failed at `at` (default T+10 s) and has missed every day since."""
    run = Run()
    run.checkin(at or T + secs(10), "error", id=guid(1), config=DAILY_NOON)
    return run


def test_environment_is_reported_broken_once_its_incident_is_14_days_old() -> None:
    run = _failing_daily()
    assert of_type(run.pulse(WED_MAY_15_1500 - minutes(1)), "monitor_environment_broken") == []
    events = run.pulse(WED_MAY_15_1500)
    (broken,) = of_type(events, "monitor_environment_broken")
    incident = run.env().incident
    assert incident is not None
    assert broken.incident_id == incident.id
    assert broken.started_at == T + secs(10)
    assert broken.detection_time == WED_MAY_15_1500
    assert not run.env().muted


def test_broken_environment_is_reported_once() -> None:
    run = _failing_daily()
    events = run.pulse(WED_MAY_29_1500 - minutes(1))
    assert len(of_type(events, "monitor_environment_broken")) == 1


def test_broken_environment_is_muted_14_days_after_the_notice() -> None:
    run = _failing_daily()
    run.pulse(WED_MAY_29_1500 - minutes(1))
    assert not run.env().muted
    events = run.pulse(WED_MAY_29_1500)
    assert [(m.muted, m.reason) for m in of_type(events, "mute_changed")] == [(True, "broken")]
    assert run.env().muted


def test_broken_detection_runs_on_weekdays_only() -> None:
    # Failed on Saturday May 4: 14 days later is Saturday May 18; Monday May 20 detects it.
    run = _failing_daily(datetime(2024, 5, 4, 12, 0, 10, tzinfo=UTC))
    monday = datetime(2024, 5, 20, 15, 0, tzinfo=UTC)
    assert of_type(run.pulse(monday - minutes(1)), "monitor_environment_broken") == []
    (broken,) = of_type(run.pulse(monday), "monitor_environment_broken")
    assert broken.detection_time == monday


def test_environment_whose_last_check_ins_are_not_all_failures_is_not_broken() -> None:
    run = _failing_daily()
    run.pulse(datetime(2024, 5, 14, 12, 0, tzinfo=UTC))
    # A run that is still going on May 14: one of the last four is not a failure.
    run.checkin(
        datetime(2024, 5, 14, 12, 0, 30, tzinfo=UTC), "in_progress",
        config={**DAILY_NOON, "max_runtime": 40320},
    )  # fmt: skip
    events = run.pulse(WED_MAY_15_1500 + minutes(1))
    assert of_type(events, "monitor_environment_broken") == []
    assert run.env().incident is not None


def test_muted_environment_is_not_reported_broken() -> None:
    run = _failing_daily()
    run.mute(T + minutes(1), True)
    events = run.pulse(WED_MAY_29_1500 + minutes(1))
    assert of_type(events, "monitor_environment_broken") == []
    assert of_type(events, "mute_changed") == []
