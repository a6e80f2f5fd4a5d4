"""Recovery of the partition workers on a real redis-server: crash, zombie, redelivery, poison.

Every test compares what Redis holds after the failure with the pure fold of the same log
entries: the state hash byte for byte and the out stream event for event, so an effect that
was lost or written twice shows up as a difference.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest
import redis

from monitor_es.codec import (
    CLOCK_FIELD,
    decode_out_entry,
    encode_event,
    encode_record,
    environment_field,
    monitor_field,
)
from monitor_es.domain.events import (
    CheckInReported,
    ClockPulsed,
    DerivedEvent,
    InboundEvent,
    MonitorConfigured,
    MonitorMuted,
)
from monitor_es.domain.partition import Limits, Partition
from monitor_es.domain.reducer import LogEntry, fold
from monitor_es.domain.reducer import apply as real_apply
from monitor_es.producer import Producer, partitions_of
from monitor_es.scenario import entry_id, read_scenario
from monitor_es.store import keys
from monitor_es.store.connection import Client
from monitor_es.store.deployment import init_deployment
from monitor_es.store.functions import Fenced
from monitor_es.store.leases import Lease, LeaseClient
from monitor_es.store.log import PartitionStore, append, parse_id
from monitor_es.workers import partition as partition_module
from monitor_es.workers.partition import PartitionWorker

pytestmark = pytest.mark.redis

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
ZERO_GUID = "00000000-0000-0000-0000-000000000000"
BASE = datetime(2024, 5, 1, tzinfo=UTC)


class RestartableServer(Protocol):
    """What the ``redis_aof_server`` fixture offers."""

    @property
    def url(self) -> str: ...

    def restart(self, *, crash: bool = False) -> None: ...


# ------------------------------------------------------------------ the seeded workload


def _run_entries(
    rng: random.Random, slot: datetime, project: str, slug: str, env: str
) -> list[tuple[datetime, InboundEvent]]:
    """One scheduled run of a job: ok, error, bare ok, zero GUID, hung or missed.

    Runs start in the slot's own minute, so with max_runtime 7 every timeout falls on a
    minute = 2 (mod 5) and every miss (margin 1) on a minute = 1 (mod 5): the workload never
    puts a miss and a timeout of one environment on one tick.
    """
    guid = f"{rng.getrandbits(128):032x}"

    def check_in(offset_s: float, status: str, check_in_id: str = guid) -> tuple[datetime, Any]:
        event = CheckInReported(
            project=project,
            monitor_slug=slug,
            environment=env,
            check_in_id=check_in_id,
            status=status,
        )
        # Millisecond precision: the log keeps broker time as the entry id's milliseconds.
        return slot + timedelta(milliseconds=round(offset_s * 1000)), event

    start = rng.uniform(0, 30)
    close = rng.uniform(60, 170)
    roll = rng.random()
    if roll < 0.50:
        entries = [check_in(start, "in_progress"), check_in(close, "ok")]
        if rng.random() < 0.3:
            entries.insert(1, check_in(start + rng.uniform(1, 25), "in_progress"))
        return entries
    if roll < 0.62:
        return [check_in(start, "in_progress"), check_in(close, "error")]
    if roll < 0.72:
        return [check_in(start, "ok")]
    if roll < 0.80:
        return [check_in(start, "in_progress", ZERO_GUID), check_in(close, "ok", ZERO_GUID)]
    if roll < 0.88:
        return [check_in(start, "in_progress")]  # hangs: times out at slot + 7 minutes
    return []  # missed


def workload(seed: int, slots: int) -> list[tuple[datetime, InboundEvent]]:
    """A deterministic mix of monitors, environments, runs, edits and pulses, in ts order."""
    rng = random.Random(seed)
    jobs = []
    for n in range(10):
        project = "acme" if n % 3 else "globex"
        every = (5, 10, 15)[n % 3]
        config = {
            "schedule_type": "crontab",
            "schedule": f"*/{every} * * * *",
            "max_runtime": 7,
            "failure_issue_threshold": 1 + n % 3,
            "recovery_threshold": 1 + n % 2,
        }
        envs = ["production", "staging"] if n % 2 else ["production"]
        jobs.append((project, f"job-{n}", every, config, envs))
    timed: list[tuple[datetime, InboundEvent]] = []
    for project, slug, _, config, _ in jobs:
        configured = MonitorConfigured(project=project, monitor_slug=slug, config=config)
        timed.append((BASE - timedelta(minutes=1), configured))
    for s in range(slots):
        slot = BASE + timedelta(minutes=5 * s)
        for project, slug, every, _, envs in jobs:
            if (5 * s) % every == 0:
                for env in envs:
                    timed.extend(_run_entries(rng, slot, project, slug, env))
        if s % 2 == 1:
            timed.append((slot + timedelta(seconds=30), ClockPulsed()))
        if s == slots // 3:
            project, slug, _, config, _ = jobs[3]
            edit = {**config, "failure_issue_threshold": 2, "recovery_threshold": 2}
            timed.append((slot, MonitorConfigured(project=project, monitor_slug=slug, config=edit)))
        if s == slots // 2:
            project, slug = jobs[4][:2]
            timed.append((slot, MonitorMuted(project=project, monitor_slug=slug, muted=True)))
    timed.sort(key=lambda item: item[0])  # stable: same-ts entries keep generation order
    return timed


def log_entries(timed: Sequence[tuple[datetime, InboundEvent]]) -> list[LogEntry]:
    """The entries with explicit, strictly increasing ids (scenario.entry_id)."""
    return [LogEntry(entry_id(ts, n), ts, event) for n, (ts, event) in enumerate(timed, start=1)]


def append_entries(client: Client, entries: Sequence[LogEntry], partitions: int) -> None:
    """Appends entries with their explicit ids, in chunks (one pipeline each)."""
    producer = Producer(client, partitions)
    for first in range(0, len(entries), 1000):
        chunk = entries[first : first + 1000]
        producer.append_all([e.event for e in chunk], ids=[e.id for e in chunk])


def by_partition(entries: Sequence[LogEntry], partitions: int) -> list[list[LogEntry]]:
    """Each partition's log, as the producer routes it."""
    logs: list[list[LogEntry]] = [[] for _ in range(partitions)]
    for entry in entries:
        for p in partitions_of(entry.event, partitions):
            logs[p].append(entry)
    return logs


