"""Crash torture: real `monitor-es worker` processes killed, paused and restarted at random.

A seeded workload (several monitors and environments, edits, mutes, pulses, and a few
undecodable entries) is appended chunk by chunk to 4 partitions while 3 worker processes
drain it. Between chunks a seeded RNG SIGKILLs one worker or two at once, or SIGSTOPs one
for longer than its lease (a zombie: its partitions are taken over while it sleeps with
batches read, folded or in flight) and resumes it later; killed workers are replaced. One
variant also crash-restarts redis-server (AOF, `appendfsync always`) in the middle.

Then, with nothing deduplicated: each partition's state hash equals the pure fold of its
log byte for byte, its out stream equals the pure fold's derived events in order, the out
streams together hold exactly the events of the pure fold of the whole log, nothing is
left pending, and the dead letters are exactly the undecodable entries, once each.

A failure prints the seed and the actions taken; rerun one seed with
`TORTURE_SEEDS=<seed> pytest tests/integration/test_crash_torture.py -k killed` (timing
still varies: a seed fixes the log and the choice of faults, not the interleaving).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from processes import exit_codes, reap
from redis_process import RedisProcess
from test_runtime_resilience import drained
from test_worker_recovery import (
    assert_partition_matches,
    by_partition,
    log_entries,
    pure_fold,
    workload,
)

from monitor_es.domain.events import ClockPulsed
from monitor_es.domain.reducer import LogEntry
from monitor_es.producer import Producer
from monitor_es.store import keys
from monitor_es.store.connection import Client, as_text, connect
from monitor_es.store.deployment import init_deployment
from monitor_es.store.log import PartitionStore, append, parse_id

pytestmark = [pytest.mark.redis, pytest.mark.slow]

PARTITIONS = 4  # read at call time: test_cluster_torture runs with 8
WORKERS = 3
TTL_MS = 600  # short leases: a takeover within a second, many of them per run
GARBAGE = b"\xc1 torture: not msgpack"


# ------------------------------------------------------------------ the log


@dataclass
class TortureLog:
    """The entries to append in order, the poison among them, and each partition's log."""

    entries: list[LogEntry]
    poison: dict[str, int]  # undecodable entry id -> its partition
    chunks: list[list[LogEntry | tuple[str, int]]] = field(default_factory=list)


