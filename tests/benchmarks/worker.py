"""The partition worker on a real redis-server, against a raw loop over a copy of the same log.

The benchmark starts its own redis-server (no persistence) on a free port, initialises one
partition, appends the workload with explicit ids, and copies the untouched log (consumer
group included) into one database per run. Even databases are drained by one PartitionWorker
holding a lease; odd ones by a raw loop doing the same XREADGROUP, decode, a dict update per
event and the same commit Function with one average-sized blob per touched environment and
the same XACKs. The two sides alternate, and each keeps its best run.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis

from monitor_es.codec import decode_entry, encode_record, environment_field
from monitor_es.domain.events import CheckInReported
from monitor_es.domain.time import to_ms
from monitor_es.store import keys
from monitor_es.store.deployment import init_deployment
from monitor_es.store.leases import LeaseClient
from monitor_es.store.log import PartitionStore, append_many
from monitor_es.workers.partition import PartitionWorker
from tests.benchmarks.redis_server import RedisServer
from tests.benchmarks.report import Figure, number, table
from tests.benchmarks.workload import QUICK, Workload, WorkloadSpec, build

BATCH = 500
APPEND_CHUNK = 5_000
WORKER_TARGET = 50_000  # check-ins per second
RATIO_TARGET = 0.4  # worker rate / raw-loop rate
STATE_MEMORY_TARGET = 1024  # Redis bytes per environment
LOG_MEMORY_TARGET = 128  # Redis bytes per log entry
ROUNDS = 2  # each side runs this many times, alternating; the best run counts
LEASE_TTL_MS = 600_000


@dataclass(frozen=True)
class WorkerReport:
    """What the worker benchmark measured."""

    check_ins: int
    entries: int
    rounds: int
    append_seconds: float
    worker_seconds: float
    raw_seconds: float
    worker_redis_seconds: float  # redis-server main-thread CPU time (INFO cpu)
    raw_redis_seconds: float
    batches: int
    derived: int
    environments: int
    monitors: int
    env_blob: int  # average encoded environment record, the raw loop's blob size
    state_bytes: int
    log_bytes: int
    out_bytes: int

    @property
    def worker_rate(self) -> float:
        """Check-ins per second through the worker."""
        return self.check_ins / self.worker_seconds

    @property
    def raw_rate(self) -> float:
        """Check-ins per second through the raw loop."""
        return self.check_ins / self.raw_seconds

    def figures(self) -> list[Figure]:
        """The table rows of this benchmark."""
        ratio = self.worker_rate / self.raw_rate
        return [
            Figure(
                "worker check-ins/s", self.worker_rate, WORKER_TARGET, "at_least", "", self.raw_rate
            ),
            Figure("worker / raw loop", ratio, RATIO_TARGET, "at_least"),
            Figure(
                "Redis memory per env",
                self.state_bytes / self.environments,
                STATE_MEMORY_TARGET,
                "at_most",
                "B",
            ),
            Figure(
                "Redis memory per entry",
                self.log_bytes / self.entries,
                LOG_MEMORY_TARGET,
                "at_most",
                "B",
            ),
        ]


def _memory(client: Redis, key: str) -> int:
    # SAMPLES 0 measures every element instead of extrapolating from five.
    return int(client.memory_usage(key, samples=0) or 0)


def _server_cpu(client: Redis) -> float:
    """CPU seconds the server's main thread has used so far (commands, I/O, Lua)."""
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"])


def _check_drained(client: Redis, log: str, last_id: str) -> None:
    """Fails the benchmark unless every entry up to `last_id` was read and acknowledged."""
    (group,) = client.xinfo_groups(log)
    delivered = group["last-delivered-id"]
    delivered = delivered.decode() if isinstance(delivered, bytes) else str(delivered)
    if group["pending"] or delivered != last_id:
        raise RuntimeError(f"{log} not drained: {group}")


def _append(client: Redis, workload: Workload) -> float:
    """Appends the wire entries with their explicit ids in pipelines; returns seconds."""
    wire = workload.wire
    started = time.perf_counter()
    for start in range(0, len(wire), APPEND_CHUNK):
        chunk = wire[start : start + APPEND_CHUNK]
        append_many(client, [(0, payload) for _, payload in chunk], [i for i, _ in chunk])
    return time.perf_counter() - started


