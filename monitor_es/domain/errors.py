"""Typed rejections of check-ins (spec §1.1 ProcessingErrorType, in lower snake case)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorType(StrEnum):
    """Why an inbound event was rejected."""

    CHECKIN_ENVIRONMENT_MISMATCH = "checkin_environment_mismatch"
    CHECKIN_FINISHED = "checkin_finished"
    CHECKIN_GUID_PROJECT_MISMATCH = "checkin_guid_project_mismatch"
    CHECKIN_INVALID_DURATION = "checkin_invalid_duration"
    CHECKIN_INVALID_GUID = "checkin_invalid_guid"
    CHECKIN_VALIDATION_FAILED = "checkin_validation_failed"
    MONITOR_DISABLED = "monitor_disabled"
    MONITOR_INVALID_CONFIG = "monitor_invalid_config"
    MONITOR_INVALID_ENVIRONMENT = "monitor_invalid_environment"
    MONITOR_LIMIT_EXCEEDED = "monitor_limit_exceeded"
    MONITOR_NOT_FOUND = "monitor_not_found"
    MONITOR_ENVIRONMENT_LIMIT_EXCEEDED = "monitor_environment_limit_exceeded"
    MONITOR_ENVIRONMENT_RATELIMITED = "monitor_environment_ratelimited"
    # Not a Sentry type: the entry could not be read as an event at all.
    INVALID_EVENT = "invalid_event"


def error(kind: ErrorType, **details: Any) -> dict[str, Any]:
    """One processing error in its JSON form: a `type` plus the type's details."""
    return {"type": kind.value, **details}


class Rejected(Exception):
    """Raised inside the reducer to reject one inbound event with typed errors.

    It never escapes the reducer: the event is recorded as rejected and the fold goes on.
    """

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(", ".join(str(e["type"]) for e in errors))
        self.errors = errors
