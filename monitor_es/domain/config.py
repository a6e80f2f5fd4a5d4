"""Monitor configuration: validation (Sentry's ConfigValidator), upsert merge, JSON form, slugs.

Spec §1.2-1.3, §2.1, §2.4 and §2.10. User-facing messages are Sentry's and Django REST
framework's exact texts, so a client sees what Sentry would have told it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import timedelta
from functools import lru_cache, partial
from typing import Final, Literal, NamedTuple, TypeAlias, TypeGuard, TypeVar

import msgspec

from monitor_es.domain.schedule import (
    INVALID as SCHEDULE_INVALID,
)
from monitor_es.domain.schedule import (
    NOT_PARSEABLE,
    CrontabSchedule,
    IntervalSchedule,
    IntervalUnit,
    Schedule,
    ScheduleError,
    known_zones,
    parse_crontab,
)

__all__ = [
    "DEFAULT_MARGIN_MINUTES",
    "DEFAULT_MAX_RUNTIME_MINUTES",
    "MAX_ENVIRONMENT_NAME_LENGTH",
    "MAX_MARGIN",
    "MAX_SLUG_LENGTH",
    "MAX_THRESHOLD",
    "MAX_TIMEOUT",
    "ConfigErrors",
    "MonitorConfig",
    "config_to_json",
    "merge_config",
    "normalise_environment",
    "slugify",
    "validate_config",
    "validate_environment_name",
]

MAX_SLUG_LENGTH: Final = 50
MAX_TIMEOUT: Final = 40_320  # minutes (28 days): cap on max_runtime and on heartbeat extension
MAX_MARGIN: Final = 40_320
MAX_THRESHOLD: Final = 720
DEFAULT_MARGIN_MINUTES: Final = 1
DEFAULT_MAX_RUNTIME_MINUTES: Final = 30
MAX_ENVIRONMENT_NAME_LENGTH: Final = 64
DEFAULT_ENVIRONMENT: Final = "production"

ScheduleKind: TypeAlias = Literal["crontab", "interval"]

ConfigErrors: TypeAlias = dict[str, list[str]]
"""Field name -> messages, as Django REST framework reports them."""


class MonitorConfig(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A validated monitor config; unset values keep Sentry's null and mean the default."""

    schedule: Schedule
    checkin_margin: int | None = None
    max_runtime: int | None = None
    timezone: str | None = None
    failure_issue_threshold: int | None = None
    recovery_threshold: int | None = None
    alert_rule_id: int | None = None

    @property
    def margin(self) -> timedelta:
        """How long after the expected time a check-in may arrive (null or 0 mean 1 minute)."""
        return _minutes(self.checkin_margin or DEFAULT_MARGIN_MINUTES)

    @property
    def runtime(self) -> timedelta:
        """How long a run may stay in progress before it times out."""
        minutes = self.max_runtime or DEFAULT_MAX_RUNTIME_MINUTES
        return _minutes(min(minutes, MAX_TIMEOUT))

    @property
    def tz(self) -> str:
        """The tz-database name schedules are evaluated in."""
        return self.timezone or "UTC"

    @property
    def failure_threshold(self) -> int:
        """Consecutive failures that open an incident."""
        return self.failure_issue_threshold or 1

    @property
    def recovery_threshold_value(self) -> int:
        """Consecutive successes that resolve an incident."""
        return self.recovery_threshold or 1


@lru_cache(maxsize=1024)
def _minutes(count: int) -> timedelta:
    # Margins and runtimes are read for every check-in; build each timedelta once.
    return timedelta(minutes=count)


# ------------------------------------------------------------------------ messages

# Django REST framework's standard field messages.
REQUIRED: Final = "This field is required."
NOT_NULL: Final = "This field may not be null."
INVALID_INTEGER: Final = "A valid integer is required."
STRING_TOO_LARGE: Final = "String value too large."
# Sentry's ConfigValidator messages (the doubled "for" is Sentry's own text).
MISSING_SCHEDULE_TYPE: Final = "Missing or invalid schedule type"
INVALID_INTERVAL: Final = "Invalid schedule for for 'interval' type"
INVALID_INTERVAL_COUNT: Final = "Invalid schedule for schedule unit count"
INTERVAL_NOT_POSITIVE: Final = "Interval must be greater than zero"
INVALID_INTERVAL_UNIT: Final = "Invalid schedule for schedule unit name"
INVALID_CRONTAB: Final = "Invalid schedule for 'crontab' type"

