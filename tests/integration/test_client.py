"""The Python client on fakeredis and a real redis-server: what it appends, what the
reducer makes of it, what it refuses before sending, and that a Redis outage never fails
the job it reports on."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis_process import free_port
from send_helpers import folded, logged, of_type

from monitor_es.client import CronsClient, InvalidCheckIn, check_in_event
from monitor_es.domain.events import CheckInReported
from monitor_es.domain.partition import Partition
from monitor_es.domain.reducer import LogEntry, fold
from monitor_es.producer import partitions_of
from monitor_es.store.connection import Client
from monitor_es.store.deployment import NotInitialised, init_deployment
from monitor_es.store.log import parse_id

HOURLY = {"schedule_type": "crontab", "schedule": "0 * * * *"}


@pytest.fixture
def deployed(client: Client) -> Client:
    init_deployment(client, 4)
    return client


def test_check_in_appends_to_the_monitors_partition_and_returns_its_id(deployed: Client) -> None:
    crons = CronsClient(deployed, "acme")
    run_id = crons.check_in("backup", "ok", monitor_config=HOURLY)
    [entry] = logged(deployed)
    event = entry.event
    assert isinstance(event, CheckInReported)
    assert (event.project, event.monitor_slug, event.check_in_id) == ("acme", "backup", run_id)
    assert event.status == "ok" and event.monitor_config == HOURLY
    # Routed as the producer routes it: the partition of (project, slug).
    [partition] = partitions_of(event, 4)
    stream = deployed.xrange(f"mes:{{p{partition:02d}}}:log")
    assert [parse_id(i.decode()) for i, _ in stream] == [parse_id(entry.id)]


def test_the_reducer_creates_the_monitor_and_closes_the_run(deployed: Client) -> None:
    crons = CronsClient(deployed, "acme", environment="staging")
    run_id = crons.check_in("backup", "in_progress", monitor_config=HOURLY)
    crons.check_in("backup", "ok", check_in_id=run_id, duration=2.5)
    events = folded(deployed)
    assert [e["monitor_slug"] for e in of_type(events, "monitor_created")] == ["backup"]
    [created] = of_type(events, "check_in_created")
    [updated] = of_type(events, "check_in_updated")
    assert created["check_in_id"] == updated["check_in_id"] == run_id
    assert created["environment"] == "staging"
    assert (created["status"], updated["status"]) == ("in_progress", "ok")
    assert updated["duration_ms"] == 2500


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"check_in_id": "not-a-uuid"}, "checkin_invalid_guid"),
        ({"duration": -5}, "checkin_validation_failed"),
        ({"trace_id": "nope"}, "checkin_validation_failed"),
        ({"environment": "a/b"}, "monitor_invalid_environment"),
        ({"environment": "x" * 65}, "monitor_invalid_environment"),
        ({"monitor_config": {"schedule": "61 * * * *"}}, "monitor_invalid_config"),
        ({"monitor_config": {**HOURLY, "timezone": "Mars/Base"}}, "monitor_invalid_config"),
    ],
)
def test_a_check_in_wrong_in_itself_is_refused_as_the_reducer_would_refuse_it(
    deployed: Client, kwargs: dict[str, Any], expected: str
) -> None:
    crons = CronsClient(deployed, "acme")
    with pytest.raises(InvalidCheckIn) as refused:
        crons.check_in("backup", "ok", **{"monitor_config": HOURLY, **kwargs})
    assert refused.value.errors[0]["type"] == expected
    assert logged(deployed) == []  # nothing was sent
    # The reducer, given the same check-in, rejects it with the same first error type.
    event = CheckInReported(
        project="acme",
        monitor_slug="backup",
        check_in_id=kwargs.get("check_in_id", "a0000000-0000-4000-8000-000000000001"),
        status="ok",
        environment=kwargs.get("environment"),
        duration=kwargs.get("duration"),
        monitor_config=kwargs.get("monitor_config", HOURLY),
        trace_id=kwargs.get("trace_id"),
    )
    entry = LogEntry("1714564800000-0", datetime(2024, 5, 1, 12, 0, tzinfo=UTC), event)
    [rejected] = [
        e for e in fold(Partition(), [entry]) if e.__struct_config__.tag == "event_rejected"
    ]
    assert rejected.errors[0]["type"] == expected  # type: ignore[attr-defined]


def test_config_errors_carry_the_reducers_messages() -> None:
    bad = {"schedule_type": "crontab", "schedule": "0 * * * *", "max_runtime": "x"}
    with pytest.raises(InvalidCheckIn) as refused:
        check_in_event("acme", "backup", "ok", check_in_id=_guid(), monitor_config=bad)
    [problem] = refused.value.errors
    assert problem["errors"] == {"max_runtime": ["A valid integer is required."]}
    assert "max_runtime" in str(refused.value)


def test_a_slug_with_no_slug_character_is_refused() -> None:
    with pytest.raises(InvalidCheckIn, match="invalid_event"):
        check_in_event("acme", "!!!", "ok", check_in_id=_guid())


def test_an_uninitialised_deployment_is_named(client: Client) -> None:
    with pytest.raises(NotInitialised):
        CronsClient(client, "acme").check_in("backup", "ok", monitor_config=HOURLY)


def test_monitor_reports_a_run_with_its_duration(deployed: Client) -> None:
    crons = CronsClient(deployed, "acme")
    with crons.monitor("sync", monitor_config=HOURLY) as run_id:
        time.sleep(0.2)
    entries = logged(deployed)
    statuses = [(e.event.check_in_id, e.event.status) for e in entries]  # type: ignore[union-attr]
    assert statuses == [(run_id, "in_progress"), (run_id, "ok")]
    duration = entries[1].event.duration  # type: ignore[union-attr]
    assert 0.2 <= duration < 5


def test_monitor_reports_an_exception_as_error_and_lets_it_through(deployed: Client) -> None:
    crons = CronsClient(deployed, "acme")
    with pytest.raises(ZeroDivisionError), crons.monitor("sync", monitor_config=HOURLY):
        _ = 1 / 0
    [updated] = of_type(folded(deployed), "check_in_updated")
    assert updated["status"] == "error"


def test_monitor_decorates_functions_one_run_per_call(deployed: Client) -> None:
    crons = CronsClient(deployed, "acme")

    @crons.monitor("job", monitor_config=HOURLY)
    def job(n: int) -> int:
        if n < 0:
            raise ValueError(n)
        return n * 2

    assert job(3) == 6
    with pytest.raises(ValueError):
        job(-1)
    assert job.__name__ == "job"
    updated = of_type(folded(deployed), "check_in_updated")
    assert [u["status"] for u in updated] == ["ok", "error"]
    assert len({u["check_in_id"] for u in updated}) == 2  # a new run id per call


def test_monitor_decorates_coroutine_functions(deployed: Client) -> None:
    crons = CronsClient(deployed, "acme")

    @crons.monitor("async-job", monitor_config=HOURLY)
    async def job() -> str:
        await asyncio.sleep(0)
        return "done"

    assert asyncio.run(job()) == "done"
    [updated] = of_type(folded(deployed), "check_in_updated")
    assert updated["status"] == "ok"


def test_monitor_checks_its_arguments_when_made(deployed: Client) -> None:
    crons = CronsClient(deployed, "acme")
    with pytest.raises(InvalidCheckIn, match="monitor_invalid_config"):
        crons.monitor("job", monitor_config={"schedule": "every day"})
    assert logged(deployed) == []


def test_redis_down_never_fails_the_job(caplog: pytest.LogCaptureFixture) -> None:
    # No retries: redis-py's default backoff would only make the test slow.
    nobody = redis.Redis(port=free_port(), retry=Retry(NoBackoff(), 0))
    crons = CronsClient(nobody, "acme")
    ran = []
    with caplog.at_level(logging.WARNING, logger="monitor_es.client"):

        @crons.monitor("job", monitor_config=HOURLY)
        def job() -> None:
            ran.append(True)

        job()
    assert ran == [True]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert "in_progress check-in of job not sent" in warnings[0]
    assert "ok check-in of job not sent" in warnings[1]


def test_monitor_on_an_uninitialised_deployment_still_runs_the_job(client: Client) -> None:
    crons = CronsClient(client, "acme")
    with crons.monitor("job", monitor_config=HOURLY):
        pass  # NotInitialised is logged, not raised


def _guid() -> str:
    return "a0000000-0000-4000-8000-000000000001"


def test_a_decorated_coroutine_keeps_the_event_loop_running_while_redis_is_silent() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        port = silent.getsockname()[1]
        crons = CronsClient(f"redis://127.0.0.1:{port}/0?socket_timeout=0.3", "acme")

        @crons.monitor("job", monitor_config=HOURLY)
        async def job() -> None:
            await asyncio.sleep(0)

        async def main() -> int:
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            task = asyncio.create_task(ticker())
            await job()  # both sends wait out their read timeouts (> 1 s in all)
            task.cancel()
            return ticks

        ticks = asyncio.run(main())
    assert ticks > 20  # a send blocking the loop would leave the ticker at 0 or 1
