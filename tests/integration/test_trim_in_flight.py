"""Trimming as far as `trim` ever goes (the whole log below the committed high-water mark,
the out stream but its newest entry) while a crashed owner's batch is pending above the mark:
the next owner claims it and nothing a worker needs is lost. Workers load state from the
state hash, read forward with their consumer group and claim pending entries, none of which
reaches below the mark. On fakeredis and a real redis-server.
"""

from __future__ import annotations

from collections.abc import Callable

from test_worker_recovery import (
    append_entries,
    encoded_state,
    last_id,
    log_entries,
    pure_fold,
    run_until_drained,
    stored_events,
    workload,
)

from monitor_es.store import keys
from monitor_es.store.connection import Client
from monitor_es.store.deployment import init_deployment
from monitor_es.store.leases import LeaseClient
from monitor_es.store.log import PartitionStore
from monitor_es.store.retention import trim_partition
from monitor_es.workers.partition import PartitionWorker


def _owned_by(client: Client, owner: str, then: Callable[[PartitionWorker], None]) -> None:
    """Leases partition 0 to `owner`, runs `then` on a worker under it, hands it back."""
    leases = LeaseClient(client, owner, 10_000)
    lease = leases.acquire(0)
    assert lease is not None
    then(PartitionWorker(PartitionStore(client, 0), lease.token, f"{owner}:{lease.token}"))
    leases.release(lease)


def test_trimming_folded_log_entries_and_old_out_entries_changes_no_result(
    client: Client,
) -> None:
    entries = log_entries(workload(seed=77, slots=40))
    first, second = entries[: len(entries) // 2], entries[len(entries) // 2 :]
    init_deployment(client, 1)
    append_entries(client, first, 1)
    _owned_by(client, "a", lambda worker: run_until_drained(worker, count=100))
    folded_before_trim = last_id(client, 0)
    assert folded_before_trim == first[-1].id

    append_entries(client, second, 1)
    pending: list[tuple[str, bytes | None]] = []

    def crash_after_a_read(worker: PartitionWorker) -> None:
        worker.needs_claim = False
        pending.extend(worker.store.read_batch(worker.consumer, 50, None))

    _owned_by(client, "b", crash_after_a_read)
    assert pending and pending[0][0] == second[0].id  # read above the mark, never committed

    trimmed = trim_partition(client, 0, keep_log_ms=0, keep_out_ms=0, archive=None)
    kept_out = int(client.xlen(keys.partition_keys(0).out))
    assert kept_out == 1 and trimmed.out_entries > 0
    pk = keys.partition_keys(0)
    # Only entries below the mark went: the mark's own entry and everything after it stay.
    assert client.xlen(pk.log) == len(second) + 1

    # c claims b's batch, then reads the rest.
    _owned_by(client, "c", lambda worker: run_until_drained(worker, count=100))
    assert last_id(client, 0) == entries[-1].id
    expected_partition, expected_events = pure_fold(entries)
    store = PartitionStore(client, 0)
    events = stored_events(store)
    # The out stream lost what the trim removed and nothing after: its tail is the fold's.
    assert events == expected_events[len(expected_events) - len(events) :]
    assert kept_out < len(events) < len(expected_events)
    # The state is exactly the pure fold of the whole log, trimmed entries included.
    assert store.load_state() == encoded_state(expected_partition)
