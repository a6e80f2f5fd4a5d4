"""Collects the derived events of a fold and gives each a deterministic id."""

from __future__ import annotations

from typing import Any, TypeVar

from monitor_es.domain.events import DerivedEvent

E = TypeVar("E", bound=DerivedEvent)


class Effects:
    """The fold's output list; ids are `<cause>#<n>`, numbered within one cause.

    A cause is a log entry id for what an entry did, or a tick plus an environment for
    what the clock did to that environment, so ids do not depend on how monitors are
    spread over partitions.
    """

    def __init__(self) -> None:
        self.events: list[DerivedEvent] = []
        self._cause = ""
        self._n = 0

    def cause(self, cause: str) -> None:
        """Starts numbering the events of a new cause."""
        self._cause = cause
        self._n = 0

    def emit(self, kind: type[E], **fields: Any) -> E:
        """Appends one derived event of the given kind."""
        self._n += 1
        event = kind(id=f"{self._cause}#{self._n}", **fields)
        self.events.append(event)
        return event