def _run_worker(client: Redis) -> tuple[float, int, int, PartitionWorker]:
    """Drains partition 0 with one leased PartitionWorker; (seconds, batches, derived, worker)."""
    leases = LeaseClient(client, "bench-worker", ttl_ms=LEASE_TTL_MS)
    lease = leases.acquire(0)
    if lease is None:
        raise RuntimeError("partition 0 is leased by someone else")
    # As `monitor-es worker` runs it on one Redis node: each commit overlaps the next fold.
    store = PartitionStore(client, 0)
    worker = PartitionWorker(store, lease.token, f"bench:{lease.token}", pipelined=True)
    batches = derived = 0
    started = time.perf_counter()
    while True:
        result = worker.step(count=BATCH, block_ms=None)
        if not result.committed and not worker.needs_claim:
            break
        batches += 1
        derived += len(result.events)
    worker.close()  # the last commit's reply is part of the work
    seconds = time.perf_counter() - started
    leases.release(lease)
    return seconds, batches, derived, worker


def _run_raw(client: Redis, blob_size: int) -> float:
    """Drains the copied log: read, decode, dict update, the same commit; returns seconds."""
    lease = LeaseClient(client, "bench-raw", ttl_ms=LEASE_TTL_MS).acquire(0)
    if lease is None:
        raise RuntimeError("partition 0 of the copy is leased by someone else")
    store = PartitionStore(client, 0)
    consumer = f"bench-raw:{lease.token}"
    blob = b"x" * blob_size
    started = time.perf_counter()
    while raw := store.read_batch(consumer, BATCH, None):
        touched: dict[bytes, bytes] = {}
        volume: Counter[int] = Counter()
        for entry_id, payload in raw:
            entry = decode_entry(entry_id, payload)
            event = entry.event
            if isinstance(event, CheckInReported):
                name = str(event.environment or "production")
                touched[environment_field(event.project, event.monitor_slug, name)] = blob
                volume[to_ms(entry.ts) // 60_000 * 60] += 1
        ids = [entry_id for entry_id, _ in raw]
        store.commit(
            lease.token,
            ids[-1],
            state_set=touched,
            meta_set={"stream_ms": int(ids[-1].split("-", 1)[0])},
            volume=dict(volume),
            ack_ids=ids,
        )
    return time.perf_counter() - started


@dataclass(frozen=True)
class _Timing:
    seconds: float
    redis_cpu: float


def _timed_worker(client: Redis, last_id: str) -> tuple[_Timing, int, int, PartitionWorker]:
    cpu = _server_cpu(client)
    seconds, batches, derived, worker = _run_worker(client)
    timing = _Timing(seconds, _server_cpu(client) - cpu)
    _check_drained(client, keys.partition_keys(0).log, last_id)
    return timing, batches, derived, worker


def _timed_raw(client: Redis, blob: int, last_id: str) -> _Timing:
    cpu = _server_cpu(client)
    seconds = _run_raw(client, blob)
    timing = _Timing(seconds, _server_cpu(client) - cpu)
    _check_drained(client, keys.partition_keys(0).log, last_id)
    return timing


@dataclass(frozen=True)
class _Sizes:
    """Sizes read after the first worker run."""

    environments: int
    monitors: int
    env_blob: int
    state_bytes: int
    out_bytes: int


def _sizes(client: Redis, worker: PartitionWorker) -> _Sizes:
    pk = keys.partition_keys(0)
    environments = worker.partition.all_environments()
    blob = round(sum(len(encode_record(env)) for env in environments) / len(environments))
    return _Sizes(
        environments=len(environments),
        monitors=len(worker.partition.monitors),
        env_blob=blob,
        state_bytes=_memory(client, pk.state),
        out_bytes=_memory(client, pk.out),
    )


def measure(workload: Workload, rounds: int = ROUNDS) -> WorkerReport:
    """Runs both sides `rounds` times, alternating, on one fresh redis-server; keeps the best."""
    last_id = workload.wire[-1][0]
    log = keys.partition_keys(0).log
    with RedisServer() as server:
        dbs = [Redis(port=server.port, db=db) for db in range(2 * rounds)]
        init_deployment(dbs[0], 1)
        append_seconds = _append(dbs[0], workload)
        log_bytes = _memory(dbs[0], log)
        for db in range(1, 2 * rounds):
            # COPY keeps the consumer group: every database holds the same untouched log.
            dbs[0].copy(log, log, destination_db=str(db))
        worker_runs: list[_Timing] = []
        raw_runs: list[_Timing] = []
        timing, batches, derived, worker = _timed_worker(dbs[0], last_id)
        sizes = _sizes(dbs[0], worker)
        for n in range(rounds):
            # Alternating the sides spreads background noise over both of them.
            if n:
                timing = _timed_worker(dbs[2 * n], last_id)[0]
            worker_runs.append(timing)
            raw_runs.append(_timed_raw(dbs[2 * n + 1], sizes.env_blob, last_id))
            for client in dbs[2 * n : 2 * n + 2]:
                client.flushdb()  # a round's out stream would crowd the next round
        for client in dbs:
            client.close()
    best_worker = min(worker_runs, key=lambda t: t.seconds)
    best_raw = min(raw_runs, key=lambda t: t.seconds)
    return WorkerReport(
        check_ins=workload.check_ins,
        entries=len(workload.wire),
        rounds=rounds,
        append_seconds=append_seconds,
        worker_seconds=best_worker.seconds,
        raw_seconds=best_raw.seconds,
        worker_redis_seconds=best_worker.redis_cpu,
        raw_redis_seconds=best_raw.redis_cpu,
        batches=batches,
        derived=derived,
        environments=sizes.environments,
        monitors=sizes.monitors,
        env_blob=sizes.env_blob,
        state_bytes=sizes.state_bytes,
        log_bytes=log_bytes,
        out_bytes=sizes.out_bytes,
    )


def describe(report: WorkerReport) -> str:
    """The detail lines printed before the table."""
    append_rate = report.entries / report.append_seconds
    return "\n".join(
        [
            f"worker: {report.entries:,} entries ({report.check_ins:,} check-ins) on a local "
            f"redis-server, 1 partition, batches of {BATCH}, best of {report.rounds} "
            "alternating runs",
            f"  append (pipelines of {APPEND_CHUNK:,})  {report.append_seconds:6.2f} s  "
            f"{number(append_rate)} entries/s",
            f"  PartitionWorker   {report.worker_seconds:6.2f} s  "
            f"{number(report.worker_rate)} check-ins/s  (redis-server CPU "
            f"{report.worker_redis_seconds:.2f} s; {report.batches:,} commits, "
            f"{report.derived:,} derived events to the out stream)",
            f"  raw loop          {report.raw_seconds:6.2f} s  {number(report.raw_rate)} "
            f"check-ins/s  (redis-server CPU {report.raw_redis_seconds:.2f} s; one "
            f"{report.env_blob} B blob per touched environment, no out stream)",
            f"  ratio {report.worker_rate / report.raw_rate:.2f}; targets ≥ "
            f"{number(WORKER_TARGET)} check-ins/s and ≥ {RATIO_TARGET:.2f} of the raw loop",
            f"  state hash {report.state_bytes:,} B for {report.environments:,} environments "
            f"(+ {report.monitors:,} monitor records): "
            f"{report.state_bytes / report.environments:.0f} B per environment",
            f"  log stream {report.log_bytes:,} B for {report.entries:,} entries: "
            f"{report.log_bytes / report.entries:.0f} B per entry; out stream "
            f"{report.out_bytes:,} B: {report.out_bytes / max(report.derived, 1):.0f} B "
            "per derived event",
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m tests.benchmarks.worker [--quick]`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smaller workload")
    args = parser.parse_args(argv)
    report = measure(build(QUICK if args.quick else WorkloadSpec()))
    print(describe(report))
    print()
    print(table(report.figures()))


if __name__ == "__main__":
    main()
