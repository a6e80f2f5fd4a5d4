"""`simulate --redis-url`: a scenario pushed through the real pipeline and read back.

Entries are written with explicit ids `<ts ms>-<line>`, folded by the real partition
workers with fenced commits, and the report is built from what Redis holds (state hash,
out streams), never from worker memory. Lines that are not events are refused before the
log, as the HTTP edge refuses them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from monitor_es.codec import decode_out_entry
from monitor_es.domain.events import DerivedEvent
from monitor_es.domain.state import Environment
from monitor_es.producer import Producer
from monitor_es.scenario import InvalidLine, split_scenario
from monitor_es.store.connection import Client
from monitor_es.store.deployment import ensure_deployment
from monitor_es.store.log import PartitionStore
from monitor_es.workers.drain import drain
from monitor_es.workers.partition import load_partition


@dataclass(frozen=True)
class PipelineRun:
    """What Redis holds after a scenario went through the pipeline."""

    environments: list[Environment]
    events: list[DerivedEvent]
    invalid: list[InvalidLine]


def simulate_on_redis(
    client: Client,
    lines: Iterable[str],
    partitions: int | None = None,
    limits: Mapping[str, int] | None = None,
) -> PipelineRun:
    """Appends a scenario, runs the workers until drained, and reads the result back.

    An empty database is initialised with `partitions` (default 1) and the `limits` asked
    for (Limits field names); an existing deployment folds with its own settings, which
    neither may contradict (DeploymentMismatch).
    """
    deployment = ensure_deployment(client, partitions, limits, default_partitions=1)
    entries, invalid = split_scenario(lines)
    producer = Producer(client, deployment.partitions)
    producer.append_all([e.event for e in entries], ids=[e.id for e in entries])
    drain(client, deployment.partitions, deployment.limits)
    environments: list[Environment] = []
    events: list[DerivedEvent] = []
    for partition in range(deployment.partitions):
        store = PartitionStore(client, partition)
        state, _ = load_partition(store, deployment.limits)
        environments.extend(state.all_environments())
        for _, payload in store.read_out():
            events.extend(decode_out_entry(payload))
    return PipelineRun(environments, events, invalid)
