"""The `monitor-es` command run as a user runs it: a subprocess, its output and exit code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from monitor_es.codec import decode_out_entry
from monitor_es.domain.events import EventRejected
from monitor_es.producer import Producer
from monitor_es.scenario import split_scenario
from monitor_es.store import functions, keys
from monitor_es.store.log import PartitionStore

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
_SCRIPT = Path(sys.executable).with_name("monitor-es")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "monitor_es.cli"]


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Runs `monitor-es ARGS` with no Redis URL from the environment."""
    env = {k: v for k, v in os.environ.items() if k != "MONITOR_ES_REDIS_URL"}
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def simulate_json(name: str, *extra: str) -> dict[str, Any]:
    """The `simulate FILE --json` document of a scenario."""
    done = run_cli("simulate", str(SCENARIOS / f"{name}.jsonl"), "--json", *extra)
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def line_containing(name: str, marker: str) -> int:
    """The 1-based number of the only non-comment line of a scenario containing `marker`."""
    lines = (SCENARIOS / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    found = [
        n for n, text in enumerate(lines, start=1) if marker in text and not text.startswith("#")
    ]
    assert len(found) == 1, (marker, found)
    return found[0]


def test_simulate_json_dates_a_missed_check_in_at_its_expected_time() -> None:
    doc = simulate_json("missed_with_margin")
    # Hourly, margin 5: the 13:00 run may come until 13:05; the 13:05 tick marks it missed,
    # dated 13:00. The 15:00 run is missed the same way at 15:05; 14:02 resolved the first.
    missed = [c for c in doc["check_ins"] if c["status"] == "missed"]
    assert [(c["date_added"], c["expected_time"]) for c in missed] == [
        ("2024-05-01T13:00:00Z", "2024-05-01T13:00:00Z"),
        ("2024-05-01T15:00:00Z", "2024-05-01T15:00:00Z"),
    ]
    marks = [e["ts"] for e in doc["events"] if e["type"] == "mark_missing"]
    assert marks == ["2024-05-01T13:05:00Z", "2024-05-01T15:05:00Z"]
    first = doc["check_ins"][0]
    assert first["duration_ms"] == 12_500  # 12.5 s sent in seconds, stored in ms
    assert first["expected_time"] is None  # the environment's first check-in
    resolved, still_open = doc["incidents"]
    assert resolved["fingerprint"] == "crons:acme/hourly-backup/production"
    assert resolved["starting_check_in_id"] == missed[0]["check_in_id"]
    assert resolved["started_at"] == "2024-05-01T13:00:00Z"
    assert resolved["resolving_check_in_id"] == "a0000000-0000-4000-8000-000000000002"
    assert resolved["resolved_at"] == "2024-05-01T14:02:00Z"
    assert still_open["started_at"] == "2024-05-01T15:00:00Z"
    assert still_open["resolved_at"] is None
    occurrences = [e for e in doc["events"] if e["type"] == "issue_occurrence"]
    assert [o["detection_time"] for o in occurrences] == [
        "2024-05-01T13:00:00Z",
        "2024-05-01T15:00:00Z",
    ]
    assert occurrences[0]["fingerprint"] == ["crons:acme/hourly-backup/production"]
    (env,) = doc["environments"]
    assert env["status"] == "missed"
    assert env["last_checkin"] == "2024-05-01T14:02:00Z"  # misses never move it
    assert (env["next_checkin"], env["next_checkin_latest"]) == (
        "2024-05-01T16:00:00Z",
        "2024-05-01T16:05:00Z",
    )
    assert env["incident"]["id"] == still_open["id"]
    assert doc["rejected"] == []


def test_simulate_json_keeps_a_late_closed_run_timed_out() -> None:
    doc = simulate_json("timeouts_late_close")
    run = doc["check_ins"][0]
    # max_runtime 10 from 12:00: timed out at the 12:10 tick; closed ok at 12:15 after 890 s.
    assert (run["status"], run["duration_ms"]) == ("timeout", 890_000)
    (incident,) = doc["incidents"]
    assert incident["started_at"] == "2024-05-01T12:00:10Z"
    assert incident["resolved_at"] == "2024-05-01T13:00:05Z"


@pytest.mark.redis
@pytest.mark.parametrize(
    "name",
    [
        "missed_with_margin",
        "rejections",
        "system_incident_decisions",
        "dst_schedules",
        "blackbox_delete",  # a deleted monitor's rows leave the document on both paths
        "contract_inputs",  # every input form domain.md accepts
        "contract_bad_lines",  # invalid lines are refused alike before the log
    ],
)
def test_simulate_through_redis_prints_the_same_json(
    real_client: redis.Redis, redis_server: str, name: str
) -> None:
    path = str(SCENARIOS / f"{name}.jsonl")
    in_memory = run_cli("simulate", path, "--json")
    through_redis = run_cli("simulate", path, "--json", "--redis-url", redis_server)
    assert in_memory.returncode == through_redis.returncode == 0, through_redis.stderr
    assert through_redis.stdout == in_memory.stdout
    assert real_client.exists("mes:deployment")  # it really went through the server


def test_the_summary_names_every_rejected_line_with_its_number() -> None:
    done = run_cli("simulate", str(SCENARIOS / "rejections.jsonl"))
    assert done.returncode == 0, done.stderr
    name = "rejections"
    expected = {
        line_containing(name, "000000000008"): "monitor_environment_ratelimited",
        line_containing(name, "not-a-guid"): "checkin_invalid_guid",
        line_containing(name, '"status": "error"'): "checkin_finished",
        line_containing(name, "this line is not JSON"): "invalid_event",
        line_containing(name, '"done"'): "checkin_validation_failed",
        line_containing(name, '"duration": -1'): "checkin_validation_failed",
        line_containing(name, "heartbeat_sent"): "invalid_event",
        line_containing(name, "12:01:50Z"): "invalid_event",  # no check_in_id
        line_containing(name, "no-such-monitor"): "monitor_not_found",
        line_containing(name, "clock_pulse"): "invalid_event",  # ts goes backwards
    }
    rejected = [row for row in done.stdout.splitlines() if "rejected:" in row]
    assert rejected == [f"  line {n} rejected: {kind}" for n, kind in sorted(expected.items())]
    assert done.stdout.startswith("2 environment(s)\n")


def test_simulate_of_a_missing_file_exits_2_with_a_message(tmp_path: Path) -> None:
    done = run_cli("simulate", str(tmp_path / "nope.jsonl"))
    assert done.returncode == 2
    assert "cannot read" in done.stderr and "nope.jsonl" in done.stderr


@pytest.mark.redis
def test_init_refuses_to_change_the_partition_count(
    real_client: redis.Redis, redis_server: str
) -> None:
    first = run_cli("init", "--redis-url", redis_server, "--partitions", "4")
    assert first.returncode == 0
    assert first.stdout.startswith("deployment ready: 4 partitions; limits: ")
    again = run_cli("init", "--redis-url", redis_server, "--partitions", "4")
    assert again.returncode == 0  # idempotent
    for bad in ("0", "-3", "x"):
        refused_count = run_cli("init", "--redis-url", redis_server, "--partitions", bad)
        assert refused_count.returncode == 2
        assert "argument --partitions" in refused_count.stderr
    upgrade = run_cli("init", "--redis-url", redis_server)  # after an upgrade: no count needed
    assert upgrade.returncode == 0, upgrade.stderr
    assert upgrade.stdout.startswith("deployment ready: 4 partitions;")
    refused = run_cli("init", "--redis-url", redis_server, "--partitions", "8")
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert "initialised with 4 partitions" in refused.stderr
    assert "refusing to change to 8" in refused.stderr
    assert real_client.hget("mes:deployment", "partitions") == b"4"


# Three runs of one environment opened within the broker minute 12:00.
_THREE_IN_A_MINUTE = [
    {
        "type": "check_in", "ts": f"2024-05-01T12:00:{10 * n:02d}Z", "project": "web",
        "monitor_slug": "nightly", "check_in_id": f"00000000-0000-4000-8000-00000000000{n}",
        "status": "in_progress",
        "monitor_config": {"schedule": "* * * * *"} if n == 1 else None,
    }
    for n in (1, 2, 3)
]  # fmt: skip


def _rate_limited(events: list[dict[str, Any]]) -> list[str]:
    return [
        e["entry_id"]
        for e in events
        if e["type"] == "event_rejected"
        and e["errors"][0]["type"] == "monitor_environment_ratelimited"
    ]


@pytest.mark.redis
def test_the_pipeline_folds_with_the_limits_stored_at_init_and_refuses_others(
    real_client: redis.Redis, redis_server: str, tmp_path: Path
) -> None:
    scenario = tmp_path / "three.jsonl"
    scenario.write_text("".join(json.dumps(e) + "\n" for e in _THREE_IN_A_MINUTE))
    init = run_cli("init", "--redis-url", redis_server, "--partitions", "1", "--rate-limit", "2")
    assert init.returncode == 0, init.stderr
    assert "2 check-ins per environment and minute" in init.stdout
    # No flag: the deployment's limit (2) applies, so the third run is rejected, as the pure
    # fold rejects it when told the same limit.
    through_redis = run_cli("simulate", str(scenario), "--json", "--redis-url", redis_server)
    assert through_redis.returncode == 0, through_redis.stderr
    assert len(_rate_limited(json.loads(through_redis.stdout)["events"])) == 1
    pure = run_cli("simulate", str(scenario), "--json", "--rate-limit", "2")
    assert through_redis.stdout == pure.stdout
    refused = run_cli(
        "simulate", str(scenario), "--json", "--redis-url", redis_server, "--rate-limit", "5"
    )
    assert refused.returncode == 2
    assert "checkins_per_minute is 2, not 5" in refused.stderr
    assert refused.stdout == ""
    again = run_cli("init", "--redis-url", redis_server, "--partitions", "1", "--rate-limit", "6")
    assert again.returncode == 1
    assert "refusing to change them" in again.stderr
    assert real_client.hget("mes:deployment", "limit:checkins_per_minute") == b"2"


@pytest.mark.redis
def test_simulate_through_an_initialised_deployment_keeps_or_refuses_its_partition_count(
    real_client: redis.Redis, redis_server: str, tmp_path: Path
) -> None:
    scenario = tmp_path / "three.jsonl"
    scenario.write_text("".join(json.dumps(e) + "\n" for e in _THREE_IN_A_MINUTE))
    assert run_cli("init", "--redis-url", redis_server, "--partitions", "3").returncode == 0
    refused = run_cli("simulate", str(scenario), "--redis-url", redis_server, "--partitions", "5")
    assert refused.returncode == 2
    assert "initialised with 3 partitions; refusing to change to 5" in refused.stderr
    assert real_client.xlen("mes:{p00}:log") == 0  # nothing was appended
    kept = run_cli("simulate", str(scenario), "--json", "--redis-url", redis_server)
    assert kept.returncode == 0, kept.stderr
    assert real_client.hget("mes:deployment", "partitions") == b"3"
    assert kept.stdout == run_cli("simulate", str(scenario), "--json").stdout


@pytest.mark.redis
def test_a_worker_process_folds_with_the_deployments_limits(
    real_client: redis.Redis, redis_server: str
) -> None:
    init = run_cli("init", "--redis-url", redis_server, "--partitions", "1", "--rate-limit", "2")
    assert init.returncode == 0, init.stderr
    entries, invalid = split_scenario(json.dumps(e) for e in _THREE_IN_A_MINUTE)
    assert not invalid
    Producer(real_client, 1).append_all([e.event for e in entries], ids=[e.id for e in entries])
    log = keys.partition_keys(0).log
    env = {k: v for k, v in os.environ.items() if k != "MONITOR_ES_REDIS_URL"}
    worker = subprocess.Popen(
        [*CLI, "worker", "--redis-url", redis_server], env=env, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while (group := real_client.xinfo_groups(log)[0])["pending"] or group["lag"]:
            assert time.monotonic() < deadline, "the worker did not fold the log"
            time.sleep(0.1)
    finally:
        worker.terminate()
        worker.wait(timeout=15)
    events = [
        {"type": "event_rejected", "entry_id": e.entry_id, "errors": e.errors}
        for _, payload in PartitionStore(real_client, 0).read_out()
        for e in decode_out_entry(payload)
        if isinstance(e, EventRejected)
    ]
    assert _rate_limited(events) == [entries[2].id]
    # The worker no longer takes limits of its own: they would split a deployment's fold.
    refused = run_cli("worker", "--redis-url", redis_server, "--rate-limit", "3")
    assert refused.returncode == 2
    assert "unrecognized arguments: --rate-limit" in refused.stderr


@pytest.mark.redis
@pytest.mark.parametrize("command", ["worker", "pulse"])
@pytest.mark.parametrize("newer", [functions.HEARTBEAT, functions.AGGREGATOR_WRITE])
def test_a_long_running_command_on_a_deployment_with_an_older_library_asks_for_init(
    real_client: redis.Redis, redis_server: str, command: str, newer: str
) -> None:
    assert run_cli("init", "--redis-url", redis_server, "--partitions", "2").returncode == 0
    # The library an earlier monitor-es loaded: the same name, without a newer function.
    older = "\n".join(line for line in functions.library_code().splitlines() if newer not in line)
    real_client.function_load(older, replace=True)
    done = run_cli(command, "--redis-url", redis_server, timeout=15)
    assert done.returncode == 1
    assert f"lack {newer}: run `monitor-es init` again" in done.stderr
    assert run_cli("init", "--redis-url", redis_server, "--partitions", "2").returncode == 0
    assert functions.loaded_functions(real_client) >= functions.REQUIRED


@pytest.mark.redis
@pytest.mark.parametrize("command", ["worker", "pulse"])
def test_a_long_running_command_on_an_uninitialised_database_exits_1(
    real_client: redis.Redis, redis_server: str, command: str
) -> None:
    done = run_cli(command, "--redis-url", redis_server, timeout=15)
    assert done.returncode == 1
    assert "not initialised; run `monitor-es init` first" in done.stderr
    assert real_client.keys("mes:*") == []  # it created nothing


def _run_until(args: list[str], marker: str, timeout_s: float = 30) -> tuple[int, str]:
    """Starts `monitor-es ARGS`, waits for a line containing `marker`, then SIGTERMs it."""
    env = {k: v for k, v in os.environ.items() if k != "MONITOR_ES_REDIS_URL"}
    seen: list[str] = []
    with subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        timer = threading.Timer(timeout_s, proc.kill)  # a hung process must not hang the suite
        timer.start()
        try:
            for line in proc.stdout:
                seen.append(line)
                if marker in line:
                    proc.send_signal(signal.SIGTERM)
                    break
            seen += proc.stdout.readlines()
            code = proc.wait(timeout=15)
        finally:
            timer.cancel()
    output = "".join(seen)
    assert marker in output, output
    return code, output


def test_run_demo_on_the_embedded_redis_shows_the_demo_job_checking_in() -> None:
    # The README's first command: no server, a demo job, its events printed as they happen.
    code, output = _run_until(["run", "--demo", "--interval", "0.5"], "pending -> ok")
    assert code == 0, output
    assert "running on an embedded in-process Redis with 16 partitions" in output
    assert "monitor_created    demo/every-minute" in output


@pytest.mark.redis
def test_run_on_an_initialised_deployment_keeps_its_partition_count(
    real_client: redis.Redis, redis_server: str
) -> None:
    assert run_cli("init", "--redis-url", redis_server, "--partitions", "3").returncode == 0
    code, output = _run_until(["run", "--redis-url", redis_server], "with 3 partitions")
    assert code == 0, output
    refused = run_cli("run", "--redis-url", redis_server, "--partitions", "4")
    assert refused.returncode == 1
    assert "refusing to change to 4" in refused.stderr
