"""`--metrics-port`: the Prometheus figures of real `monitor-es worker` and `pulse` processes
on a real redis-server, scraped over HTTP and compared with the pure fold of the same log."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import datetime

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from redis_process import free_port
from test_cli_operator import SCENARIOS, assert_one_line_failure, run_cli
from test_cli_read import process

from monitor_es.domain.partition import Limits, Partition
from monitor_es.domain.reducer import LogEntry, fold
from monitor_es.producer import Producer, partitions_of
from monitor_es.scenario import split_scenario
from monitor_es.store import keys

pytestmark = pytest.mark.redis

PARTITIONS = 2
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """Every sample of http://127.0.0.1:PORT/metrics, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when the series was never written)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape_until(port: int, ready: Callable[[Samples], bool], timeout_s: float = 20) -> Samples:
    """Scrapes until `ready` holds (the server may not listen yet at first)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            samples = scrape(port)
            if ready(samples):
                return samples
        except OSError:
            pass  # not listening yet
        assert time.monotonic() < deadline, "the metrics never got there"
        time.sleep(0.05)


def handled(samples: Samples) -> float:
    """Log entries the worker reported, whatever their outcome."""
    return sum(v for (name, _), v in samples.items() if name == "monitor_es_entries_total")


def settled(port: int, entries: int) -> Samples:
    """The figures once the worker has handled `entries`: a batch updates its figures one
    after the other, so a scrape as the last count arrives may precede the batch's others."""
    scrape_until(port, lambda s: handled(s) >= entries)
    time.sleep(0.3)
    return scrape(port)


def appended_scenario(client: redis.Redis, name: str) -> list[LogEntry]:
    entries, invalid = split_scenario((SCENARIOS / f"{name}.jsonl").read_text().splitlines())
    assert not invalid
    Producer(client, PARTITIONS).append_all([e.event for e in entries], ids=[e.id for e in entries])
    return entries


def test_a_worker_serves_what_it_applied_derived_and_dead_lettered_per_partition(
    real_client: redis.Redis, redis_server: str
) -> None:
    assert run_cli("init", "--redis-url", redis_server, "--partitions", "2").returncode == 0
    entries = appended_scenario(real_client, "many_monitors_and_environments")
    # A poison entry after the scenario on partition 0: not msgpack at all.
    real_client.xadd(keys.partition_keys(0).log, {keys.ENTRY_FIELD: b"\xc1"})
    logs: list[list[LogEntry]] = [[] for _ in range(PARTITIONS)]
    for entry in entries:
        for p in partitions_of(entry.event, PARTITIONS):
            logs[p].append(entry)
    assert all(logs)
    total = sum(len(log) for log in logs) + 1  # pulses reach both partitions; the poison
    port = free_port()
    args = ["--redis-url", redis_server, "--metrics-port", str(port), "--batch", "7"]
    with process("worker", *args) as worker:
        samples = settled(port, total)
        assert handled(samples) == total
        assert value(samples, "monitor_es_partitions_owned") == PARTITIONS
        assert value(samples, "monitor_es_lease_changes_total", change="taken") == PARTITIONS
        for p, log in enumerate(logs):
            label = str(p)
            applied = value(samples, "monitor_es_entries_total", partition=label, outcome="applied")
            assert applied == len(log)
            expected = Counter(
                str(type(e).__struct_config__.tag) for e in fold(Partition(Limits()), log)
            )
            derived = {
                dict(labels)["type"]: v
                for (name, labels), v in samples.items()
                if name == "monitor_es_derived_events_total" and dict(labels)["partition"] == label
            }
            assert derived == expected, f"partition {p}"
            assert value(samples, "monitor_es_partition_time_seconds", partition=label) == (
                log[-1].ts.timestamp()
            )
            assert value(samples, "monitor_es_commits_total", partition=label) >= len(log) / 7
        poison = value(samples, "monitor_es_entries_total", partition="0", outcome="dead_lettered")
        assert poison == 1
        batches = value(samples, "monitor_es_batch_seconds_count")
        assert batches >= sum(len(log) // 7 for log in logs)
        assert value(samples, "monitor_es_batch_seconds_sum") > 0
        assert not any(name.endswith("_created") for name, _ in samples)  # no noise series
        assert not any(name.startswith("monitor_es_pulse") for name, _ in samples)  # not its loop
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=15) == 0


