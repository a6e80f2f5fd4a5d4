"""Config audit, validator level: crontab acceptance checked row by row against CronSim
(the parser Sentry validates with, spec §2.10), and the memoised upsert validation."""

from __future__ import annotations

import pytest

from monitor_es.domain import monitors
from monitor_es.domain.config import MonitorConfig, validate_config
from monitor_es.domain.schedule import CrontabSchedule

INVALID = "Schedule is invalid"

# Each row's verdict is CronSim 2.8's (CronSim(expr, now) iterated forwards and backwards),
# so these are Sentry's answers, not ours.
CRONSIM_ROWS = [
    pytest.param("0 9 * * 1#1,1#3", None, id="first-and-third-monday"),
    pytest.param("0 9 * * MON#1,FRI#2", None, id="nth-weekday-names-in-a-list"),
    pytest.param("0 9 * * 5L,1", None, id="last-friday-and-mondays"),
    pytest.param("0 0 31 1-2 *", None, id="day-31-exists-in-january"),
    pytest.param("0 0 31 */2 *", None, id="day-31-in-odd-months"),
    pytest.param("0 0 29 2 *", None, id="leap-day"),
    pytest.param("0 0 L 2 *", None, id="last-day-of-february"),
    pytest.param("0 0 31 2 1", None, id="impossible-day-ored-with-a-weekday"),
    pytest.param("0-59/61 * * * *", None, id="step-beyond-the-range"),
    pytest.param("*/60 * * * *", None, id="step-60-matches-minute-0"),
    pytest.param("0 0 31 4,6 *", INVALID, id="day-31-in-thirty-day-months"),
    pytest.param("0 0 31 2/12 *", INVALID, id="day-31-in-february-by-step"),
    pytest.param("0 0 30,31 2 *", INVALID, id="days-30-31-in-february"),
    pytest.param("0 0 31 APR,JUN *", INVALID, id="day-31-in-april-june-by-name"),
    pytest.param("0 0 1/0 * *", INVALID, id="step-zero"),
    pytest.param("0 0 L-1 * *", INVALID, id="l-offset"),
    pytest.param("0 0 * * 7-0", INVALID, id="reversed-weekday-range"),
    pytest.param("0 0 * * 1#0", INVALID, id="zeroth-weekday"),
]


@pytest.mark.parametrize(("expr", "message"), CRONSIM_ROWS)
def test_a_crontab_is_accepted_exactly_when_cronsim_accepts_it(
    expr: str, message: str | None
) -> None:
    result = validate_config({"schedule_type": "crontab", "schedule": expr})

    if message is None:
        assert result == MonitorConfig(schedule=CrontabSchedule(expr=expr))
    else:
        assert result == {"schedule": [message]}


def test_the_upsert_validation_is_memoised_per_payload() -> None:
    """SDKs send the same config with every check-in: it is validated once."""
    raw = {"schedule_type": "crontab", "schedule": "7 * * * *", "checkin_margin": 3}
    first = monitors._validate_upsert(raw)
    hits = monitors._validate_encoded.cache_info().hits

    again = monitors._validate_upsert(dict(raw))

    assert again is first
    assert monitors._validate_encoded.cache_info().hits == hits + 1
