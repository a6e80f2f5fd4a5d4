"""`monitor-es trim` run as a subprocess on a real redis-server and on the 3-node cluster:
what it archives and removes, that `status` reads the same state after it, and its usage."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster
from test_cli_operator import assert_one_line_failure, run_cli
from test_cli_read import MANY, process, simulate, status_json

from monitor_es.store import keys
from monitor_es.store.retention import read_segment

pytestmark = pytest.mark.redis


def test_trim_archives_old_folded_entries_and_status_reads_the_same_state(
    real_client: redis.Redis, redis_server: str, tmp_path: Path
) -> None:
    simulate(MANY, "--redis-url", redis_server, "--partitions", "2")
    rows, _ = status_json(redis_server)
    logs = [keys.partition_keys(p).log for p in range(2)]
    before = {log: real_client.xrange(log) for log in logs}
    archive = tmp_path / "archive"

    done = run_cli(
        "trim", "--redis-url", redis_server, "--keep-log", "10m", "--archive", str(archive),
        "--keep-out", "0s",
    )  # fmt: skip

    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["partition 0", "partition 1"]
    archived_somewhere = False
    for p, log in enumerate(logs):
        kept = real_client.xrange(log)
        gone = before[log][: len(before[log]) - len(kept)]
        assert kept == before[log][len(gone) :]
        assert f"partition {p}: {len(gone)} log entries" in lines[p]
        segments = sorted((archive / f"p{p:02d}").glob("*.jsonl.gz")) if gone else []
        archived = [entry for segment in segments for entry in read_segment(segment)]
        assert archived == [(i.decode(), f[keys.ENTRY_FIELD]) for i, f in gone]
        archived_somewhere |= bool(gone)
        assert real_client.xlen(keys.partition_keys(p).out) == 1  # the newest commit's events
    assert archived_somewhere, "the scenario spans more than ten minutes"
    after, partition_lines = status_json(redis_server)
    assert after == rows
    for p, log in enumerate(logs):  # status shows what the streams hold now
        held = f"holds {real_client.xlen(log)} log and 1 out entries"
        assert held in partition_lines.splitlines()[p], partition_lines


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], "--keep-log, --keep-out or both"),
        (["--keep-log", "7d"], "--keep-log needs --archive DIR, or --no-archive"),
        (["--keep-out", "7 days"], "not a duration like 30m, 12h or 7d"),
        (["--keep-log", "1d", "--archive", "x", "--no-archive"], "not allowed with"),
    ],
)
def test_trim_says_what_is_missing_or_wrong_as_a_usage_error(args: list[str], words: str) -> None:
    done = run_cli("trim", "--redis-url", "redis://127.0.0.1:1", *args)
    assert done.returncode == 2, done.stderr
    assert words in done.stderr


def test_trim_on_a_deployment_never_initialised_stops_with_one_line(
    real_client: redis.Redis, redis_server: str
) -> None:
    done = run_cli("trim", "--redis-url", redis_server, "--keep-out", "1h")
    assert_one_line_failure(done, 1, "monitor-es init")


def test_trim_every_runs_until_sigterm_and_exits_0(
    real_client: redis.Redis, redis_server: str
) -> None:
    simulate(MANY, "--redis-url", redis_server, "--partitions", "2")
    log = keys.partition_keys(0).log
    entries = real_client.xlen(log)
    args = ["--redis-url", redis_server, "--keep-log", "0s", "--no-archive", "--every", "1s"]
    with process("trim", *args) as trim:
        deadline = time.monotonic() + 15
        while real_client.xlen(log) == entries:
            assert time.monotonic() < deadline, "trim --every never trimmed"
            time.sleep(0.05)
        trim.send_signal(signal.SIGTERM)
        assert trim.wait(timeout=15) == 0
    assert real_client.xlen(log) == 1  # all but the high-water mark's own entry


def test_trim_on_the_cluster_leaves_every_status_as_it_was(
    cluster_client: RedisCluster, redis_cluster: str, tmp_path: Path
) -> None:
    simulate(MANY, "--redis-url", redis_cluster, "--partitions", "6")
    rows, _ = status_json(redis_cluster)
    done = run_cli(
        "trim", "--redis-url", redis_cluster, "--keep-log", "0s", "--archive", str(tmp_path),
        "--keep-out", "0s",
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert len(done.stdout.splitlines()) == 6
    for p in range(6):
        assert cluster_client.xlen(keys.partition_keys(p).log) <= 1
    assert status_json(redis_cluster)[0] == rows
