"""Every Redis key monitor-es uses, and the partition of a monitor; nothing else builds keys."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

PREFIX = "mes:"

# Consumer group of the partition reducers on every partition log.
REDUCER_GROUP = "reducer"
# The one field of a log, out or dlq entry that holds the encoded payload.
ENTRY_FIELD = b"e"

# Global keys carry no hash tag: each is a single key, so any node may hold it.
DEPLOYMENT = f"{PREFIX}deployment"
WORKERS = f"{PREFIX}workers"
INCIDENTS = f"{PREFIX}incidents"
ISSUES = f"{PREFIX}issues"
SYSTEM_INCIDENT_STATE = f"{PREFIX}system:state"
SYSTEM_INCIDENT_LOG = f"{PREFIX}system:decisions"
# The pulser lease and its fence are used by one Function call, so they share a slot.
PULSER_LEASE = f"{PREFIX}{{pulser}}:lease"
PULSER_META = f"{PREFIX}{{pulser}}:meta"

# Fields of a partition's meta hash that only the Functions write (functions.lua spells them too).
META_LAST_ID = "last_id"
META_FENCE = "fence"
META_FAIL_PREFIX = "fail:"


def partition_tag(partition: int) -> str:
    """Return the cluster hash tag of a partition, e.g. ``{p07}``."""
    if partition < 0:
        raise ValueError(f"partition must be >= 0, got {partition}")
    return f"{{p{partition:02d}}}"


@dataclass(frozen=True, slots=True)
class PartitionKeys:
    """The keys of one partition; they share a hash tag, so one Function call can touch all."""

    partition: int
    log: str
    state: str
    meta: str
    out: str
    dlq: str
    lease: str
    volume: str

    def all(self) -> tuple[str, ...]:
        """Return every key of the partition."""
        return (self.log, self.state, self.meta, self.out, self.dlq, self.lease, self.volume)


def partition_keys(partition: int) -> PartitionKeys:
    """Return the keys of partition ``partition``."""
    base = f"{PREFIX}{partition_tag(partition)}:"
    return PartitionKeys(
        partition=partition,
        log=base + "log",
        state=base + "state",
        meta=base + "meta",
        out=base + "out",
        dlq=base + "dlq",
        lease=base + "lease",
        volume=base + "volume",
    )


def fail_field(entry_id: str) -> str:
    """Return the meta field that counts failures of one log entry."""
    return META_FAIL_PREFIX + entry_id


def partition_for(project: str, monitor_slug: str, partitions: int) -> int:
    """Return the partition of a monitor: crc32 of ``project:slug`` mod N, stable across runs."""
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    # crc32, not hash(): Python salts str hashes per process, which would scatter a monitor.
    return zlib.crc32(f"{project}:{monitor_slug}".encode()) % partitions
