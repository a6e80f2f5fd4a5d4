"""The `simulate` document (domain.md): environments, check-ins, incidents, events, rejects.

Check-ins and incidents are read models folded from the derived events, exactly as a
projector folds the out stream, so the in-memory and Redis-backed simulations share it.
`Report` folds one event at a time, so the command can stream a scenario of any length:
only the read models stay in memory, and the events go to a spool file on their way out.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, Final

import msgspec

from monitor_es.domain.events import (
    CheckInCreated,
    CheckInUpdated,
    DerivedEvent,
    EventRejected,
    IncidentOpened,
    IncidentResolved,
    MonitorRemoved,
    event_json,
)
from monitor_es.domain.state import Environment
from monitor_es.domain.time import iso

_CHECKIN_FIELDS: Final = (
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
_INDENT: Final = 2  # msgspec.json.format's indent, which the old whole-document output used
_CLOSE: Final = b"\n  ]"


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


def check_in_row(event: CheckInCreated | CheckInUpdated) -> dict[str, Any]:
    """A check-in as its latest created/updated event left it, in the document's form."""
    return {name: msgspec.to_builtins(getattr(event, name)) for name in _CHECKIN_FIELDS}


class History:
    """Check-ins and incidents in creation order, folded from derived events."""

    def __init__(self) -> None:
        # The latest event of each check-in: a compact struct, turned into a row on output.
        self.latest: dict[tuple[str, str], CheckInCreated | CheckInUpdated] = {}
        self.incidents: dict[str, dict[str, Any]] = {}

    def check_in_rows(self) -> Iterator[dict[str, Any]]:
        """Every check-in row, in creation order."""
        return map(check_in_row, self.latest.values())

    def check_in_statuses(self) -> Counter[str]:
        """How many check-ins end in each status."""
        return Counter(str(event.status) for event in self.latest.values())

    def incident_rows(self) -> list[dict[str, Any]]:
        """Every incident row, in creation order."""
        return list(self.incidents.values())

    def apply(self, event: DerivedEvent) -> None:
        """Folds one derived event into the read models."""
        if isinstance(event, CheckInCreated | CheckInUpdated):
            self.latest[(event.project, event.check_in_id)] = event
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
        elif isinstance(event, MonitorRemoved):
            self._forget(event.project, event.monitor_slug)

    def _forget(self, project: str, monitor_slug: str) -> None:
        """A deleted monitor takes its check-ins and incidents with it, as Sentry's deletion
        does: no open incident is left for an environment that no longer exists, and a
        recreated monitor starts a new history (rare: a scan is fine)."""
        self.latest = {
            key: event
            for key, event in self.latest.items()
            if event.project != project or event.monitor_slug != monitor_slug
        }
        self.incidents = {
            key: row
            for key, row in self.incidents.items()
            if row["project"] != project or row["monitor_slug"] != monitor_slug
        }


class EventSpool:
    """The `events` section on its way out, in a file: each event in its indented form."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file
        self.count = 0

    def add(self, event: DerivedEvent) -> None:
        """Writes one event, indented as an item of a top-level list."""
        if self.count:
            self.file.write(b",\n")
        self.file.write(_item(msgspec.json.encode(event_json(event))))
        self.count += 1


class Report:
    """The document folded one derived event (or invalid line) at a time."""

    def __init__(self, line_of: Callable[[str], int], spool: EventSpool | None = None) -> None:
        self.line_of = line_of
        self.history = History()
        self.rejected: list[dict[str, Any]] = []
        self.event_counts: Counter[str] = Counter()
        self.spool = spool

    def add_event(self, event: DerivedEvent) -> None:
        """Folds one derived event (and spools it, if the events are written out)."""
        self.history.apply(event)
        self.event_counts[str(type(event).__struct_config__.tag)] += 1
        if isinstance(event, EventRejected):
            self.rejected.append({"line": self.line_of(event.entry_id), "errors": event.errors})
        if self.spool is not None:
            self.spool.add(event)

    def add_invalid(self, line: int, message: str) -> None:
        """Records a line that is not an event."""
        self.rejected.append(
            {"line": line, "errors": [{"type": "invalid_event", "message": message}]}
        )

    def environment_rows(self, environments: Iterable[Environment]) -> list[dict[str, Any]]:
        """The environments section: sorted by (project, monitor_slug, environment)."""
        return [environment_row(env) for env in sorted(environments, key=lambda env: env.key)]

    def rejected_rows(self) -> list[dict[str, Any]]:
        """The rejected section, by line (a line has one row)."""
        return sorted(self.rejected, key=lambda row: int(row["line"]))

    def write_json(self, out: IO[bytes], environments: Iterable[Environment]) -> None:
        """Writes the whole document as indented JSON, events copied from the spool."""
        if self.spool is None:
            raise ValueError("write_json needs a report that spooled its events")
        out.write(b'{\n  "environments": ')
        _write_list(out, self.environment_rows(environments))
        out.write(b',\n  "check_ins": ')
        _write_list(out, self.history.check_in_rows())
        out.write(b',\n  "incidents": ')
        _write_list(out, self.history.incident_rows())
        out.write(b',\n  "events": ')
        _write_events(out, self.spool)
        out.write(b',\n  "rejected": ')
        _write_list(out, self.rejected_rows())
        out.write(b"\n}\n")


def _item(encoded: bytes) -> bytes:
    """One JSON value indented as an item of a top-level list (two levels deep)."""
    formatted = msgspec.json.format(encoded, indent=_INDENT)
    pad = b" " * (2 * _INDENT)
    return pad + formatted.replace(b"\n", b"\n" + pad)


def _write_list(out: IO[bytes], items: Iterable[dict[str, Any]]) -> None:
    empty = True
    for item in items:
        out.write(b",\n" if not empty else b"[\n")
        out.write(_item(msgspec.json.encode(item)))
        empty = False
    out.write(b"[]" if empty else _CLOSE)


def _write_events(out: IO[bytes], spool: EventSpool) -> None:
    if not spool.count:
        out.write(b"[]")
        return
    out.write(b"[\n")
    spool.file.flush()
    spool.file.seek(0)
    shutil.copyfileobj(spool.file, out)
    out.write(_CLOSE)


def build_report(
    environments: Iterable[Environment],
    events: list[DerivedEvent],
    invalid: Iterable[tuple[int, str]],
    line_of: Callable[[str], int],
) -> dict[str, Any]:
    """The full `simulate --json` document."""
    report = Report(line_of)
    for line, message in invalid:
        report.add_invalid(line, message)
    for event in events:
        report.add_event(event)
    return {
        "environments": report.environment_rows(environments),
        "check_ins": list(report.history.check_in_rows()),
        "incidents": report.history.incident_rows(),
        "events": [event_json(event) for event in events],
        "rejected": report.rejected_rows(),
    }
