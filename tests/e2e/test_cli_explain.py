"""`monitor-es explain` run as a subprocess on a real redis-server: the chain it prints holds
exactly the events the pure `simulate` derived for the environment, tied to their entries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
from test_cli_operator import run_cli
from test_cli_read import MANY, simulate

pytestmark = pytest.mark.redis

ENV = ("acme", "api-sync", "staging")


def _about(event: dict[str, Any]) -> bool:
    return (event.get("project"), event.get("monitor_slug")) == ENV[:2] and event.get(
        "environment", ENV[2]
    ) in (ENV[2], None)


def explain_json(url: str, *args: str) -> list[dict[str, Any]]:
    done = run_cli("explain", "/".join(ENV), "--redis-url", url, "--json", *args)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_explain_shows_every_event_simulate_derived_for_the_environment_by_entry(
    real_client: redis.Redis, redis_server: str, tmp_path: Path
) -> None:
    pure = simulate(MANY)
    expected = [event for event in pure["events"] if _about(event)]
    simulate(MANY, "--redis-url", redis_server, "--partitions", "3")

    steps = explain_json(redis_server, "--last", "1000")

    assert [event for step in steps for event in step["events"]] == expected
    ids = [step["entry_id"] for step in steps]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    # Its own entries are its monitor's; the others (any entry) only moved the clock.
    own = [s["entry"] for s in steps if s["own"]]
    assert own and all(e["monitor_slug"] == "api-sync" for e in own)
    assert any(e["type"] == "check_in" and e["environment"] == "staging" for e in own)
    assert all(s["events"] for s in steps if not s["own"])
    assert explain_json(redis_server, "--last", "2") == steps[-2:]

    # After a trim, the same chain comes from the archive and the log.
    trimmed = run_cli(
        "trim", "--redis-url", redis_server, "--keep-log", "0s", "--archive", str(tmp_path)
    )
    assert trimmed.returncode == 0, trimmed.stderr
    assert explain_json(redis_server, "--last", "1000", "--archive", str(tmp_path)) == steps


def test_explain_ends_with_the_status_and_open_incident_simulate_gives(
    real_client: redis.Redis, redis_server: str
) -> None:
    pure = simulate(MANY)
    (row,) = [
        e
        for e in pure["environments"]
        if (e["project"], e["monitor_slug"], e["environment"]) == ENV
    ]
    simulate(MANY, "--redis-url", redis_server, "--partitions", "3")
    done = run_cli("explain", "/".join(ENV), "--redis-url", redis_server, "--last", "3")
    assert done.returncode == 0, done.stderr
    last = done.stdout.splitlines()[-1]
    assert last.startswith(f"{'/'.join(ENV)}: {row['status']}")
    if row["incident"] is not None:
        assert f"incident {row['incident']['id']} open since" in last
    assert ", 3 shown)" in last
    unknown = run_cli("explain", "acme/no-such-monitor", "--redis-url", redis_server)
    assert unknown.returncode == 0
    assert "acme/no-such-monitor/production: no such environment" in unknown.stdout


@pytest.mark.parametrize("text", ["acme", "acme//x", "a/b/c/d"])
def test_an_environment_not_spelled_project_monitor_env_is_a_usage_error(text: str) -> None:
    done = run_cli("explain", text, "--redis-url", "redis://127.0.0.1:1")
    assert done.returncode == 2
    assert "not PROJECT/MONITOR or PROJECT/MONITOR/ENVIRONMENT" in done.stderr
