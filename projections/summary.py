"""The readable summary `monitor-es simulate FILE` prints without --json."""

from __future__ import annotations

import io
import sys
from collections import Counter
from collections.abc import Iterable
from typing import Any

import msgspec

from monitor_es.domain.state import Environment
from projections.report import Report


def print_summary(report: Report, environments: Iterable[Environment]) -> None:
    """A readable summary of a simulate document."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")  # any name prints, in any locale
    rows = report.environment_rows(environments)
    print(f"{len(rows)} environment(s)")
    for env in rows:
        name = f"{env['project']}/{env['monitor_slug']}/{env['environment']}"
        incident = env["incident"]
        notes = [env["status"]]
        if incident:
            notes.append(f"incident open since {incident['started_at']}")
        if env["muted"]:
            notes.append("muted")
        notes.append(f"next check-in {env['next_checkin'] or 'not expected'}")
        print(f"  {name}: " + ", ".join(notes))
    statuses = report.history.check_in_statuses()
    print(f"{sum(statuses.values())} check-in(s){_counted(statuses)}")
    incidents = report.history.incident_rows()
    print(f"{len(incidents)} incident(s)")
    for row in incidents:
        state = f"resolved {row['resolved_at']}" if row["resolved_at"] else "open"
        print(f"  {row['fingerprint']}: started {row['started_at']}, {state}")
    print(f"{sum(report.event_counts.values())} derived event(s){_counted(report.event_counts)}")
    rejected = report.rejected_rows()
    print(f"{len(rejected)} rejected line(s)")
    for row in rejected:
        types = ", ".join(str(e["type"]) for e in row["errors"])
        print(f"  line {row['line']} rejected: {types}")
        for error in row["errors"]:
            if len(error) > 1:
                print(f"    {_details(error)}")


def _counted(counts: Counter[str]) -> str:
    return ": " + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) if counts else ""


def _details(error: dict[str, Any]) -> str:
    """What an error says beyond its type: an invalid line's reason, a typed error's fields."""
    if set(error) == {"type", "message"}:
        return str(error["message"])
    rest = {key: value for key, value in error.items() if key != "type"}
    return f"{error['type']}: {msgspec.json.encode(rest).decode()}"