# ------------------------------------------------------------------ expected results


def pure_fold(entries: Sequence[LogEntry]) -> tuple[Partition, list[DerivedEvent]]:
    """The pure reducer over one partition's entries."""
    partition = Partition(Limits())
    events = fold(partition, entries)
    return partition, events


def encoded_state(partition: Partition) -> dict[bytes, bytes]:
    """The state hash a partition should be stored as."""
    state = {
        monitor_field(m.project, m.slug): encode_record(m) for m in partition.monitors.values()
    }
    for env in partition.all_environments():
        state[environment_field(*env.key)] = encode_record(env)
    if partition.clock.last_tick is not None:  # written with the first batch
        state[CLOCK_FIELD] = encode_record(partition.clock)
    return state


def stored_events(store: PartitionStore) -> list[DerivedEvent]:
    """The derived events of a partition's out stream, in order."""
    return [event for _, payload in store.read_out() for event in decode_out_entry(payload)]


def assert_partition_matches(
    client: Client, partition: int, entries: Sequence[LogEntry]
) -> list[DerivedEvent]:
    """Stored state and out stream equal the pure fold of `entries`; returns the events."""
    store = PartitionStore(client, partition)
    expected_partition, expected_events = pure_fold(entries)
    assert store.load_state() == encoded_state(expected_partition), f"state of p{partition}"
    events = stored_events(store)
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids)), f"duplicate derived events in p{partition}"
    assert events == expected_events, f"out stream of p{partition}"
    return events


def last_id(client: Client, partition: int) -> str | None:
    """The partition's committed high-water mark."""
    value = PartitionStore(client, partition).load_meta().get(keys.META_LAST_ID.encode())
    return None if value is None else value.decode()


def run_until_drained(worker: PartitionWorker, count: int = 500) -> None:
    """Steps a worker until a step neither commits nor leaves work to claim."""
    for _ in range(10_000):
        result = worker.step(count=count, block_ms=None)
        if not result.committed and not worker.needs_claim:
            return
    raise AssertionError("the worker did not drain")


def _lease(client: Client, owner: str, partition: int = 0, ttl_ms: int = 10_000) -> Lease:
    lease = LeaseClient(client, owner, ttl_ms).acquire(partition)
    assert lease is not None
    return lease


