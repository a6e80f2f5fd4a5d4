"""Monitor config: validation (spec §2.10), upsert clamp and merge (§2.4, §1.3), slugs (§2.1)."""

from __future__ import annotations

import string
import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor_es.domain.config import (
    MAX_ENVIRONMENT_NAME_LENGTH,
    MAX_MARGIN,
    MAX_SLUG_LENGTH,
    MAX_THRESHOLD,
    MAX_TIMEOUT,
    MonitorConfig,
    config_to_json,
    merge_config,
    normalise_environment,
    slugify,
    validate_config,
    validate_environment_name,
)
from monitor_es.domain.schedule import (
    CrontabSchedule,
    IntervalSchedule,
    IntervalUnit,
    Schedule,
    next_expected,
    parse_crontab,
)

HOURLY = CrontabSchedule(expr="0 * * * *")
UNITS: list[IntervalUnit] = ["minute", "hour", "day", "week", "month", "year"]
BASE: dict[str, Any] = {"schedule_type": "crontab", "schedule": "0 * * * *"}

REQUIRED = "This field is required."
NOT_NULL = "This field may not be null."
INVALID_INT = "A valid integer is required."
MISSING_TYPE = "Missing or invalid schedule type"


def ge(limit: int) -> str:
    return f"Ensure this value is greater than or equal to {limit}."


def le(limit: int) -> str:
    return f"Ensure this value is less than or equal to {limit}."


def config(**fields: Any) -> MonitorConfig:
    return MonitorConfig(**{"schedule": HOURLY, **fields})


def with_base(**fields: Any) -> dict[str, Any]:
    return {**BASE, **fields}


# ------------------------------------------------------------------------ schedules

SCHEDULE_ROWS = [
    pytest.param(BASE, HOURLY, id="crontab-by-name"),
    pytest.param({"schedule_type": 1, "schedule": "0 * * * *"}, HOURLY, id="crontab-by-number"),
    pytest.param(
        {"schedule_type": "interval", "schedule": [5, "minute"]},
        IntervalSchedule(count=5, unit="minute"),
        id="interval-by-name",
    ),
    pytest.param(
        {"schedule_type": 2, "schedule": [2, "hour"]},
        IntervalSchedule(count=2, unit="hour"),
        id="interval-by-number",
    ),
    pytest.param(
        {"schedule": {"type": "crontab", "value": "13 * * * *"}},
        CrontabSchedule(expr="13 * * * *"),
        id="crontab-object-needs-no-schedule-type",
    ),
    pytest.param(
        {"schedule": {"type": "interval", "value": 5, "unit": "day"}},
        IntervalSchedule(count=5, unit="day"),
        id="interval-object-needs-no-schedule-type",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": {"type": "interval", "value": 2, "unit": "week"}},
        IntervalSchedule(count=2, unit="week"),
        id="object-type-wins-over-schedule-type",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": {"value": "0 0 * * *"}},
        CrontabSchedule(expr="0 0 * * *"),
        id="object-without-type-uses-schedule-type",
    ),
    pytest.param(
        {"schedule_type": "interval", "schedule": {"value": 3, "unit": "month"}},
        IntervalSchedule(count=3, unit="month"),
        id="interval-object-without-type",
    ),
    *(
        pytest.param(
            {"schedule_type": "crontab", "schedule": expr}, CrontabSchedule(expr=expr), id=expr
        )
        for expr in [
            "*/100 * * * *",
            "5/15 * * * *",
            "1-5/2 0 * * *",
            "0 0 L * *",
            "0 0 1,15,L * *",
            "0 0 * * 5#2",
            "0 0 * * SUN#1",
            "0 0 * * 5L",
            "0 0 * * 5l,1",
            "0 0 LW * *",
            "0 0 LW,15 * MON",
            "0 0 * jan-Mar *",
            "0 0 * * 0-7",
            "00 00 * * *",
        ]
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "  0 \t *  * * *\n"},
        HOURLY,
        id="crontab-whitespace-collapsed",
    ),
    *(
        pytest.param(
            {"schedule_type": "crontab", "schedule": alias}, CrontabSchedule(expr=expr), id=alias
        )
        for alias, expr in [
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
            ("@monthly", "0 0 1 * *"),
            ("@weekly", "0 0 * * 0"),
            ("@daily", "0 0 * * *"),
            ("@hourly", "0 * * * *"),
        ]
    ),
    *(
        pytest.param(
            {"schedule_type": "interval", "schedule": [1, unit]},
            IntervalSchedule(count=1, unit=unit),
            id=f"interval-unit-{unit}",
        )
        for unit in UNITS
    ),
]


