"""Retention on fakeredis and a real redis-server: what `trim` archives and removes, and that
no result changes (the state stays the pure fold of the whole log, archive included)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_worker_recovery import (
    append_entries,
    encoded_state,
    last_id,
    log_entries,
    pure_fold,
    run_until_drained,
    workload,
)

from monitor_es.domain.reducer import LogEntry
from monitor_es.store import keys
from monitor_es.store.connection import Client
from monitor_es.store.deployment import init_deployment
from monitor_es.store.leases import LeaseClient
from monitor_es.store.log import PartitionStore, parse_id
from monitor_es.store.retention import (
    cutoff_before,
    read_segment,
    trim_partition,
    write_segment,
)
from monitor_es.workers.partition import PartitionWorker

HOUR_MS = 3_600_000


@pytest.mark.parametrize(
    ("mark", "keep_ms", "cutoff"),
    [
        ("7200000-3", HOUR_MS, "3600000-0"),
        ("7200000-3", 0, "7200000-0"),  # never above the mark: its own entry stays
        ("7200000-3", 3 * HOUR_MS, "0-0"),  # nothing is old enough
    ],
)
def test_the_log_cutoff_lies_keep_before_the_mark_and_never_above_it(
    mark: str, keep_ms: int, cutoff: str
) -> None:
    assert cutoff_before(mark, keep_ms) == cutoff
    assert parse_id(cutoff_before(mark, keep_ms)) <= parse_id(mark)


def drain_as(client: Client, owner: str) -> None:
    """Folds whatever partition 0's log holds, as `owner` under its own lease."""
    leases = LeaseClient(client, owner, 10_000)
    lease = leases.acquire(0)
    assert lease is not None
    worker = PartitionWorker(PartitionStore(client, 0), lease.token, f"{owner}:{lease.token}")
    run_until_drained(worker, count=150)
    worker.close()
    leases.release(lease)


def _deployment(client: Client) -> tuple[list[LogEntry], list[LogEntry]]:
    """A folded first part of a 200-minute workload and its unfolded rest."""
    entries = log_entries(workload(seed=5, slots=40))
    cut = 2 * len(entries) // 3
    init_deployment(client, 1)
    append_entries(client, entries[:cut], 1)
    drain_as(client, "a")
    return entries[:cut], entries[cut:]


def test_trimmed_entries_are_archived_exactly_and_the_fold_is_unchanged(
    client: Client, tmp_path: Path
) -> None:
    folded, rest = _deployment(client)
    store = PartitionStore(client, 0)
    mark = last_id(client, 0)
    assert mark == folded[-1].id
    before = store.read_range()
    state = store.load_state()
    append_entries(client, rest, 1)  # appended, not folded yet

    trimmed = trim_partition(client, 0, keep_log_ms=HOUR_MS, keep_out_ms=None, archive=tmp_path)

    cutoff = parse_id(cutoff_before(mark, HOUR_MS))
    old = [entry for entry in before if parse_id(entry[0]) < cutoff]
    assert len(old) > 100 and trimmed.log_entries == len(old)
    assert trimmed.segment == tmp_path / "p00" / f"{old[0][0]}.jsonl.gz"
    assert list(read_segment(trimmed.segment)) == old  # ids and payloads, byte for byte
    kept = [entry_id for entry_id, _ in store.read_range()]
    assert kept == [i for i, _ in before[len(old) :]] + [e.id for e in rest]
    assert store.load_state() == state
    # Again at once: nothing more is old enough, and no empty segment appears.
    again = trim_partition(client, 0, keep_log_ms=HOUR_MS, keep_out_ms=None, archive=tmp_path)
    assert (again.log_entries, again.segment) == (0, None)
    assert len(list((tmp_path / "p00").iterdir())) == 1

    drain_as(client, "b")  # a new owner folds the rest
    expected, _ = pure_fold(folded + rest)
    assert store.load_state() == encoded_state(expected)
    archived = list(read_segment(trimmed.segment))
    assert [i for i, _ in archived] + [i for i, _ in store.read_range()] == [
        e.id for e in folded + rest
    ]  # the archive and the log together still hold the whole log


def test_entries_not_folded_are_never_trimmed_however_old(client: Client, tmp_path: Path) -> None:
    folded, rest = _deployment(client)
    append_entries(client, rest, 1)
    trimmed = trim_partition(client, 0, keep_log_ms=0, keep_out_ms=None, archive=None)
    # Everything below the mark goes; the mark's own entry and the unfolded rest stay.
    assert trimmed.log_entries == len(folded) - 1
    assert client.xlen(keys.partition_keys(0).log) == len(rest) + 1
    drain_as(client, "b")
    expected, _ = pure_fold(folded + rest)
    assert PartitionStore(client, 0).load_state() == encoded_state(expected)


def test_out_entries_older_than_keep_before_the_newest_go(client: Client) -> None:
    _deployment(client)
    out = keys.partition_keys(0).out
    entries = client.xlen(out)
    assert entries > 1
    kept = trim_partition(client, 0, keep_log_ms=None, keep_out_ms=HOUR_MS, archive=None)
    assert kept.out_entries == 0  # every commit of this test is within the hour
    trimmed = trim_partition(client, 0, keep_log_ms=None, keep_out_ms=0, archive=None)
    newest_ms = parse_id(client.xrevrange(out, count=1)[0][0].decode())[0]
    assert trimmed.out_entries == entries - client.xlen(out)
    assert all(parse_id(i.decode())[0] == newest_ms for i, _ in client.xrange(out))
    assert client.xlen(keys.partition_keys(0).log) > 0  # the log was left alone


def test_a_pass_repeated_after_a_crash_rewrites_its_own_segment(
    client: Client, tmp_path: Path
) -> None:
    _deployment(client)
    store = PartitionStore(client, 0)
    # A pass that archived the first entries, then died before its trim.
    write_segment(tmp_path, 0, iter(store.read_range(count=10)))
    trimmed = trim_partition(client, 0, keep_log_ms=HOUR_MS, keep_out_ms=None, archive=tmp_path)
    assert trimmed.segment is not None
    assert [p.name for p in (tmp_path / "p00").iterdir()] == [trimmed.segment.name]
    assert len(list(read_segment(trimmed.segment))) == trimmed.log_entries > 10
