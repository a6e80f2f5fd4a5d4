"""Partition logs: appending entries, reading them as the owner, committing batches, replay."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from monitor_es.store import functions, keys
from monitor_es.store.connection import Client, as_text, bytes_map
from monitor_es.store.deployment import NotInitialised
from monitor_es.store.pipe import Pipe, Reply

Field = str | bytes
Entry = tuple[str, bytes]
# Unions of Mappings, because Mapping is invariant in its key type.
StateFields = Mapping[str, bytes] | Mapping[bytes, bytes]
MetaFields = Mapping[str, str | bytes | int] | Mapping[bytes, str | bytes | int]

# XAUTOCLAIM scans at most COUNT * 10 PEL entries per call; loop until the cursor wraps.
_CURSOR_DONE = "0-0"


@dataclass(frozen=True, slots=True)
class Batch:
    """Everything one commit writes, checked against the fence and the high-water mark."""

    token: int
    last_id: str
    state_set: StateFields | None = None
    state_del: Sequence[Field] = ()
    meta_set: MetaFields | None = None
    out: Sequence[bytes] = ()
    dlq: Sequence[DeadLetter] = ()
    volume: Mapping[int, int] | None = None
    ack_ids: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A log entry moved to the dead-letter stream, with why and after how many attempts."""

    entry_id: str
    reason: str
    attempts: int
    payload: bytes


def append(client: Client, partition: int, payload: bytes, entry_id: str = "*") -> str:
    """Append ``payload`` to a partition's log and return the entry id."""
    # NOMKSTREAM: a missing log means an uninitialised deployment; never create one here.
    result = client.xadd(
        keys.partition_keys(partition).log,
        {keys.ENTRY_FIELD: payload},
        id=entry_id,
        nomkstream=True,
    )
    if result is None:
        raise NotInitialised(_missing_log_message([partition]))
    return as_text(result)


def append_many(
    client: Client, items: Sequence[tuple[int, bytes]], ids: Sequence[str] | None = None
) -> list[str]:
    """Append ``(partition, payload)`` items in one non-transactional pipeline; return ids.

    ``ids`` gives explicit entry ids (replays, scenarios); by default Redis assigns them.
    """
    # Not a transaction: the entries span slots, which a cluster pipeline may only do this way.
    pipe = client.pipeline(transaction=False)
    for n, (partition, payload) in enumerate(items):
        log = keys.partition_keys(partition).log
        entry_id = "*" if ids is None else ids[n]
        pipe.xadd(log, {keys.ENTRY_FIELD: payload}, id=entry_id, nomkstream=True)
    results = pipe.execute()
    missing = sorted({p for (p, _), r in zip(items, results, strict=True) if r is None})
    if missing:
        # Entries for existing partitions were appended; a pipeline cannot be made all-or-nothing.
        raise NotInitialised(_missing_log_message(missing))
    return [as_text(r) for r in results]


def broadcast(client: Client, partitions: int, payload: bytes) -> list[str]:
    """Append the same payload to every partition's log (clock pulses, decisions)."""
    return append_many(client, [(p, payload) for p in range(partitions)])


