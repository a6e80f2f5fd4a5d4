"""A partition's whole history as the workers folded it: its archive segments, then its log,
up to the committed high-water mark, read against a consistent snapshot of the state."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from monitor_es.store import keys
from monitor_es.store.connection import Client, as_text
from monitor_es.store.log import Entry, PartitionStore, parse_id
from monitor_es.store.retention import read_segment

_PAGE = 10_000


@dataclass(frozen=True)
class Snapshot:
    """The committed state hash and the high-water mark it was committed at, read together."""

    mark: str | None
    state: dict[bytes, bytes]
    dead_ids: frozenset[str]  # log entries the workers dead-lettered instead of folding


def committed_snapshot(client: Client, partition: int) -> Snapshot:
    """Reads the mark and the state hash in one transaction, so no commit falls between."""
    pk = keys.partition_keys(partition)
    pipe = client.pipeline(transaction=True)  # one slot: fine on a cluster too
    pipe.hget(pk.meta, keys.META_LAST_ID)
    pipe.hgetall(pk.state)
    mark, state = pipe.execute()
    dead = PartitionStore(client, partition).read_dlq()
    return Snapshot(
        mark=None if mark is None else as_text(mark),
        state=dict(state),
        dead_ids=frozenset(letter.entry_id for _, letter in dead),
    )


class IncompleteHistory(Exception):
    """Log entries were trimmed without an archive that holds them: the history has a hole."""


def folded_history(
    client: Client, partition: int, mark: str, archive: Path | None
) -> Iterator[Entry]:
    """Every entry up to `mark`, oldest first: archived ones, then the log's.

    Raises IncompleteHistory (before yielding anything) unless the archive and the log
    together hold every entry ever appended to the log.
    """
    archived = _archived(archive, partition)
    store = PartitionStore(client, partition)
    info = client.xinfo_stream(keys.partition_keys(partition).log)
    first = info.get("first-entry")
    log_first = parse_id(as_text(first[0])) if first else None
    # Archived entries still in the log (a pass cut short before its trim) count once.
    only_archived = sum(1 for i, _ in archived if log_first is None or parse_id(i) < log_first)
    missing = int(info["entries-added"]) - int(info["length"]) - only_archived
    if missing > 0:
        raise IncompleteHistory(
            f"{missing} log entries of partition {partition} were trimmed and are not in the "
            "archive given"
        )
    return _up_to(archived, store, log_first, mark)


def _archived(archive: Path | None, partition: int) -> list[Entry]:
    if archive is None:
        return []
    segments = (archive / f"p{partition:02d}").glob("*.jsonl.gz")
    entries: dict[str, bytes] = {}
    for segment in segments:
        entries.update(read_segment(segment))
    return sorted(entries.items(), key=lambda entry: parse_id(entry[0]))


def _up_to(
    archived: list[Entry], store: PartitionStore, log_first: tuple[int, int] | None, mark: str
) -> Iterator[Entry]:
    end = parse_id(mark)
    for entry in archived:
        if log_first is not None and parse_id(entry[0]) >= log_first:
            break  # the log holds it too
        if parse_id(entry[0]) > end:
            return
        yield entry
    start = "-"
    while True:
        page = store.read_range(start, mark, count=_PAGE)
        yield from page
        if len(page) < _PAGE:
            return
        start = "(" + page[-1][0]
