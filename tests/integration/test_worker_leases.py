"""Worker processes share partitions through leases, and hand them over on death or shutdown.

Worker A runs in this process (a `WorkerProcess` whose manager round the test drives every
100 ms); worker B is a real `monitor-es worker` subprocess, so it can die by SIGKILL or stop
by SIGTERM. A producer thread appends check-ins the whole time, and at the end every
partition's out stream and state must equal the pure fold of its log: nothing appended
during a handover is lost or applied twice.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from monitor_es.codec import (
    CLOCK_FIELD,
    decode_entry,
    decode_out_entry,
    encode_record,
    environment_field,
    monitor_field,
)
from monitor_es.domain.events import CheckInReported
from monitor_es.domain.partition import Limits, Partition
from monitor_es.domain.reducer import fold
from monitor_es.producer import Producer
from monitor_es.store import keys
from monitor_es.store.connection import Client, as_text
from monitor_es.store.deployment import init_deployment
from monitor_es.store.log import PartitionStore
from monitor_es.workers.runner import WorkerProcess

pytestmark = pytest.mark.redis

N = 8
TTL_MS = 1500


# ------------------------------------------------------------------ helpers


def lease_owners(client: Client) -> dict[int, str | None]:
    """Who holds each partition's lease right now (Redis is the source of truth)."""
    owners: dict[int, str | None] = {}
    for p in range(N):
        value = client.get(keys.partition_keys(p).lease)
        owners[p] = None if value is None else as_text(value).rsplit(" ", 1)[0]
    return owners


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Polls until `predicate` holds; returns the seconds it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - start


def owned_by(client: Client, owner: str) -> int:
    """How many partitions `owner` holds."""
    return sum(1 for holder in lease_owners(client).values() if holder == owner)


class InProcessWorker:
    """A WorkerProcess whose manager round runs every 100 ms in a thread."""

    def __init__(self, url: str, owner: str, ttl_ms: int) -> None:
        self.client = redis.Redis.from_url(url)
        self.process = WorkerProcess(
            self.client, N, owner=owner, lease_ttl_ms=ttl_ms, batch=50, block_ms=100
        )
        self.owner = owner
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._manage, name=f"manager-{owner}")

    def _manage(self) -> None:
        while not self._stop.is_set():
            self.process.manage()
            self._stop.wait(0.1)

    def start(self) -> InProcessWorker:
        """Starts the manager thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Graceful: stops the reducers after their batch and releases every lease."""
        self._stop.set()
        self._thread.join(timeout=10)
        self.process.shutdown()
        self.client.close()


class CheckInProducer:
    """Appends a check-in of one of 16 monitors every few milliseconds (broker ids)."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.producer = Producer(self.client, N)
        self.appended: list[tuple[float, list[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="producer")

    def _run(self) -> None:
        n = 0
        config = {"schedule_type": "crontab", "schedule": "* * * * *", "max_runtime": 1}
        while not self._stop.is_set():
            event = CheckInReported(
                project="acme" if n % 2 else "globex",
                monitor_slug=f"job-{n % 16}",
                check_in_id=str(uuid.UUID(int=n + 1)),
                status=("in_progress", "ok", "error")[n % 3],
                monitor_config=config,
            )
            self.appended.append((time.monotonic(), self.producer.append(event)))
            n += 1
            self._stop.wait(0.004)

    def start(self) -> CheckInProducer:
        """Starts appending."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops appending."""
        self._stop.set()
        self._thread.join(timeout=10)
        self.client.close()

    def ids_between(self, start: float, end: float) -> list[str]:
        """Entry ids appended in a window of monotonic time."""
        return [i for t, ids in self.appended if start <= t <= end for i in ids]