ENVIRONMENT_NOT_STRING: Final = "Environment name must be a string"
ENVIRONMENT_TOO_LONG: Final = "Environment name too long"
ENVIRONMENT_BAD_CHARACTERS: Final = "Environment name contains invalid characters"


def _min_message(limit: int) -> str:
    return f"Ensure this value is greater than or equal to {limit}."


def _max_message(limit: int) -> str:
    return f"Ensure this value is less than or equal to {limit}."


def _choice_message(value: object) -> str:
    return f'"{value}" is not a valid choice.'


# ---------------------------------------------------------------------- validation


class _FieldError(Exception):
    """One field's messages; `field` overrides the field being validated."""

    def __init__(self, *messages: str, field: str | None = None) -> None:
        super().__init__(*messages)
        self.messages = list(messages)
        self.field = field


class _IntField(NamedTuple):
    name: str
    min_value: int
    max_value: int
    clamp_above: bool = False
    zero_means_one: bool = False


_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_DRF_MAX_STRING_LENGTH: Final = 1000
_DECIMAL_TAIL: Final = re.compile(r"\.0*\s*$")

# The integer fields before and after `timezone`, in the order of Sentry's ConfigValidator,
# so that reported fields are listed as Sentry lists them.
_TIMING_FIELDS: Final = (
    # GH-56526: 0 was once the minimum margin; old upserts still send it, so it becomes 1.
    _IntField("checkin_margin", 1, MAX_MARGIN, clamp_above=True, zero_means_one=True),
    _IntField("max_runtime", 1, MAX_TIMEOUT, clamp_above=True),
)
_COUNT_FIELDS: Final = (
    _IntField("failure_issue_threshold", 1, MAX_THRESHOLD),
    _IntField("recovery_threshold", 1, MAX_THRESHOLD),
    # Not in Sentry's validator; bounded so every accepted id fits the msgpack codec.
    _IntField("alert_rule_id", _INT64_MIN, _INT64_MAX),
)

_SCHEDULE_KINDS: Final[dict[str | int, ScheduleKind]] = {
    "crontab": "crontab",
    "interval": "interval",
    1: "crontab",
    2: "interval",
}
_INTERVAL_UNITS: Final[dict[str, IntervalUnit]] = {
    "year": "year",
    "month": "month",
    "week": "week",
    "day": "day",
    "hour": "hour",
    "minute": "minute",
}

# The longest interval per unit, about 1,000 years: like a crontab that never matches
# (spec §2.10 "Schedule is invalid"), a longer one has no next slot datetime can hold, and
# each check-in of its monitor would fail instead of its config.
_MAX_INTERVAL_COUNT: Final[dict[IntervalUnit, int]] = {
    "year": 1_000,
    "month": 12_000,
    "week": 52_178,
    "day": 365_250,
    "hour": 8_766_000,
    "minute": 525_960_000,
}

# Sentry's choices leave out "Factory", an obscure GMT alias (sentry.utils.dates).
_REFUSED_ZONES: Final = frozenset({"Factory"})

_T = TypeVar("_T")


