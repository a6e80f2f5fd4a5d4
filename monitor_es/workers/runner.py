"""`monitor-es worker`: owns a fair share of the partitions through leases and reduces them.

A manager loop heartbeats, renews leases at a third of their ttl, takes free partitions up
to `ceil(N / live workers)` and hands back extras, so workers share the partitions and one
takes over when another dies (its leases expire; min-idle-0 XAUTOCLAIM is safe thanks to
the fencing token). Each owned partition has its own thread with its own blocking read,
which is what Redis Cluster needs (one slot per read) and costs little on one node.

Production faults are survived, not fatal: when Redis restarts or a connection breaks
(with a commit's outcome unknown), a reducer reloads its partition from Redis, reclaims
its pending entries and goes on under the same lease; the manager retries its round.
The fence makes a write after a lost lease harmless, but not a read: entries a stale owner
reads after its successor's takeover would stay pending for it, below the successor's
high-water mark. The commit refuses to pass such entries (GAP: the owner reloads and
claims them); an idle reducer claims whatever is still pending (at the log's tail no
commit comes to be refused); and a reducer only sends a read while its lease is surely
still valid (measured from the last successful renewal, on this process's monotonic
clock), so that both stay rare.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import redis
from prometheus_client import CollectorRegistry

from monitor_es.domain.partition import Limits
from monitor_es.metrics import WorkerMetrics
from monitor_es.store.connection import REDIS_ERRORS, UNAVAILABLE, Client
from monitor_es.store.functions import Fenced
from monitor_es.store.leases import Lease, LeaseClient, fair_share
from monitor_es.store.log import PartitionStore
from monitor_es.workers.partition import PartitionWorker
from monitor_es.workers.rounds import RETRY_MAX_S, backoff, run_rounds

log = logging.getLogger(__name__)

# How often a reducer whose lease is not known to be valid looks again.
_PAUSE_S = 0.02
# How long dropping a partition waits for its reducer to finish its step (beyond a read).
_STOP_GRACE_S = 5.0


def default_owner() -> str:
    """A worker name that says where it runs: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class _Owned:
    """One owned partition: its lease, the thread reducing it, and until when it is surely ours."""

    def __init__(self, lease: Lease, valid_until: float) -> None:
        self.lease = lease
        self.stop = threading.Event()
        # Monotonic time before which the lease cannot have expired on the server: taken
        # before the acquire or renew call was sent, plus the ttl.
        self.valid_until = valid_until
        self.thread: threading.Thread | None = None

    def alive(self) -> bool:
        """True while the reducer thread runs."""
        return self.thread is not None and self.thread.is_alive()