@pytest.mark.parametrize(("raw", "schedule"), SCHEDULE_ROWS)
def test_valid_schedule_forms_are_accepted_and_normalised(
    raw: dict[str, Any], schedule: Schedule
) -> None:
    assert validate_config(raw) == MonitorConfig(schedule=schedule)


SCHEDULE_ERROR_ROWS = [
    pytest.param({"schedule_type": "crontab"}, {"schedule": [REQUIRED]}, id="schedule-missing"),
    pytest.param(
        {"schedule_type": "crontab", "schedule": None}, {"schedule": [NOT_NULL]}, id="null"
    ),
    pytest.param(
        {"schedule": "0 * * * *"}, {"schedule_type": [MISSING_TYPE]}, id="type-missing-for-string"
    ),
    pytest.param(
        {"schedule": [5, "minute"]}, {"schedule_type": [MISSING_TYPE]}, id="type-missing-for-list"
    ),
    pytest.param(
        {"schedule": {"value": "0 * * * *"}},
        {"schedule_type": [MISSING_TYPE]},
        id="type-missing-for-object",
    ),
    pytest.param(
        {"schedule": {"type": "weekly", "value": "0 * * * *"}},
        {"schedule_type": [MISSING_TYPE]},
        id="object-type-unknown",
    ),
    pytest.param(
        {"schedule_type": "cron", "schedule": "0 * * * *"},
        {"schedule_type": ['"cron" is not a valid choice.']},
        id="schedule-type-unknown",
    ),
    pytest.param(
        {"schedule_type": 3, "schedule": "0 * * * *"},
        {"schedule_type": ['"3" is not a valid choice.']},
        id="schedule-type-number-unknown",
    ),
    pytest.param(
        {"schedule_type": True, "schedule": "0 * * * *"},
        {"schedule_type": ['"True" is not a valid choice.']},
        id="schedule-type-bool-is-not-1",
    ),
    pytest.param(
        {"schedule_type": None, "schedule": "0 * * * *"},
        {"schedule_type": [NOT_NULL]},
        id="schedule-type-null",
    ),
    pytest.param(
        {"schedule_type": "interval", "schedule": "5 minute"},
        {"schedule": ["Invalid schedule for for 'interval' type"]},
        id="interval-not-a-list",
    ),
    pytest.param(
        {"schedule_type": "interval", "schedule": [5]},
        {"schedule": ["Invalid schedule for for 'interval' type"]},
        id="interval-one-element",
    ),
    pytest.param(
        {"schedule_type": "interval", "schedule": [5, "minute", "extra"]},
        {"schedule": ["Invalid schedule for for 'interval' type"]},
        id="interval-three-elements",
    ),
    pytest.param(
        {"schedule_type": "interval", "schedule": ["5", "minute"]},
        {"schedule": ["Invalid schedule for schedule unit count"]},
        id="interval-count-string",
    ),
    pytest.param(
        {"schedule_type": "interval", "schedule": [5.0, "minute"]},
        {"schedule": ["Invalid schedule for schedule unit count"]},
        id="interval-count-float",
    ),
    pytest.param(
        {"schedule_type": "interval", "schedule": [True, "minute"]},
        {"schedule": ["Invalid schedule for schedule unit count"]},
        id="interval-count-bool",
    ),
    pytest.param(
        {"schedule_type": "interval", "schedule": [2**63, "minute"]},
        {"schedule": ["Invalid schedule for schedule unit count"]},
        id="interval-count-beyond-int64",
    ),
    pytest.param(
        {"schedule_type": "interval", "schedule": [1_001, "year"]},
        {"schedule": ["Schedule is invalid"]},
        id="interval-beyond-a-thousand-years",
    ),
    pytest.param(
        {"schedule_type": "interval", "schedule": [525_960_001, "minute"]},
        {"schedule": ["Schedule is invalid"]},
        id="interval-minutes-beyond-a-thousand-years",
    ),
    pytest.param(
        {"schedule_type": "interval", "schedule": [0, "minute"]},
        {"schedule": ["Interval must be greater than zero"]},
        id="interval-count-zero",
    ),
    pytest.param(
        {"schedule_type": "interval", "schedule": [-3, "hour"]},
        {"schedule": ["Interval must be greater than zero"]},
        id="interval-count-negative",
    ),
    pytest.param(
        {"schedule_type": "interval", "schedule": [5, "fortnight"]},
        {"schedule": ["Invalid schedule for schedule unit name"]},
        id="interval-unit-unknown",
    ),
    pytest.param(
        {"schedule_type": "interval", "schedule": [5, "minutes"]},
        {"schedule": ["Invalid schedule for schedule unit name"]},
        id="interval-unit-plural",
    ),
    pytest.param(
        {"schedule": {"type": "interval", "value": 5}},
        {"schedule": ["Invalid schedule for schedule unit name"]},
        id="interval-object-without-unit",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": 5},
        {"schedule": ["Invalid schedule for 'crontab' type"]},
        id="crontab-not-a-string",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": [5, "minute"]},
        {"schedule": ["Invalid schedule for 'crontab' type"]},
        id="crontab-given-a-list",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "@reboot"},
        {"schedule": ["Schedule was not parseable"]},
        id="crontab-unknown-alias",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "0 * * * * *"},
        {"schedule": ["Only 5 field crontab syntax is supported"]},
        id="crontab-six-fields",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "* * 31 2 *"},
        {"schedule": ["Schedule is invalid"]},
        id="crontab-never-matches",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "0 * * * * * 2030"},
        {"schedule": ["Only 5 field crontab syntax is supported"]},
        id="crontab-seven-fields",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "@daily 5"},
        {"schedule": ["Schedule was not parseable"]},
        id="crontab-alias-with-a-field",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "@DAILY"},
        {"schedule": ["Schedule was not parseable"]},
        id="crontab-alias-upper-case",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "* * * *"},
        {"schedule": ["Schedule is invalid"]},
        id="crontab-four-fields",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": ""},
        {"schedule": ["Schedule is invalid"]},
        id="crontab-empty",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "   "},
        {"schedule": ["Schedule is invalid"]},
        id="crontab-blank",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "60 * * * *"},
        {"schedule": ["Schedule is invalid"]},
        id="crontab-minute-60",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "* 24 * * *"},
        {"schedule": ["Schedule is invalid"]},
        id="crontab-hour-24",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "* * 0 * *"},
        {"schedule": ["Schedule is invalid"]},
        id="crontab-day-0",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "* * * 13 *"},
        {"schedule": ["Schedule is invalid"]},
        id="crontab-month-13",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "* * * * 8"},
        {"schedule": ["Schedule is invalid"]},
        id="crontab-weekday-8",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "*/0 * * * *"},
        {"schedule": ["Schedule is invalid"]},
        id="crontab-step-0",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "5-1 * * * *"},
        {"schedule": ["Schedule is invalid"]},
        id="crontab-reversed-range",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "every hour please x"},
        {"schedule": ["Schedule is invalid"]},
        id="crontab-words",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "H * * * *"},
        {"schedule": ["Schedule is invalid"]},
        id="crontab-jenkins-hash",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "5-1 * * * *"},
        {"schedule": ["Schedule is invalid"]},
        id="crontab-reversed-range",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "0 0 ? * *"},
        {"schedule": ["Schedule is invalid"]},
        id="crontab-question-mark",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "0 0 15W * *"},
        {"schedule": ["Schedule is invalid"]},
        id="crontab-nearest-weekday",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "0 0 * * L5"},
        {"schedule": ["Schedule is invalid"]},
        id="crontab-croniter-last-weekday",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "+5 * * * *"},
        {"schedule": ["Schedule is invalid"]},
        id="crontab-signed-number",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "1,,2 * * * *"},
        {"schedule": ["Schedule is invalid"]},
        id="crontab-empty-list-item",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "0 0 * * FRI-MON"},
        {"schedule": ["Schedule is invalid"]},
        id="crontab-reversed-day-names",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "0 0 * * JAN"},
        {"schedule": ["Schedule is invalid"]},
        id="crontab-month-name-as-weekday",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "0 0 * * 1#6"},
        {"schedule": ["Schedule is invalid"]},
        id="crontab-sixth-weekday",
    ),
    pytest.param(
        {"schedule_type": "crontab", "schedule": "0 0 31 4 *"},
        {"schedule": ["Schedule is invalid"]},
        id="crontab-april-31",
    ),
]


