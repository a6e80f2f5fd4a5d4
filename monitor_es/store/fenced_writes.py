"""The system-incident aggregator's writes, fenced by the pulser token it runs under.

Only one pulser (and so one aggregator) holds the lease, but a paused former holder can
wake up mid-step. Every write goes through one Function call that refuses a token below
the highest its fence has seen: broadcasts are fenced in each partition's meta hash,
aggregator hashes in themselves, so each call stays in one cluster slot. Once the new
aggregator has written somewhere, the old one can write nothing more there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from redis.typing import EncodableT

from monitor_es.store import functions, keys
from monitor_es.store.connection import Client, as_text
from monitor_es.store.deployment import NotInitialised


class FencedWriter:
    """Writes under one pulser token; raises functions.Fenced once a newer token wrote."""

    def __init__(self, client: Client, partitions: int, token: int) -> None:
        self.client = client
        self.partitions = partitions
        self.token = token

    def broadcast(self, payloads: Sequence[bytes]) -> list[str]:
        """Appends each payload, in order, to every partition's log; returns the entry ids."""
        ids: list[str] = []
        for partition in range(self.partitions):
            pk = keys.partition_keys(partition)
            for payload in payloads:
                entry = self._write(pk.meta, pk.log, "xadd", [keys.ENTRY_FIELD, payload])
                if entry is None:
                    raise NotInitialised(f"partition {partition} has no log: run `monitor-es init`")
                ids.append(as_text(entry))
        return ids

    def hset(self, key: str, mapping: Mapping[str | int, EncodableT]) -> None:
        """Sets fields of an aggregator hash (fenced in the hash itself)."""
        if mapping:
            self._write(key, key, "hset", [x for kv in mapping.items() for x in kv])

    def hsetnx(self, key: str, field: str, value: EncodableT) -> bool:
        """Sets a field of an aggregator hash unless it is set; True if this call set it."""
        return bool(self._write(key, key, "hsetnx", [field, value]))

    def hdel_volumes(self, partition: int, fields: Iterable[int]) -> None:
        """Deletes minutes from a partition's volume hash (fenced in the partition's meta)."""
        names: list[EncodableT] = list(fields)
        if names:
            pk = keys.partition_keys(partition)
            self._write(pk.meta, pk.volume, "hdel", names)

    def _write(self, fence: str, target: str, op: str, fields: list[EncodableT]) -> object:
        args: list[EncodableT] = [self.token, op, *fields]
        return functions.fcall(self.client, functions.AGGREGATOR_WRITE, [fence, target], args)
