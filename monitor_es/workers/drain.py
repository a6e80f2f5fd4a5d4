"""Runs the reducers of every partition in this process until the logs are drained.

For `simulate --redis-url`, tests and one-shot catch-up: the same PartitionWorker and the
same fenced commits as the long-running worker, without the lease loop.
"""

from __future__ import annotations

from monitor_es.domain.events import DerivedEvent
from monitor_es.domain.partition import Limits
from monitor_es.store.connection import Client
from monitor_es.store.leases import LeaseClient
from monitor_es.store.log import PartitionStore
from monitor_es.workers.partition import PartitionWorker


def drain(
    client: Client, partitions: int, limits: Limits | None = None, owner: str = "drain"
) -> list[DerivedEvent]:
    """Processes every pending and new entry of every partition; returns derived events."""
    leases = LeaseClient(client, owner, ttl_ms=30_000)
    events: list[DerivedEvent] = []
    for partition in range(partitions):
        lease = leases.acquire(partition)
        if lease is None:
            raise RuntimeError(f"partition {partition} is owned by another worker")
        try:
            worker = PartitionWorker(
                PartitionStore(client, partition), lease.token, f"{owner}:{lease.token}", limits
            )
            while True:
                result = worker.step(count=500, block_ms=None)
                events.extend(result.events)
                if not result.committed and not worker.needs_claim:
                    break
        finally:
            leases.release(lease)
    return events