def _scenario_entries(name: str) -> list[LogEntry]:
    text = (SCENARIOS / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [e for e in read_scenario(text) if isinstance(e, LogEntry)]


def _one_partition(client: Client, entries: Sequence[LogEntry]) -> PartitionStore:
    init_deployment(client, 1)
    append_entries(client, entries, 1)
    return PartitionStore(client, 0)


# ------------------------------------------------------------------ (a) SIGKILL mid-stream


def _start_worker(url: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "monitor_es.cli", "worker", "--redis-url", url, *extra]
    with log.open("ab") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=sink)


def _processed(client: Client, logs: Sequence[Sequence[LogEntry]]) -> int:
    done = 0
    for p, entries in enumerate(logs):
        mark = last_id(client, p)
        if mark is not None:
            done += sum(1 for e in entries if parse_id(e.id) <= parse_id(mark))
    return done


def _wait_until(predicate: Any, timeout_s: float, what: str, poll_s: float = 0.01) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(poll_s)
    return time.monotonic() - start


@pytest.fixture
def worker_log(tmp_path: Path) -> Iterator[Path]:
    """A file collecting the worker subprocesses' output, shown if the test fails."""
    path = tmp_path / "worker.log"
    path.touch()
    yield path


def test_a_sigkilled_worker_is_replaced_and_the_result_equals_the_pure_fold(
    real_client: redis.Redis, redis_server: str, worker_log: Path
) -> None:
    partitions = 4
    entries = log_entries(workload(seed=20240501, slots=220))
    assert len(entries) > 3000
    head, tail = entries[: len(entries) * 2 // 3], entries[len(entries) * 2 // 3 :]
    logs = by_partition(entries, partitions)
    init_deployment(real_client, partitions)
    append_entries(real_client, head, partitions)
    head_logs = by_partition(head, partitions)
    ttl = ["--lease-ttl-ms", "1000", "--batch", "20"]

    # A kill can land between two batches; kill (and restart) until one catches a batch
    # read but not committed, which is the case the recovery has to get right.
    in_flight = attempts = 0
    while in_flight == 0 and attempts < 10:
        attempts += 1
        before = _processed(real_client, head_logs)
        first = _start_worker(redis_server, worker_log, *ttl)
        try:
            _wait_until(
                lambda b=before: _processed(real_client, head_logs) >= b + len(head) // 20,
                30,
                "progress",
            )
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        done_at_kill = _processed(real_client, head_logs)
        assert done_at_kill < sum(len(log) for log in head_logs), "the kill came after the end"
        in_flight = sum(
            real_client.xpending(keys.partition_keys(p).log, keys.REDUCER_GROUP)["pending"]
            for p in range(partitions)
        )
    assert in_flight > 0, f"no kill in {attempts} attempts caught a batch read but not committed"

    append_entries(real_client, tail, partitions)  # the stream goes on while nobody owns it
    second = _start_worker(redis_server, worker_log, *ttl)
    try:
        expected_last = [log[-1].id for log in logs]
        _wait_until(
            lambda: [last_id(real_client, p) for p in range(partitions)] == expected_last,
            60,
            "the new worker to drain every partition",
            poll_s=0.05,
        )
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=15) == 0, worker_log.read_text()

    every_id: list[str] = []
    for p in range(partitions):
        events = assert_partition_matches(real_client, p, logs[p])
        every_id += [e.id for e in events]
    expected_ids = [e.id for log in logs for e in pure_fold(log)[1]]
    assert sorted(every_id) == sorted(expected_ids)
    assert len(set(every_id)) == len(every_id)
    assert all(PartitionStore(real_client, p).read_dlq() == [] for p in range(partitions))


def test_the_seeded_workload_exercises_what_recovery_must_preserve() -> None:
    # The crash test is only as strong as its workload: it must hit every kind of effect.
    entries = log_entries(workload(seed=20240501, slots=220))
    kinds = set()
    for log in by_partition(entries, 4):
        kinds |= {type(e).__name__ for e in pure_fold(log)[1]}
    needed = {"MarkMissing", "MarkTimeout", "IncidentOpened", "IncidentResolved", "IssueOccurrence"}
    assert needed <= kinds
    ids = [e.id for log in by_partition(entries, 4) for e in pure_fold(log)[1]]
    assert len(ids) == len(set(ids))