def validate_config(raw: object, *, clamp: bool = False) -> MonitorConfig | ConfigErrors:
    """Validate a monitor config payload (spec §2.10) with Sentry's two passes.

    Every field's own errors are reported together; the schedule is judged against its type
    only when no field has one (DRF runs a serializer's `validate` only after every field
    passed), so a bad margin hides a bad crontab, as it does in Sentry.

    `clamp=True` is the check-in upsert path (spec §2.4 [newest]): a numeric `max_runtime` or
    `checkin_margin` above 40320 is lowered to 40320 instead of rejected.
    """
    if raw is None:
        return {"non_field_errors": [NOT_NULL]}
    if not isinstance(raw, dict):
        datatype = type(raw).__name__
        return {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {datatype}."]}
    errors: ConfigErrors = {}
    schedule_type = _collect(errors, "schedule_type", partial(_schedule_type, raw))
    _collect(errors, "schedule", partial(_schedule_given, raw))
    ints = {
        spec.name: _collect(errors, spec.name, partial(_int_field, raw, spec, clamp))
        for spec in _TIMING_FIELDS
    }
    timezone = _collect(errors, "timezone", partial(_timezone, raw))
    for spec in _COUNT_FIELDS:
        ints[spec.name] = _collect(errors, spec.name, partial(_int_field, raw, spec, clamp))
    if errors:
        return errors
    schedule = _collect(errors, "schedule", partial(_schedule, raw["schedule"], schedule_type))
    if errors or schedule is None:
        return errors
    return MonitorConfig(
        schedule=schedule,
        checkin_margin=ints["checkin_margin"],
        max_runtime=ints["max_runtime"],
        timezone=timezone,
        failure_issue_threshold=ints["failure_issue_threshold"],
        recovery_threshold=ints["recovery_threshold"],
        alert_rule_id=ints["alert_rule_id"],
    )


def _collect(errors: ConfigErrors, field: str, check: Callable[[], _T]) -> _T | None:
    """Run one field's check; record its messages and return None if it fails."""
    try:
        return check()
    except _FieldError as exc:
        if exc.messages:
            errors.setdefault(exc.field or field, []).extend(exc.messages)
        return None


def _schedule_kind(value: object) -> ScheduleKind | None:
    # bool is an int in Python, but `true` is not schedule type 1.
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return _SCHEDULE_KINDS.get(value)


def _schedule_type(raw: Mapping[str, object]) -> ScheduleKind | None:
    if "schedule_type" not in raw:
        return None  # optional: the schedule object may carry its own type
    value = raw["schedule_type"]
    if value is None:
        raise _FieldError(NOT_NULL)
    kind = _schedule_kind(value)
    if kind is None:
        raise _FieldError(_choice_message(value))
    return kind


def _schedule_given(raw: Mapping[str, object]) -> None:
    # The field pass: the schedule must be there and not null; its form is judged later.
    if "schedule" not in raw:
        raise _FieldError(REQUIRED)
    if raw["schedule"] is None:
        raise _FieldError(NOT_NULL)


def _schedule(value: object, declared: ScheduleKind | None) -> Schedule:
    embedded = value.get("type") if isinstance(value, dict) else None
    # An object's own `type` wins over `schedule_type`, as in Sentry.
    kind = _schedule_kind(embedded) if embedded else declared
    if kind is None:
        raise _FieldError(MISSING_SCHEDULE_TYPE, field="schedule_type")
    if kind == "interval":
        return _interval(value)
    return _crontab(value)


def _interval(value: object) -> IntervalSchedule:
    if isinstance(value, dict):
        value = [value.get("value"), value.get("unit")]
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise _FieldError(INVALID_INTERVAL)
    count, unit = value
    # Sentry sets no upper bound; past int64 the count could not be stored in the msgpack log.
    if isinstance(count, bool) or not isinstance(count, int) or count > _INT64_MAX:
        raise _FieldError(INVALID_INTERVAL_COUNT)
    if count <= 0:
        raise _FieldError(INTERVAL_NOT_POSITIVE)
    unit_name = _INTERVAL_UNITS.get(unit) if isinstance(unit, str) else None
    if unit_name is None:
        raise _FieldError(INVALID_INTERVAL_UNIT)
    if count > _MAX_INTERVAL_COUNT[unit_name]:
        raise _FieldError(SCHEDULE_INVALID)
    return IntervalSchedule(count=count, unit=unit_name)


def _crontab(value: object) -> CrontabSchedule:
    if isinstance(value, dict):
        value = value.get("value")
    if not isinstance(value, str):
        raise _FieldError(INVALID_CRONTAB)
    text = " ".join(value.split())
    if text.startswith("@") and text != text.lower():
        # Sentry looks an alias up exactly as sent: "@DAILY" is no alias (spec §2.10).
        raise _FieldError(NOT_PARSEABLE)
    try:
        return parse_crontab(text)
    except ScheduleError as exc:
        raise _FieldError(str(exc)) from None


def _timezone(raw: Mapping[str, object]) -> str | None:
    value = raw.get("timezone")
    if value is None or value == "":
        return None  # Sentry drops a blank time zone; null means UTC
    # The `tzdata` package's names, not the host's (`available_timezones()` adds them, and
    # "localtime", the host's own zone): a name valid on one machine is valid on every one.
    if isinstance(value, str) and value in known_zones() and value not in _REFUSED_ZONES:
        return value
    raise _FieldError(_choice_message(value))


def _int_field(raw: Mapping[str, object], spec: _IntField, clamp: bool) -> int | None:
    value = raw.get(spec.name)
    # Sentry clamps raw numbers before validating, so "50000" is still rejected.
    if clamp and spec.clamp_above and _is_number(value) and value > spec.max_value:
        value = spec.max_value
    if value is None or value == "":
        return None  # Sentry's EmptyIntegerField reads "" as null
    number = _to_int(value)
    if spec.zero_means_one and number == 0:
        number = 1
    if number < spec.min_value:
        raise _FieldError(_min_message(spec.min_value))
    if number > spec.max_value:
        raise _FieldError(_max_message(spec.max_value))
    return number


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _to_int(value: object) -> int:
    """DRF IntegerField coercion: ints, integral floats and numeric strings; never bools."""
    if isinstance(value, bool):
        raise _FieldError(INVALID_INTEGER)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and len(value) > _DRF_MAX_STRING_LENGTH:
        raise _FieldError(STRING_TOO_LARGE)
    if not isinstance(value, str | float):
        raise _FieldError(INVALID_INTEGER)
    try:
        return int(_DECIMAL_TAIL.sub("", str(value)))
    except ValueError:
        raise _FieldError(INVALID_INTEGER) from None


# --------------------------------------------------------------------- merge, JSON

_MERGED_FIELDS: Final = (
    "checkin_margin",
    "max_runtime",
    "timezone",
    "failure_issue_threshold",
    "recovery_threshold",
    "alert_rule_id",
)


def merge_config(
    existing: MonitorConfig, raw: Mapping[str, object], validated: MonitorConfig
) -> MonitorConfig:
    """Upsert merge (spec §1.3 `update_config`): overwrite only the keys the payload names."""
    changes: dict[str, object] = {}
    for name in _MERGED_FIELDS:
        # A blank time zone is dropped by validation, so it leaves the stored one alone.
        if name in raw and not (name == "timezone" and raw[name] == ""):
            changes[name] = getattr(validated, name)
    return msgspec.structs.replace(existing, schedule=validated.schedule, **changes)


def schedule_to_json(schedule: Schedule) -> tuple[ScheduleKind, str | list[object]]:
    """The `schedule_type` and `schedule` values of a schedule's JSON form."""
    if isinstance(schedule, CrontabSchedule):
        return "crontab", schedule.expr
    return "interval", [schedule.count, schedule.unit]


def config_to_json(config: MonitorConfig) -> dict[str, object]:
    """The JSON form of a config (nulls kept); `validate_config` reads it back unchanged."""
    schedule_type, schedule = schedule_to_json(config.schedule)
    return {
        "schedule_type": schedule_type,
        "schedule": schedule,
        "checkin_margin": config.checkin_margin,
        "max_runtime": config.max_runtime,
        "timezone": config.timezone,
        "failure_issue_threshold": config.failure_issue_threshold,
        "recovery_threshold": config.recovery_threshold,
        "alert_rule_id": config.alert_rule_id,
    }


# ------------------------------------------------------------- slugs, environments

_NOT_SLUG_CHARS: Final = re.compile(r"[^\w\s-]")
_DASHES_AND_SPACES: Final = re.compile(r"[-\s]+")


def slugify(raw: str) -> str:
    """A monitor slug as Sentry derives it (Django slugify, at most 50 characters)."""
    # Nearly every check-in already sends a valid slug: recognise it without rewriting it.
    if _PLAIN_SLUG.fullmatch(raw) and "--" not in raw:
        return raw
    return _slugify(raw)


_PLAIN_SLUG: Final = re.compile(r"[a-z0-9](?:[a-z0-9_-]{0,48}[a-z0-9])?")


@lru_cache(maxsize=8192)
def _slugify(raw: str) -> str:
    text = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode("ascii")
    text = _NOT_SLUG_CHARS.sub("", text.lower())
    text = _DASHES_AND_SPACES.sub("-", text).strip("-_")
    # Spec §2.1: the cut is stripped of "-" only, so a cut that ends in "_" keeps it (as
    # Sentry's `valid_monitor_slug` does); slugify is then not idempotent for such a slug.
    return text[:MAX_SLUG_LENGTH].strip("-")


_BAD_ENVIRONMENT_CHARS: Final = re.compile(r"[\n\r\f/]")


def validate_environment_name(name: object) -> str | None:
    """Why an environment name is rejected, or None when it is fine (None and "" included)."""
    if name is None:
        return None
    if not isinstance(name, str):
        return ENVIRONMENT_NOT_STRING
    if len(name) > MAX_ENVIRONMENT_NAME_LENGTH:
        return ENVIRONMENT_TOO_LONG
    if _BAD_ENVIRONMENT_CHARS.search(name):
        return ENVIRONMENT_BAD_CHARACTERS
    return None


def normalise_environment(name: str | None) -> str:
    """The environment a check-in belongs to: a missing or empty name means production."""
    return name or DEFAULT_ENVIRONMENT
