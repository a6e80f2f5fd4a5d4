"""The pipeline on a real local 3-node Redis Cluster: 16 partitions over three primaries.

Every partition's keys share one hash tag, so each fenced commit is a single-slot Function
call wherever the slot lives; the results must equal the pure fold (events compared in id
order, since monitors in different partitions interleave differently).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from redis.cluster import RedisCluster

from monitor_es.codec import decode_out_entry
from monitor_es.domain.partition import Limits
from monitor_es.domain.reducer import LogEntry
from monitor_es.producer import Producer, partitions_of
from monitor_es.redis_simulate import simulate_on_redis
from monitor_es.replay import simulate
from monitor_es.scenario import line_of, read_scenario
from monitor_es.store import keys
from monitor_es.store.connection import as_text
from monitor_es.store.deployment import init_deployment
from monitor_es.store.log import PartitionStore
from monitor_es.workers.partition import load_partition
from monitor_es.workers.runner import WorkerProcess
from projections.report import build_report

pytestmark = pytest.mark.cluster

N = 16
SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
SCENARIO_NAMES = sorted(path.stem for path in SCENARIOS.glob("*.jsonl"))


def _lines(name: str) -> list[str]:
    return (SCENARIOS / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()


def canonical(environments: Any, events: Any, invalid: Any) -> dict[str, Any]:
    """The simulate document with lists in an order independent of partitioning."""
    bad = [(line.line, line.message) for line in invalid]
    report = json.loads(msgspec.json.encode(build_report(environments, events, bad, line_of)))
    report["events"].sort(key=lambda e: (e["id"], json.dumps(e, sort_keys=True)))
    report["check_ins"].sort(key=lambda c: (c["project"], c["check_in_id"]))
    report["incidents"].sort(key=lambda i: i["id"])
    result: dict[str, Any] = report
    return result


def _param(name: str) -> Any:
    return name


@pytest.mark.parametrize("name", [_param(n) for n in SCENARIO_NAMES])
def test_scenario_on_sixteen_cluster_partitions_equals_the_pure_fold(
    cluster_client: RedisCluster, name: str
) -> None:
    lines = _lines(name)
    pure = simulate(lines)
    run = simulate_on_redis(cluster_client, lines, partitions=N)
    assert canonical(run.environments, run.events, run.invalid) == canonical(
        pure.partition.all_environments(), pure.events, pure.invalid
    )


def test_the_scenarios_spread_over_every_primary_of_the_cluster(
    cluster_client: RedisCluster,
) -> None:
    simulate_on_redis(cluster_client, _lines("many_monitors_and_environments"), partitions=N)
    busy = set()
    for p in range(N):
        key = keys.partition_keys(p).state
        if cluster_client.exists(key):
            node = cluster_client.get_node_from_key(key)
            assert node is not None
            busy.add(node.name)
    assert len(busy) == 3


def _drained(client: RedisCluster, expected_last: dict[int, str]) -> bool:
    for p, last in expected_last.items():
        mark = client.hget(keys.partition_keys(p).meta, keys.META_LAST_ID)
        if mark is None or as_text(mark) != last:
            return False
    return True


def test_a_worker_process_on_the_cluster_reduces_appended_entries(
    cluster_client: RedisCluster,
) -> None:
    lines = _lines("many_monitors_and_environments")
    entries = [e for e in read_scenario(lines) if isinstance(e, LogEntry)]
    init_deployment(cluster_client, N)
    process = WorkerProcess(cluster_client, N, owner="cluster-worker", block_ms=100)
    stop = threading.Event()
    runner = threading.Thread(target=process.run, args=(stop,), name="cluster-worker")
    runner.start()
    try:
        Producer(cluster_client, N).append_all(
            [e.event for e in entries], ids=[e.id for e in entries]
        )
        expected_last: dict[int, str] = {}
        for entry in entries:
            for p in partitions_of(entry.event, N):
                expected_last[p] = entry.id
        deadline = time.monotonic() + 20
        while not _drained(cluster_client, expected_last):
            assert time.monotonic() < deadline, "the worker did not drain the partitions"
            time.sleep(0.05)
    finally:
        stop.set()
        runner.join(timeout=15)
    assert not runner.is_alive()

    environments = []
    events = []
    for p in range(N):
        store = PartitionStore(cluster_client, p)
        environments += load_partition(store, Limits())[0].all_environments()
        events += [event for _, payload in store.read_out() for event in decode_out_entry(payload)]
    pure = simulate(lines)
    assert canonical(environments, events, []) == canonical(
        pure.partition.all_environments(), pure.events, []
    )
    for p in range(N):  # every lease was handed back on the way out
        assert cluster_client.get(keys.partition_keys(p).lease) is None
