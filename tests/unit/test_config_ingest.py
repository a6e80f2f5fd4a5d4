"""Monitor config through the reducer: upserts (spec §2.4), API edits (§8.25), slugs (§2.1),
and which rejection a user sees when several things are wrong (§2.3, §2.10).

T is 2024-05-01 12:00 UTC; `received` defaults to the entry's broker time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dsl import Run, T, errors_of, guid, minutes, of_type

from monitor_es.domain.config import MAX_MARGIN, MAX_TIMEOUT
from monitor_es.domain.partition import Limits

HOURLY = {"schedule_type": "crontab", "schedule": "0 * * * *"}
NOT_FOUND = {"type": "monitor_not_found"}


def hourly(**extra: Any) -> dict[str, Any]:
    return {**HOURLY, **extra}


def rejected_errors(events: list[Any]) -> list[dict[str, Any]]:
    found = of_type(events, "event_rejected")
    assert len(found) == 1, events
    errors: list[dict[str, Any]] = found[0].errors
    return errors


def invalid_config(**errors: list[str]) -> dict[str, Any]:
    return {"type": "monitor_invalid_config", "errors": errors}


# --- slugs ------------------------------------------------------------------------------


def test_a_check_in_whose_slug_slugifies_to_nothing_is_an_invalid_event() -> None:
    """Relay drops an empty slug (spec §2.2); no monitor "" is ever created."""
    run = Run()

    errors = rejected_errors(run.checkin(T, "ok", slug="日本語", config=HOURLY))

    assert [e["type"] for e in errors] == ["invalid_event"]
    assert "slug" in errors[0]["message"]
    assert run.p.monitors == {}


def test_an_api_event_whose_slug_slugifies_to_nothing_is_an_invalid_event() -> None:
    run = Run()

    errors = rejected_errors(run.configure(T, HOURLY, slug="!!! ---"))

    assert [e["type"] for e in errors] == ["invalid_event"]
    assert run.p.monitors == {}


def test_a_unicode_slug_is_folded_to_ascii_and_found_again_by_its_slug() -> None:
    run = Run()
    run.checkin(T, "ok", slug="Crème Brûlée", config=HOURLY)

    events = run.checkin(T + minutes(1), "ok", slug="creme-brulee")

    assert errors_of(events) == []
    assert list(run.p.monitors) == [("acme", "creme-brulee")]
    assert len(run.checkins("creme-brulee")) == 2


def test_a_long_slug_is_cut_to_50_characters_and_both_forms_find_the_monitor() -> None:
    run = Run()
    long = "nightly-" + "x" * 60
    run.checkin(T, "ok", slug=long, config=HOURLY)
    slug = ("nightly-" + "x" * 60)[:50]

    run.checkin(T + minutes(1), "ok", slug=slug)
    run.checkin(T + minutes(2), "ok", slug=long.upper())

    assert list(run.p.monitors) == [("acme", slug)]
    assert len(run.checkins(slug)) == 3


def test_an_upserted_monitor_is_named_after_its_slugified_slug() -> None:
    run = Run()

    (created,) = of_type(run.checkin(T, "ok", slug="My Job", config=HOURLY), "monitor_created")

    assert (created.monitor_slug, created.name) == ("my-job", "my-job")


# --- upsert: what it creates, changes and keeps ------------------------------------------


def test_upsert_clamps_a_huge_margin_and_the_deadline_uses_the_clamped_margin() -> None:
    run = Run()

    run.checkin(T, "ok", config=hourly(checkin_margin=99_999, max_runtime=10**9))

    config = run.p.monitors[("acme", "job")].config
    assert (config.checkin_margin, config.max_runtime) == (MAX_MARGIN, MAX_TIMEOUT)
    assert run.env().next_checkin == T + minutes(60)
    assert run.env().next_checkin_latest == T + minutes(60 + MAX_MARGIN)


def test_upsert_clamps_a_huge_runtime_and_a_run_times_out_28_days_after_its_start() -> None:
    run = Run()

    run.checkin(T + timedelta(seconds=40), "in_progress", config=hourly(max_runtime=50_000.5))

    (checkin,) = run.checkins()
    assert checkin.timeout_at == T + minutes(MAX_TIMEOUT)


def test_the_api_does_not_clamp_a_runtime_above_the_cap() -> None:
    run = Run()

    errors = rejected_errors(run.configure(T, hourly(max_runtime=50_000)))

    assert errors == [
        invalid_config(max_runtime=["Ensure this value is less than or equal to 40320."])
    ]


def test_defaults_margin_1_runtime_30_when_the_upsert_sends_nulls() -> None:
    run = Run()
    config = hourly(checkin_margin=None, max_runtime=None, timezone=None)

    run.checkin(T, "ok", config=config)
    run.checkin(T + minutes(5), "in_progress", id=guid(2), config=config)

    assert run.env().next_checkin_latest == T + minutes(61)
    assert run.find(guid(2)).timeout_at == T + minutes(35)


def test_an_upsert_margin_of_0_means_1_minute_and_is_stored_as_1() -> None:
    run = Run()

    (created,) = of_type(run.checkin(T, "ok", config=hourly(checkin_margin=0)), "monitor_created")

    assert created.config["checkin_margin"] == 1
    assert run.env().next_checkin_latest == T + minutes(61)


def test_an_upsert_that_leaves_keys_out_keeps_them_on_the_monitor() -> None:
    run = Run()
    run.checkin(
        T,
        "ok",
        config=hourly(
            timezone="Europe/Berlin", checkin_margin=7, failure_issue_threshold=3, max_runtime=9
        ),
    )

    events = run.checkin(
        T + minutes(1), "ok", config={"schedule_type": "crontab", "schedule": "0 15 * * *"}
    )

    (updated,) = of_type(events, "monitor_updated")
    assert updated.config == {
        "schedule_type": "crontab",
        "schedule": "0 15 * * *",
        "checkin_margin": 7,
        "max_runtime": 9,
        "timezone": "Europe/Berlin",
        "failure_issue_threshold": 3,
        "recovery_threshold": None,
        "alert_rule_id": None,
    }
    # 15:00 in Berlin (CEST, UTC+2) is 13:00 UTC; the kept margin follows it.
    assert run.env().next_checkin == T + minutes(60)
    assert run.env().next_checkin_latest == T + minutes(67)


def test_an_upsert_does_not_re_time_runs_that_are_already_in_progress() -> None:
    """Only an API edit of max_runtime re-times running check-ins (spec §8.25); an upsert
    merges the config and the next run uses it."""
    run = Run()
    run.checkin(T, "in_progress", id=guid(1), config=hourly(max_runtime=10))

    run.checkin(T + minutes(1), "in_progress", id=guid(2), config=hourly(max_runtime=60))

    assert run.find(guid(1)).timeout_at == T + minutes(10)
    assert run.find(guid(2)).timeout_at == T + minutes(61)


def test_an_identical_upsert_emits_no_monitor_updated() -> None:
    run = Run()
    run.checkin(T, "ok", config=hourly(checkin_margin=5))

    events = run.checkin(T + minutes(1), "ok", config=hourly(checkin_margin=5))

    assert of_type(events, "monitor_updated") == []


def test_schedule_type_sent_as_a_number_is_output_as_its_name() -> None:
    run = Run()
    config = {"schedule_type": 2, "schedule": [90, "minute"], "failure_issue_threshold": "3"}

    (created,) = of_type(run.checkin(T, "ok", config=config), "monitor_created")

    assert created.config["schedule_type"] == "interval"
    assert created.config["schedule"] == [90, "minute"]
    assert created.config["failure_issue_threshold"] == 3
    assert run.env().next_checkin == T + minutes(90)


def test_an_empty_monitor_config_is_no_upsert() -> None:
    run = Run()

    assert rejected_errors(run.checkin(T, "ok", config={})) == [NOT_FOUND]


def test_an_upsert_of_only_an_owner_is_an_invalid_config() -> None:
    run = Run()

    errors = rejected_errors(run.checkin(T, "ok", config={"owner": "user:1"}))

    assert errors == [invalid_config(schedule=["This field is required."]), NOT_FOUND]


# --- which rejection: several things wrong ------------------------------------------------


def test_a_bad_guid_is_reported_before_a_bad_config() -> None:
    run = Run()

    errors = rejected_errors(run.checkin(T, "ok", id="nope", config={"schedule": 5}))

    assert errors == [{"type": "checkin_invalid_guid"}]


def test_a_bad_status_is_reported_before_a_bad_config() -> None:
    run = Run()

    errors = rejected_errors(run.checkin(T, "done", config={"schedule": 5}))

    assert [e["type"] for e in errors] == ["checkin_validation_failed"]


def test_an_invalid_config_of_a_new_monitor_is_reported_before_a_bad_environment() -> None:
    run = Run()

    errors = rejected_errors(
        run.checkin(T, "ok", env="e" * 65, config=hourly(recovery_threshold=0))
    )

    assert errors == [
        invalid_config(recovery_threshold=["Ensure this value is greater than or equal to 1."]),
        NOT_FOUND,
    ]


def test_an_invalid_config_of_an_existing_monitor_is_ignored_and_the_environment_judged() -> None:
    run = Run()
    run.checkin(T, "ok", config=HOURLY)

    errors = rejected_errors(
        run.checkin(T + minutes(1), "ok", env="e" * 65, config=hourly(recovery_threshold=0))
    )

    assert errors == [
        {"type": "monitor_invalid_environment", "reason": "Environment name too long"}
    ]


def test_an_invalid_config_past_the_monitor_limit_is_reported_as_invalid_config() -> None:
    run = Run(Limits(max_monitors_per_project=1))
    run.checkin(T, "ok", slug="a", config=HOURLY)

    errors = rejected_errors(run.checkin(T + minutes(1), "ok", slug="b", config={"schedule": 5}))

    assert errors == [invalid_config(schedule_type=["Missing or invalid schedule type"]), NOT_FOUND]


def test_an_api_create_past_the_monitor_limit_is_refused_with_the_limit_message() -> None:
    run = Run(Limits(max_monitors_per_project=1))
    run.configure(T, HOURLY, slug="a")

    assert rejected_errors(run.configure(T + minutes(1), HOURLY, slug="b")) == [
        {
            "type": "monitor_limit_exceeded",
            "reason": "You may not exceed 1 monitors per organization",
        }
    ]
    assert rejected_errors(run.configure(T + minutes(2), {"schedule": 5}, slug="c")) == [
        invalid_config(schedule_type=["Missing or invalid schedule type"])
    ]


def test_a_field_error_in_an_upsert_hides_the_bad_schedule_as_in_sentry() -> None:
    run = Run()
    config = {"schedule_type": "crontab", "schedule": "@reboot", "timezone": "Mars/Base"}

    errors = rejected_errors(run.checkin(T, "ok", config=config))

    assert errors == [invalid_config(timezone=['"Mars/Base" is not a valid choice.']), NOT_FOUND]