def start_cli_worker(url: str, ttl_ms: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A `monitor-es worker` subprocess and its lease owner name (host:pid)."""
    command = [sys.executable, "-m", "monitor_es.cli", "worker", "--redis-url", url]
    with log.open("ab") as sink:
        proc = subprocess.Popen([*command, "--lease-ttl-ms", str(ttl_ms)], stdout=sink, stderr=sink)
    return proc, f"{socket.gethostname()}:{proc.pid}"


def drained(client: Client) -> bool:
    """Every partition has committed up to its log's last entry."""
    for p in range(N):
        pk = keys.partition_keys(p)
        newest = client.xrevrange(pk.log, count=1)
        mark = client.hget(pk.meta, keys.META_LAST_ID)
        if newest and (mark is None or as_text(mark) != as_text(newest[0][0])):
            return False
    return True


def assert_exactly_once(client: Client) -> int:
    """Each partition's state and out stream equal the pure fold of its log; returns entries."""
    total = 0
    for p in range(N):
        store = PartitionStore(client, p)
        entries = [decode_entry(i, payload) for i, payload in store.read_range()]
        total += len(entries)
        expected = Partition(Limits())
        events = fold(expected, entries)
        out = [event for _, payload in store.read_out() for event in decode_out_entry(payload)]
        ids = Counter(e.id for e in out)
        assert [i for i, n in ids.items() if n > 1] == [], f"duplicates in p{p}"
        assert out == events, f"out stream of p{p}"
        state = {
            monitor_field(m.project, m.slug): encode_record(m) for m in expected.monitors.values()
        }
        state |= {environment_field(*e.key): encode_record(e) for e in expected.all_environments()}
        if entries:  # the clock record is written with the first batch
            state[CLOCK_FIELD] = encode_record(expected.clock)
        assert store.load_state() == state, f"state of p{p}"
        assert store.read_dlq() == []
    return total


def consumers_of(client: Client, owner: str) -> list[str]:
    """The reducer-group consumers a worker created (named `<owner>:<token>`)."""
    names = []
    for p in range(N):
        for consumer in client.xinfo_consumers(keys.partition_keys(p).log, keys.REDUCER_GROUP):
            name = as_text(consumer["name"])
            if name.startswith(f"{owner}:"):
                names.append(name)
    return names


@pytest.fixture
def deployment(real_client: redis.Redis, redis_server: str) -> str:
    """An initialised 8-partition deployment on the session redis-server; yields its URL."""
    init_deployment(real_client, N)
    return redis_server


@pytest.fixture
def worker_log(tmp_path: Path) -> Iterator[Path]:
    """The subprocess's log file."""
    path = tmp_path / "worker.log"
    path.touch()
    yield path


# ------------------------------------------------------------------ tests


def test_two_workers_split_the_partitions_and_the_survivor_takes_a_dead_ones_share(
    real_client: redis.Redis, deployment: str, worker_log: Path
) -> None:
    a = InProcessWorker(deployment, "worker-a", TTL_MS).start()
    producer: CheckInProducer | None = None
    b: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: owned_by(real_client, "worker-a") == N, 5, "A to take every partition")
        producer = CheckInProducer(deployment).start()
        b, b_owner = start_cli_worker(deployment, TTL_MS, worker_log)
        wait_for(
            lambda: Counter(lease_owners(real_client).values()) == {"worker-a": 4, b_owner: 4},
            15,
            "a 4/4 split",
        )
        time.sleep(0.3)  # let B reduce some entries of its own
        killed_at = time.monotonic()
        b.send_signal(signal.SIGKILL)
        assert b.wait(timeout=10) == -signal.SIGKILL
        took = wait_for(lambda: owned_by(real_client, "worker-a") == N, 10, "A to take all 8")
        assert took < 3 * TTL_MS / 1000, f"takeover took {took:.2f}s"
        handed_over = producer.ids_between(killed_at, killed_at + took)
        time.sleep(0.2)
        producer.stop()
        producer = None
        wait_for(lambda: drained(real_client), 15, "the partitions to drain")
    finally:
        if producer is not None:
            producer.stop()
        if b is not None and b.poll() is None:
            b.kill()
            b.wait()
        a.stop()

    assert handed_over, "nothing was appended while the partitions changed hands"
    assert consumers_of(real_client, b_owner), "B never reduced anything"
    assert assert_exactly_once(real_client) > 200


def test_sigterm_releases_the_leases_at_once_and_another_worker_takes_them(
    real_client: redis.Redis, deployment: str, worker_log: Path
) -> None:
    ttl_ms = 10_000  # expiry would take ~10 s: a release within 2 s is the graceful path
    c, c_owner = start_cli_worker(deployment, ttl_ms, worker_log)
    producer = CheckInProducer(deployment).start()
    a: InProcessWorker | None = None
    try:
        wait_for(lambda: owned_by(real_client, c_owner) == N, 10, "C to take every partition")
        a = InProcessWorker(deployment, "worker-a", ttl_ms).start()
        time.sleep(0.3)
        c.send_signal(signal.SIGTERM)
        released = wait_for(lambda: owned_by(real_client, c_owner) == 0, 5, "C's release")
        assert released < 2.0, f"release took {released:.2f}s"
        assert c.wait(timeout=10) == 0, worker_log.read_text()
        assert real_client.zscore(keys.WORKERS, c_owner) is None  # left the registry
        wait_for(lambda: owned_by(real_client, "worker-a") == N, 2, "A to take all 8")
        time.sleep(0.2)
        producer.stop()
        wait_for(lambda: drained(real_client), 15, "the partitions to drain")
    finally:
        producer.stop()
        if c.poll() is None:
            c.kill()
            c.wait()
        if a is not None:
            a.stop()

    assert consumers_of(real_client, c_owner), "C never reduced anything"
    assert assert_exactly_once(real_client) > 100
