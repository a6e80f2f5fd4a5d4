"""`monitor-es status` and `monitor-es tail`: what an operator reads of a real deployment.

The commands run as subprocesses against real redis-servers (and the 3-node cluster); the
state they read is written by `simulate --redis-url` or by a real `monitor-es worker`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import pytest
import redis
from redis.cluster import RedisCluster
from redis_process import RedisProcess
from test_cli_operator import CLI, SCENARIOS, _env, _wait_for, assert_one_line_failure, run_cli
from test_cli_operator import (
    test_a_malformed_redis_url_is_a_usage_error as malformed_url_is_a_usage_error,
)
from test_cli_operator import (
    test_every_command_describes_itself_and_each_option as describes_itself,
)

from monitor_es.producer import Producer
from monitor_es.scenario import split_scenario
from monitor_es.store import keys

pytestmark = pytest.mark.redis

MANY = "many_monitors_and_environments"  # 2 projects, 6 monitors, 8 environments; ends with a pulse


def simulate(name: str, *args: str) -> dict[str, Any]:
    """The `simulate --json` document of a scenario (through Redis if `args` give a URL)."""
    done = run_cli("simulate", str(SCENARIOS / f"{name}.jsonl"), "--json", *args)
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def status_json(url: str, *args: str) -> tuple[list[dict[str, Any]], str]:
    """The environments `status --json` prints, and its stderr (the partitions)."""
    done = run_cli("status", "--redis-url", url, "--json", *args)
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows, done.stderr


def status_text(url: str, *args: str) -> str:
    done = run_cli("status", "--redis-url", url, *args)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    return done.stdout


def append_lines(client: redis.Redis, lines: list[dict[str, Any]]) -> None:
    """Appends scenario lines to the logs (ids at their `ts`), as the edge would, unfolded."""
    entries, invalid = split_scenario(json.dumps(line) for line in lines)
    assert not invalid
    Producer(client).append_all([e.event for e in entries], ids=[e.id for e in entries])


def fresh_check_in(ts: str, status: str) -> dict[str, Any]:
    """A check-in line creating the hourly monitor acme/fresh."""
    return {
        "type": "check_in", "ts": ts, "project": "acme", "monitor_slug": "fresh",
        "check_in_id": "f0000000-0000-4000-8000-000000000001", "status": status,
        "monitor_config": {"schedule_type": "crontab", "schedule": "0 * * * *"},
    }  # fmt: skip


@contextmanager
def process(*args: str) -> Iterator[subprocess.Popen[str]]:
    """`monitor-es ARGS` running in the background, killed if the test leaves it running."""
    proc = subprocess.Popen(
        [*CLI, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    timer = threading.Timer(60, proc.kill)  # a hung process must not hang the suite
    timer.start()
    try:
        yield proc
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=15)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def read_lines(stream: IO[str] | None, count: int) -> list[str]:
    assert stream is not None
    return [stream.readline() for _ in range(count)]


def shell(script: str) -> subprocess.CompletedProcess[str]:
    """Runs a bash pipeline; it fails if any of its commands does."""
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=30,
        check=False,
    )


def stop(proc: subprocess.Popen[str], sig: signal.Signals) -> tuple[int, str, str]:
    """Sends `sig`; returns the exit code and what was left on stdout and stderr."""
    proc.send_signal(sig)
    rest, errors = proc.communicate(timeout=15)
    return proc.returncode, rest, errors


# ------------------------------------------------------------------ status


@pytest.mark.parametrize("command", ["status", "tail"])
def test_status_and_tail_describe_themselves_and_refuse_a_malformed_url(command: str) -> None:
    describes_itself(command)  # the checks every other command passes
    malformed_url_is_a_usage_error(command, "redis//x", "not a Redis URL")


@pytest.mark.parametrize(
    ("name", "partitions"),
    [(MANY, "4"), ("mute_disable_edit_delete", "1"), ("contract_inputs", "1")],
)
def test_status_json_prints_the_environments_simulate_prints(
    real_client: redis.Redis, redis_server: str, name: str, partitions: str
) -> None:
    simulate(name, "--redis-url", redis_server, "--partitions", partitions)
    rows, partition_lines = status_json(redis_server)
    assert rows == simulate(name)["environments"]  # the pure fold, no Redis
    assert len(partition_lines.splitlines()) == int(partitions)
    assert all("0 log entries not folded" in line for line in partition_lines.splitlines())


def test_status_filters_by_project_and_monitor(real_client: redis.Redis, redis_server: str) -> None:
    simulate(MANY, "--redis-url", redis_server, "--partitions", "4")
    every = simulate(MANY)["environments"]
    globex, _ = status_json(redis_server, "--project", "globex")
    assert globex == [row for row in every if row["project"] == "globex"]
    assert {row["monitor_slug"] for row in globex} == {"reports", "sydney-report"}
    slug, _ = status_json(redis_server, "--monitor", "nightly-etl")
    assert slug == [row for row in every if row["monitor_slug"] == "nightly-etl"]
    assert [row["environment"] for row in slug] == ["production", "staging"]
    # Given both, only the monitor's own partition is read and reported.
    one, partition_lines = status_json(redis_server, "--project", "acme", "--monitor", "api-sync")
    assert one == [r for r in every if (r["project"], r["monitor_slug"]) == ("acme", "api-sync")]
    own = keys.partition_for("acme", "api-sync", 4)
    assert partition_lines.startswith(f"partition {own}: ")
    assert len(partition_lines.splitlines()) == 1
    nothing, _ = status_json(redis_server, "--project", "initech")
    assert nothing == []


def test_status_text_shows_each_environment_with_its_open_incident(
    real_client: redis.Redis, redis_server: str
) -> None:
    simulate("mute_disable_edit_delete", "--redis-url", redis_server)
    text = status_text(redis_server)
    rows = simulate("mute_disable_edit_delete")["environments"]
    lines = text.splitlines()
    assert lines[0] == f"{len(rows)} environment(s)"
    for line, row in zip(lines[1:], rows, strict=False):
        name = f"{row['project']}/{row['monitor_slug']}/{row['environment']}"
        assert line.startswith(f"  {name}: {row['status']}, "), line
        assert ("muted" in line.split(", ")) == row["muted"], line
        assert f"next {row['next_checkin']}, latest {row['next_checkin_latest']}" in line
        incident = row["incident"]
        assert incident is not None  # every environment of this scenario ends in an incident
        assert f"incident {incident['id']} open since {incident['started_at']}" in line
    assert "1 partition(s)" in lines
    assert "not current" not in text


def test_status_reports_entries_no_worker_folded_until_a_worker_folds_them(
    real_client: redis.Redis, redis_server: str
) -> None:
    simulate("mute_disable_edit_delete", "--redis-url", redis_server)
    folded_up_to = real_client.hget(keys.partition_keys(0).meta, keys.META_LAST_ID)
    assert folded_up_to is not None
    append_lines(
        real_client,
        [
            {"type": "monitor_disabled", "ts": "2024-05-01T13:20:30Z", "project": "acme",
             "monitor_slug": "muted", "disabled": True},
            {"type": "clock_pulse", "ts": "2024-05-01T13:21:00Z"},
        ],
    )  # fmt: skip
    text = status_text(redis_server)
    assert f"folded up to {folded_up_to.decode()} " in text
    assert "2 log entries not folded (60 s of log behind)" in text
    assert "not current: 1 partition(s) have log entries not folded yet" in text
    assert "disabled" not in text
    _, partition_lines = status_json(redis_server)
    assert "2 log entries not folded" in partition_lines

    with process("worker", "--redis-url", redis_server) as worker:
        log = keys.partition_keys(0).log
        _wait_for(lambda: not real_client.xinfo_groups(log)[0]["lag"], timeout_s=30)
        _wait_for(lambda: not real_client.xinfo_groups(log)[0]["pending"], timeout_s=30)
        text = status_text(redis_server)
        assert "0 log entries not folded; 0 dead letter(s); owned by " in text
        assert "clock ticked 2024-05-01T13:21:00Z" in text
        assert "not current" not in text
        disabled = [line for line in text.splitlines() if ", disabled, " in line]
        assert [line.split(":")[0].strip() for line in disabled] == [
            "acme/muted/production",
            "acme/muted/staging",
        ]
        assert stop(worker, signal.SIGTERM)[0] == 0
    assert "no worker" in status_text(redis_server)


@pytest.mark.cluster
def test_status_on_a_cluster_reads_every_partition(
    cluster_client: RedisCluster, redis_cluster: str
) -> None:
    simulate(MANY, "--redis-url", redis_cluster, "--partitions", "6")
    rows, partition_lines = status_json(redis_cluster)
    assert rows == simulate(MANY)["environments"]
    assert [line.split(":")[0] for line in partition_lines.splitlines()] == [
        f"partition {p}" for p in range(6)
    ]
    text = status_text(redis_cluster, "--project", "globex", "--monitor", "reports")
    assert "globex/reports/production: missed, " in text


def test_status_and_tail_need_a_redis_url_and_an_initialised_deployment(
    real_client: redis.Redis, redis_server: str
) -> None:
    for command in ("status", "tail"):
        done = run_cli(command)
        assert_one_line_failure(done, 2, f"{command} needs a Redis", "--redis-url", "$MONITOR_ES")
        done = run_cli(command, "--redis-url", redis_server)
        assert_one_line_failure(done, 1, redis_server, "not initialised", "monitor-es init")
        assert done.stdout == ""
    assert real_client.keys("*") == []  # they created nothing


# ------------------------------------------------------------------ tail


@pytest.mark.parametrize("name", [MANY, "rejections"])
def test_tail_json_from_the_start_prints_simulates_events_then_stops_on_sigint(
    real_client: redis.Redis, redis_server: str, name: str
) -> None:
    simulate(name, "--redis-url", redis_server)  # one partition: one order of events
    events = simulate(name)["events"]
    with process("tail", "--redis-url", redis_server, "--json", "--from-start") as tail:
        lines = read_lines(tail.stdout, len(events))
        code, rest, errors = stop(tail, signal.SIGINT)
    assert [json.loads(line) for line in lines] == events
    assert (code, rest) == (0, "")
    assert "Traceback" not in errors


def test_tail_shows_notable_events_committed_after_it_started(
    real_client: redis.Redis, redis_server: str
) -> None:
    simulate(MANY, "--redis-url", redis_server)
    with (
        process("worker", "--redis-url", redis_server) as worker,
        process("tail", "--redis-url", redis_server) as tail,
    ):
        assert tail.stderr is not None
        assert "following 1 partition(s) from now" in tail.stderr.readline()
        append_lines(real_client, [fresh_check_in("2024-05-01T09:30:10Z", "error")])
        lines = read_lines(tail.stdout, 4)
        code, rest, _ = stop(tail, signal.SIGTERM)
        assert stop(worker, signal.SIGTERM)[0] == 0
    # From now on: nothing of the scenario, only what the new check-in derived (notable ones).
    assert [line.split()[0] for line in lines] == [
        "monitor_created",
        "status_changed",
        "incident_opened",
        "issue_occurrence",
    ]
    assert lines[0] == "monitor_created    acme/fresh\n"
    assert lines[1] == "status_changed     acme/fresh/production pending -> failed\n"
    assert "started 2024-05-01T09:30:10Z" in lines[2]
    assert (code, rest) == (0, "")


def test_tail_all_prints_every_event_and_stops_when_its_reader_leaves(
    real_client: redis.Redis, redis_server: str
) -> None:
    simulate("rejections", "--redis-url", redis_server)
    events = simulate("rejections")["events"]
    tail = " ".join([*CLI, "tail", "--redis-url", redis_server])
    done = shell(f"{tail} --all --from-start | head -n {len(events)}")
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == [e["type"] for e in events]
    # A reader that leaves while nothing happens: tail notices without having to write.
    done = shell(f"{tail} | true")
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    assert "Traceback" not in done.stderr


def test_tail_follows_on_across_a_redis_restart_without_repeating_or_losing_events(
    redis_aof_server: RedisProcess,
) -> None:
    url = redis_aof_server.url
    simulate("rejections", "--redis-url", url)
    before = simulate("rejections")["events"]
    with process("tail", "--redis-url", url, "--json", "--from-start") as tail:
        assert tail.stderr is not None
        assert "following" in tail.stderr.readline()
        assert [json.loads(line) for line in read_lines(tail.stdout, len(before))] == before
        redis_aof_server.stop()
        assert "following again when it answers" in tail.stderr.readline()
        redis_aof_server.start()  # AOF: the out streams are back as they were
        assert "answers again" in tail.stderr.readline()
        client = redis.Redis.from_url(url)
        with process("worker", "--redis-url", url) as worker:
            append_lines(client, [fresh_check_in("2024-05-01T12:03:10Z", "ok")])
            after = []
            while not after or (after[-1]["type"], after[-1].get("monitor_slug")) != (
                "check_in_created",
                "fresh",
            ):
                after.append(json.loads(read_lines(tail.stdout, 1)[0]))
            assert stop(worker, signal.SIGTERM)[0] == 0
        code, _, _ = stop(tail, signal.SIGINT)
        client.close()
    # What followed the restart is what the new entry derived (its minute's tick, then the
    # new monitor): nothing printed before came again.
    assert {e["id"] for e in after}.isdisjoint(e["id"] for e in before)
    fresh = [e["type"] for e in after if e.get("monitor_slug") == "fresh"]
    assert fresh == ["monitor_created", "environment_created", "check_in_created"]
    assert code == 0
