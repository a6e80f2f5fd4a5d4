"""Retention: archive a partition's folded log entries to a segment file, then trim them, and
trim out-stream entries past their age.

Only entries at least `keep` older (in broker time) than the committed high-water mark go, so
nothing a worker has not folded is ever removed: workers read forward and load their state
from the state hash, and a takeover claims only entries above the mark. The archive comes
first (written, synced, renamed into place), the trim after it, so a crash between the two
leaves the entries in Redis and the next pass archives them again, to the same file name.
Derived events are not archived: replaying the archived log derives them again.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from monitor_es.store import keys
from monitor_es.store.connection import Client, as_text
from monitor_es.store.log import Entry, PartitionStore, parse_id

_PAGE = 10_000  # entries per XRANGE while archiving


@dataclass(frozen=True, slots=True)
class Trimmed:
    """What one retention pass removed from a partition."""

    partition: int
    log_entries: int
    out_entries: int
    segment: Path | None  # the archive file written, if any


def cutoff_before(reference_id: str, keep_ms: int) -> str:
    """The oldest stream id to keep: `keep_ms` before the reference entry's time.

    Never above the reference itself (keep_ms >= 0): with the committed high-water mark as
    the reference, nothing unfolded is ever trimmed.
    """
    ms, _ = parse_id(reference_id)
    return f"{max(ms - keep_ms, 0)}-0"


def trim_partition(
    client: Client,
    partition: int,
    *,
    keep_log_ms: int | None,
    keep_out_ms: int | None,
    archive: Path | None,
) -> Trimmed:
    """One retention pass over a partition (None: leave that stream alone)."""
    pk = keys.partition_keys(partition)
    removed_log, segment = 0, None
    mark = client.hget(pk.meta, keys.META_LAST_ID)
    if keep_log_ms is not None and mark is not None:
        cutoff = cutoff_before(as_text(mark), keep_log_ms)
        if archive is not None:
            older = _older_than(PartitionStore(client, partition), cutoff)
            segment = write_segment(archive, partition, older)
        removed_log = int(client.xtrim(pk.log, minid=cutoff, approximate=False))
    removed_out = 0
    newest = client.xrevrange(pk.out, count=1)
    if keep_out_ms is not None and newest:
        cutoff = cutoff_before(as_text(newest[0][0]), keep_out_ms)
        removed_out = int(client.xtrim(pk.out, minid=cutoff, approximate=False))
    return Trimmed(partition, removed_log, removed_out, segment)


def _older_than(store: PartitionStore, cutoff: str) -> Iterator[Entry]:
    """The log's entries with ids below `cutoff`, oldest first, read in pages."""
    start, end = "-", parse_id(cutoff)
    while True:
        page = store.read_range(start, cutoff, count=_PAGE)
        for entry in page:
            if parse_id(entry[0]) >= end:
                return
            yield entry
        if len(page) < _PAGE:
            return
        start = "(" + page[-1][0]


def write_segment(archive: Path, partition: int, entries: Iterator[Entry]) -> Path | None:
    """Writes entries to `archive/pNN/<first id>.jsonl.gz` (None if there are none).

    One JSON line per entry: its id and its payload in base64, exactly as the log held it.
    Named by the first id, so a pass repeated after a crash replaces its own earlier file.
    """
    directory = archive / f"p{partition:02d}"
    directory.mkdir(parents=True, exist_ok=True)
    first: str | None = None
    temporary = directory / f".writing-{os.getpid()}"
    with temporary.open("wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as packed:
            for entry_id, payload in entries:
                first = first or entry_id
                line = {"id": entry_id, "payload": base64.b64encode(payload).decode()}
                packed.write(json.dumps(line).encode() + b"\n")
        raw.flush()
        os.fsync(raw.fileno())
    if first is None:
        temporary.unlink()
        return None
    segment = directory / f"{first}.jsonl.gz"
    temporary.replace(segment)
    _sync_directory(directory)
    return segment


def read_segment(path: Path) -> Iterator[Entry]:
    """The entries of an archive segment, as the log held them."""
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            item = json.loads(line)
            yield str(item["id"]), base64.b64decode(item["payload"])


def _sync_directory(directory: Path) -> None:
    """Makes a rename in `directory` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
