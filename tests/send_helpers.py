"""What tests of the write side read back: the appended log, folded by the pure reducer."""

from __future__ import annotations

from typing import Any

from monitor_es.codec import decode_entry
from monitor_es.domain.events import event_json
from monitor_es.domain.partition import Partition
from monitor_es.domain.reducer import LogEntry, fold
from monitor_es.store.connection import Client
from monitor_es.store.deployment import require_deployment
from monitor_es.store.log import PartitionStore, parse_id


def logged(client: Client) -> list[LogEntry]:
    """Every entry of every partition's log, decoded, in broker-time order."""
    partitions = require_deployment(client).partitions
    raw = [e for p in range(partitions) for e in PartitionStore(client, p).read_range()]
    raw.sort(key=lambda entry: parse_id(entry[0]))
    return [decode_entry(entry_id, payload) for entry_id, payload in raw]


def folded(client: Client) -> list[dict[str, Any]]:
    """The derived events (JSON form) of folding the whole log with the pure reducer."""
    return [event_json(e) for e in fold(Partition(), logged(client))]


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]