@pytest.mark.parametrize(("raw", "errors"), SCHEDULE_ERROR_ROWS)
def test_invalid_schedules_are_rejected_with_sentrys_messages(
    raw: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    assert validate_config(raw) == errors


# -------------------------------------------------------------------- number fields

VALUE_ROWS = [
    pytest.param({}, config(), id="all-optional-fields-default-to-null"),
    pytest.param({"checkin_margin": 0}, config(checkin_margin=1), id="margin-0-becomes-1"),
    pytest.param({"checkin_margin": "0"}, config(checkin_margin=1), id="margin-string-0"),
    pytest.param({"checkin_margin": 1}, config(checkin_margin=1), id="margin-min"),
    pytest.param({"checkin_margin": MAX_MARGIN}, config(checkin_margin=MAX_MARGIN), id="m-max"),
    pytest.param({"checkin_margin": None}, config(), id="margin-null"),
    pytest.param({"checkin_margin": ""}, config(), id="margin-blank-is-null"),
    pytest.param({"checkin_margin": "15"}, config(checkin_margin=15), id="margin-numeric-string"),
    pytest.param({"checkin_margin": 15.0}, config(checkin_margin=15), id="margin-integral-float"),
    pytest.param({"max_runtime": 1}, config(max_runtime=1), id="runtime-min"),
    pytest.param({"max_runtime": MAX_TIMEOUT}, config(max_runtime=MAX_TIMEOUT), id="rt-max"),
    pytest.param({"max_runtime": None}, config(), id="runtime-null"),
    pytest.param({"failure_issue_threshold": 1}, config(failure_issue_threshold=1), id="f-min"),
    pytest.param({"failure_issue_threshold": 720}, config(failure_issue_threshold=720), id="f-max"),
    pytest.param({"recovery_threshold": 1}, config(recovery_threshold=1), id="recovery-min"),
    pytest.param({"recovery_threshold": 720}, config(recovery_threshold=720), id="recovery-max"),
    pytest.param({"recovery_threshold": None}, config(), id="recovery-null"),
    pytest.param({"alert_rule_id": 42}, config(alert_rule_id=42), id="alert-rule-id"),
    pytest.param({"alert_rule_id": None}, config(), id="alert-rule-id-null"),
    pytest.param({"timezone": "Europe/Berlin"}, config(timezone="Europe/Berlin"), id="tz"),
    pytest.param({"timezone": "UTC"}, config(timezone="UTC"), id="tz-utc"),
    pytest.param({"timezone": ""}, config(), id="tz-blank-is-dropped"),
    pytest.param({"timezone": None}, config(), id="tz-null"),
    pytest.param({"owner": "user:42"}, config(), id="owner-is-ignored"),
    pytest.param({"nonsense": [1, 2], "name": "x"}, config(), id="unknown-keys-are-ignored"),
]


@pytest.mark.parametrize(("extra", "expected"), VALUE_ROWS)
def test_valid_field_values_are_accepted(extra: dict[str, Any], expected: MonitorConfig) -> None:
    assert validate_config(with_base(**extra)) == expected


FIELD_ERROR_ROWS = [
    pytest.param("checkin_margin", -1, [ge(1)], id="margin-negative"),
    pytest.param("checkin_margin", MAX_MARGIN + 1, [le(MAX_MARGIN)], id="margin-too-large"),
    pytest.param("checkin_margin", "soon", [INVALID_INT], id="margin-text"),
    pytest.param("checkin_margin", True, [INVALID_INT], id="margin-bool-is-not-an-int"),
    pytest.param("checkin_margin", 1.5, [INVALID_INT], id="margin-fractional"),
    pytest.param("checkin_margin", [1], [INVALID_INT], id="margin-list"),
    pytest.param("checkin_margin", "1" * 1001, ["String value too large."], id="margin-huge-text"),
    pytest.param("max_runtime", 0, [ge(1)], id="runtime-zero"),
    pytest.param("max_runtime", MAX_TIMEOUT + 1, [le(MAX_TIMEOUT)], id="runtime-too-large"),
    pytest.param("max_runtime", False, [INVALID_INT], id="runtime-bool"),
    pytest.param("max_runtime", {"minutes": 5}, [INVALID_INT], id="runtime-object"),
    pytest.param("failure_issue_threshold", 0, [ge(1)], id="failure-zero"),
    pytest.param("failure_issue_threshold", MAX_THRESHOLD + 1, [le(720)], id="failure-721"),
    pytest.param("recovery_threshold", 0, [ge(1)], id="recovery-zero"),
    pytest.param("recovery_threshold", MAX_THRESHOLD + 1, [le(720)], id="recovery-721"),
    pytest.param("recovery_threshold", "many", [INVALID_INT], id="recovery-text"),
    pytest.param("alert_rule_id", "rule-1", [INVALID_INT], id="alert-rule-id-text"),
    pytest.param("alert_rule_id", True, [INVALID_INT], id="alert-rule-id-bool"),
    pytest.param("alert_rule_id", 2**63, [le(2**63 - 1)], id="alert-rule-id-beyond-int64"),
    pytest.param(
        "timezone", "Mars/Olympus_Mons", ['"Mars/Olympus_Mons" is not a valid choice.'], id="tz"
    ),
    pytest.param("timezone", "europe/berlin", ['"europe/berlin" is not a valid choice.'], id="c"),
    pytest.param("timezone", 5, ['"5" is not a valid choice.'], id="tz-number"),
    pytest.param("timezone", "localtime", ['"localtime" is not a valid choice.'], id="tz-host"),
    pytest.param("timezone", "Factory", ['"Factory" is not a valid choice.'], id="tz-factory"),
    pytest.param("timezone", "utc", ['"utc" is not a valid choice.'], id="tz-lower-case-utc"),
    pytest.param("timezone", " UTC", ['" UTC" is not a valid choice.'], id="tz-padded"),
    pytest.param("timezone", True, ['"True" is not a valid choice.'], id="tz-bool"),
    pytest.param("timezone", ["UTC"], ["\"['UTC']\" is not a valid choice."], id="tz-list"),
]


@pytest.mark.parametrize(("field", "value", "messages"), FIELD_ERROR_ROWS)
def test_invalid_field_values_are_rejected_with_drf_messages(
    field: str, value: object, messages: list[str]
) -> None:
    assert validate_config(with_base(**{field: value})) == {field: messages}


def test_every_invalid_field_is_reported_not_just_the_first() -> None:
    raw = {
        "schedule_type": "crontab",
        "schedule": "0 * * * *",
        "checkin_margin": -1,
        "max_runtime": "long",
        "timezone": "Nowhere/Land",
        "failure_issue_threshold": 0,
        "recovery_threshold": 721,
        "alert_rule_id": "x",
    }

    errors = validate_config(raw)

    assert errors == {
        "checkin_margin": [ge(1)],
        "max_runtime": [INVALID_INT],
        "timezone": ['"Nowhere/Land" is not a valid choice.'],
        "failure_issue_threshold": [ge(1)],
        "recovery_threshold": [le(720)],
        "alert_rule_id": [INVALID_INT],
    }
    assert isinstance(errors, dict)
    assert list(errors) == [  # ConfigValidator's field order
        "checkin_margin",
        "max_runtime",
        "timezone",
        "failure_issue_threshold",
        "recovery_threshold",
        "alert_rule_id",
    ]


@pytest.mark.parametrize(
    "schedule",
    [
        pytest.param({"schedule_type": "crontab", "schedule": "@reboot"}, id="unknown-alias"),
        pytest.param({"schedule_type": "crontab", "schedule": "* * 31 2 *"}, id="never-matches"),
        pytest.param({"schedule_type": "interval", "schedule": [0, "day"]}, id="zero-interval"),
        pytest.param({"schedule": "0 * * * *"}, id="schedule-type-missing"),
        pytest.param({"schedule": {"type": "weekly", "value": 1}}, id="object-type-unknown"),
    ],
)
def test_a_field_error_hides_what_is_wrong_with_the_schedule(schedule: dict[str, Any]) -> None:
    """DRF runs ConfigValidator.validate (the schedule checks) only when every field passed."""
    raw = {**schedule, "checkin_margin": -1, "timezone": "Nowhere/Land"}

    assert validate_config(raw) == {
        "checkin_margin": [ge(1)],
        "timezone": ['"Nowhere/Land" is not a valid choice.'],
    }


def test_a_missing_or_null_schedule_is_a_field_error_reported_with_the_others() -> None:
    assert validate_config({"schedule_type": "crontab", "max_runtime": 0}) == {
        "schedule": [REQUIRED],
        "max_runtime": [ge(1)],
    }
    assert validate_config({"schedule": None, "schedule_type": "hourly"}) == {
        "schedule_type": ['"hourly" is not a valid choice.'],
        "schedule": [NOT_NULL],
    }


def test_an_invalid_schedule_type_is_reported_once_without_judging_the_schedule() -> None:
    assert validate_config({"schedule_type": "cron", "schedule": 5, "max_runtime": 0}) == {
        "schedule_type": ['"cron" is not a valid choice.'],
        "max_runtime": [ge(1)],
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(None, NOT_NULL, id="null"),
        pytest.param([BASE], "Invalid data. Expected a dictionary, but got list.", id="list"),
        pytest.param("0 * * * *", "Invalid data. Expected a dictionary, but got str.", id="str"),
        pytest.param(5, "Invalid data. Expected a dictionary, but got int.", id="int"),
    ],
)
def test_a_config_that_is_not_an_object_is_a_non_field_error(raw: object, message: str) -> None:
    assert validate_config(raw) == {"non_field_errors": [message]}


