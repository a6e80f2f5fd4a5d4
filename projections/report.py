"""The `simulate` document (domain.md): environments, check-ins, incidents, events, rejects.

Check-ins and incidents are read models folded from the derived events, exactly as a
projector folds the out stream, so the in-memory and Redis-backed simulations share it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from monitor_es.domain.events import (
    CheckInCreated,
    CheckInUpdated,
    DerivedEvent,
    EventRejected,
    IncidentOpened,
    IncidentResolved,
    event_json,
)
from monitor_es.domain.state import Environment
from monitor_es.domain.time import iso

_CHECKIN_FIELDS = (
    "project",
    "monitor_slug",
    "environment",
    "check_in_id",
    "status",
    "date_added",
    "date_updated",
    "expected_time",
    "timeout_at",
    "duration_ms",
)


def environment_row(env: Environment) -> dict[str, Any]:
    """One environment in the document's form."""
    incident = env.incident
    return {
        "project": env.project,
        "monitor_slug": env.monitor_slug,
        "environment": env.name,
        "status": env.status.value,
        "muted": env.muted,
        "last_checkin": iso(env.last_checkin),
        "next_checkin": iso(env.next_checkin),
        "next_checkin_latest": iso(env.next_checkin_latest),
        "incident": None
        if incident is None
        else {
            "id": incident.id,
            "starting_check_in_id": incident.starting_check_in_id,
            "started_at": iso(incident.started_at),
        },
    }


class History:
    """Check-ins and incidents in creation order, folded from derived events."""

    def __init__(self) -> None:
        self.check_ins: dict[tuple[str, str], dict[str, Any]] = {}
        self.incidents: dict[str, dict[str, Any]] = {}

    def apply(self, event: DerivedEvent) -> None:
        """Folds one derived event into the read models."""
        if isinstance(event, CheckInCreated | CheckInUpdated):
            row = {name: _json(getattr(event, name)) for name in _CHECKIN_FIELDS}
            self.check_ins[(event.project, event.check_in_id)] = row
        elif isinstance(event, IncidentOpened):
            self.incidents[event.incident_id] = {
                "id": event.incident_id,
                "project": event.project,
                "monitor_slug": event.monitor_slug,
                "environment": event.environment,
                "fingerprint": event.fingerprint[0],
                "starting_check_in_id": event.starting_check_in_id,
                "started_at": iso(event.started_at),
                "resolving_check_in_id": None,
                "resolved_at": None,
            }
        elif isinstance(event, IncidentResolved) and event.incident_id in self.incidents:
            row = self.incidents[event.incident_id]
            row["resolving_check_in_id"] = event.resolving_check_in_id
            row["resolved_at"] = iso(event.resolved_at)


def _json(value: Any) -> Any:
    return msgspec.to_builtins(value)


def build_report(
    environments: Iterable[Environment],
    events: list[DerivedEvent],
    invalid: Iterable[tuple[int, str]],
    line_of: Callable[[str], int],
) -> dict[str, Any]:
    """The full `simulate --json` document."""
    history = History()
    rejected: list[dict[str, Any]] = [
        {"line": line, "errors": [{"type": "invalid_event", "message": message}]}
        for line, message in invalid
    ]
    for event in events:
        history.apply(event)
        if isinstance(event, EventRejected):
            rejected.append({"line": line_of(event.entry_id), "errors": event.errors})
    rejected.sort(key=lambda row: int(row["line"]))
    envs = sorted(environments, key=lambda env: env.key)
    return {
        "environments": [environment_row(env) for env in envs],
        "check_ins": list(history.check_ins.values()),
        "incidents": list(history.incidents.values()),
        "events": [event_json(event) for event in events],
        "rejected": rejected,
    }