# ------------------------------------------------------------------ (b) zombie owner


@pytest.mark.parametrize("b_commits_first", [False, True], ids=["before-b-commits", "after"])
def test_a_paused_zombie_is_fenced_and_the_result_is_as_if_only_b_ran(
    real_client: redis.Redis, b_commits_first: bool
) -> None:
    entries = _scenario_entries("thresholds_3_and_2")
    store = _one_partition(real_client, entries)
    leases_a = LeaseClient(real_client, "worker-a", 150)
    lease_a = leases_a.acquire(0)
    assert lease_a is not None
    zombie = PartitionWorker(store, lease_a.token, "worker-a:1")
    zombie.needs_claim = False
    batch = list(store.read_batch(zombie.consumer, 6, None))  # read, then "pause"
    assert len(batch) == 6
    time.sleep(0.3)  # A's lease lapses while it is paused

    lease_b = _lease(real_client, "worker-b")
    assert lease_b.token > lease_a.token
    owner = PartitionWorker(store, lease_b.token, "worker-b:1")
    if b_commits_first:
        assert owner.step().committed  # B reclaims A's pending entries and commits them
    with pytest.raises(Fenced):
        zombie.process(batch)
    assert not leases_a.renew(lease_a)
    run_until_drained(owner)
    with pytest.raises(Fenced):
        zombie.process(batch)

    assert_partition_matches(real_client, 0, entries)
    assert last_id(real_client, 0) == entries[-1].id
    assert real_client.xpending(keys.partition_keys(0).log, keys.REDUCER_GROUP)["pending"] == 0


# ------------------------------------------------------------------ (c) redelivery


def test_processing_the_same_raw_entries_again_writes_nothing(real_client: redis.Redis) -> None:
    entries = _scenario_entries("timeouts_late_close")
    store = _one_partition(real_client, entries)
    lease = _lease(real_client, "w")
    worker = PartitionWorker(store, lease.token, "w:1")
    stale = PartitionWorker(store, lease.token, "w:1")  # loaded before the commit below
    worker.needs_claim = False
    raw = list(store.read_batch(worker.consumer, 100, None))
    assert len(raw) == len(entries)

    first = worker.process(raw)
    assert first.committed and first.applied == len(entries)
    out_len = real_client.xlen(keys.partition_keys(0).out)
    state, meta = store.load_state(), store.load_meta()

    again = worker.process(raw)  # redelivered to the same owner
    assert not again.committed and again.duplicates == len(raw) and again.events == []
    after_takeover = PartitionWorker(store, lease.token, "w:2").process(raw)  # a fresh owner
    assert not after_takeover.committed and after_takeover.duplicates == len(raw)
    # A worker whose high-water mark is stale re-folds the batch, but the commit Function
    # compares it with the stored last_id and writes nothing.
    refolded = stale.process(raw)
    assert refolded.applied == len(entries) and not refolded.committed

    assert real_client.xlen(keys.partition_keys(0).out) == out_len
    assert store.load_state() == state
    assert store.load_meta() == meta
    assert_partition_matches(real_client, 0, entries)


# ------------------------------------------------------------------ (d) poison entries


def test_an_undecodable_entry_is_dead_lettered_and_the_rest_is_processed(
    real_client: redis.Redis,
) -> None:
    entries = _scenario_entries("many_monitors_and_environments")
    init_deployment(real_client, 1)
    middle = len(entries) // 2
    append_entries(real_client, entries[:middle], 1)
    garbage = b"\xc1 this is not msgpack"
    ms, _, seq = entries[middle - 1].id.partition("-")
    poison_id = f"{ms}-{int(seq) + 1000}"
    append(real_client, 0, garbage, poison_id)
    append_entries(real_client, entries[middle:], 1)

    store = PartitionStore(real_client, 0)
    run_until_drained(PartitionWorker(store, _lease(real_client, "w").token, "w:1"))

    dead = store.read_dlq()
    assert len(dead) == 1
    letter = dead[0][1]
    assert letter.entry_id == poison_id
    assert "undecodable" in letter.reason
    assert letter.payload == garbage
    assert_partition_matches(real_client, 0, entries)
    assert last_id(real_client, 0) == entries[-1].id


