"""What production does to long-running `monitor-es worker` and `monitor-es pulse` processes.

Real redis-server processes are restarted, stopped, rolled back to older data or cut off
mid-command (through a TCP proxy) under running workers and pulsers. After every fault
the end state must equal the pure fold of each partition's log (state byte for byte, out
stream event for event, no derived event twice, nothing pending), and the processes must
have recovered by themselves, without a crash loop. Recovery times are measured and
printed (`pytest -s` shows them).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from redis_process import RedisProcess, free_port
from test_aggregator import (
    DROP_20,
    DROP_40,
    NORMAL,
    base_minute,
    decisions_in_log,
    set_stream_time,
    write_volumes,
)
from test_aggregator import N as AGGREGATOR_PARTITIONS
from test_worker_recovery import (
    RestartableServer,
    append_entries,
    assert_partition_matches,
    by_partition,
    log_entries,
    run_until_drained,
    workload,
)

from monitor_es.codec import decode_entry
from monitor_es.domain.events import CheckInReported, ClockPulsed
from monitor_es.domain.partition import Partition
from monitor_es.domain.reducer import LogEntry
from monitor_es.domain.reducer import apply as real_apply
from monitor_es.producer import Producer
from monitor_es.store import keys
from monitor_es.store.connection import UNAVAILABLE, Client, as_text, connect
from monitor_es.store.deployment import init_deployment
from monitor_es.store.leases import LeaseClient
from monitor_es.store.log import PartitionStore, parse_id
from monitor_es.workers import partition as partition_module
from monitor_es.workers import runner as runner_module
from monitor_es.workers.aggregator import Aggregator
from monitor_es.workers.partition import PartitionWorker
from monitor_es.workers.runner import WorkerProcess

pytestmark = pytest.mark.redis

MINUTE = timedelta(minutes=1)


# ------------------------------------------------------------------ helpers


def wait_for(predicate: Callable[[], object], timeout_s: float, what: str) -> float:
    """Polls until `predicate` holds; returns the seconds it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.01)
    return time.monotonic() - start


def report(what: str, seconds: float) -> None:
    """Prints a measured time (shown with `pytest -s`)."""
    print(f"\n[resilience] {what}: {seconds:.3f}s")


def lease_holders(client: Client, partitions: int) -> dict[int, str | None]:
    """Who holds each partition's lease (Redis is the source of truth)."""
    holders: dict[int, str | None] = {}
    for p in range(partitions):
        value = client.get(keys.partition_keys(p).lease)
        holders[p] = None if value is None else as_text(value).rsplit(" ", 1)[0]
    return holders


def owned_by(client: Client, partitions: int, owner: str) -> int:
    """How many partitions `owner` holds."""
    return sum(1 for holder in lease_holders(client, partitions).values() if holder == owner)


def fences(client: Client, partitions: int) -> list[int]:
    """Each partition's fencing token (one more per lease acquisition)."""
    return [int(client.hget(keys.partition_keys(p).meta, "fence") or 0) for p in range(partitions)]


def last_ids(client: Client, partitions: int) -> list[str | None]:
    """Each partition's committed high-water mark."""
    marks = []
    for p in range(partitions):
        mark = client.hget(keys.partition_keys(p).meta, keys.META_LAST_ID)
        marks.append(None if mark is None else as_text(mark))
    return marks


def drained(client: Client, partitions: int) -> bool:
    """Every partition has committed its log's newest entry and has nothing pending."""
    for p, mark in enumerate(last_ids(client, partitions)):
        pk = keys.partition_keys(p)
        newest = client.xrevrange(pk.log, count=1)
        if newest and mark != as_text(newest[0][0]):
            return False
        if client.xpending(pk.log, keys.REDUCER_GROUP)["pending"]:
            return False
    return True


def committed_past(client: Client, marks: dict[int, str]) -> bool:
    """Each partition in `marks` has committed up to (at least) its entry id."""
    done = last_ids(client, max(marks) + 1)
    for p, mark in marks.items():
        committed = done[p]
        if committed is None or parse_id(committed) < parse_id(mark):
            return False
    return True


def assert_logs_folded(client: Client, partitions: int) -> int:
    """Each partition equals the pure fold of its log, exactly once; returns the entries."""
    total = 0
    ids: list[str] = []
    for p in range(partitions):
        store = PartitionStore(client, p)
        entries = [decode_entry(i, payload) for i, payload in store.read_range()]
        ids += [e.id for e in assert_partition_matches(client, p, entries)]
        assert store.read_dlq() == [], f"dead letters in p{p}"
        total += len(entries)
    assert len(ids) == len(set(ids)), "a derived event was written twice"
    assert drained(client, partitions), "entries left unprocessed or pending"
    return total


def cli(log: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """A `monitor-es` subprocess writing to `log`, and its lease owner name (host:pid)."""
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor_es.cli", *args], stdout=sink, stderr=sink
        )
    return proc, f"{socket.gethostname()}:{proc.pid}"


