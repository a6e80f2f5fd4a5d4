"""Follows the out streams and reports derived events as commits land (`run`'s console)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from monitor_es.codec import decode_out_entry
from monitor_es.domain.events import DerivedEvent, event_json
from monitor_es.store.connection import Client, as_text
from monitor_es.store.log import PartitionStore

# What a person watching the console cares about; check-in records would drown it.
NOTABLE = frozenset(
    {
        "monitor_created",
        "mark_missing",
        "mark_timeout",
        "incident_opened",
        "incident_resolved",
        "issue_occurrence",
        "issue_resolved",
        "event_rejected",
        "status_changed",
    }
)


def describe(event: DerivedEvent) -> str:
    """One line for a derived event."""
    data = event_json(event)
    names = ("project", "monitor_slug", "environment")
    where = "/".join(str(data[k]) for k in names if data.get(k))
    if data["type"] == "status_changed":
        detail = f"{data['previous']} -> {data['status']}"
    elif data["type"] == "issue_occurrence":
        detail = str(data["subtitle"])
    elif data["type"] == "event_rejected":
        detail = ", ".join(str(e["type"]) for e in data["errors"])
    else:
        detail = ""
    return f"{data['type']:<18} {where} {detail}".rstrip()


def follow(
    client: Client, partitions: int, stop: threading.Event, emit: Callable[[str], None] = print
) -> None:
    """Reports notable derived events of every partition until `stop` is set."""
    stores = [PartitionStore(client, p) for p in range(partitions)]
    cursors = [_last_id(store) for store in stores]
    while not stop.is_set():
        seen = False
        for n, store in enumerate(stores):
            # "(" makes the range exclusive: everything after the last entry reported.
            for entry_id, payload in store.read_out(start=f"({cursors[n]}", count=100):
                seen = True
                cursors[n] = entry_id
                for event in decode_out_entry(payload):
                    if type(event).__struct_config__.tag in NOTABLE:
                        emit(describe(event))
        if not seen:
            stop.wait(0.5)


def _last_id(store: PartitionStore) -> str:
    last = store.client.xrevrange(store.keys.out, count=1)
    return as_text(last[0][0]) if last else "0-0"
