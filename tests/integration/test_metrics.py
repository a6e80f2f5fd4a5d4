"""Lease and pulser figures of the worker and pulser loops, on fakeredis and a real
redis-server (the e2e suite scrapes the same figures over HTTP from real processes)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from monitor_es.domain.events import (
    CheckInReported,
    ClockDecided,
    MonitorConfigured,
    MonitorDeleted,
)
from monitor_es.metrics import PulserMetrics, WorkerMetrics
from monitor_es.producer import Producer
from monitor_es.store import keys
from monitor_es.store.connection import Client
from monitor_es.store.deployment import init_deployment
from monitor_es.store.leases import LeaseClient
from monitor_es.workers.pulser import Pulser
from monitor_es.workers.runner import WorkerProcess


def _eventually(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def _leases(registry: CollectorRegistry) -> tuple[float, float, float]:
    """(partitions owned, leases taken, leases lost)."""
    return (
        _sample(registry, "monitor_es_partitions_owned"),
        _sample(registry, "monitor_es_lease_changes_total", change="taken"),
        _sample(registry, "monitor_es_lease_changes_total", change="lost"),
    )


def test_leases_taken_lost_and_released_are_counted_and_owned_follows_them(
    client: Client,
) -> None:
    init_deployment(client, 2)
    registry = CollectorRegistry()
    process = WorkerProcess(
        client, 2, lease_ttl_ms=2000, block_ms=50, metrics=WorkerMetrics(registry)
    )
    stop = threading.Event()
    thread = threading.Thread(target=process.run, args=(stop,), daemon=True)
    thread.start()
    try:
        # Each figure is updated on its own: wait for a state where they all agree.
        _eventually(lambda: _leases(registry) == (2, 2, 0))
        # Partition 0's lease vanishes (as if it expired) and another owner takes it.
        client.delete(keys.partition_keys(0).lease)
        assert LeaseClient(client, "intruder", 300).acquire(0) is not None
        # The intruder never renews: the worker takes the partition back once it expires.
        _eventually(lambda: _leases(registry) == (2, 3, 1))
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert _sample(registry, "monitor_es_partitions_owned") == 0
    assert _sample(registry, "monitor_es_lease_changes_total", change="released") == 2


def test_only_the_pulser_holding_the_lease_pulses_and_says_it_is_active(client: Client) -> None:
    init_deployment(client, 2)
    first_registry, second_registry = CollectorRegistry(), CollectorRegistry()
    first = Pulser(client, 2, interval_s=1, owner="a", metrics=PulserMetrics(first_registry))
    second = Pulser(client, 2, interval_s=1, owner="b", metrics=PulserMetrics(second_registry))
    assert first.tick() and first.tick()
    assert not second.tick()
    assert _sample(first_registry, "monitor_es_pulses_total") == 2
    assert _sample(first_registry, "monitor_es_pulser_active") == 1
    assert _sample(second_registry, "monitor_es_pulses_total") == 0
    assert _sample(second_registry, "monitor_es_pulser_active") == 0
    assert client.xlen(keys.partition_keys(1).log) == 2  # one pulse per round and partition
    stop = threading.Event()
    stop.set()
    first.run(stop)  # stopped at once: releases the lease
    assert _sample(first_registry, "monitor_es_pulser_active") == 0
    assert second.tick()
    assert _sample(second_registry, "monitor_es_pulser_active") == 1


def test_decisions_are_counted_by_what_was_decided() -> None:
    registry = CollectorRegistry()
    metrics = PulserMetrics(registry)
    minute = datetime(2024, 5, 1, 12, tzinfo=UTC)
    metrics.decided(
        [
            ClockDecided(minute=minute, decision="normal"),
            ClockDecided(minute=minute, decision="abnormal"),
            ClockDecided(minute=minute, decision="abnormal"),
        ]
    )
    assert _sample(registry, "monitor_es_clock_decisions_total", decision="normal") == 1
    assert _sample(registry, "monitor_es_clock_decisions_total", decision="abnormal") == 2
    assert _sample(registry, "monitor_es_clock_decisions_total", decision="incident") == 0


def _environments(registry: CollectorRegistry) -> set[tuple[str, str, str, str]]:
    """(project, monitor, environment, status) of every environment_status series."""
    return {
        (s.labels["project"], s.labels["monitor"], s.labels["environment"], s.labels["status"])
        for family in registry.collect()
        if family.name == "monitor_es_environment_status"
        for s in family.samples
    }


def test_environment_series_follow_commits_deletions_and_ownership(client: Client) -> None:
    init_deployment(client, 1)
    registry = CollectorRegistry()
    process = WorkerProcess(
        client, 1, lease_ttl_ms=1000, block_ms=50, metrics=WorkerMetrics(registry)
    )
    stop = threading.Event()
    thread = threading.Thread(target=process.run, args=(stop,), daemon=True)
    producer = Producer(client, 1)
    config = {"schedule_type": "crontab", "schedule": "* * * * *"}
    producer.append(MonitorConfigured(project="acme", monitor_slug="a", config=config))
    producer.append(MonitorConfigured(project="acme", monitor_slug="b", config=config))
    for slug in ("a", "b"):
        producer.append(
            CheckInReported(
                project="acme", monitor_slug=slug, check_in_id=str(uuid.uuid4()), status="ok"
            )
        )
    thread.start()
    try:
        ok = {("acme", "a", "production", "ok"), ("acme", "b", "production", "ok")}
        _eventually(lambda: _environments(registry) == ok)
        producer.append(MonitorDeleted(project="acme", monitor_slug="b"))
        _eventually(lambda: _environments(registry) == {("acme", "a", "production", "ok")})
    finally:
        stop.set()
        thread.join(timeout=10)
    assert _environments(registry) == set()  # no longer its owner: nothing exported