class WorkerProcess:
    """Leases partitions and runs one reducer thread per owned partition."""

    def __init__(
        self,
        client: Client,
        partitions: int,
        *,
        limits: Limits | None = None,
        owner: str | None = None,
        lease_ttl_ms: int = 10_000,
        batch: int = 500,
        block_ms: int = 1_000,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.client = client
        # Always recorded (a few counter updates per batch); served only with --metrics-port.
        self.metrics = metrics or WorkerMetrics(CollectorRegistry())
        self.partitions = partitions
        self.limits = limits or Limits()
        self.owner = owner or default_owner()
        self.leases = LeaseClient(client, self.owner, lease_ttl_ms)
        self.ttl_ms = lease_ttl_ms
        self.batch = batch
        # A blocking read must end well within the lease (see _may_read); 0 would block forever.
        self.block_ms = max(min(block_ms, lease_ttl_ms // 4), 1)
        # A read may start while the lease stays valid for its longest block plus a margin.
        self._read_guard_s = (self.block_ms + lease_ttl_ms / 10) / 1000
        self.owned: dict[int, _Owned] = {}
        # Dropped partitions whose reducer thread had not stopped. Not taken again until it
        # has: our lease would hand back the same token, and the fence could not tell the
        # stuck thread's commit from its successor's.
        self._stuck: dict[int, _Owned] = {}

    def run(self, stop: threading.Event) -> None:
        """Manages leases until `stop` is set, then releases everything gracefully.

        A round that fails because Redis is unavailable is retried with backoff: the
        reducers keep their leases while Redis comes back within the ttl.
        """
        try:
            run_rounds("manager", self.manage, self.ttl_ms / 3000, stop, REDIS_ERRORS)
        finally:
            self.shutdown()

    def manage(self) -> None:
        """One round: heartbeat, renew, drop lost or surplus leases, take free partitions."""
        live = max(len(self.leases.heartbeat()), 1)
        lost: list[int] = []
        for partition, owned in list(self.owned.items()):
            if not (owned.alive() and self._renew(owned)):
                lost.append(partition)
        self.metrics.lease_changes.labels("lost").inc(len(lost))
        self._drop(lost)
        share = fair_share(self.partitions, live)
        # Hand surplus back so a newcomer gets its share.
        self._drop(sorted(self.owned, reverse=True)[: max(len(self.owned) - share, 0)])
        for partition in self._candidates():
            if len(self.owned) >= share:
                break
            sent = time.monotonic()
            lease = self.leases.acquire(partition)
            if lease is not None:
                self._start(lease, sent + self.ttl_ms / 1000)

    def _candidates(self) -> list[int]:
        self._stuck = {p: owned for p, owned in self._stuck.items() if owned.alive()}
        # Start the search at a per-owner offset so workers do not all race for partition 0.
        offset = sum(self.owner.encode()) % self.partitions
        order = [(offset + i) % self.partitions for i in range(self.partitions)]
        return [p for p in order if p not in self.owned and p not in self._stuck]

    def _start(self, lease: Lease, valid_until: float) -> None:
        owned = _Owned(lease, valid_until)
        owned.thread = threading.Thread(
            target=self._reduce, args=(owned,), name=f"reducer-p{lease.partition}", daemon=True
        )
        self.owned[lease.partition] = owned
        self.metrics.lease_changes.labels("taken").inc()
        self.metrics.owned.set(len(self.owned))
        owned.thread.start()
        log.info("partition %s: taken with token %s", lease.partition, lease.token)

    def _may_read(self, owned: _Owned) -> bool:
        return time.monotonic() + self._read_guard_s < owned.valid_until

    def _renew(self, owned: _Owned) -> bool:
        """Renews the lease now; False if it is lost (the manager then drops the partition)."""
        sent = time.monotonic()
        if not self.leases.renew(owned.lease):
            return False
        owned.valid_until = max(owned.valid_until, sent + self.ttl_ms / 1000)
        return True

    def _reduce(self, owned: _Owned) -> None:
        partition = owned.lease.partition
        wait: float | None = None
        while not owned.stop.is_set():
            started = time.monotonic()
            try:
                self._reduce_while_owned(owned)
                return
            except Fenced:
                log.warning("partition %s: fenced, another worker owns it now", partition)
                self.metrics.lease_changes.labels("fenced").inc()
                return
            except UNAVAILABLE as exc:
                self.metrics.unavailable.labels(str(partition)).inc()
                # The outcome of what was in flight is unknown: reload state and high-water
                # mark from Redis and reclaim our pending entries, under the same lease.
                first = wait is None or time.monotonic() - started > RETRY_MAX_S
                wait = backoff(None if first else wait)
                log.log(
                    logging.WARNING if first else logging.DEBUG,
                    "partition %s: Redis unavailable (%s); reloading in %.2fs",
                    partition,
                    exc,
                    wait,
                )
            except Exception:
                log.exception("partition %s: reducer stopped", partition)
                return
            owned.stop.wait(wait)

    def _reduce_while_owned(self, owned: _Owned) -> None:
        lease = owned.lease
        # Redis may have restarted, even from older data: go on only if it still says the
        # lease is ours. With a lost lease the thread ends and the manager drops it.
        if not self._renew(owned):
            log.warning("partition %s: lease lost", lease.partition)
            return
        worker = PartitionWorker(
            PartitionStore(self.client, lease.partition),
            lease.token,
            f"{self.owner}:{lease.token}",
            self.limits,
            pipelined=type(self.client) is redis.Redis,  # one node: overlap commits
        )
        figures = self.metrics.environments
        figures.seed(lease.partition, worker.partition.all_environments())
        loads = worker.loads
        paused = False
        try:
            while not owned.stop.is_set():
                if self._may_read(owned):
                    paused = False
                    self._step(worker)
                    if worker.loads != loads:  # reloaded: what it reported may be undone
                        loads = worker.loads
                        figures.seed(lease.partition, worker.partition.all_environments())
                    continue
                if not paused:
                    paused = True
                    log.warning(
                        "partition %s: lease not renewed in time; reads paused", lease.partition
                    )
                owned.stop.wait(_PAUSE_S)
        finally:
            figures.drop(lease.partition)  # the next owner exports its environments
            _close(worker)

    def _step(self, worker: PartitionWorker) -> None:
        """One batch of a reducer, recorded in the metrics if it held entries."""
        result = worker.step(self.batch, self.block_ms)
        partition = worker.store.partition
        if result.environments or result.removed_environments:
            self.metrics.environments.update(
                partition, result.environments, result.removed_environments
            )
        if result.applied or result.duplicates or result.dead_lettered:
            self.metrics.batch(
                partition,
                applied=result.applied,
                duplicates=result.duplicates,
                dead_lettered=result.dead_lettered,
                events=result.events,
                committed=result.committed,
                last_entry_at=result.last_entry_at,
                seconds=result.seconds,
            )

    def _drop(self, partitions: list[int]) -> bool:
        """Stops the partitions' reducers (all at once) and releases their leases.

        Returns False if Redis could not be reached to release them.
        """
        dropped = [self.owned.pop(partition) for partition in partitions]
        self.metrics.owned.set(len(self.owned))
        for owned in dropped:
            owned.stop.set()  # all at once: each thread may be blocked in a read
        deadline = time.monotonic() + self.block_ms / 1000 + _STOP_GRACE_S
        reachable = True
        for owned in dropped:
            partition = owned.lease.partition
            if owned.thread is not None:
                owned.thread.join(timeout=max(deadline - time.monotonic(), 0))
            if owned.alive():
                # Still inside a step: releasing now could let the next owner claim while
                # it reads. Its lease expires within a ttl instead.
                log.warning("partition %s: reducer did not stop; lease left to expire", partition)
                self._stuck[partition] = owned
                continue
            if not reachable:
                log.warning("partition %s: lease left to expire", partition)
                continue
            try:
                released = self.leases.release(owned.lease)
            except REDIS_ERRORS as exc:
                # Redis is gone: this lease and the others expire within a ttl.
                reachable = False
                log.warning("partition %s: lease not released (%s)", partition, exc)
                continue
            if released:  # not a lost lease, which is another owner's now
                self.metrics.lease_changes.labels("released").inc()
                log.info("partition %s: released", partition)
        return reachable

    def shutdown(self) -> None:
        """Stops every reducer thread after its batch and releases all leases."""
        if not self._drop(list(self.owned)):
            return  # Redis is unreachable: our heartbeat ages out within a ttl
        try:
            self.leases.leave()
        except REDIS_ERRORS as exc:
            log.warning("worker registry not updated on shutdown (%s)", exc)


def _close(worker: PartitionWorker) -> None:
    """Waits for the commit in flight and hands the connection back, whatever happened."""
    try:
        worker.close()
    except Fenced:
        log.warning("partition %s: last commit fenced", worker.store.partition)
    except UNAVAILABLE as exc:
        log.debug("partition %s: closed with %s", worker.store.partition, exc)
    except Exception:
        log.exception("partition %s: close failed", worker.store.partition)
