"""Collects the derived events of a fold and gives each a deterministic id."""

from __future__ import annotations

from typing import Any, TypeVar

from monitor_es.domain.events import DerivedEvent

E = TypeVar("E", bound=DerivedEvent)


class Effects:
    """The fold's output list; ids are `<cause>#<n>`, numbered within one cause.

    A cause is a log entry id for what an entry did, or a tick plus an environment for
    what the clock did to that environment, so ids do not depend on how monitors are
    spread over partitions. A cause may be resumed (a tick returns to an environment for
    its timeouts after its misses): numbering continues, so ids never repeat.
    """

    def __init__(self) -> None:
        self.events: list[DerivedEvent] = []
        self._cause = ""
        self._n = 0  # events so far under the current cause
        self._counts: dict[str, int] = {}  # ... and under causes left earlier

    def clear(self) -> None:
        """Forgets every event and count (to fold the same entries again)."""
        self.events.clear()
        self._counts.clear()
        self._cause, self._n = "", 0

    def cause(self, cause: str) -> None:
        """Numbers the following events under this cause."""
        if cause != self._cause:
            self._counts[self._cause] = self._n
            self._cause, self._n = cause, self._counts.get(cause, 0)

    def emit(self, kind: type[E], **fields: Any) -> E:
        """Appends one derived event of the given kind."""
        event = kind(id=self.next_id(), **fields)
        self.events.append(event)
        return event

    def next_id(self) -> str:
        """The id of the next event of the current cause (for hot paths that build it)."""
        self._n += 1
        return f"{self._cause}#{self._n}"