class PartitionStore:
    """Reads and commits one partition's log, state and meta as its owner."""

    def __init__(self, client: Client, partition: int) -> None:
        self.client = client
        self.partition = partition
        self.keys = keys.partition_keys(partition)
        self._pipeline: Pipe | None = None  # send_commit / send_read, one node only

    def read_batch(self, consumer: str, count: int, block_ms: int | None) -> list[Entry]:
        """Read up to ``count`` new entries for ``consumer``; block_ms None does not block."""
        reply = self.client.xreadgroup(
            keys.REDUCER_GROUP, consumer, {self.keys.log: ">"}, count=count, block=block_ms
        )
        return [(as_text(i), _payload(f)) for _, entries in _streams(reply) for i, f in entries]

    def claim_pending(self, consumer: str, count: int = 500) -> list[tuple[str, bytes | None]]:
        """Take over every pending entry of the group; deleted entries come back as None."""
        # min-idle 0 is safe only because the caller holds the lease and its fencing token.
        claimed: list[tuple[str, bytes | None]] = []
        cursor = _CURSOR_DONE
        while True:
            reply = self.client.xautoclaim(
                self.keys.log, keys.REDUCER_GROUP, consumer, 0, start_id=cursor, count=count
            )
            claimed.extend((as_text(i), _payload(f)) for i, f in reply[1])
            # Redis 7.0 lists entries deleted while pending apart, and drops them from the PEL.
            claimed.extend((as_text(i), None) for i in (reply[2] if len(reply) > 2 else []))
            cursor = as_text(reply[0])
            if cursor == _CURSOR_DONE:
                break
        return sorted(claimed, key=lambda entry: parse_id(entry[0]))

    def has_pending(self) -> bool:
        """True if any entry of the log was read by some consumer and not acknowledged."""
        summary = self.client.xpending(self.keys.log, keys.REDUCER_GROUP)
        return int(summary["pending"]) > 0

    def load_state(self, page: int = 1000) -> dict[bytes, bytes]:
        """Return the partition's whole state hash (field -> encoded blob)."""
        return bytes_map(dict(self.client.hscan_iter(self.keys.state, count=page)))

    def load_meta(self) -> dict[bytes, bytes]:
        """Return the partition's meta hash (last_id, fence, fail counters, worker fields)."""
        return bytes_map(self.client.hgetall(self.keys.meta))

    def commit(
        self,
        token: int,
        batch_last_id: str,
        *,
        state_set: StateFields | None = None,
        state_del: Iterable[Field] = (),
        meta_set: MetaFields | None = None,
        out: Sequence[bytes] = (),
        dlq: Sequence[DeadLetter] = (),
        volume: Mapping[int, int] | None = None,
        ack_ids: Sequence[str] = (),
    ) -> bool:
        """Atomically apply a batch; True if applied, False if a duplicate; raises Fenced."""
        batch = Batch(
            token, batch_last_id, state_set, tuple(state_del), meta_set, out, dlq, volume, ack_ids
        )
        return self.commit_batch(batch)

    def commit_batch(self, batch: Batch) -> bool:
        """``commit`` for a prepared batch."""
        function_keys, args = self._commit_call(batch)
        return bool(functions.fcall(self.client, functions.COMMIT, function_keys, args) == 1)

    def send_commit(self, batch: Batch) -> PendingCommit:
        """Like ``commit``, but returns before Redis answers (one Redis node only).

        The reply is read by ``PendingCommit.result()``; meanwhile the caller can fold the
        next batch, so Redis executes a commit while Python computes the next one.
        """
        function_keys, args = self._commit_call(batch)
        reply = self._pipe().send(
            "FCALL", functions.COMMIT, len(function_keys), *function_keys, *args
        )
        return PendingCommit(reply)

    def send_read(self, consumer: str, count: int) -> PendingRead:
        """Sends a non-blocking read of the next batch; ``PendingRead.result()`` gets it.

        Sent before the previous batch's commit, the read is answered while Python folds,
        so the next batch is at hand the moment the fold ends. Never blocking: a blocked
        read would hold back every commit sent after it.
        """
        reply = self._pipe().send(
            "XREADGROUP", "GROUP", keys.REDUCER_GROUP, consumer,
            "COUNT", count, "STREAMS", self.keys.log, ">",
        )  # fmt: skip
        return PendingRead(reply)

    def close(self) -> None:
        """Reads what is outstanding and hands the pipelined connection back to the pool."""
        pipe, self._pipeline = self._pipeline, None
        if pipe is None:
            return
        try:
            pipe.drain()
        finally:
            if pipe.idle:
                self.client.connection_pool.release(pipe.connection)  # type: ignore[union-attr]

    def _pipe(self) -> Pipe:
        if self._pipeline is None:
            pool = self.client.connection_pool  # type: ignore[union-attr]
            self._pipeline = Pipe(pool.get_connection())
        return self._pipeline

    def _commit_call(self, batch: Batch) -> tuple[list[str], list[Any]]:
        args: list[Any] = [keys.REDUCER_GROUP, batch.token, batch.last_id]
        args += _section([x for kv in (batch.state_set or {}).items() for x in kv], 2)
        args += _section(list(batch.state_del), 1)
        args += _section([x for kv in (batch.meta_set or {}).items() for x in kv], 2)
        args += _section(list(batch.out), 1)
        dead = [x for d in batch.dlq for x in (d.entry_id, d.reason, d.attempts, d.payload)]
        args += _section(dead, 4)
        args += _section([x for kv in (batch.volume or {}).items() for x in kv], 2)
        args += _section(list(batch.ack_ids), 1)
        k = self.keys
        return [k.log, k.state, k.meta, k.out, k.dlq, k.volume], args

    def record_failure(self, token: int, entry_id: str) -> int:
        """Count one more failure of ``entry_id`` and return its attempt count; raises Fenced."""
        result = functions.fcall(self.client, functions.FAIL, [self.keys.meta], [token, entry_id])
        return int(result)

    def read_range(self, start: str = "-", end: str = "+", count: int | None = None) -> list[Entry]:
        """Read log entries by id range without a consumer group (replay, audit)."""
        return _entries(self.client.xrange(self.keys.log, start, end, count))

    def read_out(self, start: str = "-", end: str = "+", count: int | None = None) -> list[Entry]:
        """Read derived events from the partition's out stream."""
        return _entries(self.client.xrange(self.keys.out, start, end, count))

    def read_dlq(
        self, start: str = "-", end: str = "+", count: int | None = None
    ) -> list[tuple[str, DeadLetter]]:
        """Read dead-lettered entries as ``(dlq entry id, DeadLetter)``."""
        reply = self.client.xrange(self.keys.dlq, start, end, count)
        return [(as_text(i), _dead_letter(bytes_map(f))) for i, f in reply or []]


