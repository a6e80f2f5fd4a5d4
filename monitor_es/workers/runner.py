"""`monitor-es worker`: owns a fair share of the partitions through leases and reduces them.

A manager loop heartbeats, renews leases at a third of their ttl, takes free partitions up
to `ceil(N / live workers)` and hands back extras, so workers share the partitions and one
takes over when another dies (its leases expire; min-idle-0 XAUTOCLAIM is safe thanks to
the fencing token). Each owned partition has its own thread with its own blocking read,
which is what Redis Cluster needs (one slot per read) and costs little on one node.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

import redis

from monitor_es.domain.partition import Limits
from monitor_es.store.connection import Client
from monitor_es.store.functions import Fenced
from monitor_es.store.leases import Lease, LeaseClient, fair_share
from monitor_es.store.log import PartitionStore
from monitor_es.workers.partition import PartitionWorker

log = logging.getLogger(__name__)


def default_owner() -> str:
    """A worker name that says where it runs: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class _Owned:
    """One owned partition: its lease and the thread reducing it."""

    def __init__(self, lease: Lease, thread: threading.Thread, stop: threading.Event) -> None:
        self.lease = lease
        self.thread = thread
        self.stop = stop


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
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.client = client
        self.partitions = partitions
        self.limits = limits or Limits()
        self.owner = owner or default_owner()
        self.leases = LeaseClient(client, self.owner, lease_ttl_ms)
        self.ttl_ms = lease_ttl_ms
        self.batch = batch
        self.block_ms = block_ms
        self.wall_ms = wall_ms
        self.owned: dict[int, _Owned] = {}

    def run(self, stop: threading.Event) -> None:
        """Manages leases until `stop` is set, then releases everything gracefully."""
        try:
            while not stop.is_set():
                self.manage()
                stop.wait(self.ttl_ms / 3000)
        finally:
            self.shutdown()

    def manage(self) -> None:
        """One round: heartbeat, renew, drop lost or surplus leases, take free partitions."""
        self.leases.heartbeat(self.wall_ms())
        for partition, owned in list(self.owned.items()):
            if not owned.thread.is_alive() or not self.leases.renew(owned.lease):
                self._drop(partition)
        live = max(len(self.leases.live_workers(self.wall_ms())), 1)
        share = fair_share(self.partitions, live)
        for partition in sorted(self.owned, reverse=True)[: max(len(self.owned) - share, 0)]:
            self._drop(partition)  # hand surplus back so a newcomer gets its share
        for partition in self._candidates():
            if len(self.owned) >= share:
                break
            lease = self.leases.acquire(partition)
            if lease is not None:
                self._start(lease)

    def _candidates(self) -> list[int]:
        # Start the search at a per-owner offset so workers do not all race for partition 0.
        offset = sum(self.owner.encode()) % self.partitions
        order = [(offset + i) % self.partitions for i in range(self.partitions)]
        return [p for p in order if p not in self.owned]

    def _start(self, lease: Lease) -> None:
        stop = threading.Event()
        thread = threading.Thread(
            target=self._reduce, args=(lease, stop), name=f"reducer-p{lease.partition}", daemon=True
        )
        self.owned[lease.partition] = _Owned(lease, thread, stop)
        thread.start()
        log.info("partition %s: taken with token %s", lease.partition, lease.token)

    def _reduce(self, lease: Lease, stop: threading.Event) -> None:
        consumer = f"{self.owner}:{lease.token}"
        try:
            worker = PartitionWorker(
                PartitionStore(self.client, lease.partition),
                lease.token,
                consumer,
                self.limits,
                pipelined=type(self.client) is redis.Redis,  # one node: overlap commits
            )
            try:
                while not stop.is_set():
                    worker.step(self.batch, self.block_ms)
            finally:
                worker.close()
        except Fenced:
            log.warning("partition %s: fenced, another worker owns it now", lease.partition)
        except Exception:
            log.exception("partition %s: reducer stopped", lease.partition)

    def _drop(self, partition: int) -> None:
        owned = self.owned.pop(partition)
        owned.stop.set()
        owned.thread.join(timeout=self.block_ms / 1000 + 5)
        self.leases.release(owned.lease)
        log.info("partition %s: released", partition)

    def shutdown(self) -> None:
        """Stops every reducer thread after its batch and releases all leases."""
        for owned in self.owned.values():
            owned.stop.set()  # all at once: each thread may be blocked in a read
        for partition in list(self.owned):
            self._drop(partition)
        self.leases.leave()
