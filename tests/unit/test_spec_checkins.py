"""Check-in processing, rule by rule against the spec (§1.4, §2.3-2.10, §8.25) as amended by
domain.md: each test quotes the rule it checks. T is 2024-05-01 12:00 UTC; `received`
defaults to the entry's broker time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from dsl import Run, T, guid, minutes, of_type

from monitor_es.domain.config import validate_config
from monitor_es.domain.partition import Limits
from monitor_es.domain.schedule import CrontabSchedule

HOURLY = {"schedule_type": "crontab", "schedule": "0 * * * *"}
EVERY_TEN_MINUTES = {"schedule_type": "interval", "schedule": [10, "minute"]}
SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def secs(n: float) -> timedelta:
    return timedelta(seconds=n)


def hourly(**extra: Any) -> dict[str, Any]:
    return {**HOURLY, **extra}


def rejections(events: list[Any]) -> list[list[dict[str, Any]]]:
    """The errors of every `event_rejected` among the events."""
    return [e.errors for e in of_type(events, "event_rejected")]


def error_types(events: list[Any]) -> list[str]:
    return [str(err["type"]) for errors in rejections(events) for err in errors]


# --- §1.4 / §2.3 step 11: environment names ---------------------------------------------------


@pytest.mark.parametrize("name", ["eu/west", "prod\n", "a\fb", "e" * 65])
def test_every_refused_environment_name_is_reported_as_too_long(name: str) -> None:
    """§1.4 ensure_environment: "a name rejected by Sentry's generic Environment name check
    ... ⇒ MonitorEnvironmentValidationFailed("Environment name too long")"; §2.3 step 11:
    "bad name → MONITOR_INVALID_ENVIRONMENT ("Environment name too long")". Sentry's check
    also refuses "\\n", "\\r", "\\f" and "/", with that same reason."""
    run = Run()
    events = run.checkin(T, "ok", env=name, config=HOURLY)
    assert rejections(events) == [
        [{"type": "monitor_invalid_environment", "reason": "Environment name too long"}]
    ]
    assert run.p.environment(("acme", "job", name)) is None


def test_an_invalid_environment_name_is_reported_before_the_environment_limit() -> None:
    """§2.3 step 11 / §1.4: ensure_environment checks the name before it creates (and counts)
    the environment, so a bad name at the limit is monitor_invalid_environment."""
    run = Run(Limits(max_environments_per_monitor=1))
    run.checkin(T, "ok", config=HOURLY)
    assert error_types(run.checkin(T + secs(1), "ok", env="x" * 65)) == [
        "monitor_invalid_environment"
    ]
    assert error_types(run.checkin(T + secs(2), "ok", env="staging")) == [
        "monitor_environment_limit_exceeded"
    ]


# --- §2.3 order of the steps ------------------------------------------------------------------


def test_upsert_on_a_disabled_monitor_merges_the_config_before_the_check_in_is_refused() -> None:
    """§2.3: step 6 (monitor lookup / upsert, §2.4) runs before step 10 ("Monitor DISABLED →
    MONITOR_DISABLED"): the config is merged, the check-in itself is rejected."""
    run = Run()
    run.checkin(T, "ok", config=hourly(checkin_margin=5))
    run.disable(T + secs(10), True)
    events = run.checkin(T + secs(20), "ok", id=guid(9), config=hourly(checkin_margin=7))
    assert error_types(events) == ["monitor_disabled"]
    assert run.p.monitors[("acme", "job")].config.checkin_margin == 7
    assert all(c.id != guid(9) for c in run.checkins())


def test_an_environment_mismatch_is_found_after_the_environment_name_is_checked() -> None:
    """§2.3: step 11 (environment) precedes step 12 (find the check-in, §2.5 mismatch)."""
    run = Run()
    run.checkin(T, "in_progress", id=guid(1), config=HOURLY)
    assert error_types(run.checkin(T + secs(5), "ok", id=guid(1), env="bad/name")) == [
        "monitor_invalid_environment"
    ]
    assert error_types(run.checkin(T + secs(6), "ok", id=guid(1), env="staging")) == [
        "checkin_environment_mismatch"
    ]


# --- §2.6 creation -----------------------------------------------------------------------------


def test_a_new_run_times_out_by_the_runtime_its_own_upsert_just_set() -> None:
    """§2.3: the upsert (step 6) precedes creation (step 12); §2.6: `timeout_at` = start minute
    + `max_runtime` of the monitor's (now updated) config."""
    run = Run()
    run.checkin(T, "ok", config=hourly(max_runtime=10))
    (created,) = of_type(
        run.checkin(T + minutes(5) + secs(30), "in_progress", config=hourly(max_runtime=3)),
        "check_in_created",
    )
    assert created.timeout_at == T + minutes(8)


# --- §2.7 environment update -------------------------------------------------------------------


def test_error_moves_next_checkin_from_its_receive_time_even_behind_last_checkin() -> None:
    """§2.7 ERROR (not superseded by a newer OK/ERROR): `next_checkin := next_schedule(
    start_time)`, unconditionally (only mark_ok has the `last_checkin <= succeeded_at`
    guard); domain.md: `last_checkin` never moves backwards."""
    run = Run()
    run.checkin(T + minutes(5), "in_progress", config=EVERY_TEN_MINUTES)  # next 12:15
    run.checkin(T + minutes(6), "error", received=T + minutes(2))
    env = run.env()
    assert env.next_checkin == T + minutes(12)
    assert env.last_checkin == T + minutes(5)
    assert env.status == "failed"


def test_ok_received_before_the_last_check_in_leaves_the_next_expected_time_alone() -> None:
    """§4.4 mark_ok step 2: times are updated only "if env.last_checkin is NULL or
    env.last_checkin <= succeeded_at" (succeeded_at = this message's start_time)."""
    run = Run()
    run.checkin(T + minutes(5), "in_progress", config=EVERY_TEN_MINUTES)  # next 12:15
    run.checkin(T + minutes(6), "ok", received=T + minutes(2))
    env = run.env()
    assert (env.next_checkin, env.last_checkin) == (T + minutes(15), T + minutes(5))
    assert env.status == "ok"  # domain.md: an accepted ok check-in sets ok


def test_error_closing_a_timed_out_run_takes_the_success_path_not_the_failure_path() -> None:
    """§2.3 step 14: "anything else (OK, IN_PROGRESS, or a TIMEOUT/UNKNOWN row that was just
    updated) → mark_ok"; §2.8 step 9: continue "using the row's resulting status" (TIMEOUT is
    sticky, §8.12): a late error adds no failure and refreshes next_checkin."""
    run = Run()
    run.checkin(T + secs(10), "in_progress", id=guid(1), config={
        **EVERY_TEN_MINUTES, "max_runtime": 2
    })  # fmt: skip
    run.pulse(T + minutes(2))
    occurrences = len(of_type(run.events, "issue_occurrence"))
    events = run.checkin(T + minutes(3) + secs(30), "error", id=guid(1))
    assert error_types(events) == []
    assert run.find(guid(1)).status == "timeout"
    assert of_type(events, "issue_occurrence") == []
    assert len(of_type(run.events, "issue_occurrence")) == occurrences
    assert run.env().status == "timeout"
    assert run.env().next_checkin == T + minutes(13)


# --- §2.8 updates of existing check-ins ---------------------------------------------------------


def test_second_close_with_an_invalid_implicit_duration_reports_both_errors() -> None:
    """§2.8: step 3 CHECKIN_FINISHED is "(collected)"; step 4 computes `abs(start_time −
    date_added)` when none was sent and the row has none; step 5 invalid (> 2 147 483 647 ms)
    → CHECKIN_INVALID_DURATION {duration}; step 6 "Any collected error → raise"."""
    run = Run()
    run.checkin(T, "ok", id=guid(1), config=HOURLY)  # closed at creation, no duration
    late = T + timedelta(days=30)
    events = run.checkin(T + minutes(1), "error", id=guid(1), received=late)
    assert rejections(events) == [
        [
            {"type": "checkin_finished"},
            {"type": "checkin_invalid_duration", "duration": str(30 * 86_400_000)},
        ]
    ]
    assert run.find(guid(1)).status == "ok"


def test_second_close_with_a_valid_duration_is_only_finished() -> None:
    """§2.8 steps 3-6: with a duration that is valid only CHECKIN_FINISHED is collected."""
    run = Run()
    run.checkin(T, "ok", id=guid(1), config=HOURLY)
    events = run.checkin(T + minutes(1), "error", id=guid(1))
    assert rejections(events) == [[{"type": "checkin_finished"}]]


@pytest.mark.xfail(
    strict=True,
    reason="known limit (README): ids of check-ins pruned from the history are forgotten",
)
def test_closing_again_a_check_in_that_history_no_longer_keeps_is_still_finished() -> None:
    """§2.5: "Otherwise: the check-in with that guid (global lookup)"; §2.8 step 3 / §8.13:
    "closing twice → CHECKIN_FINISHED error, no change". domain.md keeps "recent check-ins"
    only, but an id that exists is never a new check-in: here the old ok run is replaced by a
    new error run with the same id, which opens an incident."""
    run = Run()
    run.checkin(T + secs(10), "ok", id=guid(1), config={**HOURLY, "schedule": "* * * * *"})
    for k in range(2, 9):
        run.checkin(T + minutes(k - 1) + secs(10), "ok", id=guid(k))
    events = run.checkin(T + minutes(7) + secs(20), "error", id=guid(1))
    assert error_types(events) == ["checkin_finished"]
    assert of_type(events, "check_in_created") == []
    assert run.env().incident is None


def test_closing_clears_the_timeout_so_the_run_never_times_out() -> None:
    """§2.8 step 8: `timeout_at` is "NULL for terminal statuses"."""
    run = Run()
    run.checkin(T + secs(10), "in_progress", id=guid(1), config=hourly(max_runtime=2))
    run.checkin(T + minutes(1), "ok", id=guid(1))
    assert run.find(guid(1)).timeout_at is None
    assert of_type(run.pulse(T + minutes(5)), "mark_timeout") == []
    assert run.find(guid(1)).status == "ok"


def test_a_duration_sent_with_in_progress_is_never_stored() -> None:
    """domain.md: "A duration is set only by a closing message (sent or computed at close),
    never by a heartbeat" (Sentry stores any truthy duration, §2.6 and §2.8 step 8). Neither
    the opening message, a heartbeat nor an out-of-order in_progress sets one."""
    run = Run()
    run.checkin(T + secs(10), "in_progress", id=guid(1), config=HOURLY, duration=5)
    assert run.find(guid(1)).duration_ms is None
    run.checkin(T + minutes(2), "in_progress", id=guid(1), duration=7)
    assert run.find(guid(1)).duration_ms is None
    run.checkin(T + minutes(3) + secs(10), "ok", id=guid(1))
    assert run.find(guid(1)).duration_ms == 180_000  # computed at close, from the start

    run.checkin(T + minutes(5), "ok", id=guid(2))  # created closed, no duration
    events = run.checkin(T + minutes(5) + secs(1), "in_progress", id=guid(2), duration=9,
                         received=T + minutes(4))  # fmt: skip
    assert of_type(events, "event_rejected") == []
    checkin = run.find(guid(2))
    assert (checkin.status, checkin.duration_ms) == ("ok", None)
    assert checkin.date_in_progress == T + minutes(4)


def test_heartbeat_timeout_uses_the_current_config_not_the_one_at_creation() -> None:
    """§2.8 step 8: for IN_PROGRESS heartbeats `min(trunc_minute(start_time) + max_runtime,
    ...)` "using the **current** monitor config (not the snapshot)"."""
    run = Run()
    run.checkin(T + secs(10), "in_progress", id=guid(1), config=hourly(max_runtime=10))
    run.checkin(T + minutes(2), "in_progress", id=guid(1), config=hourly(max_runtime=30))
    assert run.find(guid(1)).timeout_at == T + minutes(32)


def test_a_timed_out_run_can_be_closed_twice_and_keeps_its_first_duration() -> None:
    """§2.8 step 2-3: a TIMEOUT row is not "already_user_complete", so a second close is no
    CHECKIN_FINISHED; step 4: a duration is computed only when "the row has no duration yet";
    step 8: duration set only "if truthy"."""
    run = Run()
    run.checkin(T + secs(10), "in_progress", id=guid(1), config=hourly(max_runtime=2))
    run.pulse(T + minutes(2))
    run.checkin(T + minutes(3), "ok", id=guid(1))  # 170 s
    events = run.checkin(T + minutes(4), "error", id=guid(1))
    assert error_types(events) == []
    checkin = run.find(guid(1))
    assert (checkin.status, checkin.duration_ms) == ("timeout", 170_000)
    assert checkin.date_updated == T + minutes(4)


# --- §2.10 config validation --------------------------------------------------------------------


@pytest.mark.parametrize("alias", ["@DAILY", "@Hourly", "@weeklY"])
def test_an_alias_not_written_in_lower_case_is_not_parseable(alias: str) -> None:
    """§2.10: "`@daily` → `0 0 * * *`, `@hourly` → `0 * * * *` ..., other `@…` invalid
    ("Schedule was not parseable")". Sentry looks the alias up exactly as sent."""
    assert validate_config({"schedule_type": "crontab", "schedule": alias}) == {
        "schedule": ["Schedule was not parseable"]
    }


def test_an_upsert_with_an_upper_case_alias_creates_no_monitor() -> None:
    """§2.4/§2.3 step 8: invalid config and no monitor → MONITOR_INVALID_CONFIG +
    MONITOR_NOT_FOUND."""
    run = Run()
    events = run.checkin(T, "ok", config={"schedule_type": "crontab", "schedule": "@DAILY"})
    assert error_types(events) == ["monitor_invalid_config", "monitor_not_found"]
    assert run.p.monitors == {}


# --- §8.25 API config edits ---------------------------------------------------------------------


def test_a_time_zone_edit_alone_does_not_recompute_the_next_check_in() -> None:
    """§8.25: an API edit recomputes next_checkin/latest only when "changing the schedule";
    a margin edit recomputes latest, a runtime edit timeouts. The time zone is none of these
    (Sentry compares `schedule_type` and `schedule` only)."""
    run = Run()
    run.checkin(T + secs(10), "ok", config=HOURLY)  # next 13:00, latest 13:01
    events = run.configure(T + minutes(20), hourly(timezone="Asia/Kolkata"))
    assert of_type(events, "event_rejected") == []
    assert run.p.monitors[("acme", "job")].config.timezone == "Asia/Kolkata"
    assert (run.env().next_checkin, run.env().next_checkin_latest) == (
        T + minutes(60),
        T + minutes(61),
    )


def test_a_schedule_edit_recomputes_every_environment_of_the_monitor() -> None:
    """§8.25: "changing the schedule recomputes next_checkin/latest for every environment from
    the wall-clock now" (the edit event's time in monitor-es)."""
    run = Run()
    run.checkin(T + secs(10), "ok", config=HOURLY)
    run.checkin(T + secs(20), "ok", env="staging")
    run.configure(T + minutes(7), {"schedule_type": "crontab", "schedule": "*/5 * * * *"})
    for name in ("production", "staging"):
        env = run.env(name=name)
        assert (env.next_checkin, env.next_checkin_latest) == (T + minutes(10), T + minutes(11))


def test_a_schedule_edit_starts_expecting_an_environment_that_never_checked_in() -> None:
    """§8.25: a schedule change recomputes next/latest "for every environment ... (and sets
    `last_checkin = now` where it was null)". An environment exists without any check-in
    when its first check-in was refused after it was created (§2.3 step 11 before step 12)."""
    run = Run()
    run.checkin(T + secs(10), "ok", id=guid(1), config=HOURLY)
    refused = run.checkin(T + secs(20), "ok", id=guid(1), env="staging")
    assert [e["type"] for e in of_type(refused, "event_rejected")[0].errors] == [
        "checkin_environment_mismatch"
    ]
    staging = run.env(name="staging")
    assert (staging.last_checkin, staging.next_checkin) == (None, None)

    run.configure(
        T + minutes(7) + secs(30), {"schedule_type": "crontab", "schedule": "*/5 * * * *"}
    )

    assert staging.last_checkin == T + minutes(7) + secs(30)
    assert (staging.next_checkin, staging.next_checkin_latest) == (T + minutes(10), T + minutes(11))
    assert run.env().last_checkin == T + secs(10)  # only a null one is set
    missed = of_type(run.pulse(T + minutes(11)), "check_in_created")
    assert sorted((c.environment, c.date_added) for c in missed) == [
        ("production", T + minutes(10)),
        ("staging", T + minutes(10)),
    ]


def test_setting_an_unset_runtime_to_30_re_times_a_heartbeat_extended_run() -> None:
    """§8.25: "changing `max_runtime` recomputes `timeout_at = trunc(date_added) + new runtime`
    for all IN_PROGRESS check-ins" — unset → 30 is a change of the stored value (Sentry
    compares the stored values), even though 30 is also the default."""
    run = Run()
    run.configure(T, HOURLY)
    run.checkin(T + secs(10), "in_progress", id=guid(1))
    run.checkin(T + minutes(20), "in_progress", id=guid(1))  # heartbeat: 12:50
    assert run.find(guid(1)).timeout_at == T + minutes(50)
    run.configure(T + minutes(21), hourly(max_runtime=30))
    assert run.find(guid(1)).timeout_at == T + minutes(30)


def test_an_edit_that_leaves_the_runtime_unchanged_keeps_heartbeat_extensions() -> None:
    """§8.25: only a changed `max_runtime` re-times running check-ins."""
    run = Run()
    run.configure(T, hourly(max_runtime=30))
    run.checkin(T + secs(10), "in_progress", id=guid(1))
    run.checkin(T + minutes(20), "in_progress", id=guid(1))
    run.configure(T + minutes(21), hourly(max_runtime=30, checkin_margin=5))
    assert run.find(guid(1)).timeout_at == T + minutes(50)


def test_an_edit_without_a_schedule_changes_only_what_it_names() -> None:
    """§8.25 with Sentry's partial validation of an edit: `{"checkin_margin": 5}` keeps the
    schedule and the rest of the config, and "changing `checkin_margin` recomputes every
    environment's `next_checkin_latest`"."""
    run = Run()
    run.configure(T, hourly(max_runtime=20, timezone="Europe/Paris"))
    run.checkin(T + secs(10), "ok")
    events = run.configure(T + minutes(5), {"checkin_margin": 5})
    assert of_type(events, "event_rejected") == []
    config = run.p.monitors[("acme", "job")].config
    assert (config.checkin_margin, config.max_runtime, config.timezone) == (5, 20, "Europe/Paris")
    assert config.schedule == CrontabSchedule(expr="0 * * * *")
    assert (run.env().next_checkin, run.env().next_checkin_latest) == (
        T + minutes(60),
        T + minutes(65),
    )


def test_an_edit_without_a_schedule_is_validated_field_by_field() -> None:
    """§2.10 on an edit: a bad value is rejected with its message and changes nothing."""
    run = Run()
    run.configure(T, HOURLY)
    events = run.configure(T + minutes(1), {"max_runtime": 0})
    assert rejections(events) == [
        [
            {
                "type": "monitor_invalid_config",
                "errors": {"max_runtime": ["Ensure this value is greater than or equal to 1."]},
            }
        ]
    ]
    assert run.p.monitors[("acme", "job")].config.max_runtime is None


def test_a_new_monitor_needs_its_schedule() -> None:
    """§2.10: `schedule` is required when the monitor is created."""
    run = Run()
    events = run.configure(T, {"checkin_margin": 5})
    assert error_types(events) == ["monitor_invalid_config"]
    assert ("acme", "job") not in run.p.monitors


# --- the same through `monitor-es simulate FILE --json` -----------------------------------------


def test_simulate_json_reports_the_audited_rejections_with_their_details() -> None:
    """domain.md "monitor-es simulate": `rejected` rows carry each typed error with its
    details; spec §2.3 step 11 (reason), §2.8 steps 3-6 (collected errors), §2.10 (alias)."""
    script = Path(sys.executable).with_name("monitor-es")
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "monitor_es.cli"]
    env = {k: v for k, v in os.environ.items() if k != "MONITOR_ES_REDIS_URL"}
    path = SCENARIOS / "collected_rejections.jsonl"
    done = subprocess.run(
        [*cli, "simulate", str(path), "--json"],
        capture_output=True, text=True, timeout=30, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["rejected"] == [
        {
            "line": 6,
            "errors": [
                {"type": "monitor_invalid_environment", "reason": "Environment name too long"}
            ],
        },
        {
            "line": 7,
            "errors": [
                {"type": "checkin_finished"},
                {"type": "checkin_invalid_duration", "duration": "2592000000"},
            ],
        },
        {
            "line": 8,
            "errors": [
                {
                    "type": "monitor_invalid_config",
                    "errors": {"schedule": ["Schedule was not parseable"]},
                },
                {"type": "monitor_not_found"},
            ],
        },
    ]
    assert [(e["environment"], e["next_checkin"]) for e in doc["environments"]] == [
        ("production", "2024-05-01T13:00:00Z")  # the time-zone edit moved nothing
    ]


def test_a_sent_slug_ending_in_underscore_names_the_monitor_slugify_gives_it() -> None:
    """§2.1: the 50-character cut keeps a trailing "_" ("a"*49 + "_b" -> "a"*49 + "_"), but
    slugify strips one from a sent slug: a check-in sent with the stored slug itself names
    the monitor "a"*49, as Sentry would find it (and as the producer routes it), not the
    monitor whose stored slug it spells."""
    run = Run()
    long_slug = "a" * 49 + "_b"
    run.checkin(T + secs(10), "ok", slug=long_slug, config=HOURLY)
    assert [m.slug for m in run.p.monitors.values()] == ["a" * 49 + "_"]
    events = run.checkin(T + secs(20), "ok", slug="a" * 49 + "_", config=HOURLY)
    assert [e.monitor_slug for e in of_type(events, "monitor_created")] == ["a" * 49]
    [created] = of_type(events, "check_in_created")
    assert created.monitor_slug == "a" * 49