def torture_log(seed: int, slots: int, chunks: int) -> TortureLog:
    """The seeded workload with a few undecodable entries, split into chunks to append."""
    rng = random.Random(seed)
    timed = workload(seed, slots)
    # A closing pulse in every partition: each partition's clock ends where the whole log's
    # does, so the partitions together derive what one fold of the whole log derives.
    timed.append((timed[-1][0] + timedelta(minutes=1), ClockPulsed()))
    entries = log_entries(timed)
    items: list[LogEntry | tuple[str, int]] = []
    poison: dict[str, int] = {}
    spots = set(rng.sample(range(len(entries) - 1), 4))
    for n, entry in enumerate(entries):
        items.append(entry)
        ms, seq = parse_id(entry.id)
        # The last entry of its millisecond: ms-(seq+1) sorts before every later entry.
        if n in spots and parse_id(entries[n + 1].id)[0] > ms:
            bad = f"{ms}-{seq + 1}"
            poison[bad] = rng.randrange(PARTITIONS)
            items.append((bad, poison[bad]))
    size = -(-len(items) // chunks)
    return TortureLog(entries, poison, [items[i : i + size] for i in range(0, len(items), size)])


def append_chunk(client: Client, chunk: list[LogEntry | tuple[str, int]]) -> None:
    """Appends a chunk in order: events through the producer, poison by hand."""
    producer = Producer(client, PARTITIONS)
    run: list[LogEntry] = []
    for item in [*chunk, None]:
        if isinstance(item, LogEntry):
            run.append(item)
            continue
        if run:
            producer.append_all([e.event for e in run], ids=[e.id for e in run])
            run = []
        if item is not None:
            append(client, item[1], GARBAGE, item[0])


# ------------------------------------------------------------------ the workers


class Crew:
    """The worker subprocesses: spawned, killed, paused and resumed by the torture."""

    def __init__(self, url: str, logs: Path, rng: random.Random) -> None:
        self.url = url
        self.logs = logs
        self.rng = rng
        self.running: list[subprocess.Popen[bytes]] = []
        self.paused: dict[subprocess.Popen[bytes], float] = {}  # -> monotonic resume time
        self.all: list[subprocess.Popen[bytes]] = []
        self.actions: list[str] = []

    def spawn(self) -> None:
        batch = self.rng.choice(["1", "3", "7", "20"])
        command = [
            sys.executable, "-m", "monitor_es.cli", "worker", "--redis-url", self.url,
            "--lease-ttl-ms", str(TTL_MS), "--batch", batch,
        ]  # fmt: skip
        with (self.logs / f"worker-{len(self.all)}.log").open("ab") as sink:
            proc = subprocess.Popen(command, stdout=sink, stderr=sink)
        self.running.append(proc)
        self.all.append(proc)
        self.actions.append(f"spawn w{len(self.all) - 1} batch={batch}")

    def name(self, proc: subprocess.Popen[bytes]) -> str:
        return f"w{self.all.index(proc)}"

    def owning(self, client: Client) -> list[subprocess.Popen[bytes]]:
        """The running workers that hold a lease (else all): killing those bites."""
        values = [client.get(keys.partition_keys(p).lease) for p in range(PARTITIONS)]
        holders = {as_text(v).rsplit(" ", 1)[0] for v in values if v is not None}
        host = socket.gethostname()
        owning = [p for p in self.running if f"{host}:{p.pid}" in holders]
        return owning or list(self.running)

    def kill(self, client: Client, how_many: int, in_flight: int) -> None:
        owning = self.owning(client)
        victims = self.rng.sample(owning, min(how_many, len(owning)))
        if len(victims) < how_many:  # a second victim among the others
            others = [p for p in self.running if p not in victims]
            victims += self.rng.sample(others, min(how_many - len(victims), len(others)))
        for proc in victims:
            proc.send_signal(signal.SIGKILL)
        for proc in victims:
            proc.wait(timeout=10)
            self.running.remove(proc)
        names = ",".join(self.name(p) for p in victims)
        self.actions.append(f"SIGKILL {names} ({in_flight} entries pending)")

    def pause(self, client: Client, now: float) -> None:
        proc = self.rng.choice(self.owning(client))
        proc.send_signal(signal.SIGSTOP)
        self.running.remove(proc)
        self.paused[proc] = now + self.rng.uniform(1.5, 4.0) * TTL_MS / 1000
        self.actions.append(f"SIGSTOP {self.name(proc)}")

    def resume_due(self, now: float, every: bool = False) -> None:
        for proc, at in list(self.paused.items()):
            if every or at <= now:
                proc.send_signal(signal.SIGCONT)
                del self.paused[proc]
                self.running.append(proc)
                self.actions.append(f"SIGCONT {self.name(proc)}")

    def stop_all(self, client: Client) -> list[int]:
        """SIGTERMs every process still alive; returns their exit codes."""
        self.resume_due(0.0, every=True)
        # A worker handles SIGTERM once started: wait until each has joined the registry.
        owners = {f"{socket.gethostname()}:{p.pid}" for p in self.running}
        deadline = time.monotonic() + 10
        while not owners <= {as_text(m) for m in client.zrange(keys.WORKERS, 0, -1)}:
            assert time.monotonic() < deadline, "a worker never joined the registry"
            time.sleep(0.02)
        for proc in self.running:
            proc.send_signal(signal.SIGTERM)
        codes = exit_codes(self.running)
        self.running = []
        return codes

    def reap(self) -> None:
        reap(self.all)


def pending(client: Client, partitions: int | None = None) -> int:
    """Entries read but not acknowledged, over every partition."""
    total = 0
    for p in range(PARTITIONS if partitions is None else partitions):
        total += int(client.xpending(keys.partition_keys(p).log, keys.REDUCER_GROUP)["pending"])
    return total


def fence_total(client: Client) -> int:
    """How many leases were taken, over every partition."""
    return sum(
        int(client.hget(keys.partition_keys(p).meta, "fence") or 0) for p in range(PARTITIONS)
    )


# ------------------------------------------------------------------ the torture


@dataclass
class Outcome:
    """What one torture run did."""

    kills: int = 0
    kills_in_flight: int = 0
    pauses: int = 0
    restarts: int = 0
    seconds: float = 0.0
    leases: int = 0
    fenced: int = 0  # reducers of zombies whose commit was refused
    gaps: int = 0  # commits refused for an entry a zombie read late


def torture(
    url: str,
    seed: int,
    logs: Path,
    *,
    slots: int,
    chunks: int,
    restart_redis: RedisProcess | None = None,
) -> Outcome:
    """Appends the seeded log under a seeded storm of faults, drains it and checks it."""
    started = time.monotonic()
    rng = random.Random(seed)
    plan = torture_log(seed, slots, chunks)
    client: Client = connect(url)  # redis+cluster:// makes a cluster client
    init_deployment(client, PARTITIONS)
    crew = Crew(url, logs, rng)
    outcome = Outcome()
    restart_at = chunks // 2 if restart_redis is not None else -1
    try:
        for _ in range(WORKERS):
            crew.spawn()
        for n, chunk in enumerate(plan.chunks):
            append_chunk(client, chunk)
            crew.resume_due(time.monotonic())
            if n == restart_at and restart_redis is not None:
                crew.actions.append(f"redis-server SIGKILL + restart ({pending(client)} pending)")
                client.close()
                restart_redis.restart(crash=True)
                client = connect(url)
                outcome.restarts += 1
            else:
                fault(client, crew, rng, outcome)
            while len(crew.running) + len(crew.paused) < WORKERS:
                crew.spawn()
            time.sleep(rng.uniform(0.05, 0.25))
        finish(client, crew, outcome)
        check(client, plan)
        outcome.seconds = time.monotonic() - started
        print(f"\n[torture] seed {seed}: {outcome}")
        return outcome
    except BaseException:
        print(f"\n[torture] FAILED with seed {seed}; actions:\n  " + "\n  ".join(crew.actions))
        raise
    finally:
        crew.reap()
        client.close()


def fault(client: Client, crew: Crew, rng: random.Random, outcome: Outcome) -> None:
    """Maybe kills one or two workers, or pauses one, right after an append."""
    roll = rng.random()
    if roll < 0.30 and crew.running:
        # Kill while the workers have batches read and not yet committed, if that comes soon.
        give_up = time.monotonic() + rng.uniform(0.0, 0.05)
        while not (in_flight := pending(client)) and time.monotonic() < give_up:
            time.sleep(0.001)
        two = rng.random() < 0.3 and len(crew.running) >= 2
        crew.kill(client, 2 if two else 1, in_flight)
        outcome.kills += 2 if two else 1
        outcome.kills_in_flight += 1 if in_flight else 0
    elif roll < 0.45 and len(crew.running) >= 2:
        time.sleep(rng.uniform(0.0, 0.03))
        crew.pause(client, time.monotonic())
        outcome.pauses += 1


def finish(client: Client, crew: Crew, outcome: Outcome) -> None:
    """Waits for the drain (the last zombies wake up after the log ends, when a stale read
    may take its tail), stops the workers and counts what their logs say."""
    deadline = time.monotonic() + 30
    while crew.paused or not drained(client, PARTITIONS):
        assert time.monotonic() < deadline, "the log was not drained within 30 s"
        crew.resume_due(time.monotonic())
        time.sleep(0.05)
    codes = crew.stop_all(client)
    assert codes == [0] * len(codes), f"a worker exited badly: {codes}"
    outcome.leases = fence_total(client)
    text = "".join(path.read_text(errors="replace") for path in crew.logs.iterdir())
    outcome.fenced = text.count("fenced")
    outcome.gaps = text.count(" GAP ")


def check(client: Client, plan: TortureLog) -> None:
    """The end state equals the pure fold, exactly once; only the poison is dead-lettered."""
    logs = by_partition(plan.entries, PARTITIONS)
    union = []
    for p in range(PARTITIONS):
        union += assert_partition_matches(client, p, logs[p])
    # The same log folded as one partition derives the same events (ids are partition
    # independent), so the out streams together are the whole log's pure fold.
    whole = pure_fold(plan.entries)[1]
    assert sorted(union, key=lambda e: e.id) == sorted(whole, key=lambda e: e.id)
    for p in range(PARTITIONS):
        dead = [letter for _, letter in PartitionStore(client, p).read_dlq()]
        expected = sorted((i for i, q in plan.poison.items() if q == p), key=parse_id)
        assert [d.entry_id for d in dead] == expected, f"dead letters of p{p}"
        assert all(d.payload == GARBAGE and "undecodable" in d.reason for d in dead)
    assert pending(client) == 0
    assert drained(client, PARTITIONS)


@pytest.fixture
def worker_logs(tmp_path: Path) -> Iterator[Path]:
    """The worker processes' logs; their tails are printed if the test fails."""
    directory = tmp_path / "logs"
    directory.mkdir()
    yield directory
    for path in sorted(directory.iterdir()):
        text = path.read_text(errors="replace")
        interesting = [line for line in text.splitlines() if "partition" in line or "Error" in line]
        print(f"----- {path.name}\n" + "\n".join(interesting[-40:]))


def seeds(variable: str, default: str) -> list[int]:
    """The seeds to run: `TORTURE_SEEDS=1,5-40` (or `TORTURE_AOF_SEEDS`) hunts for rarer
    interleavings; by default a fixed few, so that CI failures are reproducible."""
    chosen = os.environ.get(variable, default)
    ranges = [part.split("-") for part in chosen.split(",")]
    return [n for r in ranges for n in range(int(r[0]), int(r[-1]) + 1)]


@pytest.mark.parametrize("seed", seeds("TORTURE_SEEDS", "1101,2202"))
def test_workers_killed_and_paused_at_random_leave_exactly_the_pure_fold(
    real_client: redis.Redis, redis_server: str, worker_logs: Path, seed: int
) -> None:
    outcome = torture(redis_server, seed, worker_logs, slots=120, chunks=30)
    assert outcome.leases > PARTITIONS, "no partition changed hands"
    if "TORTURE_SEEDS" not in os.environ:
        # The default seeds must bite; a hunted seed may draw no pause (7004 drew none).
        assert outcome.kills >= 3 and outcome.pauses >= 1, outcome
        assert outcome.kills_in_flight >= 1, "no kill caught a batch in flight"


@pytest.mark.parametrize("seed", seeds("TORTURE_AOF_SEEDS", "3303"))
def test_a_redis_crash_restart_amid_the_kills_leaves_exactly_the_pure_fold(
    redis_aof_server: RedisProcess, worker_logs: Path, seed: int
) -> None:
    outcome = torture(
        redis_aof_server.url, seed, worker_logs, slots=80, chunks=20, restart_redis=redis_aof_server
    )
    assert outcome.restarts == 1 and outcome.kills >= 1, outcome
