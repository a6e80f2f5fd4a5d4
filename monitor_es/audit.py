"""Audit: fold a partition's whole history again with the pure reducer and compare the result,
record by record, with the state the workers committed. A difference is a bug.

The replay skips what the workers skipped: entries that do not decode and entries they
dead-lettered after the reducer failed on them. It folds with the deployment's limits, as
the workers do.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec

from monitor_es.codec import CLOCK_FIELD, UndecodableEntry, decode_entry, encode_state
from monitor_es.domain.partition import Limits, Partition
from monitor_es.domain.reducer import LogEntry, fold
from monitor_es.store.connection import Client
from monitor_es.store.history import committed_snapshot, folded_history
from monitor_es.store.log import Entry

_BATCH = 500


@dataclass(frozen=True)
class AuditResult:
    """One partition's audit."""

    partition: int
    mark: str | None  # the high-water mark audited up to (None: nothing committed yet)
    entries: int  # log entries replayed
    records: int  # state records compared
    differences: list[str]  # the records whose stored bytes are not the replay's, named


def audit_partition(
    client: Client, partition: int, limits: Limits, archive: Path | None
) -> AuditResult:
    """Replays one partition up to its committed mark and compares the state.

    Raises store.history.IncompleteHistory when trimmed entries are not in `archive`.
    """
    snapshot = committed_snapshot(client, partition)
    if snapshot.mark is None:
        return AuditResult(partition, None, 0, len(snapshot.state), _named(snapshot.state))
    history = folded_history(client, partition, snapshot.mark, archive)
    replayed, entries = replay(history, snapshot.dead_ids, limits)
    expected = encode_state(replayed)
    differing = [
        field
        for field in expected.keys() | snapshot.state.keys()
        if expected.get(field) != snapshot.state.get(field)
    ]
    return AuditResult(partition, snapshot.mark, entries, len(expected), _named(differing))


def replay(history: Iterable[Entry], skip: frozenset[str], limits: Limits) -> tuple[Partition, int]:
    """Folds raw log entries as the workers did; returns the state and the entries read."""
    partition = Partition(limits)
    batch: list[LogEntry] = []
    read = 0

    def counted() -> Iterator[Entry]:
        nonlocal read
        for entry in history:
            read += 1
            yield entry

    for entry in folded_entries(counted(), skip):
        batch.append(entry)
        if len(batch) == _BATCH:
            fold(partition, batch)
            batch.clear()
    fold(partition, batch)
    return partition, read


def folded_entries(history: Iterable[Entry], skip: frozenset[str]) -> Iterator[LogEntry]:
    """The entries the workers folded, decoded: the dead-lettered (`skip`) and the
    undecodable ones (which the workers dead-lettered too) are left out."""
    for entry_id, payload in history:
        if entry_id in skip:
            continue
        try:
            yield decode_entry(entry_id, payload)
        except UndecodableEntry:
            continue


def _named(fields: Iterable[bytes]) -> list[str]:
    """State-hash fields as records a person can find: monitor, environment or clock."""
    names = []
    for field in sorted(fields):
        if field == CLOCK_FIELD:
            names.append("the partition clock")
        elif field[:1] == b"m":
            names.append("monitor " + "/".join(_key(field)))
        else:
            names.append("environment " + "/".join(_key(field)))
    return names


def _key(field: bytes) -> list[str]:
    return [str(part) for part in msgspec.msgpack.decode(field[1:])]
