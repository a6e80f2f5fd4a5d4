"""`monitor-es checkin` and `monitor-es exec`, run as commands against real redis-servers.

What they append is read back from the logs and folded with the pure reducer; one test
runs a real `monitor-es worker` and reads the committed events instead.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_process import free_port
from send_helpers import folded, logged, of_type
from test_cli_operator import CLI, _env, run_cli
from test_cli_operator import (
    test_a_malformed_redis_url_is_a_usage_error as malformed_url_is_a_usage_error,
)
from test_cli_operator import (
    test_every_command_describes_itself_and_each_option as describes_itself,
)

from monitor_es.cli_send import _heartbeats, split_command
from monitor_es.client import SEND_SOCKET, CronsClient
from monitor_es.codec import decode_out_entry
from monitor_es.domain.events import CheckInReported, event_json
from monitor_es.store.connection import Client, connect
from monitor_es.store.deployment import init_deployment
from monitor_es.store.log import PartitionStore

pytestmark = pytest.mark.redis
HOURLY = ["--schedule", "0 * * * *"]
HOURLY_CONFIG = {"schedule_type": "crontab", "schedule": "0 * * * *"}


@pytest.fixture
def url(real_client: redis.Redis, redis_server: str) -> str:
    init_deployment(real_client, 2)
    return redis_server


def send(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args[:1], "--redis-url", url, "--project", "acme", *args[1:], env=_env(**env))


def statuses(client: Client) -> list[tuple[str, str]]:
    """(check-in id, status) of every appended check-in, in log order."""
    found = []
    for entry in logged(client):
        assert isinstance(entry.event, CheckInReported)
        found.append((entry.event.check_in_id, entry.event.status))
    return found


# ---------------------------------------------------------------- checkin


@pytest.mark.parametrize("command", ["checkin", "exec"])
def test_checkin_and_exec_describe_themselves_and_refuse_a_malformed_url(command: str) -> None:
    describes_itself(command)  # the checks every other command passes
    malformed_url_is_a_usage_error(command, "redis//x", "not a Redis URL")


def test_the_environment_can_come_from_the_environment(url: str, real_client: redis.Redis) -> None:
    done = send(url, "checkin", "backup", "ok", *HOURLY, MONITOR_ES_ENVIRONMENT="staging")
    assert done.returncode == 0, done.stderr
    [created] = of_type(folded(real_client), "check_in_created")
    assert created["environment"] == "staging"


def test_checkin_prints_the_run_id_and_the_reducer_upserts_the_monitor(
    url: str, real_client: redis.Redis
) -> None:
    done = send(url, "checkin", "backup", "ok", "--env", "staging", *HOURLY, "--max-runtime", "5")
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    assert str(uuid.UUID(run_id)) == run_id
    events = folded(real_client)
    [created] = of_type(events, "monitor_created")
    assert created["config"]["schedule"] == "0 * * * *"
    assert created["config"]["max_runtime"] == 5
    [checkin] = of_type(events, "check_in_created")
    assert (checkin["check_in_id"], checkin["environment"], checkin["status"]) == (
        run_id,
        "staging",
        "ok",
    )


def test_a_script_opens_and_closes_a_run_by_its_id(url: str, real_client: redis.Redis) -> None:
    opened = send(url, "checkin", "backup", "in_progress", *HOURLY)
    run_id = opened.stdout.strip()
    closed = send(url, "checkin", "backup", "ok", "--id", run_id, "--duration", "1.5")
    assert closed.returncode == 0 and closed.stdout.strip() == run_id
    [updated] = of_type(folded(real_client), "check_in_updated")
    assert (updated["check_in_id"], updated["status"], updated["duration_ms"]) == (
        run_id,
        "ok",
        1500,
    )


def test_an_interval_schedule_and_the_project_from_the_environment(
    url: str, real_client: redis.Redis
) -> None:
    done = run_cli(
        "checkin", "--redis-url", url, "job", "ok", "--interval", "10 minute",
        env=_env(MONITOR_ES_PROJECT="from-env"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [created] = of_type(folded(real_client), "monitor_created")
    assert created["project"] == "from-env"
    assert created["config"]["schedule_type"] == "interval"
    assert created["config"]["schedule"] == [10, "minute"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--timezone", "Mars/Base", *HOURLY], ["monitor_invalid_config", "timezone"]),
        (["--schedule", "61 * * * *"], ["monitor_invalid_config", "schedule"]),
        (["--checkin-margin", "-1", *HOURLY], ["monitor_invalid_config", "checkin_margin"]),
        (["--interval", "ten minutes"], ["monitor_invalid_config", "schedule"]),
        (["--id", "not-a-uuid"], ["checkin_invalid_guid"]),
        (["--duration", "-3", *HOURLY], ["checkin_validation_failed", "duration"]),
        (["--env", "a/b", *HOURLY], ["monitor_invalid_environment"]),
    ],
)
def test_a_check_in_wrong_in_itself_is_refused_and_nothing_is_appended(
    url: str, real_client: redis.Redis, args: list[str], words: list[str]
) -> None:
    done = send(url, "checkin", "backup", "ok", *args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr
    assert logged(real_client) == []


def test_checkin_needs_an_initialised_deployment(
    real_client: redis.Redis, redis_server: str
) -> None:
    done = send(redis_server, "checkin", "backup", "ok", *HOURLY)
    assert done.returncode == 1
    assert "not initialised" in done.stderr and "monitor-es init" in done.stderr


@pytest.mark.parametrize(
    ("args", "word"),
    [(["--project", "acme"], "needs a Redis"), (["--redis-url", "redis://x:1"], "needs a project")],
)
def test_checkin_names_what_is_missing(args: list[str], word: str) -> None:
    done = run_cli("checkin", *args, "backup", "ok")
    assert done.returncode == 2 and word in done.stderr


def test_checkin_on_a_cluster(redis_cluster: str, cluster_client: Client) -> None:
    init_deployment(cluster_client, 4)
    url = redis_cluster.replace("redis://", "redis+cluster://")
    done = send(url, "checkin", "backup", "ok", *HOURLY)
    assert done.returncode == 0, done.stderr
    assert statuses(cluster_client) == [(done.stdout.strip(), "ok")]


# ---------------------------------------------------------------- exec


def test_exec_reports_a_successful_job_and_passes_its_output_through(
    url: str, real_client: redis.Redis
) -> None:
    job = [sys.executable, "-c", "import time; time.sleep(0.3); print('job output')"]
    done = send(url, "exec", "backup", "--env", "staging", *HOURLY, "--", *job)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "job output\n"
    [(run_id, first), (same, last)] = statuses(real_client)
    assert (first, last, same) == ("in_progress", "ok", run_id)
    closing = logged(real_client)[1].event
    assert isinstance(closing, CheckInReported)
    assert closing.environment == "staging"
    assert 0.3 <= closing.duration < 10  # measured around the job, in seconds
    [updated] = of_type(folded(real_client), "check_in_updated")
    assert updated["status"] == "ok" and updated["duration_ms"] >= 300


def test_exec_reports_a_failing_job_and_exits_with_its_status(
    url: str, real_client: redis.Redis
) -> None:
    done = send(url, "exec", "backup", *HOURLY, "--", "sh", "-c", "echo oops >&2; exit 3")
    assert done.returncode == 3
    assert "oops" in done.stderr
    assert [status for _, status in statuses(real_client)] == ["in_progress", "error"]
    [updated] = of_type(folded(real_client), "check_in_updated")
    assert updated["status"] == "error"


def test_exec_reports_a_job_killed_by_a_signal_as_128_plus_n(
    url: str, real_client: redis.Redis
) -> None:
    done = send(url, "exec", "backup", *HOURLY, "--", "sh", "-c", "kill -KILL $$")
    assert done.returncode == 128 + signal.SIGKILL
    assert statuses(real_client)[-1][1] == "error"


def test_exec_of_a_missing_command_is_an_error_run_and_127(
    url: str, real_client: redis.Redis
) -> None:
    done = send(url, "exec", "backup", *HOURLY, "--", "/no/such/command")
    assert done.returncode == 127
    assert "cannot run /no/such/command" in done.stderr
    assert [status for _, status in statuses(real_client)] == ["in_progress", "error"]


def test_exec_of_a_file_that_is_not_executable_is_126(
    url: str, real_client: redis.Redis, tmp_path: Path
) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    done = send(url, "exec", "backup", *HOURLY, "--", str(script))
    assert done.returncode == 126
    assert [status for _, status in statuses(real_client)] == ["in_progress", "error"]


def test_exec_passes_sigterm_on_to_the_job(
    url: str, real_client: redis.Redis, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    job = (
        "import signal, sys, time, pathlib\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "time.sleep(30)\n"
    )
    args = ["exec", "--redis-url", url, "--project", "acme", "backup", *HOURLY]
    wrapper = subprocess.Popen([*CLI, *args, "--", sys.executable, "-c", job], env=_env())
    deadline = time.monotonic() + 15
    while not ready.exists():
        assert wrapper.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    wrapper.send_signal(signal.SIGTERM)
    assert wrapper.wait(timeout=15) == 7  # the job heard it and chose its own exit status
    assert [status for _, status in statuses(real_client)] == ["in_progress", "error"]


def test_exec_runs_the_job_when_redis_cannot_be_reached() -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}"
    done = run_cli(
        "exec", "--redis-url", nowhere, "--project", "acme", "backup", *HOURLY,
        "--", "sh", "-c", "echo ran; exit 4",
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 4
    assert done.stdout == "ran\n"
    warnings = [line for line in done.stderr.splitlines() if "was not sent" in line]
    assert len(warnings) == 2, done.stderr
    assert "in_progress" in warnings[0] and "cannot reach Redis" in warnings[0]
    assert "error check-in" in warnings[1]


def test_exec_runs_the_job_on_an_uninitialised_deployment(
    real_client: redis.Redis, redis_server: str
) -> None:
    done = send(redis_server, "exec", "backup", *HOURLY, "--", "true")
    assert done.returncode == 0
    assert done.stderr.count("not initialised") == 2


def test_exec_refuses_bad_options_before_running_anything(
    url: str, real_client: redis.Redis, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    done = send(url, "exec", "backup", "--timezone", "Nowhere", *HOURLY, "--", "touch", str(marker))
    assert done.returncode == 2 and "monitor_invalid_config" in done.stderr
    assert not marker.exists() and logged(real_client) == []


def test_exec_needs_a_command(url: str) -> None:
    done = send(url, "exec", "backup", *HOURLY)
    assert done.returncode == 2 and "no command given" in done.stderr


def test_exec_heartbeat_is_at_least_a_minute(url: str) -> None:
    done = send(url, "exec", "backup", "--heartbeat", "30", "--", "true")
    assert done.returncode == 2 and "--heartbeat" in done.stderr


def test_heartbeats_report_in_progress_while_the_job_runs(real_client: redis.Redis) -> None:
    # The command's minimum is a minute; the loop itself is the same at any period.
    init_deployment(real_client, 1)
    job = CronsClient(real_client, "acme").monitor("backup", monitor_config=HOURLY_CONFIG)
    run = job.start()
    with _heartbeats(job, run, 0.05):
        deadline = time.monotonic() + 10
        while len(logged(real_client)) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    job.finish(run, failed=False)
    beats = statuses(real_client)
    assert {status for _, status in beats[:-1]} == {"in_progress"}
    assert beats[-1] == (run.check_in_id, "ok")
    assert {run_id for run_id, _ in beats} == {run.check_in_id}


def test_exec_end_to_end_through_a_real_worker(url: str, real_client: redis.Redis) -> None:
    done = send(url, "exec", "backup", *HOURLY, "--", "true")
    assert done.returncode == 0
    worker = subprocess.Popen(
        [*CLI, "worker", "--redis-url", url], env=_env(), stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while not (committed := _committed(real_client)):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    assert [e["monitor_slug"] for e in of_type(committed, "monitor_created")] == ["backup"]
    [created] = of_type(committed, "check_in_created")
    [updated] = of_type(committed, "check_in_updated")
    assert (created["status"], updated["status"]) == ("in_progress", "ok")
    assert created["check_in_id"] == updated["check_in_id"]


def _committed(client: Client) -> list[dict[str, Any]]:
    """The events committed on the out streams, once the run's close is among them."""
    events = []
    for partition in range(2):
        for _, payload in PartitionStore(client, partition).read_out():
            events.extend(event_json(e) for e in decode_out_entry(payload))
    return events if any(e["type"] == "check_in_updated" for e in events) else []


