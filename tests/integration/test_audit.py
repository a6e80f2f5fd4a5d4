"""Audit on fakeredis and a real redis-server: a replay of the whole history (archive, then
log) matches what real workers committed, and a record that does not match is named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from test_retention import drain_as
from test_worker_recovery import append_entries, log_entries, workload

from monitor_es.audit import audit_partition
from monitor_es.codec import decode_state_field, encode_record, environment_field, monitor_field
from monitor_es.domain.events import CheckInReported
from monitor_es.domain.partition import Limits, Partition
from monitor_es.domain.reducer import LogEntry
from monitor_es.domain.reducer import apply as real_apply
from monitor_es.domain.state import Environment, EnvStatus
from monitor_es.store import keys
from monitor_es.store.connection import Client
from monitor_es.store.deployment import init_deployment
from monitor_es.store.history import IncompleteHistory, folded_history
from monitor_es.store.log import PartitionStore
from monitor_es.store.retention import trim_partition, write_segment
from monitor_es.workers import partition as partition_module

HOUR_MS = 3_600_000


def _folded(client: Client) -> tuple[list[LogEntry], str]:
    """A 200-minute workload and a poison entry, folded by real workers (in two halves)."""
    entries = log_entries(workload(seed=11, slots=40))
    init_deployment(client, 1)
    half = len(entries) // 2
    append_entries(client, entries[:half], 1)
    drain_as(client, "a")
    append_entries(client, entries[half:], 1)
    ms, seq = entries[-1].id.split("-")
    poison = client.xadd(
        keys.partition_keys(0).log, {keys.ENTRY_FIELD: b"\xc1"}, id=f"{ms}-{int(seq) + 1}"
    )
    drain_as(client, "b")  # a takeover: state loaded from Redis, then the rest
    return entries, poison.decode()


def test_a_replay_of_the_log_matches_what_the_workers_committed(client: Client) -> None:
    entries, poison = _folded(client)
    result = audit_partition(client, 0, Limits(), None)
    assert result.differences == []
    assert result.mark == poison  # committed as a dead letter
    assert result.entries == len(entries) + 1
    assert result.records == len(PartitionStore(client, 0).load_state())


def test_after_trimming_the_archive_and_the_log_replay_whole_and_match(
    client: Client, tmp_path: Path
) -> None:
    entries, _ = _folded(client)
    # A pass cut short before its trim left a segment of entries the log still holds.
    write_segment(tmp_path, 0, iter(PartitionStore(client, 0).read_range(count=25)))
    overlapping = audit_partition(client, 0, Limits(), tmp_path)
    assert overlapping.differences == []
    assert overlapping.entries == len(entries) + 1  # each entry replayed once
    trimmed = trim_partition(client, 0, keep_log_ms=HOUR_MS, keep_out_ms=0, archive=tmp_path)
    assert trimmed.log_entries > 100
    assert audit_partition(client, 0, Limits(), tmp_path).differences == []
    with pytest.raises(IncompleteHistory, match=f"{trimmed.log_entries} log entries"):
        audit_partition(client, 0, Limits(), None)
    trim_partition(client, 0, keep_log_ms=0, keep_out_ms=None, archive=None)  # no archive
    with pytest.raises(IncompleteHistory):
        audit_partition(client, 0, Limits(), tmp_path)


def test_an_entry_the_workers_dead_lettered_after_a_reducer_bug_is_left_out_of_the_replay(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = log_entries(workload(seed=12, slots=12))
    # A run's opening check-in: without it, its close creates a check-in of its own.
    poisoned = next(
        e
        for e in entries[len(entries) // 2 :]
        if isinstance(e.event, CheckInReported) and e.event.status == "in_progress"
    )

    def failing_apply(p: Partition, fx: Any, entry: LogEntry) -> None:
        real_apply(p, fx, entry)
        if entry.id == poisoned.id:
            raise RuntimeError("injected reducer bug")

    monkeypatch.setattr(partition_module, "apply", failing_apply)
    init_deployment(client, 1)
    append_entries(client, entries, 1)
    drain_as(client, "a")
    assert [d.entry_id for _, d in PartitionStore(client, 0).read_dlq()] == [poisoned.id]
    # The audit folds with the real reducer, which does not fail: only the dead letter's
    # skip keeps the replay equal to what the workers did.
    assert audit_partition(client, 0, Limits(), None).differences == []


def test_a_record_that_differs_from_the_replay_is_named(client: Client) -> None:
    _folded(client)
    state = keys.partition_keys(0).state
    stored = PartitionStore(client, 0).load_state()
    env_fields = sorted(f for f in stored if f[:1] == b"e")
    changed = decode_state_field(env_fields[0], stored[env_fields[0]])
    assert isinstance(changed, Environment)
    flipped = EnvStatus.OK if changed.status is not EnvStatus.OK else EnvStatus.MISSED
    client.hset(
        state, env_fields[0], encode_record(msgspec.structs.replace(changed, status=flipped))
    )
    client.hdel(state, monitor_field("acme", "job-1"))
    client.hset(state, environment_field("acme", "ghost", "production"), b"\x90")

    result = audit_partition(client, 0, Limits(), None)

    project, slug, name = changed.key
    assert result.differences == sorted(
        [
            f"environment {project}/{slug}/{name}",
            "environment acme/ghost/production",
            "monitor acme/job-1",
        ]
    )


def test_a_trim_during_the_audit_is_noticed_rather_than_read_as_a_difference(
    client: Client, tmp_path: Path
) -> None:
    _, mark = _folded(client)
    history = folded_history(client, 0, mark, tmp_path)  # the log's first entry noted here
    trim_partition(client, 0, keep_log_ms=HOUR_MS, keep_out_ms=None, archive=tmp_path)
    with pytest.raises(IncompleteHistory, match="trimmed during the audit"):
        list(history)
