"""Pipelined commits: Redis applies batch N while the worker folds batch N+1.

The worker reads a commit's reply just before it sends the next one (or when it idles,
reloads or claims), so a refused commit still stops it before anything else is written.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from test_worker_recovery import (
    _lease,
    _one_partition,
    _scenario_entries,
    assert_partition_matches,
    last_id,
    run_until_drained,
)

from monitor_es.domain.partition import Partition
from monitor_es.domain.reducer import LogEntry
from monitor_es.domain.reducer import apply as real_apply
from monitor_es.store import keys
from monitor_es.store.connection import Client
from monitor_es.store.functions import Fenced, Gap
from monitor_es.store.leases import LeaseClient
from monitor_es.store.log import PartitionStore
from monitor_es.workers import partition as partition_module
from monitor_es.workers.partition import PartitionWorker

SCENARIOS = ["thresholds_3_and_2", "many_monitors_and_environments", "timeouts_late_close"]


@pytest.mark.parametrize("name", SCENARIOS)
def test_a_pipelined_worker_ends_in_the_state_of_the_pure_fold(
    real_client: redis.Redis, name: str
) -> None:
    entries = _scenario_entries(name)
    store = _one_partition(real_client, entries)
    worker = PartitionWorker(store, _lease(real_client, "w").token, "w:1", pipelined=True)
    run_until_drained(worker, count=3)  # small batches: many commits in flight in turn
    worker.close()

    assert_partition_matches(real_client, 0, entries)
    assert last_id(real_client, 0) == entries[-1].id
    assert real_client.xpending(keys.partition_keys(0).log, keys.REDUCER_GROUP)["pending"] == 0


def test_a_pipelined_zombie_learns_it_is_fenced_before_it_writes_again(
    real_client: redis.Redis,
) -> None:
    entries = _scenario_entries("thresholds_3_and_2")
    store = _one_partition(real_client, entries)
    leases_a = LeaseClient(real_client, "worker-a", 150)
    lease_a = leases_a.acquire(0)
    assert lease_a is not None
    zombie = PartitionWorker(store, lease_a.token, "worker-a:1", pipelined=True)
    zombie.needs_claim = False
    batch = list(store.read_batch(zombie.consumer, 6, None))
    time.sleep(0.3)  # A's lease lapses while it is paused
    owner = PartitionWorker(store, _lease(real_client, "worker-b").token, "worker-b:1")

    zombie.process(batch)  # the commit is only sent...
    with pytest.raises(Fenced):
        zombie.flush()  # ...and refused: the fence was stamped when B took the lease
    run_until_drained(owner)

    assert_partition_matches(real_client, 0, entries)


def test_a_raising_reducer_in_pipelined_mode_loses_nothing(
    real_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = _scenario_entries("many_monitors_and_environments")
    poisoned = entries[len(entries) // 2]
    store = _one_partition(real_client, entries)

    def failing_apply(p: Partition, fx: Any, entry: LogEntry) -> None:
        real_apply(p, fx, entry)
        if entry.id == poisoned.id:
            raise RuntimeError("injected reducer bug")

    monkeypatch.setattr(partition_module, "apply", failing_apply)
    token = _lease(real_client, "w").token
    worker = PartitionWorker(store, token, "w:1", max_attempts=2, pipelined=True)
    run_until_drained(worker, count=4)
    worker.close()

    assert [d.entry_id for _, d in store.read_dlq()] == [poisoned.id]
    assert_partition_matches(real_client, 0, [e for e in entries if e.id != poisoned.id])
    assert last_id(real_client, 0) == entries[-1].id


def test_a_batch_read_ahead_is_claimed_after_a_flush(real_client: redis.Redis) -> None:
    entries = _scenario_entries("many_monitors_and_environments")
    store = _one_partition(real_client, entries)
    worker = PartitionWorker(store, _lease(real_client, "w").token, "w:1", pipelined=True)
    worker.step(count=5)  # claims nothing, then reads
    worker.step(count=5)  # processes a batch and reads the next one ahead

    worker.flush()  # drops the read-ahead batch: its entries are pending for w:1

    assert worker.needs_claim
    pending = real_client.xpending(keys.partition_keys(0).log, keys.REDUCER_GROUP)["pending"]
    assert pending == 5
    run_until_drained(worker, count=5)
    worker.close()
    assert_partition_matches(real_client, 0, entries)
    assert last_id(real_client, 0) == entries[-1].id


def test_a_worker_closed_with_a_batch_read_ahead_hands_it_to_the_next_owner(
    real_client: redis.Redis,
) -> None:
    entries = _scenario_entries("thresholds_3_and_2")
    store = _one_partition(real_client, entries)
    leases = LeaseClient(real_client, "worker-a", 10_000)
    lease = leases.acquire(0)
    assert lease is not None
    first = PartitionWorker(store, lease.token, "worker-a:1", pipelined=True)
    first.step(count=4)
    first.step(count=4)
    first.close()  # graceful stop with a read-ahead batch outstanding
    leases.release(lease)

    second = PartitionWorker(
        PartitionStore(real_client, 0), _lease(real_client, "worker-b").token, "worker-b:1"
    )
    run_until_drained(second, count=4)

    assert_partition_matches(real_client, 0, entries)
    assert real_client.xpending(keys.partition_keys(0).log, keys.REDUCER_GROUP)["pending"] == 0


def _lose_a_read_reply_then_drain(client: Client, pipelined: bool) -> None:
    """A retrying client can re-send a read whose reply was lost: Redis delivered the entries
    (they are pending) but the worker never saw them. The next commit would move the
    high-water mark past them for good; it is refused (GAP), and the worker reloads,
    claims everything pending and applies it in order."""
    entries = _scenario_entries("many_monitors_and_environments")
    store = _one_partition(client, entries)
    worker = PartitionWorker(store, _lease(client, "w").token, "w:1", pipelined=pipelined)
    worker.step(count=4)  # claims nothing, reads and commits the first batch
    worker.flush()
    lost = store.read_batch("w:1", 3, None)  # delivered to w:1, the reply never arrived
    assert len(lost) == 3

    run_until_drained(worker, count=4)
    worker.close()

    assert_partition_matches(client, 0, entries)
    assert last_id(client, 0) == entries[-1].id
    assert client.xpending(keys.partition_keys(0).log, keys.REDUCER_GROUP)["pending"] == 0


def test_a_batch_whose_read_reply_was_lost_is_applied_not_skipped(client: Client) -> None:
    _lose_a_read_reply_then_drain(client, pipelined=False)


def test_a_batch_whose_read_reply_was_lost_is_applied_by_a_pipelined_worker(
    real_client: redis.Redis,
) -> None:
    _lose_a_read_reply_then_drain(real_client, pipelined=True)


def test_a_commit_passing_an_unapplied_entry_is_refused_with_gap(client: Client) -> None:
    entries = _scenario_entries("thresholds_3_and_2")
    store = _one_partition(client, entries)
    token = _lease(client, "w").token
    read = store.read_batch("w:1", 4, None)
    skipped, rest = read[:2], read[2:]

    with pytest.raises(Gap, match=skipped[0][0]):
        store.commit(token, rest[-1][0], ack_ids=[i for i, _ in rest])

    assert last_id(client, 0) is None  # nothing written, nothing acknowledged
    assert client.xpending(keys.partition_keys(0).log, keys.REDUCER_GROUP)["pending"] == 4