# ---------------------------------------------------------------------------- clamp

CLAMP_ROWS = [
    pytest.param({"max_runtime": 50_000}, config(max_runtime=MAX_TIMEOUT), id="runtime"),
    pytest.param({"checkin_margin": 99_999}, config(checkin_margin=MAX_MARGIN), id="margin"),
    pytest.param({"max_runtime": 50_000.5}, config(max_runtime=MAX_TIMEOUT), id="runtime-float"),
    pytest.param({"max_runtime": MAX_TIMEOUT}, config(max_runtime=MAX_TIMEOUT), id="at-the-cap"),
    pytest.param({"max_runtime": 45}, config(max_runtime=45), id="below-the-cap-unchanged"),
]


@pytest.mark.parametrize(("extra", "expected"), CLAMP_ROWS)
def test_upsert_clamps_runtime_and_margin_above_the_cap(
    extra: dict[str, Any], expected: MonitorConfig
) -> None:
    assert validate_config(with_base(**extra), clamp=True) == expected


@pytest.mark.parametrize(
    ("field", "value", "messages"),
    [
        pytest.param("max_runtime", "50000", [le(MAX_TIMEOUT)], id="numeric-string-not-clamped"),
        pytest.param("max_runtime", 0, [ge(1)], id="below-minimum-still-rejected"),
        pytest.param("failure_issue_threshold", 721, [le(720)], id="thresholds-not-clamped"),
        pytest.param("recovery_threshold", 10_000, [le(720)], id="recovery-not-clamped"),
    ],
)
def test_upsert_clamp_applies_only_to_numbers_above_the_runtime_and_margin_caps(
    field: str, value: object, messages: list[str]
) -> None:
    assert validate_config(with_base(**{field: value}), clamp=True) == {field: messages}


