"""`monitor-es audit` run as a subprocess on a real redis-server and on the 3-node cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster
from test_cli_operator import assert_one_line_failure, run_cli
from test_cli_read import MANY, simulate

from monitor_es.store import keys

pytestmark = pytest.mark.redis


def test_audit_passes_on_what_workers_committed_then_names_a_tampered_record(
    real_client: redis.Redis, redis_server: str, tmp_path: Path
) -> None:
    simulate(MANY, "--redis-url", redis_server, "--partitions", "2")
    done = run_cli("audit", "--redis-url", redis_server)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert all(line.endswith("the committed state matches") for line in lines), lines

    trimmed = run_cli(
        "trim", "--redis-url", redis_server, "--keep-log", "10m", "--archive", str(tmp_path)
    )
    assert trimmed.returncode == 0, trimmed.stderr
    archived = run_cli("audit", "--redis-url", redis_server, "--archive", str(tmp_path))
    assert (archived.returncode, archived.stdout) == (0, done.stdout), archived.stderr
    without = run_cli("audit", "--redis-url", redis_server)
    assert without.returncode == 1
    assert "cannot audit" in without.stderr and "not in the archive given" in without.stderr

    state = keys.partition_keys(0).state
    field = next(f for f in real_client.hkeys(state) if f[:1] == b"e")
    real_client.hset(state, field, b"\x90")
    tampered = run_cli("audit", "--redis-url", redis_server, "--archive", str(tmp_path))
    assert tampered.returncode == 1
    assert "partition 0:" in tampered.stdout and "DIFFERS in 1: environment " in tampered.stdout
    assert "1 partition(s) failed the audit" in tampered.stderr


def test_audit_on_the_cluster_replays_every_partition(
    cluster_client: RedisCluster, redis_cluster: str
) -> None:
    simulate(MANY, "--redis-url", redis_cluster, "--partitions", "6")
    done = run_cli("audit", "--redis-url", redis_cluster)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 6
    assert all(line.endswith("the committed state matches") for line in lines), lines


def test_audit_of_a_deployment_never_initialised_stops_with_one_line(
    real_client: redis.Redis, redis_server: str
) -> None:
    assert_one_line_failure(run_cli("audit", "--redis-url", redis_server), 1, "monitor-es init")
