"""Partition and pulser leases with fencing tokens, and the live-worker registry."""

from __future__ import annotations

import math
from dataclasses import dataclass

from monitor_es.store import functions, keys
from monitor_es.store.connection import Client, as_text


@dataclass(frozen=True, slots=True)
class Lease:
    """Ownership of one partition; ``token`` fences every write made under it."""

    partition: int
    token: int


# This module reads no clock: lease expiry is timed by the Redis server (SET ... PX), and so
# is the worker registry (its Function reads TIME), so hosts whose clocks disagree still
# agree on who is alive.


class LeaseClient:
    """Acquires, renews and releases one worker's leases, and keeps its registry heartbeat."""

    def __init__(self, client: Client, owner: str, ttl_ms: int) -> None:
        if not owner or any(ch.isspace() for ch in owner):
            raise ValueError(f"lease owner must be non-empty and contain no whitespace: {owner!r}")
        if ttl_ms <= 0:
            raise ValueError(f"ttl_ms must be positive, got {ttl_ms}")
        self.client = client
        self.owner = owner
        self.ttl_ms = ttl_ms

    def acquire(self, partition: int) -> Lease | None:
        """Take (or extend our own) lease on ``partition``; None if another worker holds it."""
        pk = keys.partition_keys(partition)
        token = self._acquire(pk.lease, pk.meta)
        return Lease(partition, token) if token else None

    def renew(self, lease: Lease) -> bool:
        """Extend ``lease``; False means it was lost and the partition must be dropped."""
        return self._renew(keys.partition_keys(lease.partition).lease, lease.token)

    def release(self, lease: Lease) -> bool:
        """Give ``lease`` up so another worker can take the partition at once."""
        return self._release(keys.partition_keys(lease.partition).lease, lease.token)

    def acquire_pulser(self) -> int | None:
        """Take the single pulser lease; return its token, or None if another pulser runs."""
        return self._acquire(keys.PULSER_LEASE, keys.PULSER_META) or None

    def renew_pulser(self, token: int) -> bool:
        """Extend the pulser lease held with ``token``."""
        return self._renew(keys.PULSER_LEASE, token)

    def release_pulser(self, token: int) -> bool:
        """Give the pulser lease held with ``token`` up."""
        return self._release(keys.PULSER_LEASE, token)

    def heartbeat(self) -> list[str]:
        """Record this worker as alive now (server time); return the live workers, sorted.

        Workers silent for more than a ttl are forgotten.
        """
        args = [self.owner, self.ttl_ms]
        members = functions.fcall(self.client, functions.HEARTBEAT, [keys.WORKERS], args)
        return sorted(as_text(m) for m in members)

    def leave(self) -> None:
        """Remove this worker from the registry (graceful shutdown)."""
        self.client.zrem(keys.WORKERS, self.owner)

    def _acquire(self, lease_key: str, meta_key: str) -> int:
        args = [self.owner, self.ttl_ms]
        return int(
            functions.fcall(self.client, functions.LEASE_ACQUIRE, [lease_key, meta_key], args)
        )

    def _renew(self, lease_key: str, token: int) -> bool:
        args = [self.owner, token, self.ttl_ms]
        return int(functions.fcall(self.client, functions.LEASE_RENEW, [lease_key], args)) == 1

    def _release(self, lease_key: str, token: int) -> bool:
        args = [self.owner, token]
        return int(functions.fcall(self.client, functions.LEASE_RELEASE, [lease_key], args)) == 1


def fair_share(partitions: int, live: int) -> int:
    """Return how many partitions one of ``live`` workers should own: ceil(N / live)."""
    return math.ceil(partitions / max(live, 1))