@pytest.mark.parametrize("field", ["max_runtime", "checkin_margin"])
def test_the_api_path_rejects_values_above_the_cap(field: str) -> None:
    assert validate_config(with_base(**{field: 50_000})) == {field: [le(40_320)]}


# ---------------------------------------------------------------------------- merge

EXISTING = config(
    checkin_margin=10,
    max_runtime=60,
    timezone="Europe/Berlin",
    failure_issue_threshold=3,
    recovery_threshold=2,
    alert_rule_id=7,
)


def merged(raw: dict[str, Any]) -> MonitorConfig:
    validated = validate_config(raw, clamp=True)
    assert isinstance(validated, MonitorConfig), validated
    return merge_config(EXISTING, raw, validated)


def test_merge_keeps_keys_the_payload_does_not_name() -> None:
    raw = {"schedule_type": "crontab", "schedule": "*/5 * * * *", "max_runtime": 5}

    assert merged(raw) == config(
        schedule=CrontabSchedule(expr="*/5 * * * *"),
        checkin_margin=10,
        max_runtime=5,
        timezone="Europe/Berlin",
        failure_issue_threshold=3,
        recovery_threshold=2,
        alert_rule_id=7,
    )


def test_merge_always_takes_the_schedule_from_the_payload() -> None:
    raw = {"schedule": {"type": "interval", "value": 2, "unit": "hour"}}

    assert merged(raw) == config(
        schedule=IntervalSchedule(count=2, unit="hour"),
        checkin_margin=10,
        max_runtime=60,
        timezone="Europe/Berlin",
        failure_issue_threshold=3,
        recovery_threshold=2,
        alert_rule_id=7,
    )