def stop_process(proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM) -> int:
    """Signals a subprocess and reaps it (SIGKILL if it hangs); returns its exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("the process did not exit within 10s") from None
    return proc.returncode


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[Path]:
    """A directory for the subprocesses' logs; their tails are printed if a test fails."""
    directory = tmp_path / "logs"
    directory.mkdir()
    yield directory
    for path in sorted(directory.iterdir()):
        print(f"----- {path.name}\n{path.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Subprocesses to kill if a test leaves them running."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class TolerantProducer:
    """Appends a check-in of one of 32 monitors every few ms; keeps trying while Redis is away.

    The 32 monitors cover every partition of 2, 4 or 8.
    """

    def __init__(self, url: str, partitions: int) -> None:
        self.client = redis.Redis.from_url(url)
        self.producer = Producer(self.client, partitions)
        self.partitions = partitions
        self.appended: list[tuple[float, str, int]] = []  # (monotonic time, id, partition)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="producer", daemon=True)

    def _run(self) -> None:
        config = {"schedule_type": "crontab", "schedule": "* * * * *", "max_runtime": 1}
        n = 0
        while not self._stop.is_set():
            event = CheckInReported(
                project="acme" if n % 2 else "globex",
                monitor_slug=f"job-{n % 32}",
                check_in_id=str(uuid.UUID(int=n + 1)),
                status=("in_progress", "ok", "error")[n % 3],
                monitor_config=config,
            )
            try:
                (entry_id,) = self.producer.append(event)
            except UNAVAILABLE:
                self._stop.wait(0.02)
                continue
            partition = keys.partition_for(event.project, event.monitor_slug, self.partitions)
            self.appended.append((time.monotonic(), entry_id, partition))
            n += 1
            self._stop.wait(0.004)

    def start(self) -> TolerantProducer:
        """Starts appending."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops appending."""
        self._stop.set()
        self._thread.join(timeout=10)
        self.client.close()

    def first_after(self, instant: float) -> dict[int, str]:
        """Per partition, the first entry appended after a monotonic instant."""
        firsts: dict[int, str] = {}
        for at, entry_id, partition in self.appended:
            if at > instant:
                firsts.setdefault(partition, entry_id)
        return firsts


# ------------------------------------------------------------------ Redis restarts


@pytest.mark.parametrize(
    ("outage_s", "ttl_ms"), [(0.0, 3000), (1.3, 1000)], ids=["within-the-ttl", "beyond-the-ttl"]
)
def test_worker_and_pulser_ride_out_a_redis_crash_restart_without_losing_or_repeating_work(
    redis_aof_server: RedisProcess,
    logs: Path,
    processes: list[subprocess.Popen[bytes]],
    outage_s: float,
    ttl_ms: int,
) -> None:
    partitions = 2
    url = redis_aof_server.url
    client = redis.Redis.from_url(url)
    init_deployment(client, partitions)
    worker, owner = cli(
        logs / "worker.log", "worker", "--redis-url", url, "--lease-ttl-ms", str(ttl_ms),
        "--batch", "20",
    )  # fmt: skip
    pulser, _ = cli(
        logs / "pulser.log", "pulse", "--redis-url", url, "--interval", "0.2",
        "--system-incidents",
    )  # fmt: skip
    processes += [worker, pulser]
    producer = TolerantProducer(url, partitions).start()
    try:
        wait_for(lambda: owned_by(client, partitions, owner) == partitions, 10, "the leases")
        wait_for(lambda: all(last_ids(client, partitions)), 10, "commits in every partition")
        before = fences(client, partitions)

        redis_aof_server.stop(signal.SIGKILL)  # mid-stream: appends and commits in flight
        time.sleep(outage_s)
        redis_aof_server.start()
        back, back_ms = time.monotonic(), int(time.time() * 1000)
        client = redis.Redis.from_url(url)
        wait_for(lambda: len(producer.first_after(back)) == partitions, 10, "new appends")
        wait_for(
            lambda: committed_past(client, producer.first_after(back)), 15, "the worker to go on"
        )
        recovered = time.monotonic() - back
        report(f"Redis back → worker commits new entries (outage {outage_s}s)", recovered)
        took = wait_for(
            lambda: all(max(pulse_times(client, p), default=0) > back_ms for p in range(2)),
            5,
            "a pulse after the restart in every partition",
        )
        report(f"Redis back → pulses in every partition (outage {outage_s}s)", recovered + took)
    finally:
        producer.stop()
    assert worker.poll() is None and pulser.poll() is None, "a process died: crash loop"
    assert stop_process(pulser) == 0  # appends nothing more
    assert client.get(keys.PULSER_LEASE) is None  # released on SIGTERM
    wait_for(lambda: drained(client, partitions), 15, "the partitions to drain")
    after = fences(client, partitions)
    if outage_s * 1000 < ttl_ms:
        assert after == before, "the leases changed hands though Redis came back within the ttl"
    else:
        # The leases expired while Redis was down: each was taken again.
        assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
    assert stop_process(worker) == 0
    assert assert_logs_folded(client, partitions) > 20  # appended before and after the restart


def test_a_worker_reloads_its_partitions_when_redis_comes_back_with_older_data(
    tmp_path: Path, logs: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    # A restart from an older snapshot (appendfsync everysec losing its last second, or a
    # failover to a lagging replica) rolls log, state and meta back under the worker.
    entries = log_entries(workload(seed=11, slots=45))
    first, second, third = entries[:200], entries[200:400], entries[400:]
    server = RedisProcess("redis-server", free_port(), tmp_path / "rdb", {"appendonly": "no"})
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        init_deployment(client, 1)
        append_entries(client, first, 1)
        worker, _ = cli(
            logs / "worker.log", "worker", "--redis-url", server.url, "--lease-ttl-ms", "3000",
            "--batch", "20",
        )  # fmt: skip
        processes.append(worker)
        wait_for(lambda: last_ids(client, 1) == [first[-1].id], 10, "the first part")
        client.save()  # the snapshot Redis will come back with
        append_entries(client, second, 1)
        wait_for(lambda: last_ids(client, 1) == [second[-1].id], 10, "the second part")

        server.stop(signal.SIGKILL)
        server.start()  # with the snapshot: the second part and its effects are gone
        client = redis.Redis.from_url(server.url)
        assert last_ids(client, 1) == [first[-1].id]
        append_entries(client, third, 1)
        took = wait_for(lambda: last_ids(client, 1) == [third[-1].id], 15, "the third part")
        report("worker catch-up after a rollback of Redis", took)
        assert worker.poll() is None, "the worker died"
        assert stop_process(worker) == 0
        # Folded from what Redis holds now, not from the worker's memory of the lost part.
        assert_partition_matches(client, 0, first + third)
    finally:
        server.stop()


def test_a_worker_started_while_redis_is_down_waits_for_it_then_works(
    tmp_path: Path, logs: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    server = RedisProcess("redis-server", free_port(), tmp_path / "late", {"appendonly": "yes"})
    server.start()
    client = redis.Redis.from_url(server.url)
    init_deployment(client, 2)
    entries = log_entries(workload(seed=5, slots=20))
    append_entries(client, entries, 2)
    server.stop()  # down (with its data) when the worker starts
    log = logs / "worker.log"
    worker, _ = cli(log, "worker", "--redis-url", server.url, "--lease-ttl-ms", "1000")
    processes.append(worker)
    try:
        wait_for(lambda: "cannot reach Redis at" in log.read_text(), 10, "the waiting message")
        assert worker.poll() is None, "the worker gave up instead of waiting"
        server.start()
        came = time.monotonic()
        client = redis.Redis.from_url(server.url)
        wait_for(lambda: drained(client, 2), 15, "the worker to drain")
        report("worker start-up once Redis came (backoff included)", time.monotonic() - came)
        assert stop_process(worker) == 0
        assert "Traceback" not in log.read_text()
        assert_logs_folded(client, 2)
    finally:
        server.stop()


def test_init_against_an_unreachable_redis_fails_with_a_clear_message() -> None:
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    done = subprocess.run(
        [sys.executable, "-m", "monitor_es.cli", "init", "--redis-url", url],
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    assert done.returncode == 1
    assert "cannot reach Redis at redis://:***@127.0.0.1:" in done.stderr
    assert "Traceback" not in done.stderr
    assert "s3cret" not in done.stderr


# ------------------------------------------------------------------ connections cut mid-command


class CuttingProxy:
    """A TCP proxy to Redis that breaks one connection exactly around one command.

    Armed with a marker, it cuts the first connection whose client sends it: either the
    command never reaches Redis, or Redis executes it and its reply is lost.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.cut_at: float | None = None
        self._lock = threading.Lock()
        self._rule: tuple[bytes, bool, bool] | None = None
        self._sockets: list[socket.socket] = []
        self._links: list[_Link] = []
        threading.Thread(target=self._accept, name="proxy", daemon=True).start()

    @property
    def url(self) -> str:
        """The URL clients connect to."""
        return f"redis://127.0.0.1:{self.port}/0"

    def arm(self, marker: bytes, *, executed: bool, only_with_entries: bool = False) -> None:
        """Cuts the next connection sending `marker`, after Redis ran it if `executed`.

        `only_with_entries`: cut only once a read's reply carries entries (not nil).
        """
        with self._lock:
            self._rule = (marker, executed, only_with_entries)

    def stall(self) -> None:
        """Every connection open now goes silent both ways, as across a network partition:
        no data, no FIN, no RST. Connections opened later are proxied normally."""
        with self._lock:
            for link in self._links:
                link.stalled = True

    def close(self) -> None:
        """Stops accepting and closes every proxied connection."""
        self.listener.close()
        for sock in self._sockets:
            _close(sock)

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [downstream, upstream]
            link = _Link(self, downstream, upstream)
            with self._lock:
                self._links.append(link)
            threading.Thread(target=link.client_to_server, daemon=True).start()
            threading.Thread(target=link.server_to_client, daemon=True).start()

    def _take(self, data: bytes) -> tuple[bytes, bool, bool] | None:
        with self._lock:
            rule = self._rule
            if rule is None or rule[0] not in data:
                return None
            if not rule[2]:
                self._rule = None
            return rule

    def _cut_done(self) -> None:
        with self._lock:
            self._rule = None
            self.cut_at = time.monotonic()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class _Link:
    """One proxied connection."""

    def __init__(self, proxy: CuttingProxy, downstream: socket.socket, up: socket.socket) -> None:
        self.proxy = proxy
        self.downstream = downstream
        self.up = up
        self.dropping = False
        self.stalled = False  # swallows everything, both ways
        self.watching = False  # a read was forwarded whose reply decides the cut

    def cut(self) -> None:
        self.proxy._cut_done()
        _close(self.downstream)
        _close(self.up)

    def client_to_server(self) -> None:
        try:
            while data := self.downstream.recv(65536):
                if self.stalled:
                    continue
                rule = self.proxy._take(data)
                if rule is None:
                    self.up.sendall(data)
                elif rule[2]:
                    self.watching = True
                    self.up.sendall(data)
                elif not rule[1]:
                    self.cut()  # the command never reaches Redis
                    return
                else:
                    self.dropping = True  # Redis runs it; its reply is lost
                    self.up.sendall(data)
                    time.sleep(0.05)
                    self.cut()
                    return
        except OSError:
            return

    def server_to_client(self) -> None:
        try:
            while data := self.up.recv(65536):
                if self.stalled:
                    continue
                if self.watching and not data.startswith((b"*-1", b"*0")):
                    self.cut()  # entries delivered to the consumer, never to the worker
                    return
                self.watching = False
                if not self.dropping:
                    self.downstream.sendall(data)
        except OSError:
            return


@pytest.fixture
def proxy(redis_server: str) -> Iterator[CuttingProxy]:
    """A cutting proxy in front of the session redis-server."""
    port = int(redis_server.rsplit(":", 1)[1].split("/", maxsplit=1)[0])
    cutting = CuttingProxy(port)
    yield cutting
    cutting.close()


class RunningWorker:
    """A WorkerProcess running its manager loop in a thread of this process."""

    def __init__(self, url: str, partitions: int, owner: str, **options: Any) -> None:
        self.client = redis.Redis.from_url(url)
        self.process = WorkerProcess(self.client, partitions, owner=owner, **options)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.process.run, args=(self.stop_event,))

    def __enter__(self) -> RunningWorker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the worker did not stop"
        self.client.close()


@pytest.mark.parametrize(
    "cut",
    [
        (b"mes_commit_v1", True, False),
        (b"mes_commit_v1", False, False),
        (b"XREADGROUP", True, True),
    ],
    ids=["commit-applied-reply-lost", "commit-never-arrived", "read-delivered-reply-lost"],
)
def test_a_connection_cut_mid_command_neither_loses_nor_repeats_effects(
    real_client: redis.Redis,
    proxy: CuttingProxy,
    caplog: pytest.LogCaptureFixture,
    cut: tuple[bytes, bool, bool],
) -> None:
    caplog.set_level(logging.WARNING, logger="monitor_es.workers.runner")
    marker, executed, only_with_entries = cut
    entries = log_entries(workload(seed=3, slots=40))
    init_deployment(real_client, 1)
    append_entries(real_client, entries[:150], 1)
    proxy.arm(marker, executed=executed, only_with_entries=only_with_entries)
    options = {"lease_ttl_ms": 2000, "batch": 10, "block_ms": 50}
    with RunningWorker(proxy.url, 1, "worker-a", **options) as running:
        wait_for(lambda: proxy.cut_at is not None, 10, "the cut")
        assert proxy.cut_at is not None
        append_entries(real_client, entries[150:], 1)  # more work after the cut
        recovered = wait_for(lambda: drained(real_client, 1), 10, "the worker to drain")
        report(f"drain after a cut ({marker.decode()}, executed={executed})", recovered)
        assert running.thread.is_alive()
    reloads = [r for r in caplog.records if "reloading" in r.getMessage()]
    assert reloads, "the cut did not hit the reducer"
    assert fences(real_client, 1) == [1], "the lease changed hands: the worker did not recover"
    assert_partition_matches(real_client, 0, entries)


def test_a_worker_whose_connection_goes_silent_times_out_reconnects_and_goes_on(
    real_client: redis.Redis, proxy: CuttingProxy
) -> None:
    # A peer that stops answering without closing (a partition, a frozen host) used to hang
    # the worker in recv() forever. connect() sets read timeouts (the URL may override
    # them, as here, to keep the test short).
    entries = log_entries(workload(seed=5, slots=40))
    init_deployment(real_client, 1)
    append_entries(real_client, entries[:100], 1)
    client = connect(f"{proxy.url}?socket_timeout=1")
    process = WorkerProcess(client, 1, owner="worker-a", lease_ttl_ms=3000, batch=20)
    stop = threading.Event()
    thread = threading.Thread(target=process.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: drained(real_client, 1), 10, "the first entries")
        proxy.stall()
        append_entries(real_client, entries[100:], 1)
        recovered = wait_for(lambda: drained(real_client, 1), 20, "the worker to go on")
        report("drain after the connection went silent", recovered)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive(), "the worker did not stop"
    assert_partition_matches(real_client, 0, entries)


def test_connect_sets_socket_timeouts_and_keepalive_that_the_url_can_override() -> None:
    defaults = connect("redis://127.0.0.1:1/0").connection_pool.connection_kwargs
    assert defaults["socket_timeout"] == 30.0
    assert defaults["socket_connect_timeout"] == 5.0
    assert defaults["socket_keepalive"] is True
    assert "health_check_interval" not in defaults  # its PING would eat a pipelined reply
    chosen = connect("redis://127.0.0.1:1/0?socket_timeout=2.5").connection_pool
    assert chosen.connection_kwargs["socket_timeout"] == 2.5


# ------------------------------------------------------------------ lease lost mid-batch


def test_a_worker_whose_lease_lapses_mid_fold_is_fenced_and_reads_nothing_more(
    real_client: redis.Redis,
    redis_server: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Its manager stops renewing (a stalled process, a partition from Redis) while a batch is
    # folded; another worker takes over. The stale one must neither commit (fence) nor
    # read: entries it read after the takeover would stay pending for it, below the new
    # owner's high-water mark, and be lost.
    caplog.set_level(logging.WARNING, logger="monitor_es.workers.runner")
    entries = log_entries(workload(seed=9, slots=30))
    first, second = entries[:60], entries[60:]
    target = first[12]  # in A's third batch of 5
    blocked, release = threading.Event(), threading.Event()

    def slow_apply(p: Partition, fx: Any, entry: LogEntry) -> None:
        if entry.id == target.id and threading.current_thread().name == "reducer-p0":
            blocked.set()
            release.wait(10)
        real_apply(p, fx, entry)

    monkeypatch.setattr(partition_module, "apply", slow_apply)
    init_deployment(real_client, 1)
    append_entries(real_client, first, 1)
    client_a = redis.Redis.from_url(redis_server)
    a = WorkerProcess(client_a, 1, owner="worker-a", lease_ttl_ms=400, batch=5, block_ms=50)
    deadline = time.monotonic() + 10
    while not blocked.wait(0.05):  # a healthy manager until the fold hangs...
        a.manage()
        assert time.monotonic() < deadline, "A never reached the entry"
    # ...then no renewal: the lease expires and B takes the partition over.
    wait_for(lambda: real_client.get(keys.partition_keys(0).lease) is None, 5, "A's lease")
    lease_b = LeaseClient(real_client, "worker-b", 10_000).acquire(0)
    assert lease_b is not None
    b = PartitionWorker(PartitionStore(real_client, 0), lease_b.token, f"worker-b:{lease_b.token}")
    run_until_drained(b, count=5)  # claims what A had read, then the rest
    append_entries(real_client, second, 1)

    release.set()  # A's fold goes on, long after its lease
    owned = a.owned[0]
    wait_for(
        lambda: not owned.alive() or any("reads paused" in r.getMessage() for r in caplog.records),
        5,
        "A to stop or pause",
    )
    run_until_drained(b, count=5)
    a.shutdown()
    client_a.close()

    assert any("fenced" in r.getMessage() for r in caplog.records), "A's commit was not fenced"
    pending = real_client.xpending_range(
        keys.partition_keys(0).log, keys.REDUCER_GROUP, "-", "+", 100
    )
    assert pending == [], "entries read by the stale owner are stranded"
    assert fences(real_client, 1) == [lease_b.token]
    assert_partition_matches(real_client, 0, entries)


def pending_entries(client: Client) -> int:
    """Entries of partition 0 read but not acknowledged."""
    return int(client.xpending(keys.partition_keys(0).log, keys.REDUCER_GROUP)["pending"])


def test_entries_a_zombie_reads_at_the_tail_after_losing_its_lease_are_not_stranded(
    real_client: redis.Redis, redis_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A reducer checks that its lease is surely valid, then sends its read. Paused in
    # between (SIGSTOP, a long GC, a starved CPU) it reads after its successor took over:
    # the entries go pending for the zombie, whose commit is then fenced. The successor's
    # next commit above them is refused (GAP) and it claims them, but at the tail of a
    # partition no commit comes: the successor only reads new entries, and they stayed
    # pending (unprocessed) until the partition's next entry.
    entries = log_entries(workload(seed=11, slots=20))
    head, tail = entries[:-30], entries[-30:]
    paused, resume = threading.Event(), threading.Event()
    armed = threading.Event()
    real_read = PartitionStore.read_batch

    def read_batch(store: PartitionStore, consumer: str, count: int, block: int | None) -> Any:
        if armed.is_set() and threading.current_thread().name == "reducer-p0":
            armed.clear()
            paused.set()  # checked the lease, not yet read
            resume.wait(10)
        return real_read(store, consumer, count, block)

    monkeypatch.setattr(PartitionStore, "read_batch", read_batch)
    init_deployment(real_client, 1)
    append_entries(real_client, head, 1)
    client_a = redis.Redis.from_url(redis_server)
    a = WorkerProcess(client_a, 1, owner="worker-a", lease_ttl_ms=400, batch=50, block_ms=50)
    try:
        deadline = time.monotonic() + 10
        while not drained(real_client, 1):  # a healthy owner drains the head...
            a.manage()
            assert time.monotonic() < deadline, "A did not drain the head"
            time.sleep(0.05)
        armed.set()
        assert paused.wait(5)
        # ...then pauses: its lease expires and B takes over, with nothing to do yet.
        wait_for(lambda: real_client.get(keys.partition_keys(0).lease) is None, 5, "A's lease")
        lease_b = LeaseClient(real_client, "worker-b", 10_000).acquire(0)
        assert lease_b is not None
        store_b = PartitionStore(real_client, 0)
        b = PartitionWorker(store_b, lease_b.token, f"worker-b:{lease_b.token}")
        run_until_drained(b)
        append_entries(real_client, tail, 1)  # the last entries the partition gets

        resume.set()  # A reads the tail with its stale lease
        wait_for(lambda: pending_entries(real_client) == len(tail), 5, "A's stale read")
        run_until_drained(b)
        assert pending_entries(real_client) == 0, "the tail is stranded, pending for the zombie"
    finally:
        resume.set()
        a.shutdown()
        client_a.close()
    assert_partition_matches(real_client, 0, entries)
    assert drained(real_client, 1)


def test_a_partition_dropped_while_its_reducer_is_stuck_is_not_taken_again_until_it_ends(
    real_client: redis.Redis, redis_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker hands a partition back (a newcomer appeared) while that partition's reducer
    # is stuck in a fold; its lease is left to expire. If the newcomer vanishes and the
    # worker takes the partition again before then, the lease hands back the SAME token:
    # a second reducer thread would then commit beside the stuck one and the fence could
    # not tell them apart. The worker must wait for the stuck thread to end.
    entries = log_entries(workload(seed=13, slots=20))
    blocked, release = threading.Event(), threading.Event()

    def slow_apply(p: Partition, fx: Any, entry: LogEntry) -> None:
        if threading.current_thread().name == "reducer-p1" and not blocked.is_set():
            blocked.set()
            release.wait(10)
        real_apply(p, fx, entry)

    monkeypatch.setattr(partition_module, "apply", slow_apply)
    monkeypatch.setattr(runner_module, "_STOP_GRACE_S", 0.3)
    init_deployment(real_client, 2)
    append_entries(real_client, entries, 2)
    client_a = redis.Redis.from_url(redis_server)
    a = WorkerProcess(client_a, 2, owner="worker-a", lease_ttl_ms=10_000, batch=5, block_ms=50)
    newcomer = LeaseClient(real_client, "worker-b", 10_000)
    try:
        deadline = time.monotonic() + 10
        while not blocked.wait(0.05):
            a.manage()
            assert time.monotonic() < deadline, "A never started partition 1"
        stuck = a.owned[1]
        newcomer.heartbeat()  # two live workers: A's share is 1, it hands partition 1 back
        a.manage()
        assert 1 not in a.owned and stuck.alive()
        newcomer.leave()  # ...and A's share is 2 again, while the stuck thread still runs
        a.manage()
        a.manage()
        assert 1 not in a.owned, "partition 1 taken again beside its stuck reducer"
        release.set()
        wait_for(lambda: not stuck.alive(), 5, "the stuck reducer to end")
        a.manage()
        assert 1 in a.owned and a.owned[1] is not stuck
        wait_for(lambda: drained(real_client, 2), 20, "both partitions to drain")
    finally:
        release.set()
        a.shutdown()
        client_a.close()
    for partition, partition_entries in enumerate(by_partition(entries, 2)):
        assert_partition_matches(real_client, partition, partition_entries)


# ------------------------------------------------------------------ workers coming and going


def test_workers_started_together_split_evenly_and_rebalance_as_a_third_joins_and_leaves(
    real_client: redis.Redis,
    redis_server: str,
    logs: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    partitions = 8
    init_deployment(real_client, partitions)
    options = ("worker", "--redis-url", redis_server, "--lease-ttl-ms", "1000", "--batch", "20")

    def split() -> list[int]:
        counts = Counter(lease_holders(real_client, partitions).values())
        return sorted(n for holder, n in counts.items() if holder is not None)

    producer = TolerantProducer(redis_server, partitions).start()
    try:
        started = time.monotonic()
        a, _ = cli(logs / "a.log", *options)
        b, _ = cli(logs / "b.log", *options)
        processes += [a, b]
        wait_for(lambda: split() == [4, 4], 10, "a 4/4 split")
        report(
            "two workers started together: even split (incl. start-up)", time.monotonic() - started
        )
        c, c_owner = cli(logs / "c.log", *options)
        processes.append(c)
        took = wait_for(lambda: split() == [2, 3, 3], 10, "a 3/3/2 split")
        report("a third worker joins: rebalanced (incl. start-up)", took)
        wait_for(lambda: consumers_with_work(real_client, partitions, c_owner), 5, "C to work")
        left = time.monotonic()
        assert stop_process(c) == 0
        wait_for(lambda: split() == [4, 4], 5, "a 4/4 split again")
        report("the third worker leaves (SIGTERM): rebalanced", time.monotonic() - left)
        time.sleep(0.2)
    finally:
        producer.stop()
    wait_for(lambda: drained(real_client, partitions), 15, "the partitions to drain")
    assert a.poll() is None and b.poll() is None
    assert stop_process(a) == 0 and stop_process(b) == 0
    assert assert_logs_folded(real_client, partitions) > 100


def consumers_with_work(client: Client, partitions: int, owner: str) -> bool:
    """True once a consumer of `owner` (named `<owner>:<token>`) has read entries."""
    for p in range(partitions):
        for consumer in client.xinfo_consumers(keys.partition_keys(p).log, keys.REDUCER_GROUP):
            if as_text(consumer["name"]).startswith(f"{owner}:"):
                return True
    return False


# ------------------------------------------------------------------ signals


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_a_signal_during_a_blocking_read_stops_the_worker_promptly_and_frees_its_leases(
    real_client: redis.Redis,
    redis_server: str,
    logs: Path,
    processes: list[subprocess.Popen[bytes]],
    sig: signal.Signals,
) -> None:
    partitions = 4
    init_deployment(real_client, partitions)
    # The default ttl (10 s): a peer can only take over at once if the leases are released.
    worker, owner = cli(logs / "worker.log", "worker", "--redis-url", redis_server)
    processes.append(worker)
    wait_for(lambda: owned_by(real_client, partitions, owner) == partitions, 10, "the leases")
    time.sleep(0.1)  # every reducer is now blocked in its read (1 s)
    sent = time.monotonic()
    worker.send_signal(sig)
    assert worker.wait(timeout=10) == 0
    took = time.monotonic() - sent
    report(f"exit after {sig.name} during a blocking read", took)
    assert took < 2.5
    peer = LeaseClient(real_client, "peer", 10_000)
    assert all(peer.acquire(p) is not None for p in range(partitions)), "a lease was kept"
    assert real_client.zscore(keys.WORKERS, owner) is None


def test_a_worker_asked_to_stop_while_redis_is_down_exits_cleanly_and_promptly(
    redis_aof_server: RestartableServer, logs: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    client = redis.Redis.from_url(redis_aof_server.url)
    init_deployment(client, 2)
    log = logs / "worker.log"
    worker, owner = cli(
        log, "worker", "--redis-url", redis_aof_server.url, "--lease-ttl-ms", "3000"
    )
    processes.append(worker)
    wait_for(lambda: owned_by(client, 2, owner) == 2, 10, "the leases")
    cast(RedisProcess, redis_aof_server).stop(signal.SIGKILL)
    wait_for(lambda: "Redis unavailable" in log.read_text(), 5, "the worker to notice")
    time.sleep(0.3)  # well into its retries
    assert worker.poll() is None, "the worker died when Redis went away"
    sent = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0
    took = time.monotonic() - sent
    report("exit after SIGTERM while Redis is down", took)
    assert took < 2.5
    assert "Traceback" not in log.read_text()


# ------------------------------------------------------------------ pulser


def pulse_times(client: Client, partition: int) -> list[int]:
    """Broker milliseconds of the pulses in a partition's log."""
    return [
        parse_id(i)[0]
        for i, payload in PartitionStore(client, partition).read_range()
        if isinstance(decode_entry(i, payload).event, ClockPulsed)
    ]


def test_a_killed_pulser_is_replaced_and_every_partition_keeps_getting_pulses(
    real_client: redis.Redis,
    redis_server: str,
    logs: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    partitions = 4
    interval_s, ttl_s = 0.2, 0.6  # the pulser lease lasts three intervals
    init_deployment(real_client, partitions)
    options = ("pulse", "--redis-url", redis_server, "--interval", str(interval_s))
    first, first_owner = cli(logs / "p1.log", *options)
    second, second_owner = cli(logs / "p2.log", *options)
    processes += [first, second]

    def holder() -> str | None:
        value = real_client.get(keys.PULSER_LEASE)
        return None if value is None else as_text(value).rsplit(" ", 1)[0]

    wait_for(lambda: holder() is not None and len(pulse_times(real_client, 0)) >= 3, 10, "pulses")
    active, standby = (first, second) if holder() == first_owner else (second, first)
    standby_owner = second_owner if active is first else first_owner
    killed_ms = int(time.time() * 1000)
    active.send_signal(signal.SIGKILL)
    active.wait(timeout=10)
    took = wait_for(lambda: holder() == standby_owner, 5, "the standby to take over")
    report("pulser takeover after SIGKILL (lease expiry)", took)
    wait_for(
        lambda: all(
            sum(ms > killed_ms for ms in pulse_times(real_client, p)) >= 3
            for p in range(partitions)
        ),
        5,
        "pulses from the new pulser in every partition",
    )
    assert stop_process(standby) == 0
    assert real_client.get(keys.PULSER_LEASE) is None  # released on SIGTERM

    counts = [len(pulse_times(real_client, p)) for p in range(partitions)]
    assert max(counts) - min(counts) <= 1, f"a partition starved: {counts}"
    times = pulse_times(real_client, 0)
    gap_s = max(b - a for a, b in itertools.pairwise(times)) / 1000
    report("largest gap between pulses across the takeover", gap_s)
    assert gap_s < ttl_s + 2 * interval_s + 0.5


# ------------------------------------------------------------------ aggregator crashes


class Crash(Exception):
    """The simulated death of the pulser process."""


class CrashingClient:
    """Passes calls on to a real client; dies instead of making its `crash_at`-th write."""

    def __init__(self, client: redis.Redis, crash_at: int | None) -> None:
        self.client = client
        self.crash_at = crash_at
        self.writes = 0

    def write(self) -> None:
        """Counts one write, or crashes (once) instead of making it."""
        if self.writes == self.crash_at:
            self.crash_at = None
            raise Crash
        self.writes += 1

    def hget(self, *args: Any) -> Any:
        return self.client.hget(*args)

    def hset(self, *args: Any, **kwargs: Any) -> Any:
        self.write()
        return self.client.hset(*args, **kwargs)

    def fcall(self, *args: Any) -> Any:
        self.write()  # every fenced aggregator write is one Function call
        return self.client.fcall(*args)

    def pipeline(self, transaction: bool = True) -> CrashingPipeline:
        return CrashingPipeline(self, self.client.pipeline(transaction=transaction))


class CrashingPipeline:
    """A pipeline whose execute() counts as one write if it holds any."""

    def __init__(self, owner: CrashingClient, pipe: Any) -> None:
        self.owner = owner
        self.pipe = pipe
        self.writes = False

    def hget(self, *args: Any) -> CrashingPipeline:
        self.pipe.hget(*args)
        return self

    def _queue(self, name: str, *args: Any, **kwargs: Any) -> CrashingPipeline:
        self.writes = True
        getattr(self.pipe, name)(*args, **kwargs)
        return self

    def hset(self, *args: Any, **kwargs: Any) -> CrashingPipeline:
        return self._queue("hset", *args, **kwargs)

    def hdel(self, *args: Any) -> CrashingPipeline:
        return self._queue("hdel", *args)

    def xadd(self, *args: Any, **kwargs: Any) -> CrashingPipeline:
        return self._queue("xadd", *args, **kwargs)

    def execute(self) -> Any:
        if self.writes:
            self.owner.write()
        return self.pipe.execute()


AGGREGATOR_TICKS = 9  # the incident is over at the last one


def prepare_decisions(client: redis.Redis) -> tuple[datetime, dict[str, bytes]]:
    """Volumes for normal → abnormal → incident → recovery; returns base and their dumps."""
    init_deployment(client, AGGREGATOR_PARTITIONS)
    base = base_minute() - 5 * MINUTE
    today = {base - n * MINUTE: NORMAL for n in range(1, 8)}
    today |= {base: DROP_20, base + MINUTE: DROP_40, base + 2 * MINUTE: DROP_40}
    today |= {base + n * MINUTE: NORMAL for n in range(3, 8)}
    write_volumes(client, today, base)
    volumes = [keys.partition_keys(p).volume for p in range(AGGREGATOR_PARTITIONS)]
    return base, {key: cast(bytes, client.dump(key)) for key in volumes}


def run_decisions(
    client: redis.Redis,
    base: datetime,
    volumes: dict[str, bytes],
    crash_at: int | None,
    *,
    restart: bool = True,
) -> tuple[int, dict[str, Any]]:
    """Decides one tick a minute from `base`: abnormal, incident (backfilled), recovery (pruned).

    The aggregator fails instead of its `crash_at`-th write. With `restart`, it died and a
    new one (the next pulser) goes on from what Redis holds; otherwise the same one
    retries (the pulser's loop after a connection error). Returns the writes made and the
    resulting stored state.
    """
    reset = client.pipeline(transaction=False)
    reset.delete(keys.SYSTEM_INCIDENT_LOG, keys.SYSTEM_INCIDENT_STATE)
    for p in range(AGGREGATOR_PARTITIONS):
        reset.xtrim(keys.partition_keys(p).log, maxlen=0)
    for key, dump in volumes.items():
        reset.restore(key, 0, dump, replace=True)
    reset.execute()
    crashing = CrashingClient(client, crash_at)
    aggregator = Aggregator(cast(Client, crashing), AGGREGATOR_PARTITIONS)
    for n in range(AGGREGATOR_TICKS):
        set_stream_time(client, base + n * MINUTE + timedelta(seconds=30))
        try:
            aggregator.step(1)
        except Crash:
            if restart:
                aggregator = Aggregator(client, AGGREGATOR_PARTITIONS)
            aggregator.step(1)
    outcome: dict[str, Any] = {
        "decisions": client.hgetall(keys.SYSTEM_INCIDENT_LOG),
        "state": client.hgetall(keys.SYSTEM_INCIDENT_STATE),
    }
    for p in range(AGGREGATOR_PARTITIONS):
        outcome[f"volume:{p}"] = client.hgetall(keys.partition_keys(p).volume)
        logged = decisions_in_log(client, p)
        # A decision broadcast again after a crash is harmless; one missing is not.
        outcome[f"log:{p}"] = list(dict.fromkeys(logged))
        outcome[f"in force:{p}"] = dict(logged)
    return crashing.writes, outcome


@pytest.mark.parametrize("restart", [True, False], ids=["next-pulser", "same-pulser-retries"])
def test_an_aggregator_failing_at_any_write_ends_as_if_it_had_never_failed(
    real_client: redis.Redis, restart: bool
) -> None:
    base, volumes = prepare_decisions(real_client)
    writes, expected = run_decisions(real_client, base, volumes, None)
    # The run goes through every transition that rewrites or prunes.
    assert {d for _, d in expected["log:0"]} == {"normal", "abnormal", "incident", "recovering"}
    assert b"incident_start" in expected["state"]
    dropped = {str(DROP_20).encode(), str(DROP_40).encode()}
    assert not dropped & set(expected["volume:0"].values()), "the outage's volumes were kept"
    assert writes > 10
    for crash_at in range(writes):
        _, outcome = run_decisions(real_client, base, volumes, crash_at, restart=restart)
        for name, value in expected.items():
            assert outcome[name] == value, f"{name} after a crash at write {crash_at}"