class PendingCommit:
    """A commit sent to Redis whose reply has not been read yet."""

    def __init__(self, reply: Reply) -> None:
        self._reply = reply

    def result(self) -> bool:
        """Waits for the reply: True if applied, False if a duplicate; raises Fenced."""
        try:
            value = self._reply.result()
        except ResponseError as exc:
            raise functions.fenced_or(exc) from exc
        return bool(value == 1)


class PendingRead:
    """A batch read sent to Redis whose reply has not been read yet."""

    def __init__(self, reply: Reply) -> None:
        self._reply = reply

    def result(self) -> list[Entry]:
        """The entries read (none when the log had nothing new)."""
        return _raw_entries(self._reply.result())


def parse_id(entry_id: str) -> tuple[int, int]:
    """Return a stream id as ``(ms, seq)`` so ids compare numerically."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _section(items: list[Any], width: int) -> list[Any]:
    return [len(items) // width, *items]


def _payload(fields: Mapping[bytes, bytes] | None) -> bytes:
    # An entry without our field (written by hand) decodes as b"" and is rejected downstream.
    return (fields or {}).get(keys.ENTRY_FIELD, b"")


def _raw_entries(reply: Any) -> list[Entry]:
    """Entries from a raw XREADGROUP reply of one stream.

    RESP2 gives `[[stream, [[id, [field, value, ...]], ...]]]`, RESP3 `{stream: [...]}`.
    """
    if not reply:
        return []
    listed = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
    entries: list[Entry] = []
    for entry_id, fields in listed:
        if fields and len(fields) == 2 and fields[0] == keys.ENTRY_FIELD:
            payload = fields[1]  # the usual shape, without building a dict
        elif fields:
            payload = _payload(dict(zip(fields[::2], fields[1::2], strict=True)))
        else:
            payload = b""  # an entry without fields: rejected downstream
        entries.append((entry_id.decode(), payload))
    return entries


def _entries(reply: Any) -> list[Entry]:
    return [(as_text(i), _payload(f)) for i, f in reply or []]


def _streams(reply: Any) -> list[tuple[Any, list[Any]]]:
    # connect() makes RESP2 clients: [[stream, entries]]; an empty BLOCK read gives [] or None.
    return [(name, entries) for name, entries in reply or []]


def _dead_letter(fields: dict[bytes, bytes]) -> DeadLetter:
    return DeadLetter(
        entry_id=as_text(fields[b"id"]),
        reason=fields[b"reason"].decode(),
        attempts=int(fields[b"attempts"]),
        payload=fields.get(keys.ENTRY_FIELD, b""),
    )


def _missing_log_message(partitions: list[int]) -> str:
    return (
        f"no log stream for partition(s) {partitions}: the deployment is not initialised "
        "(run `monitor-es init`) or the partition is out of range"
    )