def test_merge_overwrites_every_named_key_with_its_validated_value() -> None:
    raw = {
        **BASE,
        "checkin_margin": 0,
        "max_runtime": 50_000,
        "timezone": "America/New_York",
        "failure_issue_threshold": "4",
        "recovery_threshold": 5,
        "alert_rule_id": 9,
    }

    assert merged(raw) == config(
        checkin_margin=1,
        max_runtime=MAX_TIMEOUT,
        timezone="America/New_York",
        failure_issue_threshold=4,
        recovery_threshold=5,
        alert_rule_id=9,
    )


def test_merge_clears_keys_the_payload_sets_to_null() -> None:
    raw = {**BASE, "checkin_margin": None, "timezone": None, "alert_rule_id": None}

    assert merged(raw) == config(max_runtime=60, failure_issue_threshold=3, recovery_threshold=2)


def test_merge_keeps_the_time_zone_when_the_payload_sends_a_blank_one() -> None:
    assert merged({**BASE, "timezone": ""}).timezone == "Europe/Berlin"


def test_merge_ignores_owner_and_unknown_keys() -> None:
    assert merged({**BASE, "owner": "team:7", "colour": "blue"}) == EXISTING


# --------------------------------------------------------------------- JSON, defaults


def test_crontab_config_serialises_with_every_key_and_nulls_kept() -> None:
    assert config_to_json(config(timezone="Europe/Berlin", recovery_threshold=3)) == {
        "schedule_type": "crontab",
        "schedule": "0 * * * *",
        "checkin_margin": None,
        "max_runtime": None,
        "timezone": "Europe/Berlin",
        "failure_issue_threshold": None,
        "recovery_threshold": 3,
        "alert_rule_id": None,
    }