def test_a_raising_reducer_is_retried_then_dead_lettered_and_nothing_else_is_lost(
    real_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = _scenario_entries("many_monitors_and_environments")
    poisoned = entries[len(entries) // 2]
    store = _one_partition(real_client, entries)
    calls: list[str] = []

    def failing_apply(p: Partition, fx: Any, entry: LogEntry) -> None:
        real_apply(p, fx, entry)  # half-applied: the worker must throw this state away
        if entry.id == poisoned.id:
            calls.append(entry.id)
            raise RuntimeError("injected reducer bug")

    monkeypatch.setattr(partition_module, "apply", failing_apply)
    worker = PartitionWorker(store, _lease(real_client, "w").token, "w:1", max_attempts=3)
    first = worker.step(count=500, block_ms=None)
    assert first.committed and first.dead_lettered == 0
    assert last_id(real_client, 0) == entries[len(entries) // 2 - 1].id  # stopped before it
    fail_field = keys.fail_field(poisoned.id).encode()
    assert store.load_meta()[fail_field] == b"1"
    run_until_drained(worker)

    assert len(calls) == 3
    dead = store.read_dlq()
    assert [d.entry_id for _, d in dead] == [poisoned.id]
    assert dead[0][1].attempts == 3
    assert "reducer failed 3 times: RuntimeError: injected reducer bug" in dead[0][1].reason
    assert dead[0][1].payload == encode_event(poisoned.event)
    assert fail_field not in store.load_meta()
    survivors = [e for e in entries if e.id != poisoned.id]
    assert_partition_matches(real_client, 0, survivors)
    assert last_id(real_client, 0) == entries[-1].id


# ------------------------------------------------------------------ (e) AOF restarts


@pytest.mark.parametrize("crash", [True, False], ids=["sigkill", "sigterm"])
def test_acknowledged_work_survives_a_redis_restart_and_processing_continues_exactly(
    redis_aof_server: RestartableServer, crash: bool
) -> None:
    entries = log_entries(workload(seed=7, slots=60))
    before = redis.Redis.from_url(redis_aof_server.url)
    store = _one_partition(before, entries)
    worker = PartitionWorker(store, _lease(before, "w").token, "w:1")
    worker.needs_claim = False
    worker.process(store.read_batch(worker.consumer, 300, None))
    in_flight = store.read_batch(worker.consumer, 50, None)  # read, never committed
    assert len(in_flight) == 50
    acknowledged = (store.load_state(), store.read_out(), store.load_meta())
    assert acknowledged[2][keys.META_LAST_ID.encode()].decode() == entries[299].id
    before.close()

    redis_aof_server.restart(crash=crash)

    after = redis.Redis.from_url(redis_aof_server.url)
    try:
        store = PartitionStore(after, 0)
        assert (store.load_state(), store.read_out(), store.load_meta()) == acknowledged
        pending = after.xpending(keys.partition_keys(0).log, keys.REDUCER_GROUP)["pending"]
        assert pending == 50
        # The same owner comes back: its lease (a PX key) survived the restart too.
        worker = PartitionWorker(store, _lease(after, "w").token, "w:2")
        run_until_drained(worker)
        assert_partition_matches(after, 0, entries)
        assert last_id(after, 0) == entries[-1].id
        assert after.xpending(keys.partition_keys(0).log, keys.REDUCER_GROUP)["pending"] == 0
    finally:
        after.close()


# ------------------------------------------------------------------ rate limits across restarts


def test_rate_limit_of_an_unknown_environment_survives_a_worker_restart(
    real_client: redis.Redis,
) -> None:
    ts = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    timed: list[tuple[datetime, InboundEvent]] = [
        (
            ts + timedelta(seconds=n),
            CheckInReported(
                project="acme", monitor_slug="ghost", check_in_id=f"{n:032x}", status="ok"
            ),
        )
        for n in range(1, 8)
    ]
    entries = log_entries(timed)
    store = _one_partition(real_client, entries)
    token = _lease(real_client, "w").token
    PartitionWorker(store, token, "w:1").step(count=3, block_ms=None)
    restarted = PartitionWorker(store, token, "w:2")  # a new process: state from Redis
    run_until_drained(restarted)
    assert_partition_matches(real_client, 0, entries)
