"""The reducer of one owned partition: load → read → fold → one fenced commit per batch.

Exactly-once effects come from the store (fence + high-water mark + XACK in one Function
call); this loop adds ordering, poison isolation and recovery. A reducer exception never
blocks the partition: the entry is retried, and after `max_attempts` dead-lettered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from monitor_es.codec import (
    UndecodableEntry,
    decode_entry,
    decode_state_field,
    encode_changes,
    encode_out_entry,
)
from monitor_es.domain.effects import Effects
from monitor_es.domain.events import CheckInReported, DerivedEvent
from monitor_es.domain.partition import Changes, Limits, Partition
from monitor_es.domain.reducer import LogEntry, apply
from monitor_es.domain.state import Environment, EnvKey, Monitor
from monitor_es.domain.time import to_ms
from monitor_es.store.functions import Gap
from monitor_es.store.keys import META_LAST_ID
from monitor_es.store.log import (
    Batch,
    DeadLetter,
    PartitionStore,
    PendingCommit,
    PendingRead,
    parse_id,
)

log = logging.getLogger(__name__)

RawEntry = tuple[str, bytes | None]


def load_partition(store: PartitionStore, limits: Limits) -> tuple[Partition, str | None]:
    """Rebuilds a partition (records and indexes) and its high-water mark from Redis."""
    partition = Partition(limits)
    environments: list[Environment] = []
    for name, blob in store.load_state().items():
        record = decode_state_field(name, blob)
        if isinstance(record, Monitor):
            partition.add_monitor(record)
        elif isinstance(record, Environment):
            environments.append(record)
        else:
            partition.restore_clock(record)
    for env in environments:  # after their monitors, which hold the environment maps
        partition.add_environment(env)
    partition.take_changes()  # loading is not a change
    last = store.load_meta().get(META_LAST_ID.encode())
    return partition, None if last is None else last.decode()


@dataclass
class BatchResult:
    """What one processed batch did."""

    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    events: list[DerivedEvent] = field(default_factory=list)
    committed: bool = False
    last_entry_at: datetime | None = None  # broker time of the newest entry applied
    seconds: float = 0.0  # decoding, folding and committing it (the shell's timer)
    # The environments the commit wrote (live records: read them in the reducer's thread).
    environments: list[Environment] = field(default_factory=list)
    removed_environments: list[EnvKey] = field(default_factory=list)


class PartitionWorker:
    """Owns one partition while its fencing token is current."""

    def __init__(
        self,
        store: PartitionStore,
        token: int,
        consumer: str,
        limits: Limits | None = None,
        max_attempts: int = 3,
        *,
        pipelined: bool = False,
    ) -> None:
        self.store = store
        self.token = token
        self.consumer = consumer
        self.limits = limits or Limits()
        self.max_attempts = max_attempts
        # Pipelined: a batch's commit is sent without waiting, and its reply is read just
        # before the next commit goes; the read of the batch after next is sent before
        # that commit, so Redis commits and reads while Python folds.
        self.pipelined = pipelined
        self._pending: PendingCommit | None = None
        self._prefetch: PendingRead | None = None
        self.partition, self.last_id = load_partition(store, self.limits)
        # How many times the state was (re)loaded from Redis: what a batch reported changed
        # before a reload may not have been committed.
        self.loads = 1
        # Entries taken over from a previous owner (or left by our own failed batch).
        self.needs_claim = True

    def step(self, count: int = 500, block_ms: int | None = None) -> BatchResult:
        """Reads and processes one batch (pending entries first after a takeover)."""
        try:
            return self._step(count, block_ms)
        except Gap as gap:
            # An entry was read but never reached us (its reply was lost): the commit was
            # refused, so start again from what Redis holds and claim everything pending.
            log.warning("partition %s: %s; reloading", self.store.partition, gap)
            self._pending = None  # the refused commit's reply is the one just read
            self._drop_prefetch()
            self.partition, self.last_id = load_partition(self.store, self.limits)
            self.loads += 1
            self.needs_claim = True
            return BatchResult()

    def _drop_prefetch(self) -> None:
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is not None:
            prefetch.result()  # read to the end: the claim that follows must see its entries

    def _step(self, count: int, block_ms: int | None) -> BatchResult:
        if self.needs_claim:
            self.flush()  # our own pending entries must reflect every sent commit
            self.needs_claim = False
            pending = self.store.claim_pending(self.consumer, count)
            if pending:
                return self.process(pending)
        raw = self._take_prefetched()
        if not raw:
            raw = list(self.store.read_batch(self.consumer, count, block_ms))
        if not raw:
            self.flush()  # idle: make the last commit's outcome known
            # Nothing new, yet entries may be pending: read by a previous owner after it
            # lost its lease (paused between its lease check and its read), then fenced.
            # A commit above them would be refused (GAP) and claim them, but at the tail
            # of the log none comes, so they would wait for the partition's next entry.
            if not self.needs_claim and self.store.has_pending():
                self.needs_claim = True
        elif self.pipelined:
            self._prefetch = self.store.send_read(self.consumer, count)
        return self.process(raw)

    def flush(self) -> None:
        """Waits for the commit in flight, if any; raises Fenced if it was refused.

        A batch read ahead is dropped unprocessed: its entries stay pending for this
        consumer, and the next step claims them first (as after a takeover).
        """
        pending, self._pending = self._pending, None
        prefetch, self._prefetch = self._prefetch, None
        try:
            if pending is not None:
                pending.result()
        finally:
            if prefetch is not None:
                # Read to the end, so a claim sent next surely finds its entries pending.
                self.needs_claim = True
                prefetch.result()

    def close(self) -> None:
        """Flushes and hands the pipelined connection back."""
        try:
            self.flush()
        finally:
            self.store.close()

    def _take_prefetched(self) -> list[RawEntry]:
        prefetch, self._prefetch = self._prefetch, None
        return [] if prefetch is None else list(prefetch.result())

    def process(self, raw: Sequence[RawEntry]) -> BatchResult:
        """Folds a batch and commits it atomically; entries at or below last_id are acked only."""
        result = BatchResult()
        if not raw:
            return result
        started = time.monotonic()
        fresh: list[LogEntry] = []
        dead: list[DeadLetter] = []
        mark = None if self.last_id is None else parse_id(self.last_id)
        for entry_id, payload in raw:
            # Batches come in id order: once past the high-water mark, stop comparing.
            if mark is not None and parse_id(entry_id) <= mark:
                result.duplicates += 1  # already applied: ack only
                continue
            mark = None
            if payload is None:
                result.duplicates += 1  # deleted while pending: nothing to apply, ack only
                continue
            try:
                fresh.append(decode_entry(entry_id, payload))
            except UndecodableEntry as exc:
                dead.append(DeadLetter(entry_id, str(exc), 1, payload))
            except Exception as exc:  # a decoder bug must not stop the partition either
                log.exception(
                    "partition %s: entry %s broke the decoder", self.store.partition, entry_id
                )
                reason = f"undecodable entry {entry_id}: {type(exc).__name__}: {exc}"
                dead.append(DeadLetter(entry_id, reason, 1, payload))
        applied, events, failed = self._fold(fresh, dead, raw)
        acked = [entry_id for entry_id, _ in raw]
        if failed is not None:
            # The retried entry and everything after it stay pending for the next step.
            acked = [i for i in acked if parse_id(i) < parse_id(failed)]
            dead = [d for d in dead if parse_id(d.entry_id) < parse_id(failed)]
        result.applied, result.events, result.dead_lettered = len(applied), events, len(dead)
        if applied:
            result.last_entry_at = applied[-1].ts
        if acked:
            changes = self.partition.take_changes()
            result.committed = self._commit(changes, acked, applied, events, dead)
            result.environments = changes.environments
            result.removed_environments = changes.removed_environments
        result.seconds = time.monotonic() - started
        return result

    def _fold(
        self, entries: list[LogEntry], dead: list[DeadLetter], raw: Sequence[RawEntry]
    ) -> tuple[list[LogEntry], list[DerivedEvent], str | None]:
        """Applies entries in order; returns the id of an entry to retry later, if any."""
        fx = Effects()
        applied: list[LogEntry] = []
        for entry in entries:
            try:
                apply(self.partition, fx, entry)
            except Exception as exc:  # a reducer bug must not block the partition
                log.exception("partition %s: entry %s failed", self.store.partition, entry.id)
                self.flush()  # the reload below must see every commit sent so far
                self._reload_and_refold(applied, fx)
                attempts = self.store.record_failure(self.token, entry.id)
                if attempts < self.max_attempts:
                    self.needs_claim = True
                    return applied, fx.events, entry.id
                reason = f"reducer failed {attempts} times: {type(exc).__name__}: {exc}"
                payload = dict(raw)[entry.id] or b""
                dead.append(DeadLetter(entry.id, reason, attempts, payload))
                continue
            applied.append(entry)
        return applied, fx.events, None

    def _reload_and_refold(self, applied: list[LogEntry], fx: Effects) -> None:
        # A failed apply may have half-changed the in-memory state: rebuild it from the last
        # commit and fold again what this batch already applied (deterministic, same events).
        self.partition, _ = load_partition(self.store, self.limits)
        self.loads += 1
        fx.clear()
        for entry in applied:
            apply(self.partition, fx, entry)

    def _commit(
        self,
        changes: Changes,
        acked: list[str],
        applied: list[LogEntry],
        events: list[DerivedEvent],
        dead: list[DeadLetter],
    ) -> bool:
        state_set, state_del = encode_changes(changes)
        batch_last = acked[-1]  # entries are read, and claimed, in id order
        meta: dict[str, str | bytes | int] = {}
        if applied:
            meta["stream_ms"] = to_ms(applied[-1].ts)
        batch = Batch(
            self.token,
            batch_last,
            state_set=state_set,
            state_del=state_del,
            meta_set=meta,
            out=[encode_out_entry(events)] if events else [],
            dlq=dead,
            volume=_check_ins_per_minute(applied),
            ack_ids=acked,
        )
        if self.pipelined:
            # A commit goes only after the one before it was applied.
            pending, self._pending = self._pending, None
            if pending is not None:
                pending.result()
            self._pending = self.store.send_commit(batch)
            committed = True
        else:
            committed = self.store.commit_batch(batch)
        self.last_id = batch_last
        return committed


def _check_ins_per_minute(applied: list[LogEntry]) -> dict[int, int]:
    """The system-incident volume counters of a batch: check-ins per broker minute (epoch s)."""
    volume: dict[int, int] = {}
    for entry in applied:
        if type(entry.event) is CheckInReported:
            minute = int(entry.id.partition("-")[0]) // 60_000 * 60
            volume[minute] = volume.get(minute, 0) + 1
    return volume