def test_interval_config_serialises_its_schedule_as_count_and_unit() -> None:
    out = config_to_json(config(schedule=IntervalSchedule(count=5, unit="minute")))

    assert (out["schedule_type"], out["schedule"]) == ("interval", [5, "minute"])


def test_unset_values_mean_sentrys_defaults() -> None:
    c = config()

    assert (c.margin, c.runtime, c.tz, c.failure_threshold, c.recovery_threshold_value) == (
        timedelta(minutes=1),
        timedelta(minutes=30),
        "UTC",
        1,
        1,
    )


def test_set_values_are_used_as_given() -> None:
    c = config(
        checkin_margin=5,
        max_runtime=90,
        timezone="Asia/Tokyo",
        failure_issue_threshold=3,
        recovery_threshold=4,
    )

    assert (c.margin, c.runtime, c.tz, c.failure_threshold, c.recovery_threshold_value) == (
        timedelta(minutes=5),
        timedelta(minutes=90),
        "Asia/Tokyo",
        3,
        4,
    )


def test_runtime_never_exceeds_28_days_even_for_a_stored_larger_value() -> None:
    assert config(max_runtime=100_000).runtime == timedelta(minutes=MAX_TIMEOUT)


def test_a_stored_zero_margin_means_one_minute() -> None:
    assert config(checkin_margin=0).margin == timedelta(minutes=1)


# ---------------------------------------------------------------------- round trips

CRONTABS = [
    "0 * * * *",
    "*/5 * * * *",
    "0 12 * * *",
    "30 2 * * 1-5",
    "0 0 1 * *",
    "15,45 8-18 * * *",
    "0 0 29 2 *",
    "@daily",
]
TIMEZONES = sorted(zoneinfo.available_timezones() - {"localtime", "Factory"})

schedules = st.one_of(
    st.sampled_from(CRONTABS).map(parse_crontab),
    st.builds(
        IntervalSchedule,
        count=st.integers(min_value=1, max_value=1_000),  # 1,000 years at most
        unit=st.sampled_from(UNITS),
    ),
)
configs = st.builds(
    MonitorConfig,
    schedule=schedules,
    checkin_margin=st.none() | st.integers(1, MAX_MARGIN),
    max_runtime=st.none() | st.integers(1, MAX_TIMEOUT),
    timezone=st.none() | st.sampled_from(TIMEZONES),
    failure_issue_threshold=st.none() | st.integers(1, MAX_THRESHOLD),
    recovery_threshold=st.none() | st.integers(1, MAX_THRESHOLD),
    alert_rule_id=st.none() | st.integers(-(2**63), 2**63 - 1),
)


@given(configs, st.booleans())
def test_a_config_reads_back_from_its_json_form_unchanged(c: MonitorConfig, clamp: bool) -> None:
    assert validate_config(config_to_json(c), clamp=clamp) == c


@given(configs, configs)
def test_merging_a_full_payload_yields_the_payload(old: MonitorConfig, new: MonitorConfig) -> None:
    raw = config_to_json(new)
    validated = validate_config(raw)
    assert isinstance(validated, MonitorConfig)

    assert merge_config(old, raw, validated) == new


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
CONFIG_KEYS = [
    "schedule_type",
    "schedule",
    "checkin_margin",
    "max_runtime",
    "timezone",
    "failure_issue_threshold",
    "recovery_threshold",
    "alert_rule_id",
    "owner",
]
schedule_values = json_values | st.sampled_from(["0 * * * *", "@hourly", [5, "minute"]])
payloads = st.dictionaries(st.sampled_from(CONFIG_KEYS), schedule_values) | json_values


@given(payloads, st.booleans())
def test_any_json_payload_gives_a_config_or_field_messages_never_an_exception(
    raw: object, clamp: bool
) -> None:
    result = validate_config(raw, clamp=clamp)

    if not isinstance(result, MonitorConfig):
        assert result
        assert all(
            isinstance(k, str) and v and all(isinstance(m, str) for m in v)
            for k, v in result.items()
        )


# --------------------------------------------------------------------------- slugify