def test_the_active_pulser_counts_its_pulses_and_a_standby_one_says_it_is_not_active(
    real_client: redis.Redis, redis_server: str
) -> None:
    assert run_cli("init", "--redis-url", redis_server, "--partitions", "2").returncode == 0
    first, second = free_port(), free_port()
    common = ["--redis-url", redis_server, "--interval", "0.2", "--metrics-port"]
    with process("pulse", *common, str(first)) as active:
        samples = scrape_until(first, lambda s: value(s, "monitor_es_pulses_total") >= 3)
        assert value(samples, "monitor_es_pulser_active") == 1
        pulses = value(samples, "monitor_es_pulses_total")
        # Each counted round appended one pulse to every partition.
        assert real_client.xlen(keys.partition_keys(1).log) >= pulses
        with process("pulse", *common, str(second)) as standby:
            scrape_until(second, lambda _: True)  # listening: its rounds have begun
            time.sleep(0.5)  # a few of its rounds
            standing_by = scrape(second)
            assert value(standing_by, "monitor_es_pulser_active") == 0
            assert value(standing_by, "monitor_es_pulses_total") == 0
            assert not any(name.startswith("monitor_es_entries") for name, _ in standing_by)
            standby.send_signal(signal.SIGTERM)
            assert standby.wait(timeout=15) == 0
        active.send_signal(signal.SIGTERM)
        assert active.wait(timeout=15) == 0


def test_a_metrics_port_in_use_stops_the_worker_with_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(
            "worker", "--redis-url", "redis://127.0.0.1:1", "--metrics-port", str(port),
            "--metrics-host", "127.0.0.1",
        )  # fmt: skip
    assert_one_line_failure(done, 1, f"cannot serve metrics on 127.0.0.1:{port}", "in use")


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_a_port_outside_1_to_65535_is_a_usage_error(port: str) -> None:
    done = run_cli("pulse", "--redis-url", "redis://127.0.0.1:1", "--metrics-port", port)
    assert done.returncode == 2, done.stderr
    assert "--metrics-port" in done.stderr


def test_run_serves_its_worker_and_pulser_figures_on_one_port() -> None:
    port = free_port()
    with process("run", "--demo", "--interval", "0.2", "--metrics-port", str(port)) as run:

        def going(samples: Samples) -> bool:
            folded = sum(
                v
                for (name, labels), v in samples.items()
                if name == "monitor_es_entries_total" and ("outcome", "applied") in labels
            )
            owned = value(samples, "monitor_es_partitions_owned")
            return folded > 0 and owned == 16 and value(samples, "monitor_es_pulses_total") > 0

        samples = scrape_until(port, going)
        # One registry: the pulser's figures beside the worker's (16: the default partitions).
        assert value(samples, "monitor_es_pulser_active") == 1
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=15) == 0


def _timestamp(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_a_worker_serves_every_environment_it_owns_as_simulate_leaves_it(
    real_client: redis.Redis, redis_server: str
) -> None:
    assert run_cli("init", "--redis-url", redis_server, "--partitions", "2").returncode == 0
    entries = appended_scenario(real_client, "many_monitors_and_environments")
    total = sum(len(partitions_of(entry.event, PARTITIONS)) for entry in entries)
    done = run_cli("simulate", str(SCENARIOS / "many_monitors_and_environments.jsonl"), "--json")
    rows = json.loads(done.stdout)["environments"]
    assert any(row["incident"] for row in rows)
    port = free_port()
    with process("worker", "--redis-url", redis_server, "--metrics-port", str(port)) as worker:
        samples = settled(port, total)
        statuses = [name for name, _ in samples if name == "monitor_es_environment_status"]
        assert len(statuses) == len(rows)  # one status series per environment
        for row in rows:
            labels = {
                "project": row["project"],
                "monitor": row["monitor_slug"],
                "environment": row["environment"],
            }
            where = f"{row['project']}/{row['monitor_slug']}/{row['environment']}"
            assert (
                value(samples, "monitor_es_environment_status", **labels, status=row["status"]) == 1
            ), where
            incident = value(samples, "monitor_es_environment_incident_open", **labels)
            assert incident == (row["incident"] is not None), where
            assert value(samples, "monitor_es_environment_muted", **labels) == row["muted"], where
            for name, field in (
                ("monitor_es_environment_last_checkin_timestamp_seconds", "last_checkin"),
                ("monitor_es_environment_deadline_timestamp_seconds", "next_checkin_latest"),
            ):
                key = (name, frozenset(labels.items()))
                assert samples.get(key) == _timestamp(row[field]), (where, field)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=15) == 0