@pytest.mark.parametrize(
    ("words", "own", "job"),
    [
        (["exec", "m", "--", "ls", "-l"], ["exec", "m"], ["ls", "-l"]),
        (
            ["exec", "m", "--env", "s", "--", "x", "--", "y"],
            ["exec", "m", "--env", "s"],
            ["x", "--", "y"],
        ),
        (["--version"], ["--version"], None),
        (["simulate", "exec", "--", "x"], ["simulate", "exec", "--", "x"], None),
    ],
)
def test_split_command_gives_every_word_after_the_first_dashes_to_the_job(
    words: list[str], own: list[str], job: list[str] | None
) -> None:
    assert split_command(words) == (own, job)


def test_exec_leaves_the_jobs_ctrl_c_working(url: str) -> None:
    # The wrapper ignores SIGINT while the job runs; the job must not inherit that.
    probe = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    done = send(url, "exec", "backup", *HOURLY, "--", sys.executable, "-c", probe)
    assert done.returncode == 0 and done.stdout == "True\n", done.stderr


def test_a_silent_redis_never_delays_the_start_of_the_job(
    url: str, real_client: redis.Redis, tmp_path: Path
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        port = silent.getsockname()[1]
        started = tmp_path / "started"
        job = f"import pathlib, time; pathlib.Path({str(started)!r}).write_text(str(time.time()))"
        began = time.time()
        done = run_cli(
            "exec", "--redis-url", f"redis://127.0.0.1:{port}/0?socket_timeout=1",
            "--project", "acme", "backup", *HOURLY, "--", sys.executable, "-c", job,
            timeout=60,
        )  # fmt: skip
    assert done.returncode == 0
    assert float(started.read_text()) - began < 5  # far less than the in_progress send took
    assert done.stderr.count("was not sent") == 2, done.stderr


def test_a_check_in_to_an_unreachable_redis_fails_within_seconds() -> None:
    crons = CronsClient(f"redis://127.0.0.1:{free_port()}", "acme")
    began = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        crons.check_in("backup", "ok", monitor_config=HOURLY_CONFIG)
    assert time.monotonic() - began < 2  # redis-py's default retries take over 3 s
    # A server that accepts but never answers costs at most the read timeout, twice.
    client = connect("redis://127.0.0.1:1", socket=SEND_SOCKET)
    assert isinstance(client, redis.Redis)
    settings = client.connection_pool.connection_kwargs
    assert (settings["socket_timeout"], settings["socket_connect_timeout"]) == (5.0, 2.0)