SLUG_ROWS = [
    pytest.param("some/slug@with-weird|stuff", "someslugwith-weirdstuff", id="spec-example"),
    pytest.param("My Nightly Backup", "my-nightly-backup", id="spaces-become-dashes"),
    pytest.param("  lots \t of   space  ", "lots-of-space", id="whitespace-collapses"),
    pytest.param("a--b__c", "a-b__c", id="dash-runs-collapse-underscores-stay"),
    pytest.param("--edge--", "edge", id="edge-dashes-stripped"),
    pytest.param("Crème Brûlée", "creme-brulee", id="accents-folded"),
    pytest.param("ﬁle", "file", id="ligature-decomposed"),
    pytest.param("日本語", "", id="non-latin-dropped"),
    pytest.param("job_1", "job_1", id="underscore-kept"),
    pytest.param("a" * 60, "a" * 50, id="truncated-to-50"),
    pytest.param("a" * 49 + "-b", "a" * 49, id="dash-left-by-the-cut-stripped"),
    # Spec §2.1: only "-" is stripped after the cut; an "_" it leaves stays (Sentry's
    # `valid_monitor_slug`). This row once expected "a" * 49.
    pytest.param("a" * 49 + "_b", "a" * 49 + "_", id="underscore-left-by-the-cut-kept"),
    pytest.param("_" + "a" * 60, "a" * 50, id="leading-underscore-stripped-before-the-cut"),
    pytest.param("x" * 10 + "!" * 100 + "y", "x" * 10 + "y", id="dropped-before-truncating"),
]


@pytest.mark.parametrize(("raw", "slug"), SLUG_ROWS)
def test_slugify_follows_django_and_sentry(raw: str, slug: str) -> None:
    assert slugify(raw) == slug


@given(st.text())
def test_slugify_is_idempotent_short_and_url_safe(raw: str) -> None:
    slug = slugify(raw)

    if not slug.endswith("_"):  # only a cut can leave a "_" at the end (spec §2.1)
        assert slugify(slug) == slug
    else:
        assert len(slug) == MAX_SLUG_LENGTH
    assert len(slug) <= MAX_SLUG_LENGTH
    assert set(slug) <= set(string.ascii_lowercase + string.digits + "-_")
    assert not slug.startswith(("-", "_")) and not slug.endswith("-")


def test_slugify_is_memoised_with_a_bounded_cache() -> None:
    from monitor_es.domain import config

    slugify("Memo Test")
    hits = config._slugify.cache_info().hits

    slugify("Memo Test")

    assert config._slugify.cache_info().hits == hits + 1
    assert config._slugify.cache_info().maxsize is not None


def test_an_already_valid_slug_is_returned_unchanged() -> None:
    assert slugify("nightly-backup_2") == "nightly-backup_2"
    assert slugify("a--b") == "a-b"


# ---------------------------------------------------------------------- environments


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        pytest.param(None, None, id="missing-means-production"),
        pytest.param("", None, id="empty-means-production"),
        pytest.param("staging", None, id="plain"),
        pytest.param("a" * MAX_ENVIRONMENT_NAME_LENGTH, None, id="64-characters"),
        pytest.param("a" * 65, "Environment name too long", id="65-characters"),
        pytest.param("a" * 70, "Environment name too long", id="spec-70-characters"),
        pytest.param(42, "Environment name must be a string", id="number"),
        pytest.param(["prod"], "Environment name must be a string", id="list"),
        pytest.param("eu/west", "Environment name contains invalid characters", id="slash"),
        pytest.param("prod\n", "Environment name contains invalid characters", id="newline"),
    ],
)
def test_environment_names_are_checked_like_sentrys(name: object, reason: str | None) -> None:
    assert validate_environment_name(name) == reason


@pytest.mark.parametrize(
    ("name", "normalised"),
    [(None, "production"), ("", "production"), ("staging", "staging")],
)
def test_a_missing_environment_is_production(name: str | None, normalised: str) -> None:
    assert normalise_environment(name) == normalised


@given(st.text(alphabet="abz09_- -AZé/", max_size=60))
def test_the_plain_slug_shortcut_agrees_with_full_slugify(raw: str) -> None:
    from monitor_es.domain import config

    assert slugify(raw) == config._slugify(raw)


@pytest.mark.parametrize(
    ("count", "unit"), [(1_000, "year"), (12_000, "month"), (525_960_000, "minute")]
)
def test_an_interval_of_a_thousand_years_is_still_valid_and_has_a_next_slot(
    count: int, unit: str
) -> None:
    config = validate_config({"schedule_type": "interval", "schedule": [count, unit]})
    assert isinstance(config, MonitorConfig)
    later = next_expected(config.schedule, "UTC", datetime(8000, 1, 1, tzinfo=UTC))
    assert later > datetime(8000, 1, 1, tzinfo=UTC)
