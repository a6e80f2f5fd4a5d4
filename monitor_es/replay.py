"""Folding whole logs with the pure reducer: `simulate` (and, later, replay and audit)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from monitor_es.domain.effects import Effects
from monitor_es.domain.events import DerivedEvent
from monitor_es.domain.partition import Limits, Partition
from monitor_es.domain.reducer import apply
from monitor_es.scenario import InvalidLine, line_of, read_scenario


@dataclass(frozen=True)
class Simulation:
    """A folded scenario: the final state, every derived event, the unreadable lines."""

    partition: Partition
    events: list[DerivedEvent]
    invalid: list[InvalidLine]


class ReducerFailed(Exception):
    """The reducer raised on a scenario line: a bug in monitor-es, not in the scenario."""

    def __init__(self, line: int, cause: Exception) -> None:
        super().__init__(f"line {line}: the reducer failed: {type(cause).__name__}: {cause}")
        self.line = line


def fold_scenario(
    partition: Partition, lines: Iterable[str | bytes]
) -> Iterator[DerivedEvent | InvalidLine]:
    """Folds a scenario line by line, yielding derived events and invalid lines in file order.

    Nothing is kept but the partition state, so a scenario of any length folds in the
    memory its state needs.
    """
    fx = Effects()
    for parsed in read_scenario(lines):
        if isinstance(parsed, InvalidLine):
            yield parsed
            continue
        try:
            apply(partition, fx, parsed)
        except Exception as exc:
            raise ReducerFailed(line_of(parsed.id), exc) from exc
        yield from fx.events
        fx.events.clear()  # ids go on from Effects' counters, not from this list


def simulate(lines: Iterable[str | bytes], limits: Limits | None = None) -> Simulation:
    """Folds a scenario file's lines as if every monitor shared one partition."""
    partition = Partition(limits)
    events: list[DerivedEvent] = []
    invalid: list[InvalidLine] = []
    for item in fold_scenario(partition, lines):
        if isinstance(item, InvalidLine):
            invalid.append(item)
        else:
            events.append(item)
    return Simulation(partition, events, invalid)
