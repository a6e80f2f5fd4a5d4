"""Validation of a check-in's user-controlled fields (spec §2.3 steps 4–5)."""

from __future__ import annotations

import math
import re
from typing import Any, Final

import msgspec

from monitor_es.domain.errors import ErrorType, Rejected, error
from monitor_es.domain.state import CHECKIN_ERROR, CHECKIN_IN_PROGRESS, CHECKIN_OK, CheckInStatus

ZERO_GUID: Final = "00000000-0000-0000-0000-000000000000"
MAX_DURATION_MS: Final = 2_147_483_647
_HEX: Final = frozenset("0123456789abcdef")
_CANONICAL: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_STATUSES: Final = {
    "ok": CHECKIN_OK,
    "error": CHECKIN_ERROR,
    "in_progress": CHECKIN_IN_PROGRESS,
}


class CheckInPayload(msgspec.Struct, frozen=True, gc=False):
    """The validated fields of one check-in."""

    guid: str
    status: CheckInStatus
    duration_ms: int | None
    trace_id: str | None


def normalise_guid(value: object) -> str | None:
    """A UUID (dashed or 32 hex digits, any case) in dashed lower case, or None."""
    if not isinstance(value, str):
        return None
    if _CANONICAL.fullmatch(value):
        return value  # the common case: the codec already sends the canonical form
    text = value.lower()
    if len(text) == 36:
        if text[8] != "-" or text[13] != "-" or text[18] != "-" or text[23] != "-":
            return None
        digits = text.replace("-", "")
    elif len(text) == 32:
        digits = text
    else:
        return None
    if len(digits) != 32 or not _HEX.issuperset(digits):
        return None
    if len(text) == 36:
        return text
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def validate_payload(
    check_in_id: Any, status: Any, duration: Any, environment: Any, trace_id: Any
) -> CheckInPayload:
    """Checks the GUID, then the payload fields; raises Rejected with typed errors."""
    if type(check_in_id) is str and _CANONICAL.fullmatch(check_in_id):
        guid: str | None = check_in_id  # the codec's canonical form, checked without a call
    else:
        guid = normalise_guid(check_in_id)
    if guid is None:
        raise Rejected([error(ErrorType.CHECKIN_INVALID_GUID)])
    problems: dict[str, list[str]] = {}
    checked_status = _STATUSES.get(status) if isinstance(status, str) else None
    if checked_status is None:
        problems["status"] = [f'"{status}" is not a valid choice.']
    duration_ms = None if duration is None else _duration_ms(duration, problems)
    if environment is not None and not isinstance(environment, str):
        problems["environment"] = ["Not a valid string."]
    trace = None
    if trace_id is not None:
        trace = normalise_guid(trace_id)
        if trace is None:
            problems["trace_id"] = ["Must be a valid UUID."]
    if problems or checked_status is None:
        raise Rejected([error(ErrorType.CHECKIN_VALIDATION_FAILED, errors=problems)])
    return CheckInPayload(guid, checked_status, duration_ms, trace)


def _duration_ms(duration: Any, problems: dict[str, list[str]]) -> int | None:
    """A sent duration in milliseconds, noting what is wrong with it."""
    # The SDK sends seconds; Sentry stores int(seconds * 1000) milliseconds.
    if isinstance(duration, bool) or not isinstance(duration, int | float):
        problems["duration"] = ["A valid integer is required."]
        return None
    if not math.isfinite(duration):
        problems["duration"] = ["A valid integer is required."]
        return None
    scaled = duration * 1000  # a finite float can still overflow to infinity here
    if scaled <= -1:  # exactly when int(scaled) < 0: int() truncates towards zero
        problems["duration"] = ["Ensure this value is greater than or equal to 0."]
        return None
    if scaled >= MAX_DURATION_MS + 1:  # exactly when int(scaled) > MAX_DURATION_MS
        problems["duration"] = [f"Ensure this value is less than or equal to {MAX_DURATION_MS}."]
        return None
    return int(scaled)
