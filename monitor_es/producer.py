"""The producer API: routes inbound events to their partition and appends them.

Used by the HTTP edge, the Python client and the CLI. A monitor's events all go to one
partition (stable crc32 of `project:slug`), so they are totally ordered; clock events
carry no monitor and go to every partition.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor_es.codec import InvalidEvent, encode_valid_event
from monitor_es.domain.config import slugify
from monitor_es.domain.events import ClockDecided, ClockPulsed, InboundEvent
from monitor_es.store.connection import Client
from monitor_es.store.deployment import require_deployment
from monitor_es.store.keys import partition_for
from monitor_es.store.log import append_many


def partitions_of(event: InboundEvent, partitions: int) -> list[int]:
    """The partitions an event is appended to."""
    if isinstance(event, ClockPulsed | ClockDecided):
        return list(range(partitions))
    return [partition_for(event.project, slugify(event.monitor_slug), partitions)]


class Producer:
    """Appends events to an initialised deployment (NOMKSTREAM: never creates streams)."""

    def __init__(self, client: Client, partitions: int | None = None) -> None:
        self.client = client
        self.partitions = partitions or require_deployment(client).partitions

    def append(self, event: InboundEvent) -> list[str]:
        """Appends one event with broker-assigned ids; returns the entry ids."""
        return self.append_all([event])

    def append_all(
        self, events: Sequence[InboundEvent], ids: Sequence[str] | None = None
    ) -> list[str]:
        """Appends events in one pipeline; `ids` (one per event) forces explicit entry ids.

        Raises InvalidEvent, before appending anything, if an event could not be read back
        from the log (a field of the wrong type): the caller learns it, not the dead letters.
        """
        items: list[tuple[int, bytes]] = []
        explicit: list[str] = []
        for n, event in enumerate(events):
            try:
                payload = encode_valid_event(event)
            except InvalidEvent as exc:
                raise InvalidEvent(f"event {n}: {exc}") from None
            for partition in partitions_of(event, self.partitions):
                items.append((partition, payload))
                if ids is not None:
                    explicit.append(ids[n])
        return append_many(self.client, items, explicit if ids is not None else None)
