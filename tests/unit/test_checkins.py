"""Check-in ingestion over the pure reducer (spec §2.3–2.8; domain.md differences 3 and the
"Precise rules").

Every test is given/when/then: log entries in, derived events and state out. T is
2024-05-01 12:00 UTC; `received` defaults to the entry's broker time.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from dsl import EVERY_MINUTE, Run, T, guid, minutes, of_type

from monitor_es.domain.partition import Limits

HOURLY = {"schedule_type": "crontab", "schedule": "0 * * * *"}
EVERY_TEN_MINUTES = {"schedule_type": "interval", "schedule": [10, "minute"]}
ZERO = "00000000-0000-0000-0000-000000000000"


def secs(n: float) -> timedelta:
    return timedelta(seconds=n)


def hourly(**extra: Any) -> dict[str, Any]:
    return {**HOURLY, **extra}


def rejection(events: list[Any]) -> Any:
    """The single `event_rejected` among the events."""
    found = of_type(events, "event_rejected")
    assert len(found) == 1, events
    return found[0]


def error_types(events: list[Any]) -> list[str]:
    return [str(err["type"]) for e in of_type(events, "event_rejected") for err in e.errors]


def created(events: list[Any]) -> list[Any]:
    return of_type(events, "check_in_created")


# --- §2.3 rate limit ----------------------------------------------------------------------


def test_seventh_check_in_of_an_environment_in_one_broker_minute_is_rate_limited() -> None:
    run = Run()
    for k in range(6):
        assert error_types(run.checkin(T + secs(k), "ok", config=HOURLY)) == []
    seventh = run.checkin(T + secs(59), "ok")
    assert error_types(seventh) == ["monitor_environment_ratelimited"]
    assert created(seventh) == []
    assert len(created(run.events)) == 6


def test_rate_limit_resets_in_the_next_broker_minute() -> None:
    run = Run()
    for k in range(7):
        run.checkin(T + secs(k), "ok", config=HOURLY)
    assert error_types(run.checkin(T + minutes(1), "ok")) == []


def test_rate_limit_buckets_use_the_broker_minute_not_the_received_time() -> None:
    run = Run()
    # Received times spread over seven minutes, all delivered within one broker minute.
    for k in range(6):
        run.checkin(T + secs(k), "ok", received=T - minutes(7 - k), config=HOURLY)
    late = run.checkin(T + secs(30), "ok", received=T - minutes(1))
    assert error_types(late) == ["monitor_environment_ratelimited"]


def test_a_backlog_received_in_one_minute_is_not_throttled_across_broker_minutes() -> None:
    run = Run()
    received = T + secs(30)
    for k in range(4):
        run.checkin(T + minutes(1) + secs(k), "ok", received=received, config=HOURLY)
    for k in range(4):
        run.checkin(T + minutes(2) + secs(k), "ok", received=received)
    assert error_types(run.events) == []
    assert len(created(run.events)) == 8


def test_rate_limit_is_keyed_on_the_normalised_environment() -> None:
    run = Run()
    for k in range(3):
        run.checkin(T + secs(k), "ok", config=HOURLY)  # no environment: production
    for k in range(3):
        run.checkin(T + secs(10 + k), "ok", env="production")
    assert error_types(run.events) == []
    assert error_types(run.checkin(T + secs(20), "ok", env="")) == [
        "monitor_environment_ratelimited"
    ]


def test_rate_limit_of_one_environment_does_not_throttle_another() -> None:
    run = Run()
    for k in range(7):
        run.checkin(T + secs(k), "ok", config=HOURLY)
    assert error_types(run.checkin(T + secs(30), "ok", env="staging")) == []


def test_rate_limit_is_checked_before_the_guid() -> None:
    run = Run()
    for k in range(6):
        run.checkin(T + secs(k), "ok", config=HOURLY)
    assert error_types(run.checkin(T + secs(30), "ok", id="not-a-uuid")) == [
        "monitor_environment_ratelimited"
    ]


def test_rejected_attempts_count_against_the_rate_limit() -> None:
    run = Run()
    run.checkin(T - minutes(5), "ok", config=HOURLY)
    for k in range(6):
        assert error_types(run.checkin(T + secs(k), "done")) == ["checkin_validation_failed"]
    assert error_types(run.checkin(T + secs(30), "ok")) == ["monitor_environment_ratelimited"]


def test_attempts_before_the_environment_exists_count_for_it() -> None:
    run = Run()
    for k in range(5):
        run.checkin(T + secs(k), "ok")  # no monitor yet: monitor_not_found
    assert error_types(run.events) == ["monitor_not_found"] * 5
    assert error_types(run.checkin(T + secs(10), "ok", config=HOURLY)) == []
    assert error_types(run.checkin(T + secs(20), "ok")) == ["monitor_environment_ratelimited"]


# --- §2.3 GUID and payload validation -------------------------------------------------------


def test_unparsable_check_in_id_is_rejected_as_invalid_guid() -> None:
    run = Run()
    events = run.checkin(T, "ok", id="not-a-uuid", config=HOURLY)
    assert error_types(events) == ["checkin_invalid_guid"]
    assert created(events) == []


def test_guid_is_checked_before_the_payload_fields() -> None:
    run = Run()
    events = run.checkin(T, "done", id="1234", duration=-1, config=HOURLY)
    assert error_types(events) == ["checkin_invalid_guid"]


def test_guid_in_32_hex_digits_names_the_same_check_in_as_the_dashed_form() -> None:
    run = Run()
    dashed = "a3c5e8f0-1b2d-4c6e-8f90-123456789abc"
    run.checkin(T, "in_progress", id=dashed.replace("-", "").upper(), config=HOURLY)
    run.checkin(T + secs(40), "ok", id=dashed)
    assert error_types(run.events) == []
    assert len(created(run.events)) == 1
    assert run.find(dashed).status == "ok"


def test_status_done_fails_validation_with_the_field_message() -> None:
    run = Run()
    events = run.checkin(T, "done", config=HOURLY)
    rejected = rejection(events)
    assert [e["type"] for e in rejected.errors] == ["checkin_validation_failed"]
    assert rejected.errors[0]["errors"] == {"status": ['"done" is not a valid choice.']}
    assert created(events) == []


def test_synthetic_statuses_cannot_be_reported_by_a_job() -> None:
    run = Run()
    for k, status in enumerate(["missed", "timeout", "unknown"]):
        events = run.checkin(T + secs(k), status, config=HOURLY)
        assert error_types(events) == ["checkin_validation_failed"]


def test_negative_duration_fails_validation_with_the_field_message() -> None:
    run = Run()
    rejected = rejection(run.checkin(T, "ok", duration=-0.001, config=HOURLY))
    assert [e["type"] for e in rejected.errors] == ["checkin_validation_failed"]
    assert rejected.errors[0]["errors"] == {
        "duration": ["Ensure this value is greater than or equal to 0."]
    }


def test_duration_over_the_integer_maximum_fails_validation() -> None:
    run = Run()
    rejected = rejection(run.checkin(T, "ok", duration=2_147_483.648, config=HOURLY))
    assert rejected.errors[0]["type"] == "checkin_validation_failed"
    assert rejected.errors[0]["errors"] == {
        "duration": ["Ensure this value is less than or equal to 2147483647."]
    }


def test_duration_at_the_integer_maximum_is_accepted() -> None:
    run = Run()
    events = run.checkin(T, "ok", duration=2_147_483.647, config=HOURLY)
    assert error_types(events) == []
    assert created(events)[0].duration_ms == 2_147_483_647


def test_invalid_trace_id_fails_validation_on_the_trace_id_field() -> None:
    run = Run()
    rejected = rejection(run.checkin(T, "ok", trace_id="not-a-trace", config=HOURLY))
    assert rejected.errors[0]["type"] == "checkin_validation_failed"
    assert list(rejected.errors[0]["errors"]) == ["trace_id"]


def test_valid_trace_id_is_stored_on_the_check_in() -> None:
    run = Run()
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    run.checkin(T, "ok", id=guid(1), trace_id=trace, config=HOURLY)
    stored = run.find(guid(1)).trace_id
    assert stored is not None
    assert uuid.UUID(stored) == uuid.UUID(trace)


def test_payload_is_validated_before_the_monitor_is_looked_up() -> None:
    run = Run()
    assert error_types(run.checkin(T, "done")) == ["checkin_validation_failed"]


# --- §2.3 monitor lookup, upsert, limits, disabled, environment ------------------------------


def test_check_in_for_an_unknown_monitor_without_config_is_monitor_not_found() -> None:
    run = Run()
    events = run.checkin(T, "ok")
    assert error_types(events) == ["monitor_not_found"]
    assert run.p.monitors == {}
    assert run.p.environment(("acme", "job", "production")) is None


def test_invalid_upsert_config_for_a_new_monitor_gives_invalid_config_then_not_found() -> None:
    run = Run()
    events = run.checkin(T, "ok", config={"schedule_type": "crontab", "schedule": "bogus"})
    rejected = rejection(events)
    assert [e["type"] for e in rejected.errors] == ["monitor_invalid_config", "monitor_not_found"]
    assert "schedule" in rejected.errors[0]["errors"]
    assert run.p.monitors == {}


def test_invalid_upsert_config_leaves_an_existing_monitor_unchanged_and_accepts() -> None:
    run = Run()
    run.checkin(T, "ok", config=hourly(checkin_margin=5))
    events = run.checkin(T + minutes(1), "ok", config={"schedule_type": "crontab", "schedule": "x"})
    assert error_types(events) == []
    assert of_type(events, "monitor_updated") == []
    assert run.env().next_checkin == T + minutes(60)
    assert run.env().next_checkin_latest == T + minutes(65)


def test_creating_a_monitor_past_the_project_limit_is_rejected_with_the_limit_message() -> None:
    run = Run(Limits(max_monitors_per_project=2))
    run.checkin(T, "ok", slug="a", config=HOURLY)
    run.checkin(T + secs(1), "ok", slug="b", config=HOURLY)
    rejected = rejection(run.checkin(T + secs(2), "ok", slug="c", config=HOURLY))
    assert rejected.errors == [
        {
            "type": "monitor_limit_exceeded",
            "reason": "You may not exceed 2 monitors per organization",
        }
    ]
    assert ("acme", "c") not in run.p.monitors


def test_monitor_limit_still_accepts_check_ins_of_existing_monitors() -> None:
    run = Run(Limits(max_monitors_per_project=2))
    run.checkin(T, "ok", slug="a", config=HOURLY)
    run.checkin(T + secs(1), "ok", slug="b", config=HOURLY)
    run.checkin(T + secs(2), "ok", slug="c", config=HOURLY)
    assert error_types(run.checkin(T + secs(3), "ok", slug="a", config=HOURLY)) == []


def test_monitor_limit_counts_per_project() -> None:
    run = Run(Limits(max_monitors_per_project=2))
    run.checkin(T, "ok", slug="a", config=HOURLY)
    run.checkin(T + secs(1), "ok", slug="b", config=HOURLY)
    assert (
        error_types(run.checkin(T + secs(2), "ok", slug="c", project="other", config=HOURLY)) == []
    )


def test_check_in_for_a_disabled_monitor_is_rejected_and_not_stored() -> None:
    run = Run()
    run.checkin(T, "ok", config=HOURLY)
    run.disable(T + secs(10), True)
    events = run.checkin(T + secs(20), "ok", id=guid(7))
    assert error_types(events) == ["monitor_disabled"]
    assert created(events) == []
    assert all(c.id != guid(7) for c in run.checkins())


def test_disabled_is_checked_before_the_environment_name() -> None:
    run = Run()
    run.checkin(T, "ok", config=HOURLY)
    run.disable(T + secs(10), True)
    assert error_types(run.checkin(T + secs(20), "ok", env="e" * 65)) == ["monitor_disabled"]


def test_environment_name_of_65_characters_is_rejected_as_too_long() -> None:
    run = Run()
    rejected = rejection(run.checkin(T, "ok", env="e" * 65, config=HOURLY))
    assert rejected.errors == [
        {"type": "monitor_invalid_environment", "reason": "Environment name too long"}
    ]
    assert run.p.environment(("acme", "job", "e" * 65)) is None


def test_environment_name_of_64_characters_is_accepted() -> None:
    run = Run()
    assert error_types(run.checkin(T, "ok", env="e" * 64, config=HOURLY)) == []
    assert run.env(name="e" * 64).status == "ok"


def test_new_environment_past_the_monitor_limit_is_rejected_with_the_limit_message() -> None:
    run = Run(Limits(max_environments_per_monitor=2))
    run.checkin(T, "ok", config=HOURLY)
    run.checkin(T + secs(1), "ok", env="staging")
    rejected = rejection(run.checkin(T + secs(2), "ok", env="dev"))
    assert rejected.errors == [
        {
            "type": "monitor_environment_limit_exceeded",
            "reason": "You may not exceed 2 environments per monitor",
        }
    ]
    assert error_types(run.checkin(T + secs(3), "ok", env="staging")) == []


def test_missing_or_empty_environment_means_production() -> None:
    run = Run()
    run.checkin(T, "ok", id=guid(1), config=HOURLY)
    run.checkin(T + secs(1), "ok", id=guid(2), env="")
    assert [c.id for c in run.checkins()] == [guid(1), guid(2)]


def test_monitor_slug_is_slugified_on_lookup() -> None:
    run = Run()
    run.checkin(T, "ok", slug="Nightly Backup", config=HOURLY)
    assert error_types(run.checkin(T + secs(1), "ok", slug="nightly-backup")) == []
    assert len(run.checkins(slug="nightly-backup")) == 2


# --- §2.4 upsert merge -----------------------------------------------------------------------


def test_upsert_overwrites_only_the_keys_it_names() -> None:
    run = Run()
    run.checkin(T, "ok", config=hourly(checkin_margin=5, max_runtime=10))
    # A new schedule; margin and runtime are not named, so they are kept.
    run.checkin(
        T + secs(20),
        "in_progress",
        id=guid(1),
        config={"schedule_type": "crontab", "schedule": "*/30 * * * *"},
    )
    assert run.env().next_checkin == T + minutes(30)
    assert run.env().next_checkin_latest == T + minutes(35)
    assert run.find(guid(1)).timeout_at == T + minutes(10)


def test_upsert_that_names_a_key_overwrites_it() -> None:
    run = Run()
    run.checkin(T, "ok", config=hourly(checkin_margin=5))
    events = run.checkin(T + secs(20), "ok", config=hourly(checkin_margin=2))
    assert len(of_type(events, "monitor_updated")) == 1
    assert run.env().next_checkin_latest == T + minutes(62)


def test_upsert_creates_the_monitor_named_after_its_slug() -> None:
    run = Run()
    events = run.checkin(T, "ok", config=HOURLY)
    (monitor,) = of_type(events, "monitor_created")
    assert (monitor.monitor_slug, monitor.name) == ("job", "job")
    assert monitor.config["schedule"] == "0 * * * *"


def test_is_upserting_clears_when_a_new_check_in_comes_without_config() -> None:
    run = Run()
    run.checkin(T, "in_progress", id=guid(1), config=HOURLY)
    assert run.p.monitors[("acme", "job")].is_upserting
    run.checkin(T + secs(10), "ok", id=guid(1))  # an update: still upserting
    assert run.p.monitors[("acme", "job")].is_upserting
    run.checkin(T + secs(20), "ok", id=guid(2))
    assert not run.p.monitors[("acme", "job")].is_upserting


# --- §2.5 finding the existing check-in ------------------------------------------------------


def test_zero_guid_closes_the_newest_in_progress_run_of_its_environment() -> None:
    run = Run()
    # Logged first but started later: "newest" is by date_added, not by log order.
    run.checkin(T + secs(5), "in_progress", id=guid(1), received=T + secs(5), config=HOURLY)
    run.checkin(T + secs(6), "in_progress", id=guid(2), received=T + secs(2))
    run.checkin(T + secs(7), "in_progress", id=guid(3), env="staging")
    events = run.checkin(T + secs(30), "ok", id=ZERO)
    assert error_types(events) == []
    assert created(events) == []
    assert run.find(guid(1)).status == "ok"
    assert run.find(guid(2)).status == "in_progress"
    assert run.checkins(name="staging")[0].status == "in_progress"


def test_zero_guid_never_matches_another_environment() -> None:
    run = Run()
    run.checkin(T, "ok", id=guid(1), config=HOURLY)
    run.checkin(T + secs(1), "in_progress", id=guid(2), env="staging")
    events = run.checkin(T + secs(30), "ok", id=ZERO)
    (new,) = created(events)
    assert new.environment == "production"
    assert new.status == "ok"
    assert run.checkins(name="staging")[0].status == "in_progress"


def test_zero_guid_with_nothing_in_progress_creates_a_check_in_with_a_deterministic_id() -> None:
    def replay() -> list[str]:
        run = Run()
        run.checkin(T, "ok", id=ZERO, config=HOURLY)
        run.checkin(T + secs(30), "error", id=ZERO)
        return [c.check_in_id for c in created(run.events)]

    first = replay()
    assert first == replay()
    assert len(set(first)) == 2
    assert ZERO not in first
    assert all(uuid.UUID(i) for i in first)


def test_zero_guid_does_not_match_a_closed_run() -> None:
    run = Run()
    run.checkin(T, "in_progress", id=guid(1), config=HOURLY)
    run.checkin(T + secs(10), "ok", id=guid(1))
    events = run.checkin(T + secs(20), "error", id=ZERO)
    assert error_types(events) == []
    assert len(created(events)) == 1
    assert run.find(guid(1)).status == "ok"


def test_id_of_another_environment_is_rejected_with_the_existing_environment() -> None:
    run = Run()
    run.checkin(T, "in_progress", id=guid(1), config=HOURLY)
    rejected = rejection(run.checkin(T + secs(10), "ok", id=guid(1), env="staging"))
    assert rejected.errors == [
        {"type": "checkin_environment_mismatch", "existingEnvironment": "production"}
    ]
    assert run.find(guid(1)).status == "in_progress"


def test_id_of_another_monitor_is_an_environment_mismatch() -> None:
    run = Run()
    run.checkin(T, "in_progress", id=guid(1), config=HOURLY, env="staging")
    run.checkin(T + secs(1), "ok", id=guid(2), slug="other", config=HOURLY)
    rejected = rejection(run.checkin(T + secs(10), "ok", id=guid(1), slug="other"))
    assert rejected.errors == [
        {"type": "checkin_environment_mismatch", "existingEnvironment": "staging"}
    ]


# --- §2.6 creating a check-in ----------------------------------------------------------------


def test_first_check_in_of_an_environment_has_no_expected_time() -> None:
    run = Run()
    (first,) = created(run.checkin(T + secs(10), "ok", config=HOURLY))
    assert first.expected_time is None


def test_new_check_in_expects_the_environments_previous_next_checkin() -> None:
    run = Run()
    run.checkin(T + secs(10), "ok", config=HOURLY)  # next 13:00
    (second,) = created(run.checkin(T + minutes(30), "ok"))
    assert second.expected_time == T + minutes(60)


def test_new_check_in_is_dated_at_its_received_time_and_clocked_at_the_broker_minute() -> None:
    run = Run()
    (c,) = created(
        run.checkin(T + minutes(2) + secs(50), "ok", received=T + secs(15), config=HOURLY)
    )
    assert (c.date_added, c.date_updated) == (T + secs(15), T + secs(15))
    assert c.date_clock == T + minutes(2)
    assert c.date_in_progress is None


def test_in_progress_times_out_at_its_start_minute_plus_max_runtime() -> None:
    run = Run()
    (c,) = created(
        run.checkin(T + minutes(5) + secs(45), "in_progress", config=hourly(max_runtime=10))
    )
    assert c.timeout_at == T + minutes(15)
    assert c.date_in_progress == T + minutes(5) + secs(45)


def test_in_progress_defaults_to_a_30_minute_runtime() -> None:
    run = Run()
    (c,) = created(run.checkin(T + secs(59), "in_progress", config=HOURLY))
    assert c.timeout_at == T + minutes(30)


def test_closed_check_in_has_no_timeout_and_keeps_the_duration_sent() -> None:
    run = Run()
    (c,) = created(run.checkin(T, "ok", duration=2.5, config=HOURLY))
    assert c.timeout_at is None
    assert c.duration_ms == 2500


# --- §2.8 updating an existing check-in ------------------------------------------------------


def test_second_closing_message_is_rejected_as_finished_and_changes_nothing() -> None:
    run = Run()
    run.checkin(T, "in_progress", id=guid(1), config=HOURLY)
    run.checkin(T + secs(30), "ok", id=guid(1))
    before = (run.find(guid(1)).status, run.find(guid(1)).duration_ms)
    events = run.checkin(T + secs(50), "error", id=guid(1), duration=9)
    assert error_types(events) == ["checkin_finished"]
    assert of_type(events, "check_in_updated") == []
    assert (run.find(guid(1)).status, run.find(guid(1)).duration_ms) == before
    assert run.env().status == "ok"


def test_closing_a_check_in_created_closed_again_is_finished() -> None:
    run = Run()
    run.checkin(T, "error", id=guid(1), config=HOURLY)
    assert error_types(run.checkin(T + secs(5), "ok", id=guid(1))) == ["checkin_finished"]
    assert run.find(guid(1)).status == "error"


def test_out_of_order_in_progress_only_records_when_the_run_started() -> None:
    run = Run()
    run.checkin(T + secs(30), "ok", id=guid(1), config=EVERY_TEN_MINUTES)  # next 12:10
    events = run.checkin(T + minutes(5), "in_progress", id=guid(1))
    assert error_types(events) == []
    checkin = run.find(guid(1))
    assert checkin.status == "ok"
    assert checkin.date_in_progress == T + minutes(5)
    assert checkin.timeout_at is None
    assert checkin.duration_ms is None  # only a closing message sets a duration
    # The success path did not run again: it would have moved next to 12:15.
    assert run.env().next_checkin == T + minutes(10)
    assert run.env().last_checkin == T + secs(30)
    assert [type(e).__struct_config__.tag for e in events] == ["check_in_updated"]


def test_out_of_order_in_progress_never_reruns_the_failure_path() -> None:
    run = Run()
    run.checkin(T + secs(30), "error", id=guid(1), config=HOURLY)
    assert len(of_type(run.events, "issue_occurrence")) == 1
    events = run.checkin(T + minutes(1), "in_progress", id=guid(1))
    assert of_type(events, "issue_occurrence") == []
    assert run.find(guid(1)).status == "error"
    assert run.env().status == "failed"


def test_close_without_duration_gets_the_time_since_the_run_started() -> None:
    run = Run()
    run.checkin(T + secs(10), "in_progress", id=guid(1), config=HOURLY)
    run.checkin(T + minutes(3) + secs(40), "ok", id=guid(1))
    assert run.find(guid(1)).duration_ms == 210_000


def test_duration_sent_with_the_close_wins_over_the_elapsed_time() -> None:
    run = Run()
    run.checkin(T, "in_progress", id=guid(1), config=HOURLY)
    run.checkin(T + minutes(3), "ok", id=guid(1), duration=12.5)
    assert run.find(guid(1)).duration_ms == 12_500


def test_close_received_before_the_open_gets_the_absolute_duration() -> None:
    run = Run()
    run.checkin(T + minutes(5), "in_progress", id=guid(1), config=HOURLY)
    run.checkin(T + minutes(6), "ok", id=guid(1), received=T + minutes(2))
    assert run.find(guid(1)).duration_ms == 180_000
    assert run.find(guid(1)).status == "ok"


def test_heartbeat_bumps_date_updated_and_timeout_but_sets_no_duration() -> None:
    run = Run()
    run.checkin(T + secs(10), "in_progress", id=guid(1), config=hourly(max_runtime=10))
    assert run.find(guid(1)).timeout_at == T + minutes(10)
    events = run.checkin(T + minutes(8) + secs(20), "in_progress", id=guid(1))
    assert error_types(events) == []
    checkin = run.find(guid(1))
    assert checkin.status == "in_progress"
    assert checkin.date_updated == T + minutes(8) + secs(20)
    assert checkin.timeout_at == T + minutes(18)
    assert checkin.duration_ms is None
    assert checkin.date_in_progress == T + secs(10)
    assert checkin.date_added == T + secs(10)


def test_heartbeat_keeps_a_long_run_from_timing_out() -> None:
    run = Run()
    run.checkin(T + secs(10), "in_progress", id=guid(1), config=hourly(max_runtime=10))
    run.checkin(T + minutes(8), "in_progress", id=guid(1))
    run.pulse(T + minutes(17))
    assert run.find(guid(1)).status == "in_progress"
    run.pulse(T + minutes(18))
    assert run.find(guid(1)).status == "timeout"


def test_heartbeat_timeout_is_capped_at_28_days_after_the_start_minute() -> None:
    run = Run()
    run.checkin(T + secs(30), "in_progress", id=guid(1), config=hourly(max_runtime=40320))
    run.checkin(T + minutes(10), "in_progress", id=guid(1))
    assert run.find(guid(1)).timeout_at == T + timedelta(days=28)


def test_close_after_heartbeats_measures_from_the_start_not_the_heartbeat() -> None:
    run = Run()
    run.checkin(T, "in_progress", id=guid(1), config=HOURLY)
    run.checkin(T + minutes(5), "in_progress", id=guid(1))
    run.checkin(T + minutes(7), "ok", id=guid(1))
    assert run.find(guid(1)).duration_ms == 420_000


def test_late_close_of_a_timed_out_run_records_its_duration_but_stays_timeout() -> None:
    run = Run()
    run.checkin(T + secs(10), "in_progress", id=guid(1), config=hourly(max_runtime=2))
    run.pulse(T + minutes(2))
    assert run.find(guid(1)).status == "timeout"
    assert run.env().status == "timeout"
    events = run.checkin(T + minutes(3), "ok", id=guid(1))
    assert error_types(events) == []
    checkin = run.find(guid(1))
    assert checkin.status == "timeout"
    assert checkin.duration_ms == 170_000
    assert checkin.date_updated == T + minutes(3)
    assert run.env().status == "timeout"
    assert of_type(events, "status_changed") == []
    assert of_type(events, "incident_resolved") == []


def test_late_close_of_a_timed_out_run_still_refreshes_the_next_expected_time() -> None:
    run = Run()
    run.checkin(T + secs(10), "in_progress", id=guid(1), config={
        "schedule_type": "interval", "schedule": [10, "minute"], "max_runtime": 2
    })  # fmt: skip
    run.pulse(T + minutes(2))
    run.checkin(T + minutes(3) + secs(30), "ok", id=guid(1))
    assert run.env().next_checkin == T + minutes(13)


def test_unknown_run_can_still_be_closed() -> None:
    run = Run()
    run.checkin(T + secs(10), "in_progress", id=guid(1), config=HOURLY)
    run.decide(T + secs(20), T + minutes(1), "incident")
    run.pulse(T + minutes(1))
    assert run.find(guid(1)).status == "unknown"
    events = run.checkin(T + minutes(1) + secs(30), "ok", id=guid(1))
    assert error_types(events) == []
    assert run.find(guid(1)).status == "ok"
    assert run.env().status == "ok"


def test_implicit_duration_over_the_integer_maximum_is_rejected() -> None:
    run = Run()
    # Started 25 days before it is logged; 28-day runtime so it is still running.
    run.checkin(
        T, "in_progress", id=guid(1), received=T - timedelta(days=25),
        config=hourly(max_runtime=40320),
    )  # fmt: skip
    events = run.checkin(T + minutes(1), "ok", id=guid(1))
    assert error_types(events) == ["checkin_invalid_duration"]
    checkin = run.find(guid(1))
    assert checkin.status == "in_progress"
    assert checkin.duration_ms is None


# --- §2.7 updating the environment -----------------------------------------------------------


def test_in_progress_moves_next_checkin_but_leaves_a_new_environment_pending() -> None:
    run = Run()
    run.checkin(T + secs(30), "in_progress", config=EVERY_MINUTE)
    env = run.env()
    assert env.status == "pending"
    assert (env.next_checkin, env.next_checkin_latest) == (T + minutes(1), T + minutes(2))
    assert env.last_checkin == T + secs(30)


def test_ok_check_in_sets_status_ok_and_expects_the_next_slot() -> None:
    run = Run()
    events = run.checkin(T + secs(30), "ok", config=hourly(checkin_margin=3))
    env = run.env()
    assert env.status == "ok"
    assert (env.next_checkin, env.next_checkin_latest) == (T + minutes(60), T + minutes(63))
    (changed,) = of_type(events, "status_changed")
    assert (changed.previous, changed.status) == ("pending", "ok")


def test_next_expected_time_is_computed_from_the_closing_message() -> None:
    run = Run()
    run.checkin(T + secs(10), "in_progress", id=guid(1), config=EVERY_TEN_MINUTES)
    run.checkin(T + minutes(4) + secs(30), "ok", id=guid(1))
    assert run.env().next_checkin == T + minutes(14)


def test_error_not_superseded_sets_failed_and_moves_next_checkin() -> None:
    run = Run()
    run.checkin(T + secs(10), "ok", config=EVERY_TEN_MINUTES)
    run.checkin(T + minutes(4), "error")
    env = run.env()
    assert env.status == "failed"
    assert env.next_checkin == T + minutes(14)
    assert env.last_checkin == T + minutes(4)


def test_error_older_than_a_newer_ok_changes_nothing() -> None:
    run = Run()
    run.checkin(T + minutes(5), "ok", config=EVERY_TEN_MINUTES)
    before = (run.env().next_checkin, run.env().last_checkin)
    events = run.checkin(T + minutes(5) + secs(30), "error", id=guid(9), received=T + minutes(3))
    assert error_types(events) == []
    assert run.find(guid(9)).status == "error"
    assert run.env().status == "ok"
    assert (run.env().next_checkin, run.env().last_checkin) == before
    assert run.env().incident is None
    assert of_type(events, "incident_opened") == []
    assert of_type(events, "status_changed") == []


def test_error_older_than_a_newer_error_adds_no_occurrence() -> None:
    run = Run()
    run.checkin(T + minutes(5), "error", config=HOURLY)
    assert len(of_type(run.events, "issue_occurrence")) == 1
    events = run.checkin(T + minutes(6), "error", received=T + minutes(2))
    assert of_type(events, "issue_occurrence") == []


def test_error_older_than_a_newer_in_progress_still_counts() -> None:
    run = Run()
    run.checkin(T + minutes(5), "in_progress", config=HOURLY)
    events = run.checkin(T + minutes(5) + secs(30), "error", received=T + minutes(3))
    assert run.env().status == "failed"
    assert len(of_type(events, "incident_opened")) == 1


def test_last_checkin_never_moves_backwards_when_an_older_run_closes() -> None:
    run = Run()
    run.checkin(T + minutes(1), "in_progress", id=guid(1), config=EVERY_TEN_MINUTES)
    run.checkin(T + minutes(5), "ok", id=guid(2))
    run.checkin(T + minutes(6), "ok", id=guid(1))  # the older run closes last
    env = run.env()
    assert env.last_checkin == T + minutes(5)
    assert env.next_checkin == T + minutes(16)  # still refreshed from the close
    assert env.status == "ok"


def test_late_error_for_an_older_run_does_not_move_last_checkin_back() -> None:
    run = Run()
    run.checkin(T + minutes(1), "in_progress", id=guid(1), config=HOURLY)
    run.checkin(T + minutes(5), "in_progress", id=guid(2))
    run.checkin(T + minutes(6), "error", id=guid(1))
    assert run.env().last_checkin == T + minutes(5)
    assert run.env().status == "failed"
