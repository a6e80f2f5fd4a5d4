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
    segments = _segments(archive, partition)
    store = PartitionStore(client, partition)
    info = client.xinfo_stream(keys.partition_keys(partition).log)
    first = info.get("first-entry")
    log_first = parse_id(as_text(first[0])) if first else None
    # Archived entries still in the log (a pass cut short before its trim) count once.
    only_archived = sum(1 for _ in _archived_below(segments, log_first))
    missing = int(info["entries-added"]) - int(info["length"]) - only_archived
    if missing > 0:
        raise IncompleteHistory(
            f"{missing} log entries of partition {partition} were trimmed and are not in the "
            "archive given"
        )
    return _up_to(segments, store, log_first, mark)


def _segments(archive: Path | None, partition: int) -> list[Path]:
    """A partition's archive segments, oldest first (each is named by its first entry id)."""
    if archive is None:
        return []
    found = (archive / f"p{partition:02d}").glob("*.jsonl.gz")
    return sorted(found, key=lambda path: parse_id(path.name.removesuffix(".jsonl.gz")))


def _archived_below(segments: list[Path], limit: tuple[int, int] | None) -> Iterator[Entry]:
    """The archived entries, each once and in id order, below `limit` (all if None).

    Streamed segment by segment: an archive of weeks need not fit in memory.
    """
    last = (-1, -1)
    for segment in segments:
        for entry in read_segment(segment):
            at = parse_id(entry[0])
            if limit is not None and at >= limit:
                return  # the log holds it, and every later one
            if at > last:  # segments of one pass never overlap; a repeated pass rewrote its own
                last = at
                yield entry


def _up_to(
    segments: list[Path], store: PartitionStore, log_first: tuple[int, int] | None, mark: str
) -> Iterator[Entry]:
    end = parse_id(mark)
    for entry in _archived_below(segments, log_first):
        if parse_id(entry[0]) > end:
            return
        yield entry
    start = "-"
    while True:
        page = store.read_range(start, mark, count=_PAGE)
        if start == "-" and page and log_first is not None and parse_id(page[0][0]) > log_first:
            # A trim ran since the log's first entry was read: what it archived is not in
            # the segments listed, so the replay would have a hole.
            raise IncompleteHistory("the log was trimmed during the audit; run it again")
        yield from page
        if len(page) < _PAGE:
            return
        start = "(" + page[-1][0]
