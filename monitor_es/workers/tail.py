"""Follows the out streams and reports derived events as commits land (`run`'s console,
`monitor-es tail`)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from monitor_es.codec import decode_out_entry
from monitor_es.domain.events import DerivedEvent, event_json
from monitor_es.store.connection import UNAVAILABLE, Client, as_text
from monitor_es.store.log import PartitionStore
from monitor_es.workers.rounds import RETRY_MAX_S, backoff

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
# While every out stream is read to its end, the next look is this much later.
IDLE_S = 0.5
# Out entries (one committed batch each) read from one partition before the next one's turn.
_ROUND = 100


def is_notable(event: DerivedEvent) -> bool:
    """True for the events `run`'s console and `tail` show by default."""
    return type(event).__struct_config__.tag in NOTABLE


def describe(event: DerivedEvent) -> str:
    """One line for a derived event."""
    data = event_json(event)
    names = ("project", "monitor_slug", "environment")
    where = "/".join(str(data[k]) for k in names if data.get(k))
    return f"{data['type']:<18} {where} {_detail(data)}".rstrip()


def _detail(data: dict[str, object]) -> str:
    kind = data["type"]
    if kind == "status_changed":
        return f"{data['previous']} -> {data['status']}"
    if kind == "issue_occurrence":
        return str(data["subtitle"])
    if kind == "event_rejected":
        errors = data["errors"]
        assert isinstance(errors, list)
        return ", ".join(str(e["type"]) for e in errors)
    if kind == "incident_opened":
        return f"incident {data['incident_id']} started {data['started_at']}"
    if kind == "incident_resolved":
        return f"incident {data['incident_id']} resolved {data['resolved_at']}"
    if kind in {"mark_missing", "mark_timeout"}:
        return f"at {data['ts']}"
    return ""


class OutCursor:
    """A reader's place in every partition's out stream: from now on, or from the start."""

    def __init__(self, client: Client, partitions: int, *, from_start: bool = False) -> None:
        self.stores = [PartitionStore(client, p) for p in range(partitions)]
        self.positions = ["0-0" if from_start else _last_id(store) for store in self.stores]

    def read(self) -> list[DerivedEvent]:
        """The events committed past the cursor (a bounded round), moving the cursor past them.

        The cursor moves only when the whole round was read: a round that fails part-way
        (Redis went away) is read again in full, so no event is skipped.
        """
        events: list[DerivedEvent] = []
        positions = list(self.positions)
        for n, store in enumerate(self.stores):
            # "(" makes the range exclusive: everything after the last entry read.
            for entry_id, payload in store.read_out(start=f"({positions[n]}", count=_ROUND):
                positions[n] = entry_id
                events.extend(decode_out_entry(payload))
        self.positions = positions
        return events


# Called with the error and the wait before the next try while Redis cannot be read, then
# with (None, 0.0) once it can again.
Unavailable = Callable[[Exception | None, float], None]


def follow_events(
    cursor: OutCursor,
    stop: threading.Event,
    handle: Callable[[DerivedEvent], None],
    on_unavailable: Unavailable | None = None,
) -> None:
    """Hands every event committed past `cursor` to `handle`, in each partition's order,
    until `stop` is set.

    While Redis cannot be reached (a restart, a failover) it waits and tries again from the
    same place, so a follower sees every event once across the outage.
    """
    wait: float | None = None
    while not stop.is_set():
        try:
            events = cursor.read()
        except UNAVAILABLE as exc:
            wait = backoff(wait, RETRY_MAX_S)
            if on_unavailable is not None:
                on_unavailable(exc, wait)
            stop.wait(wait)
            continue
        if wait is not None:
            wait = None
            if on_unavailable is not None:
                on_unavailable(None, 0.0)
        for event in events:
            handle(event)
        if not events:
            stop.wait(IDLE_S)


def follow(cursor: OutCursor, stop: threading.Event, emit: Callable[[str], None] = print) -> None:
    """Reports notable derived events committed past `cursor` until `stop` is set."""

    def notable(event: DerivedEvent) -> None:
        if is_notable(event):
            emit(describe(event))

    follow_events(cursor, stop, notable)


def _last_id(store: PartitionStore) -> str:
    last = store.client.xrevrange(store.keys.out, count=1)
    return as_text(last[0][0]) if last else "0-0"
