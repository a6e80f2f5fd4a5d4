"""A deadline index: items filed under minute-aligned instants, popped once due.

Cheaper than a heap of every deadline ever set: filing is a dict append, and only the
distinct minutes sit in a (small) heap. Entries are never removed eagerly; the caller
checks, when they come due, that an item still has that deadline.
"""

from __future__ import annotations

import heapq
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")


class DeadlineIndex(Generic[T]):
    """Items by deadline; `pop_due` returns them in deadline order, oldest first."""

    def __init__(self) -> None:
        self._buckets: dict[datetime, list[T]] = {}
        self._minutes: list[datetime] = []

    def add(self, deadline: datetime, item: T) -> None:
        """Files an item under its deadline."""
        try:
            self._buckets[deadline].append(item)  # most deadlines share a bucket
        except KeyError:
            self._buckets[deadline] = [item]
            heapq.heappush(self._minutes, deadline)

    def pop_due(self, now: datetime) -> list[tuple[datetime, list[T]]]:
        """Removes and returns every bucket whose deadline is at or before `now`."""
        due: list[tuple[datetime, list[T]]] = []
        minutes = self._minutes
        while minutes and minutes[0] <= now:
            deadline = heapq.heappop(minutes)
            due.append((deadline, self._buckets.pop(deadline)))
        return due
