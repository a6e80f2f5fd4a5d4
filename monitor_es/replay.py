"""Folding whole logs with the pure reducer: `simulate` (and, later, replay and audit)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from monitor_es.domain.events import DerivedEvent
from monitor_es.domain.partition import Limits, Partition
from monitor_es.domain.reducer import fold
from monitor_es.scenario import InvalidLine, split_scenario


@dataclass(frozen=True)
class Simulation:
    """A folded scenario: the final state, every derived event, the unreadable lines."""

    partition: Partition
    events: list[DerivedEvent]
    invalid: list[InvalidLine]


def simulate(lines: Iterable[str], limits: Limits | None = None) -> Simulation:
    """Folds a scenario file's lines as if every monitor shared one partition."""
    partition = Partition(limits)
    entries, invalid = split_scenario(lines)
    events = fold(partition, entries)
    return Simulation(partition, events, invalid)
