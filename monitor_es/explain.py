"""Explain: replay a partition's history and keep, for one environment, the chain of log
entries and the derived events they caused, so a person can see why it is in its status.

The replay is the audit's (archive, then log, up to the committed mark; what the workers
dead-lettered is skipped), entry by entry, so each derived event is tied to the entry that
caused it: a check-in of the environment, a configuration change of its monitor, or any
entry that moved the partition's clock past a deadline of the environment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from monitor_es.audit import folded_entries
from monitor_es.domain.config import DEFAULT_ENVIRONMENT, slugify
from monitor_es.domain.effects import Effects
from monitor_es.domain.events import CheckInReported, DerivedEvent, InboundEvent
from monitor_es.domain.partition import Limits, Partition
from monitor_es.domain.reducer import apply
from monitor_es.store.log import Entry


@dataclass(frozen=True)
class Step:
    """One log entry that concerned the environment, and what it derived about it."""

    entry_id: str
    ts: datetime
    event: InboundEvent
    own: bool  # the entry is about this monitor (else it only moved the clock)
    derived: list[DerivedEvent]


@dataclass(frozen=True)
class EnvKey:
    """The environment explained."""

    project: str
    monitor_slug: str
    environment: str

    @classmethod
    def parse(cls, text: str) -> EnvKey:
        """`project/monitor[/environment]` (production by default); the slug is slugified."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"not PROJECT/MONITOR or PROJECT/MONITOR/ENVIRONMENT: {text!r}")
        environment = parts[2] if len(parts) == 3 else DEFAULT_ENVIRONMENT
        return cls(parts[0], slugify(parts[1]), environment)


def explain(
    history: Iterable[Entry], skip: frozenset[str], limits: Limits, key: EnvKey
) -> tuple[list[Step], Partition]:
    """Replays the history; returns the steps about `key`, oldest first, and the state."""
    partition = Partition(limits)
    fx = Effects()
    steps: list[Step] = []
    for entry in folded_entries(history, skip):
        apply(partition, fx, entry)
        derived = [event for event in fx.events if _about(event, key)]
        fx.events.clear()  # ids go on from Effects' counters, as in simulate
        own = _own(entry.event, key)
        if derived or own:
            steps.append(Step(entry.id, entry.ts, entry.event, own, derived))
    return steps, partition


def _about(event: DerivedEvent, key: EnvKey) -> bool:
    """A derived event about the environment, or about its monitor as a whole."""
    return (
        getattr(event, "project", None) == key.project
        and getattr(event, "monitor_slug", None) == key.monitor_slug
        and getattr(event, "environment", key.environment) in (key.environment, None)
    )


def _own(event: InboundEvent, key: EnvKey) -> bool:
    """An entry sent about this monitor (a check-in only if for this environment)."""
    project, slug = getattr(event, "project", None), getattr(event, "monitor_slug", None)
    if project != key.project or not isinstance(slug, str) or slugify(slug) != key.monitor_slug:
        return False
    if isinstance(event, CheckInReported):
        name = event.environment if isinstance(event.environment, str) else None
        return (name or DEFAULT_ENVIRONMENT) == key.environment
    return True


def inbound_json(event: InboundEvent) -> dict[str, Any]:
    """An inbound event as the scenario form spells it: `type` and its fields."""
    data: dict[str, Any] = {"type": type(event).__struct_config__.tag}
    data.update(msgspec.to_builtins(event))
    return data
