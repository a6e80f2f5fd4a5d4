"""What a deployment's Redis holds now: the committed environments and each partition's progress.

The environments are read back as `simulate --redis-url` reads them (load_partition over the
state hash), so `status --json` and simulate's `environments` come from the same code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from monitor_es.codec import CLOCK_FIELD, decode_state_field
from monitor_es.domain.config import slugify
from monitor_es.domain.partition import ClockState
from monitor_es.domain.state import Environment
from monitor_es.domain.time import from_ms
from monitor_es.store import keys
from monitor_es.store.connection import Client, as_text
from monitor_es.store.deployment import Deployment
from monitor_es.store.log import PartitionStore, parse_id
from monitor_es.workers.partition import load_partition


@dataclass(frozen=True, slots=True)
class Progress:
    """How far one partition's committed state is, from what its keys hold."""

    partition: int
    committed_id: str | None  # the high-water mark: the last log entry folded (meta last_id)
    stream_time: datetime | None  # broker time of the last entry applied (meta stream_ms)
    last_tick: datetime | None  # the clock's last tick (the state hash's clock record)
    log_last_id: str | None  # the newest entry of the log
    unfolded: int | None  # log entries not committed yet (None: Redis cannot count them)
    dead_letters: int
    owner: str | None  # the worker holding the partition's lease
    log_length: int  # entries the log holds (what `trim` bounds), folded or not
    out_length: int  # entries the out stream holds (one per commit that derived events)

    @property
    def lag_ms(self) -> int:
        """Broker time between the newest log entry and the high-water mark (0 if none)."""
        if self.log_last_id is None:
            return 0
        newest = parse_id(self.log_last_id)[0]
        return newest - (parse_id(self.committed_id)[0] if self.committed_id else newest)


@dataclass(frozen=True, slots=True)
class EnvironmentStatus:
    """One environment as committed, with its monitor's disabled flag."""

    environment: Environment
    disabled: bool


@dataclass(frozen=True)
class DeploymentStatus:
    """The committed environments (sorted by key) and the progress of the partitions read."""

    environments: list[EnvironmentStatus]
    partitions: list[Progress]


def read_status(
    client: Client,
    deployment: Deployment,
    project: str | None = None,
    monitor_slug: str | None = None,
) -> DeploymentStatus:
    """Reads the environments (of `project`, `monitor_slug` if given) and partition progress.

    Given both, only the monitor's own partition is read. Progress is read before the state,
    so the state shown is at least as new as the high-water mark reported with it.
    """
    slug = None if monitor_slug is None else slugify(monitor_slug)
    if project is not None and slug is not None:
        partitions: Iterable[int] = [keys.partition_for(project, slug, deployment.partitions)]
    else:
        partitions = range(deployment.partitions)
    progress = read_progress(client, partitions)
    found: list[EnvironmentStatus] = []
    for row in progress:
        state, _ = load_partition(PartitionStore(client, row.partition), deployment.limits)
        for env in state.all_environments():
            if project not in (None, env.project) or slug not in (None, env.monitor_slug):
                continue
            monitor = state.monitors[(env.project, env.monitor_slug)]
            found.append(EnvironmentStatus(env, monitor.disabled))
    found.sort(key=lambda row: row.environment.key)
    return DeploymentStatus(found, progress)


def read_progress(client: Client, partitions: Iterable[int]) -> list[Progress]:
    """Each partition's high-water mark, clock, unfolded entries, dead letters and owner."""
    numbers = list(partitions)
    # Not a transaction: a cluster client splits it per node; each reply is one key's.
    pipe = client.pipeline(transaction=False)
    for partition in numbers:
        pk = keys.partition_keys(partition)
        pipe.hmget(pk.meta, [keys.META_LAST_ID, "stream_ms"])
        pipe.xinfo_groups(pk.log)
        pipe.xrevrange(pk.log, count=1)
        pipe.xlen(pk.dlq)
        pipe.get(pk.lease)
        pipe.hget(pk.state, CLOCK_FIELD)
        pipe.xlen(pk.log)
        pipe.xlen(pk.out)
    replies = pipe.execute()
    rows = []
    for n, partition in enumerate(numbers):
        meta, groups, newest, dead, lease, clock, log_length, out_length = replies[
            8 * n : 8 * n + 8
        ]
        rows.append(
            Progress(
                partition=partition,
                committed_id=None if meta[0] is None else as_text(meta[0]),
                stream_time=None if meta[1] is None else from_ms(int(meta[1])),
                last_tick=_last_tick(clock),
                log_last_id=as_text(newest[0][0]) if newest else None,
                unfolded=_unfolded(groups),
                dead_letters=int(dead),
                # A lease value is "<owner> <token>" (functions.lua).
                owner=None if lease is None else as_text(lease).rsplit(" ", 1)[0],
                log_length=int(log_length),
                out_length=int(out_length),
            )
        )
    return rows


def _last_tick(blob: bytes | None) -> datetime | None:
    clock = None if blob is None else decode_state_field(CLOCK_FIELD, blob)
    return clock.last_tick if isinstance(clock, ClockState) else None


def _unfolded(groups: list[dict[str, object]]) -> int | None:
    """Entries not yet read by the reducers (lag) plus those read but not committed (pending)."""
    group = next((g for g in groups if as_text(g["name"]) == keys.REDUCER_GROUP), None)
    if group is None or group.get("lag") is None:
        return None  # no group yet, or Redis lost count (entries deleted from the log)
    return int(str(group["lag"])) + int(str(group["pending"]))
