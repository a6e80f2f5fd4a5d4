"""Black-box judge: scenario files run through `monitor-es simulate FILE --json`.

Every expectation below was written from shared/spec/crons-behaviour.md and
shared/design/domain.md alone, before the scenario was first run; where a first
expectation turned out to misread the spec, the comment at the assertion says why.
Generated ids (missed check-ins, zero-GUID check-ins, incidents) are not predicted: they
are taken from the document and checked for consistency (the same id everywhere it
appears), everything else is compared field by field.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

_SCRIPT = Path(sys.executable).with_name("monitor-es")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "monitor_es.cli"]
SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
CONTRACT = ("incident_opened", "incident_resolved", "issue_occurrence", "issue_resolved")
P = "acme"

Doc = dict[str, Any]
Row = dict[str, Any]


def simulate(name: str, *flags: str, prefix: str = "blackbox_") -> Doc:
    """The `simulate FILE --json` document of `<prefix><name>.jsonl`, run as a user runs it."""
    return run_simulate([str(SCENARIOS / f"{prefix}{name}.jsonl"), "--json", *flags])


def simulate_lines(lines: list[dict[str, Any]]) -> Doc:
    """The `simulate - --json` document of scenario lines given on standard input."""
    return run_simulate(["-", "--json"], "\n".join(json.dumps(line) for line in lines) + "\n")


def run_simulate(arguments: list[str], stdin: str | None = None) -> Doc:
    """Runs `monitor-es simulate` (no Redis URL, whatever the environment says)."""
    environ = {k: v for k, v in os.environ.items() if k != "MONITOR_ES_REDIS_URL"}
    done = subprocess.run(
        [*CLI, "simulate", *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    document: Doc = json.loads(done.stdout)
    return document


def events_of(doc: Doc, kind: str, slug: str | None = None) -> list[Row]:
    """The derived events of one type (of one monitor), in order."""
    return [
        e
        for e in doc["events"]
        if e["type"] == kind and (slug is None or e.get("monitor_slug") == slug)
    ]


def t(clock: str, day: str = "2024-05-01") -> str:
    """`"10:00:05"` → `"2024-05-01T10:00:05Z"`; full instants pass through."""
    return clock if "T" in clock else f"{day}T{clock}Z"


def maybe_t(clock: str | None) -> str | None:
    return None if clock is None else t(clock)


def cid(prefix: str, n: int) -> str:
    """A readable scenario id: `cid("e1", 2)` is `e1000000-0000-4000-8000-000000000002`."""
    return f"{prefix:0<8}-0000-4000-8000-{n:012d}"


def fp(slug: str, environment: str = "production") -> str:
    return f"crons:{P}/{slug}/{environment}"


def env(  # noqa: PLR0917 (a table row, read positionally)
    slug: str,
    status: str,
    last: str | None,
    nxt: str | None,
    latest: str | None,
    incident: Row | None = None,
    *,
    environment: str = "production",
    muted: bool = False,
) -> Row:
    return {
        "project": P,
        "monitor_slug": slug,
        "environment": environment,
        "status": status,
        "muted": muted,
        "last_checkin": maybe_t(last),
        "next_checkin": maybe_t(nxt),
        "next_checkin_latest": maybe_t(latest),
        "incident": incident,
    }


def open_incident(incident: Row) -> Row:
    """The `incident` field of an environment row for an open incident row."""
    return {
        "id": incident["id"],
        "starting_check_in_id": incident["starting_check_in_id"],
        "started_at": incident["started_at"],
    }


def ci(  # noqa: PLR0917 (a table row, read positionally)
    slug: str,
    check_in_id: str,
    status: str,
    added: str,
    updated: str,
    expected: str | None,
    timeout_at: str | None,
    duration_ms: int | None,
    *,
    environment: str = "production",
) -> Row:
    return {
        "project": P,
        "monitor_slug": slug,
        "environment": environment,
        "check_in_id": check_in_id,
        "status": status,
        "date_added": t(added),
        "date_updated": t(updated),
        "expected_time": maybe_t(expected),
        "timeout_at": maybe_t(timeout_at),
        "duration_ms": duration_ms,
    }


def incident(  # noqa: PLR0917 (a table row, read positionally)
    incident_id: str,
    slug: str,
    starting: str,
    started: str,
    resolving: str | None = None,
    resolved: str | None = None,
    *,
    environment: str = "production",
) -> Row:
    return {
        "id": incident_id,
        "project": P,
        "monitor_slug": slug,
        "environment": environment,
        "fingerprint": fp(slug, environment),
        "starting_check_in_id": starting,
        "started_at": t(started),
        "resolving_check_in_id": resolving,
        "resolved_at": maybe_t(resolved),
    }


def opened(inc: Row) -> Row:
    return {
        "type": "incident_opened",
        "incident_id": inc["id"],
        "project": inc["project"],
        "monitor_slug": inc["monitor_slug"],
        "environment": inc["environment"],
        "fingerprint": [inc["fingerprint"]],
        "starting_check_in_id": inc["starting_check_in_id"],
        "started_at": inc["started_at"],
    }


def resolved(inc: Row) -> Row:
    return {
        **opened(inc),
        "type": "incident_resolved",
        "resolving_check_in_id": inc["resolving_check_in_id"],
        "resolved_at": inc["resolved_at"],
    }


def issue_resolved(inc: Row) -> Row:
    return {
        "type": "issue_resolved",
        "fingerprint": [inc["fingerprint"]],
        "incident_id": inc["id"],
        "update_date": inc["resolved_at"],
    }


OCCURRENCE_KEYS = (
    "type",
    "fingerprint",
    "incident_id",
    "failed_check_in_id",
    "issue_title",
    "subtitle",
    "level",
    "detection_time",
    "environment",
)


def occurrence(  # noqa: PLR0917 (a table row, read positionally)
    inc: Row, failed: str, detection: str, reason: str, last_ok: str | None, name: str
) -> Row:
    return {
        "type": "issue_occurrence",
        "fingerprint": [inc["fingerprint"]],
        "incident_id": inc["id"],
        "failed_check_in_id": failed,
        "issue_title": f"Cron failure: {name}",
        "subtitle": f"Your monitor is failing: {reason}.",
        "level": "error",
        "detection_time": t(detection),
        "environment": inc["environment"],
        # Spec §5.2 evidence_display: reason, environment, newest ok's date_added or Never.
        "evidence": [
            ("Failure reason", reason, True),
            ("Environment", inc["environment"], False),
            ("Last successful check-in", "Never" if last_ok is None else t(last_ok), False),
        ],
    }


def contract_events(doc: Doc) -> list[Row]:
    """The four contract events in order; occurrences reduced to their contract fields
    plus the evidence as (name, value, important) triples."""
    out: list[Row] = []
    for event in doc["events"]:
        if event["type"] not in CONTRACT:
            continue
        if event["type"] == "issue_occurrence":
            row = {k: event.get(k) for k in OCCURRENCE_KEYS}
            row["evidence"] = [
                (e["name"], e["value"], e["important"]) for e in event.get("evidence_display", [])
            ]
            out.append(row)
        elif event["type"] == "issue_resolved":
            # domain.md lists fingerprint, incident_id, update_date; monitor-es adds the
            # environment's project/slug/name, which the contract does not forbid.
            out.append({k: event[k] for k in ("type", "fingerprint", "incident_id", "update_date")})
        else:
            out.append({k: v for k, v in event.items() if k != "id"})
    return out


def rejected_types(doc: Doc) -> list[tuple[int, list[str]]]:
    return [(r["line"], [e["type"] for e in r["errors"]]) for r in doc["rejected"]]


def line_of(name: str, marker: str) -> int:
    lines = (SCENARIOS / f"blackbox_{name}.jsonl").read_text(encoding="utf-8").splitlines()
    found = [n for n, text in enumerate(lines, 1) if marker in text and not text.startswith("#")]
    assert len(found) == 1, (marker, found)
    return found[0]


def generated_id(row: Row) -> str:
    """A generated check-in id is a canonical UUID, never the zero GUID."""
    value = row["check_in_id"]
    assert str(uuid.UUID(value)) == value and value != str(uuid.UUID(int=0))
    assert isinstance(value, str)
    return value


MISSED = "A missed check-in was detected"
TIMEOUT = "A timeout check-in was detected"
ERROR = "An error check-in was detected"


def missed_of(doc: Doc, slug: str) -> list[Row]:
    """A monitor's missed check-in rows, in creation order."""
    return [r for r in doc["check_ins"] if r["monitor_slug"] == slug and r["status"] == "missed"]


def dates(rows: list[Row]) -> list[str]:
    """date_added of missed rows, each also its date_updated and expected_time (§4.1)."""
    for row in rows:
        assert row["date_updated"] == row["expected_time"] == row["date_added"], row
        assert row["timeout_at"] is None and row["duration_ms"] is None
        generated_id(row)
    return [row["date_added"] for row in rows]


# 1 ------------------------------------------------------------------------------------


def test_a_job_that_runs_fine() -> None:
    doc = simulate("fine_job")
    a, b = cid("a", 1), cid("a", 2)
    # The first in_progress leaves the new environment pending; its ok sets ok and the
    # computed duration abs(10:02:35 - 10:00:05) = 150 s. next is from the message time.
    assert doc["environments"] == [env("fine", "ok", "11:00:10", "12:00:00", "12:01:00")]
    assert doc["check_ins"] == [
        ci("fine", a, "ok", "10:00:05", "10:02:35", None, None, 150_000),
        ci("fine", b, "ok", "11:00:10", "11:01:10", "11:00:00", None, 59_500),
    ]
    assert doc["incidents"] == []
    assert contract_events(doc) == []
    assert doc["rejected"] == []


# 2 ------------------------------------------------------------------------------------


def test_a_missed_run_is_dated_at_its_expected_time() -> None:
    doc = simulate("missed")
    s = "blackbox-missed"
    c1, c2 = cid("b", 1), cid("b", 2)
    rows = doc["check_ins"]
    assert len(rows) == 4
    m1, m2 = generated_id(rows[1]), generated_id(rows[3])
    assert rows == [
        ci(s, c1, "ok", "12:00:30", "12:00:30", None, None, None),
        ci(s, m1, "missed", "12:05:00", "12:05:00", "12:05:00", None, None),
        # expected_time is the environment's next_checkin when the ok arrived: 12:10.
        ci(s, c2, "ok", "12:07:10", "12:07:10", "12:10:00", None, None),
        ci(s, m2, "missed", "12:10:00", "12:10:00", "12:10:00", None, None),
    ]
    i1, i2 = (r["id"] for r in doc["incidents"])
    inc1 = incident(i1, s, m1, "12:05:00", c2, "12:07:10")
    inc2 = incident(i2, s, m2, "12:10:00")
    assert doc["incidents"] == [inc1, inc2]
    assert doc["environments"] == [
        env(s, "missed", "12:07:10", "12:15:00", "12:16:00", open_incident(inc2))
    ]
    reason = "A missed check-in was detected"
    assert contract_events(doc) == [
        opened(inc1),
        occurrence(inc1, m1, "12:05:00", reason, "12:00:30", s),
        resolved(inc1),
        issue_resolved(inc1),
        opened(inc2),
        occurrence(inc2, m2, "12:10:00", reason, "12:07:10", s),
    ]
    assert doc["rejected"] == []


# 3 ------------------------------------------------------------------------------------


def test_margins_and_a_check_in_at_the_latest_minute() -> None:
    doc = simulate("margin")
    rows = doc["check_ins"]
    assert len(rows) == 5
    edge_missed, margin_missed = generated_id(rows[2]), generated_id(rows[4])
    assert rows == [
        ci("margin", cid("c", 1), "ok", "12:15:00", "12:15:00", None, None, None),
        ci("edge", cid("c", 2), "ok", "12:15:30", "12:15:30", None, None, None),
        # The tick of 12:17 runs before the 12:17:00 check-in: latest 12:17 <= 12:17.
        ci("edge", edge_missed, "missed", "12:16:00", "12:16:00", "12:16:00", None, None),
        ci("edge", cid("c", 3), "ok", "12:17:00", "12:17:00", "2024-05-02T12:16:00Z", None, None),
        # C-4: margin 10 on */5: missed at the 12:30 tick for 12:20; next is 12:30.
        ci("margin", margin_missed, "missed", "12:20:00", "12:20:00", "12:20:00", None, None),
    ]
    ie, im = (r["id"] for r in doc["incidents"])
    inc_edge = incident(ie, "edge", edge_missed, "12:16:00", cid("c", 3), "12:17:00")
    inc_margin = incident(im, "margin", margin_missed, "12:20:00")
    assert doc["incidents"] == [inc_edge, inc_margin]
    assert doc["environments"] == [
        env("edge", "ok", "12:17:00", "2024-05-02T12:16:00Z", "2024-05-02T12:17:00Z"),
        env("margin", "missed", "12:15:00", "12:30:00", "12:40:00", open_incident(inc_margin)),
    ]
    reason = "A missed check-in was detected"
    assert contract_events(doc) == [
        opened(inc_edge),
        occurrence(inc_edge, edge_missed, "12:16:00", reason, "12:15:30", "edge"),
        resolved(inc_edge),
        issue_resolved(inc_edge),
        opened(inc_margin),
        occurrence(inc_margin, margin_missed, "12:20:00", reason, "12:15:00", "margin"),
    ]


# 4 ------------------------------------------------------------------------------------


def test_a_timeout_stays_timeout_after_a_late_close() -> None:
    doc = simulate("timeout")
    d1, d2 = cid("d", 1), cid("d", 2)
    assert doc["check_ins"] == [
        # Late ok: status stays timeout, duration abs(10:25:00 - 10:00:40), timeout_at null.
        ci("timeout", d1, "timeout", "10:00:40", "10:25:00", None, None, 1_460_000),
        ci("timeout", d2, "timeout", "11:00:30", "11:00:30", "11:00:00", "11:20:00", None),
    ]
    (i1,) = (r["id"] for r in doc["incidents"])
    inc = incident(i1, "timeout", d1, "10:00:40")
    assert doc["incidents"] == [inc]
    # A timeout does not move next_checkin; the late close and the second run do.
    assert doc["environments"] == [
        env("timeout", "timeout", "11:00:30", "12:00:00", "12:01:00", open_incident(inc))
    ]
    reason = "A timeout check-in was detected"
    assert contract_events(doc) == [
        opened(inc),
        occurrence(inc, d1, "10:00:40", reason, None, "timeout"),
        occurrence(inc, d2, "11:00:30", reason, None, "timeout"),
    ]


# 5 ------------------------------------------------------------------------------------


def test_failure_and_recovery_thresholds() -> None:
    doc = simulate("thresholds")
    s = "thresholds"
    e = [cid("e", n) for n in range(1, 6)]
    rows = doc["check_ins"]
    assert len(rows) == 6
    missed = generated_id(rows[5])
    assert rows == [
        ci(s, e[0], "error", "09:00:00", "09:00:00", None, None, None),
        ci(s, e[1], "error", "09:30:00", "09:30:00", "09:30:00", None, None),
        ci(s, e[2], "ok", "10:00:00", "10:00:00", "10:00:00", None, None),
        ci(s, e[3], "ok", "10:30:00", "10:30:00", "10:30:00", None, None),
        ci(s, e[4], "error", "11:00:00", "11:00:00", "11:00:00", None, None),
        ci(s, missed, "missed", "11:30:00", "11:30:00", "11:30:00", None, None),
    ]
    i1, i2 = (r["id"] for r in doc["incidents"])
    # Domain difference 1: the first error of a new environment opens nothing with N=2.
    inc1 = incident(i1, s, e[0], "09:00:00", e[3], "10:30:00")
    inc2 = incident(i2, s, e[4], "11:00:00")
    assert doc["incidents"] == [inc1, inc2]
    assert doc["environments"] == [
        env(s, "missed", "11:00:00", "12:00:00", "12:01:00", open_incident(inc2))
    ]
    two_errors = "2 error check-ins detected"
    mixed = "1 error and 1 missed check-ins detected"
    assert contract_events(doc) == [
        opened(inc1),
        occurrence(inc1, e[0], "09:00:00", two_errors, None, s),
        occurrence(inc1, e[1], "09:30:00", two_errors, None, s),
        resolved(inc1),
        issue_resolved(inc1),
        opened(inc2),
        occurrence(inc2, e[4], "11:00:00", mixed, "10:30:00", s),
        occurrence(inc2, missed, "11:30:00", mixed, "10:30:00", s),
    ]


# 6 ------------------------------------------------------------------------------------


def test_muting_suppresses_issue_occurrences_only() -> None:
    doc = simulate("mute")
    s = "muted"
    f = [cid("f", n) for n in range(1, 7)]
    assert doc["check_ins"] == [
        ci(s, f[0], "ok", "08:00:00", "08:00:00", None, None, None),
        ci(s, f[1], "ok", "08:00:10", "08:00:10", None, None, None, environment="staging"),
        ci(s, f[2], "error", "08:10:00", "08:10:00", "09:00:00", None, None),
        ci(s, f[3], "ok", "08:20:00", "08:20:00", "09:00:00", None, None),
        ci(s, f[4], "ok", "08:30:00", "08:30:00", None, None, None, environment="canary"),
        ci(s, f[5], "error", "08:50:00", "08:50:00", "09:00:00", None, None, environment="staging"),
    ]
    i1, i2 = (r["id"] for r in doc["incidents"])
    inc1 = incident(i1, s, f[2], "08:10:00", f[3], "08:20:00")
    inc2 = incident(i2, s, f[5], "08:50:00", environment="staging")
    assert doc["incidents"] == [inc1, inc2]
    assert doc["environments"] == [
        env(s, "ok", "08:30:00", "09:00:00", "09:01:00", environment="canary", muted=True),
        env(s, "ok", "08:20:00", "09:00:00", "09:01:00", muted=True),
        env(
            s,
            "failed",
            "08:50:00",
            "09:00:00",
            "09:01:00",
            open_incident(inc2),
            environment="staging",
        ),
    ]
    # Muted production: incident_opened/resolved, but no occurrence and no issue_resolved.
    assert contract_events(doc) == [
        opened(inc1),
        resolved(inc1),
        opened(inc2),
        occurrence(inc2, f[5], "08:50:00", "An error check-in was detected", "08:00:10", s),
    ]


# 7 ------------------------------------------------------------------------------------


def test_disabling_and_re_enabling() -> None:
    doc = simulate("disable")
    s = "disabled"
    assert rejected_types(doc) == [(line_of("disable", "10:20:00"), ["monitor_disabled"])]
    rows = doc["check_ins"]
    assert len(rows) == 3
    missed = generated_id(rows[2])
    assert rows == [
        ci(s, cid("1", 1), "ok", "10:00:00", "10:00:00", None, None, None),
        # Disabled monitors still time out (spec §1.3).
        ci(s, cid("1", 2), "timeout", "10:05:00", "10:05:00", "10:10:00", "10:35:00", None),
        # Re-enabled at 10:40: next 10:50, missed at the 10:51 tick; no miss for 10:10-10:40.
        ci(s, missed, "missed", "10:50:00", "10:50:00", "10:50:00", None, None),
    ]
    # First expectation: the timeout while disabled opens the incident. But spec §4.3
    # leaves a disabled monitor's environments out of the incident logic ("any other
    # status (disabled/deleting) → return False"): the timeout sets the status only, and
    # the incident opens with the miss after re-enabling.
    (i1,) = (r["id"] for r in doc["incidents"])
    inc = incident(i1, s, missed, "10:50:00")
    assert doc["incidents"] == [inc]
    assert doc["environments"] == [
        env(s, "missed", "10:05:00", "11:00:00", "11:01:00", open_incident(inc))
    ]
    assert contract_events(doc) == [
        opened(inc),
        occurrence(inc, missed, "10:50:00", "A missed check-in was detected", "10:00:00", s),
    ]


# 8 ------------------------------------------------------------------------------------


def test_monitor_configured_edits_margin_runtime_and_schedule() -> None:
    doc = simulate("config_edit")
    s = "edited"
    # The max_runtime edit moved timeout_at from 10:40 to 11:10, so the run did not time
    # out; the margin edit (5) and the schedule edit (*/20 from 10:30: 10:40, latest
    # 10:45) meant no miss at the 10:41 tick. The close at 10:44 sets next 11:00.
    assert doc["check_ins"] == [
        ci(s, cid("2", 1), "ok", "10:10:20", "10:44:00", None, None, 2_020_000),
    ]
    assert doc["incidents"] == []
    assert doc["environments"] == [env(s, "ok", "10:10:20", "11:00:00", "11:05:00")]
    assert contract_events(doc) == []
    assert doc["rejected"] == []


# 9 ------------------------------------------------------------------------------------


def test_deleting_a_monitor() -> None:
    doc = simulate("delete")
    assert rejected_types(doc) == [(line_of("delete", "10:31:00"), ["monitor_not_found"])]
    rows = doc["check_ins"]
    assert len(rows) == 3
    missed = generated_id(rows[1])
    # The deleted monitor's environment and check-ins are gone; the upsert recreates it
    # from nothing (first check-in: no expected_time).
    assert rows == [
        ci("kept", cid("3", 2), "ok", "10:00:30", "10:00:30", None, None, None),
        ci("kept", missed, "missed", "11:00:00", "11:00:00", "11:00:00", None, None),
        ci("doomed", cid("3", 4), "ok", "11:02:00", "11:02:00", None, None, None),
    ]
    (i1,) = (r["id"] for r in doc["incidents"])
    inc = incident(i1, "kept", missed, "11:00:00")
    assert doc["incidents"] == [inc]
    assert doc["environments"] == [
        env("doomed", "ok", "11:02:00", "12:00:00", "12:01:00"),
        env("kept", "missed", "10:00:30", "12:00:00", "12:01:00", open_incident(inc)),
    ]


# 10 -----------------------------------------------------------------------------------


def test_heartbeats_and_the_zero_guid() -> None:
    doc = simulate("zero_guid_heartbeat")
    s = "heartbeat"
    rows = doc["check_ins"]
    assert len(rows) == 2
    fresh = generated_id(rows[1])
    assert fresh != cid("4", 1)
    # Heartbeats moved timeout_at to 10:18 then 10:25 (max_runtime 10), so the run never
    # timed out; the zero-GUID ok closed it with the computed duration (heartbeats set
    # none); the next zero-GUID ok found no open run and created a new check-in.
    assert rows == [
        ci(s, cid("4", 1), "ok", "10:00:10", "10:20:00", None, None, 1_190_000),
        ci(s, fresh, "ok", "10:30:00", "10:30:00", "11:00:00", None, None),
    ]
    assert doc["incidents"] == []
    assert doc["environments"] == [env(s, "ok", "10:30:00", "11:00:00", "11:01:00")]
    assert contract_events(doc) == []
    assert doc["rejected"] == []


# 11 -----------------------------------------------------------------------------------


def test_rate_limit_per_environment_and_broker_minute() -> None:
    doc = simulate("rate_limit")
    s = "limited"
    assert rejected_types(doc) == [
        (line_of("rate_limit", "10:00:07"), ["monitor_environment_ratelimited"])
    ]
    expected = [ci(s, cid("5", 1), "ok", "10:00:01", "10:00:01", None, None, None)]
    for n in range(2, 7):
        ts = f"10:00:0{n}"
        expected.append(ci(s, cid("5", n), "ok", ts, ts, "11:00:00", None, None))
    expected.append(
        ci(s, cid("5", 8), "ok", "10:00:08", "10:00:08", None, None, None, environment="staging")
    )
    expected.append(ci(s, cid("5", 9), "ok", "10:01:00", "10:01:00", "11:00:00", None, None))
    assert doc["check_ins"] == expected
    assert doc["environments"] == [
        env(s, "ok", "10:01:00", "11:00:00", "11:01:00"),
        env(s, "ok", "10:00:08", "11:00:00", "11:01:00", environment="staging"),
    ]


# 12 -----------------------------------------------------------------------------------


def test_interval_schedules() -> None:
    doc = simulate("interval")
    rows = doc["check_ins"]
    assert len(rows) == 4
    missed = generated_id(rows[2])
    assert rows == [
        ci("every2h", cid("6", 1), "ok", "05:30:20", "05:30:20", None, None, None),
        ci("monthly", cid("6", 2), "ok", "05:31:00", "05:31:00", None, None, None),
        ci("every2h", missed, "missed", "07:30:00", "07:30:00", "07:30:00", None, None),
        ci("every2h", cid("6", 3), "ok", "07:40:00", "07:40:00", "09:30:00", None, None),
    ]
    (i1,) = (r["id"] for r in doc["incidents"])
    inc = incident(i1, "every2h", missed, "07:30:00", cid("6", 3), "07:40:00")
    assert doc["incidents"] == [inc]
    assert doc["environments"] == [
        env("every2h", "ok", "07:40:00", "09:40:00", "09:41:00"),
        env("monthly", "ok", "05:31:00", "2024-06-01T05:31:00Z", "2024-06-01T05:32:00Z"),
    ]


# 13 -----------------------------------------------------------------------------------


def test_a_fixed_time_job_across_spring_forward() -> None:
    doc = simulate("dst")
    s = "berlin"
    rows = doc["check_ins"]
    assert len(rows) == 3
    missed = generated_id(rows[2])
    # 02:30 Berlin does not exist on 2024-03-31: the job is due right after the skipped
    # hour, 03:00 CEST = 01:00Z (domain.md difference 4).
    assert rows == [
        ci(s, cid("7", 1), "ok", "2024-03-30T01:30:00Z", "2024-03-30T01:30:00Z", None, None, None),
        ci(
            s,
            cid("7", 2),
            "ok",
            "2024-03-31T01:00:30Z",
            "2024-03-31T01:00:30Z",
            "2024-03-31T01:00:00Z",
            None,
            None,
        ),
        ci(
            s,
            missed,
            "missed",
            "2024-04-01T00:30:00Z",
            "2024-04-01T00:30:00Z",
            "2024-04-01T00:30:00Z",
            None,
            None,
        ),
    ]
    (i1,) = (r["id"] for r in doc["incidents"])
    inc = incident(i1, s, missed, "2024-04-01T00:30:00Z")
    assert doc["incidents"] == [inc]
    assert doc["environments"] == [
        env(
            s,
            "missed",
            "2024-03-31T01:00:30Z",
            "2024-04-02T00:30:00Z",
            "2024-04-02T00:31:00Z",
            open_incident(inc),
        )
    ]


# 14 -----------------------------------------------------------------------------------


def test_rejected_lines() -> None:
    name = "rejections"
    doc = simulate(name)
    assert rejected_types(doc) == [
        (line_of(name, "{not json"), ["invalid_event"]),
        (line_of(name, "not-a-uuid"), ["checkin_invalid_guid"]),
        (line_of(name, '"done"'), ["checkin_validation_failed"]),
        (line_of(name, "10:01:00"), ["checkin_finished"]),
        (line_of(name, "10:01:10"), ["checkin_environment_mismatch"]),
        (line_of(name, "10:01:20"), ["checkin_validation_failed"]),
        (line_of(name, "frobnicate"), ["invalid_event"]),
        (line_of(name, "10:01:40"), ["invalid_event"]),
    ]
    s = "rej"
    g1, g5 = cid("8", 1), cid("8", 5)
    # A 32-hex id names the same check-in as its dashed form (domain.md: check-in ids).
    assert doc["check_ins"] == [
        ci(s, g1, "ok", "10:00:00", "10:00:00", None, None, None),
        ci(s, g5, "error", "10:05:00", "10:06:00", "11:00:00", None, 60_000),
    ]
    (i1,) = (r["id"] for r in doc["incidents"])
    inc = incident(i1, s, g5, "10:05:00")
    assert doc["incidents"] == [inc]
    # First expectation was only production: but spec §2.3 creates the environment
    # (step 11) before it looks the check-in up (step 12), so the mismatched check-in
    # leaves a pending staging environment that never checked in.
    assert doc["environments"] == [
        env(s, "failed", "10:05:00", "11:00:00", "11:01:00", open_incident(inc)),
        env(s, "pending", None, None, None, environment="staging"),
    ]
    assert contract_events(doc) == [
        opened(inc),
        occurrence(inc, g5, "10:05:00", "An error check-in was detected", "10:00:00", s),
    ]


# 15 -----------------------------------------------------------------------------------


def test_a_late_ok_resolves_the_incident_of_a_later_miss() -> None:
    doc = simulate("late_ok")
    s = "late"
    l1, l2 = cid("9", 1), cid("9", 2)
    rows = doc["check_ins"]
    assert len(rows) == 3
    missed = generated_id(rows[1])
    assert rows == [
        ci(s, l1, "ok", "10:00:00", "10:15:00", None, None, 900_000),
        ci(s, missed, "missed", "10:10:00", "10:10:00", "10:10:00", None, None),
        ci(s, l2, "ok", "10:12:00", "10:18:00", "10:20:00", None, 360_000),
    ]
    (i1,) = (r["id"] for r in doc["incidents"])
    # resolved_at is the resolving check-in's date_added, before started_at (domain.md).
    inc = incident(i1, s, missed, "10:10:00", l1, "10:00:00")
    assert doc["incidents"] == [inc]
    # last_checkin keeps 10:12:00 (domain.md difference 3).
    assert doc["environments"] == [env(s, "ok", "10:12:00", "10:20:00", "10:21:00")]
    assert contract_events(doc) == [
        opened(inc),
        occurrence(inc, missed, "10:10:00", "A missed check-in was detected", None, s),
        resolved(inc),
        issue_resolved(inc),
    ]


# 16 -----------------------------------------------------------------------------------


def test_an_error_older_than_a_newer_ok_is_ignored() -> None:
    doc = simulate("late_error")
    s = "lateerr"
    a = [cid("a", n) for n in range(11, 15)]
    # The error dated 10:04 (received) is older than the ok of 10:05: it is stored but
    # changes nothing (spec §2.7). The close received at 10:09, before its 10:10 open, gets
    # abs(10:09 - 10:10) and leaves next/last alone (its message time precedes last_checkin).
    assert doc["check_ins"] == [
        ci(s, a[0], "ok", "10:00:00", "10:00:00", None, None, None),
        ci(s, a[1], "ok", "10:05:00", "10:05:00", "11:00:00", None, None),
        ci(s, a[2], "error", "10:04:00", "10:04:00", "11:00:00", None, None),
        ci(s, a[3], "ok", "10:10:00", "10:09:00", "11:00:00", None, 60_000),
    ]
    assert doc["incidents"] == []
    assert doc["environments"] == [env(s, "ok", "10:10:00", "11:00:00", "11:01:00")]
    assert contract_events(doc) == []
    assert doc["rejected"] == []


# 17 -----------------------------------------------------------------------------------


def test_a_superseded_timeout_and_a_mixed_failure_window() -> None:
    doc = simulate("timeout_guard")
    b = [cid("b", n) for n in range(11, 15)]
    rows = doc["check_ins"]
    assert len(rows) == 5
    missed = generated_id(rows[4])
    assert rows == [
        ci("timeguard", b[0], "timeout", "10:00:00", "10:00:00", None, "10:30:00", None),
        ci("timeguard", b[1], "ok", "10:10:00", "10:10:00", "11:00:00", None, None),
        ci("mix", b[2], "error", "10:30:00", "10:30:00", None, None, None),
        ci("mix", b[3], "timeout", "10:35:00", "10:35:00", "10:40:00", "10:40:00", None),
        ci("mix", missed, "missed", "10:40:00", "10:40:00", "10:40:00", None, None),
    ]
    (i1,) = (r["id"] for r in doc["incidents"])
    # Threshold 3: the timeout at the 10:40 tick has only 2 check-ins up to it; the miss at
    # the 10:41 tick completes [error, timeout, missed], started at the error.
    inc = incident(i1, "mix", b[2], "10:30:00")
    assert doc["incidents"] == [inc]
    assert doc["environments"] == [
        env("mix", "missed", "10:35:00", "10:50:00", "10:51:00", open_incident(inc)),
        # D-5: a newer ok supersedes the timeout: the environment stays ok.
        env("timeguard", "ok", "10:10:00", "11:00:00", "11:01:00"),
    ]
    reason = "1 error, 1 timeout and 1 missed check-ins detected"
    assert contract_events(doc) == [
        opened(inc),
        occurrence(inc, b[2], "10:30:00", reason, None, "mix"),
        occurrence(inc, b[3], "10:35:00", reason, None, "mix"),
        occurrence(inc, missed, "10:40:00", reason, None, "mix"),
    ]


# 18 -----------------------------------------------------------------------------------


def test_upserts_merge_and_refuse_invalid_configs() -> None:
    name = "upsert_merge"
    doc = simulate(name)
    assert rejected_types(doc) == [
        (line_of(name, '"bad"'), ["monitor_invalid_config", "monitor_not_found"]),
        (line_of(name, '"bad2"'), ["monitor_invalid_config", "monitor_not_found"]),
        (line_of(name, "eeeee"), ["monitor_invalid_environment"]),
    ]
    s = "my-job"
    c = {n: cid("c", n) for n in range(11, 18)}
    rows = doc["check_ins"]
    assert len(rows) == 5
    missed = generated_id(rows[4])
    # The second upsert sends only the schedule: margin 5 and max_runtime 10 are kept
    # (spec §2.4): the run's timeout_at was 10:12 and the 10:30 slot is missed at 10:35.
    # An invalid config for an existing monitor leaves it unchanged and the check-in in.
    assert rows == [
        ci(s, c[11], "ok", "10:00:00", "10:00:00", None, None, None),
        ci(s, c[12], "ok", "10:01:00", "10:01:00", "11:00:00", None, None),
        ci(s, c[13], "ok", "10:02:00", "10:05:00", "10:30:00", None, 180_000),
        ci(s, c[17], "ok", "10:09:00", "10:09:00", "10:30:00", None, None),
        ci(s, missed, "missed", "10:30:00", "10:30:00", "10:30:00", None, None),
    ]
    (i1,) = (r["id"] for r in doc["incidents"])
    inc = incident(i1, s, missed, "10:30:00")
    assert doc["incidents"] == [inc]
    assert doc["environments"] == [
        env(s, "missed", "10:09:00", "11:30:00", "11:35:00", open_incident(inc))
    ]
    assert contract_events(doc) == [
        opened(inc),
        occurrence(inc, missed, "10:30:00", "A missed check-in was detected", "10:09:00", s),
    ]


# 19 -----------------------------------------------------------------------------------


def test_fall_back_and_interval_units_in_a_time_zone() -> None:
    doc = simulate("dst_fallback")
    d = {n: cid("d", n) for n in range(11, 15)}
    oct_ = "2024-10-{}Z".format
    assert doc["check_ins"] == [
        ci("fb", d[11], "ok", oct_("26T00:30:00"), oct_("26T00:30:00"), None, None, None),
        ci("daily-iv", d[12], "ok", oct_("26T10:00:00"), oct_("26T10:00:00"), None, None, None),
        ci(
            "fb",
            d[13],
            "ok",
            oct_("27T00:30:20"),
            oct_("27T00:30:20"),
            oct_("27T00:30:00"),
            None,
            None,
        ),
        ci("hourly-iv", d[14], "ok", oct_("27T00:30:40"), oct_("27T00:30:40"), None, None, None),
    ]
    assert doc["incidents"] == []
    assert doc["environments"] == [
        # One day keeps 12:00 local: 12:00 CET on the 27th is 11:00Z.
        env("daily-iv", "ok", oct_("26T10:00:00"), oct_("27T11:00:00"), oct_("27T11:01:00")),
        # 02:30 happens twice on the 27th (00:30Z and 01:30Z): the job ran at the first,
        # so the next run is the 28th, 02:30 CET = 01:30Z.
        env("fb", "ok", oct_("27T00:30:20"), oct_("28T01:30:00"), oct_("28T01:31:00")),
        # One hour is elapsed time, seconds dropped.
        env("hourly-iv", "ok", oct_("27T00:30:40"), oct_("27T01:30:00"), oct_("27T01:31:00")),
    ]


# 20 -----------------------------------------------------------------------------------


def test_a_schedule_edit_restarts_every_environment_from_now() -> None:
    name = "schedule_edit"
    doc = simulate(name)
    s = "sched"
    assert rejected_types(doc) == [
        (line_of(name, '"staging"'), ["checkin_environment_mismatch"]),
    ]
    rows = doc["check_ins"]
    assert len(rows) == 3
    by_env = {r["environment"]: r for r in rows[1:]}
    assert sorted(by_env) == ["production", "staging"]
    m_prod, m_stag = generated_id(by_env["production"]), generated_id(by_env["staging"])
    assert rows[0] == ci(s, cid("e", 11), "ok", "10:00:00", "10:00:00", None, None, None)
    assert by_env["production"] == ci(
        s, m_prod, "missed", "10:15:00", "10:15:00", "10:15:00", None, None
    )
    assert by_env["staging"] == ci(
        s, m_stag, "missed", "10:15:00", "10:15:00", "10:15:00", None, None, environment="staging"
    )
    incidents = {r["environment"]: r for r in doc["incidents"]}
    inc_p = incident(incidents["production"]["id"], s, m_prod, "10:15:00")
    inc_s = incident(incidents["staging"]["id"], s, m_stag, "10:15:00", environment="staging")
    assert incidents == {"production": inc_p, "staging": inc_s}
    # §8.25: next/latest from the edit's time (10:10 → 10:15), and the staging
    # environment that never checked in gets last_checkin = 10:10.
    assert doc["environments"] == [
        env(s, "missed", "10:00:00", "10:30:00", "10:31:00", open_incident(inc_p)),
        env(
            s,
            "missed",
            "10:10:00",
            "10:30:00",
            "10:31:00",
            open_incident(inc_s),
            environment="staging",
        ),
    ]


# 21 -----------------------------------------------------------------------------------


def test_an_incident_opened_while_muted_speaks_after_unmuting() -> None:
    doc = simulate("unmute_midway")
    s = "hush"
    f = {n: cid("f", n) for n in range(11, 15)}
    assert doc["check_ins"] == [
        ci(s, f[11], "ok", "10:00:00", "10:00:00", None, None, None),
        ci(s, f[12], "error", "10:02:00", "10:02:00", "11:00:00", None, None),
        ci(s, f[13], "error", "10:04:00", "10:04:00", "11:00:00", None, None),
        ci(s, f[14], "ok", "10:05:00", "10:05:00", "11:00:00", None, None),
    ]
    (i1,) = (r["id"] for r in doc["incidents"])
    inc = incident(i1, s, f[12], "10:02:00", f[14], "10:05:00")
    assert doc["incidents"] == [inc]
    assert doc["environments"] == [env(s, "ok", "10:05:00", "11:00:00", "11:01:00")]
    # The incident had an occurrence (after unmuting), so its resolution is announced.
    assert contract_events(doc) == [
        opened(inc),
        occurrence(inc, f[13], "10:04:00", "An error check-in was detected", "10:00:00", s),
        resolved(inc),
        issue_resolved(inc),
    ]


# 22 -----------------------------------------------------------------------------------


def test_the_zero_guid_closes_the_newest_run_of_its_environment() -> None:
    doc = simulate("zero_guid_envs")
    s = "zg"
    z = {n: cid("1", n) for n in range(11, 14)}
    rows = doc["check_ins"]
    assert len(rows) == 4
    fresh = generated_id(rows[3])
    assert fresh not in z.values()
    assert rows == [
        ci(s, z[11], "ok", "10:00:00", "10:06:00", None, None, 360_000, environment="staging"),
        ci(s, z[12], "ok", "10:01:00", "10:04:00", None, None, 180_000),
        ci(s, z[13], "ok", "10:02:00", "10:03:00", "11:00:00", None, 60_000),
        ci(s, fresh, "ok", "10:05:00", "10:05:00", "11:00:00", None, None),
    ]
    assert doc["incidents"] == []
    assert doc["environments"] == [
        env(s, "ok", "10:05:00", "11:00:00", "11:01:00"),
        env(s, "ok", "10:00:00", "11:00:00", "11:01:00", environment="staging"),
    ]
    assert contract_events(doc) == []
    assert doc["rejected"] == []


# 23 -----------------------------------------------------------------------------------


def test_rejected_attempts_count_against_the_rate_limit() -> None:
    name = "rate_limit_rejected"
    doc = simulate(name)
    s = "rl"
    # Spec §2.3: the rate limit (step 2) comes before the GUID (4) and payload (5) checks,
    # so those attempts count; "" and "production" are the same environment (domain.md).
    assert rejected_types(doc) == [
        (line_of(name, '"zzz"'), ["checkin_invalid_guid"]),
        (line_of(name, '"done"'), ["checkin_validation_failed"]),
        (line_of(name, "10:00:07"), ["monitor_environment_ratelimited"]),
        (line_of(name, "10:00:08"), ["invalid_event"]),
    ]
    q = {n: cid("2", n) for n in range(11, 18)}
    assert doc["check_ins"] == [
        ci(s, q[11], "ok", "10:00:01", "10:00:01", None, None, None),
        ci(s, q[13], "ok", "10:00:04", "10:00:04", "11:00:00", None, None),
        ci(s, q[14], "ok", "10:00:05", "10:00:05", "11:00:00", None, None),
        ci(s, q[15], "ok", "10:00:06", "10:00:06", "11:00:00", None, None),
        ci(s, q[17], "ok", "10:01:00", "10:01:00", "11:00:00", None, None),
    ]
    assert doc["environments"] == [env(s, "ok", "10:01:00", "11:00:00", "11:01:00")]


# 24 -----------------------------------------------------------------------------------


def test_a_heartbeat_after_a_timeout() -> None:
    doc = simulate("heartbeat_after_timeout")
    s = "hb"
    h = cid("3", 11)
    # Spec §2.8: TIMEOUT is not user-complete, so the 10:06 heartbeat sets in_progress and
    # timeout_at 10:11; it times out again at 10:11 (a second occurrence: the incident is
    # open); the late ok then only records duration (computed: heartbeats set none).
    assert doc["check_ins"] == [
        ci(s, h, "timeout", "10:00:00", "10:12:00", None, None, 720_000),
    ]
    (i1,) = (r["id"] for r in doc["incidents"])
    inc = incident(i1, s, h, "10:00:00")
    assert doc["incidents"] == [inc]
    assert doc["environments"] == [
        env(s, "timeout", "10:00:00", "11:00:00", "11:01:00", open_incident(inc))
    ]
    reason = "A timeout check-in was detected"
    assert contract_events(doc) == [
        opened(inc),
        occurrence(inc, h, "10:00:00", reason, None, s),
        occurrence(inc, h, "10:00:00", reason, None, s),
    ]


# 25 -----------------------------------------------------------------------------------


def test_month_and_year_intervals_from_days_that_do_not_repeat() -> None:
    doc = simulate("month_end")
    assert doc["environments"] == [
        env(
            "leap",
            "ok",
            "2024-02-29T09:00:00Z",
            "2028-02-29T09:00:00Z",
            "2028-02-29T09:01:00Z",
        ),
        env(
            "monthend",
            "ok",
            "2024-01-31T10:00:00Z",
            "2024-03-31T10:00:00Z",
            "2024-03-31T10:01:00Z",
        ),
    ]


# 26 -----------------------------------------------------------------------------------


def test_the_upsert_happens_before_later_checks_reject_the_check_in() -> None:
    name = "upsert_before_rejection"
    doc = simulate(name)
    assert rejected_types(doc) == [
        (line_of(name, "eeeee"), ["monitor_invalid_environment"]),
        (line_of(name, '"xyz"'), ["checkin_invalid_guid"]),
        (line_of(name, cid("5", 13)), ["monitor_not_found"]),
        (line_of(name, cid("5", 15)), ["monitor_disabled"]),
        (line_of(name, "@reboot"), ["monitor_invalid_config"]),
    ]
    assert doc["check_ins"] == [
        ci("made", cid("5", 12), "ok", "10:00:10", "10:00:10", None, None, None),
        ci("dis", cid("5", 14), "ok", "10:00:40", "10:00:40", None, None, None),
        ci("alias", cid("5", 16), "ok", "10:41:00", "10:41:00", None, None, None),
    ]
    assert doc["environments"] == [
        # @daily; margin 50000 clamped to 40320 minutes (28 days, spec §2.4 [newest]).
        env("alias", "ok", "10:41:00", "2024-05-02T00:00:00Z", "2024-05-30T00:00:00Z"),
        # The rejected check-in of the disabled monitor still upserted */30 and margin 0
        # (= 1); re-enabling at 10:40 expects 11:00, so no miss for the disabled time.
        env("dis", "ok", "10:00:40", "11:00:00", "11:01:00"),
        # Created by the upsert of a check-in rejected for its environment name.
        env("made", "ok", "10:00:10", "11:00:00", "11:01:00"),
    ]
    assert doc["incidents"] == []


# 27 -----------------------------------------------------------------------------------


def test_recovery_takes_the_newest_check_ins_by_date_added() -> None:
    doc = simulate("recovery_window")
    s = "rw"
    r = {n: cid("6", n) for n in range(11, 16)}
    assert doc["check_ins"] == [
        ci(s, r[11], "ok", "10:00:00", "10:00:00", None, None, None),
        ci(s, r[12], "ok", "10:01:00", "10:04:00", "11:00:00", None, 180_000),
        ci(s, r[13], "error", "10:02:00", "10:02:00", "11:00:00", None, None),
        ci(s, r[14], "ok", "10:03:00", "10:03:00", "11:00:00", None, None),
        ci(s, r[15], "ok", "10:05:00", "10:05:00", "11:00:00", None, None),
    ]
    # The 10:04 close of the 10:01 run is ok, but the two newest are 10:03 ok and 10:02
    # error: not resolved. 10:05 makes [10:05 ok, 10:03 ok]: resolved by it.
    (i1,) = (r_["id"] for r_ in doc["incidents"])
    inc = incident(i1, s, r[13], "10:02:00", r[15], "10:05:00")
    assert doc["incidents"] == [inc]
    assert doc["environments"] == [env(s, "ok", "10:05:00", "11:00:00", "11:01:00")]
    assert contract_events(doc) == [
        opened(inc),
        occurrence(inc, r[13], "10:02:00", "An error check-in was detected", "10:00:00", s),
        resolved(inc),
        issue_resolved(inc),
    ]


# 28 -----------------------------------------------------------------------------------


def test_an_upserted_margin_leaves_other_environments_deadlines() -> None:
    doc = simulate("upsert_other_env")
    s = "ue"
    rows = doc["check_ins"]
    assert len(rows) == 4
    missed = generated_id(rows[3])
    assert rows == [
        ci(s, cid("7", 11), "ok", "10:00:00", "10:00:00", None, None, None),
        ci(s, cid("7", 12), "ok", "10:00:10", "10:00:10", None, None, None, environment="staging"),
        ci(s, cid("7", 13), "ok", "10:05:00", "10:05:00", "10:10:00", None, None),
        ci(
            s,
            missed,
            "missed",
            "10:10:00",
            "10:10:00",
            "10:10:00",
            None,
            None,
            environment="staging",
        ),
    ]
    (i1,) = (r["id"] for r in doc["incidents"])
    inc = incident(i1, s, missed, "10:10:00", environment="staging")
    assert doc["incidents"] == [inc]
    assert doc["environments"] == [
        env(s, "ok", "10:05:00", "10:10:00", "10:18:00"),
        # staging kept latest 10:11 (margin 1 when it was computed); after the miss its
        # next deadline uses the new margin 8.
        env(
            s,
            "missed",
            "10:00:10",
            "10:20:00",
            "10:28:00",
            open_incident(inc),
            environment="staging",
        ),
    ]


# 29 -----------------------------------------------------------------------------------


def test_muting_levels() -> None:
    doc = simulate("mute_levels")
    s = "ml"
    m = {n: cid("8", n) for n in range(11, 16)}
    incidents = {r["environment"]: r for r in doc["incidents"]}
    assert [r["environment"] for r in doc["incidents"]] == ["staging", "production", "dev"]
    inc_s = incident(incidents["staging"]["id"], s, m[12], "10:02:00", environment="staging")
    inc_p = incident(incidents["production"]["id"], s, m[13], "10:04:00")
    inc_d = incident(incidents["dev"]["id"], s, m[14], "10:06:00", environment="dev")
    reason = "An error check-in was detected"
    # staging, created while only production was muted, is not muted (domain.md: muting
    # one environment mutes only it); the monitor-wide mute silences production's
    # incident; unmuting the monitor unmutes all, and a later environment is not muted.
    assert contract_events(doc) == [
        opened(inc_s),
        occurrence(inc_s, m[12], "10:02:00", reason, None, s),
        opened(inc_p),
        opened(inc_d),
        occurrence(inc_d, m[14], "10:06:00", reason, None, s),
        occurrence(inc_p, m[15], "10:07:00", reason, "10:00:00", s),
    ]
    assert [(e["environment"], e["muted"], e["status"]) for e in doc["environments"]] == [
        ("dev", False, "failed"),
        ("production", False, "failed"),
        ("staging", False, "failed"),
    ]


# 30 -----------------------------------------------------------------------------------


def _events_of(doc: Doc, slug: str) -> list[Row]:
    return [e for e in contract_events(doc) if e["fingerprint"] == [fp(slug)]]


def test_a_guarded_error_close_and_a_check_in_after_its_minutes_tick() -> None:
    doc = simulate("guarded_close")
    rows = doc["check_ins"]
    assert len(rows) == 6
    missed = {r["monitor_slug"]: generated_id(r) for r in rows if r["status"] == "missed"}
    assert sorted(missed) == ["grd", "recv"]
    by_id = {r["check_in_id"]: r for r in rows}
    g, r = {n: cid("9", n) for n in (11, 12)}, {n: cid("9", n) for n in (21, 22)}
    # The error closing the 10:00 run comes after the 10:05 ok (spec §2.7): stored, but
    # next_checkin stays 10:10 (latest 10:11), so the 10:11 tick marks 10:10 missed.
    assert by_id[g[11]] == ci("grd", g[11], "error", "10:00:00", "10:10:30", None, None, 630_000)
    assert by_id[g[12]] == ci("grd", g[12], "ok", "10:05:00", "10:05:00", "10:10:00", None, None)
    assert by_id[missed["grd"]] == ci(
        "grd", missed["grd"], "missed", "10:10:00", "10:10:00", "10:10:00", None, None
    )
    # The check-in of broker time 10:11:00 (received 10:10:30) comes after tick 10:11
    # (spec §2.2 serial mode), which marks 10:10 missed; it then resolves that incident.
    assert by_id[r[21]] == ci("recv", r[21], "ok", "10:00:00", "10:00:00", None, None, None)
    assert by_id[missed["recv"]] == ci(
        "recv", missed["recv"], "missed", "10:10:00", "10:10:00", "10:10:00", None, None
    )
    assert by_id[r[22]] == ci("recv", r[22], "ok", "10:10:30", "10:10:30", "10:20:00", None, None)
    incidents = {i["monitor_slug"]: i for i in doc["incidents"]}
    inc_g = incident(incidents["grd"]["id"], "grd", missed["grd"], "10:10:00")
    inc_r = incident(incidents["recv"]["id"], "recv", missed["recv"], "10:10:00", r[22], "10:10:30")
    assert incidents == {"grd": inc_g, "recv": inc_r}
    assert doc["environments"] == [
        env("grd", "missed", "10:05:00", "10:20:00", "10:21:00", open_incident(inc_g)),
        env("recv", "ok", "10:10:30", "10:20:00", "10:21:00"),
    ]
    reason = "A missed check-in was detected"
    assert _events_of(doc, "grd") == [
        opened(inc_g),
        occurrence(inc_g, missed["grd"], "10:10:00", reason, "10:05:00", "grd"),
    ]
    assert _events_of(doc, "recv") == [
        opened(inc_r),
        occurrence(inc_r, missed["recv"], "10:10:00", reason, "10:00:00", "recv"),
        resolved(inc_r),
        issue_resolved(inc_r),
    ]


# 31 -----------------------------------------------------------------------------------


def test_slugs_and_names() -> None:
    doc = simulate("slug_and_name")
    long_slug = "x" * 50
    assert [e["monitor_slug"] for e in doc["environments"]] == [
        "named",
        "nightly-backup-prod",
        long_slug,
    ]
    titles = {
        e["fingerprint"][0]: e["issue_title"]
        for e in doc["events"]
        if e["type"] == "issue_occurrence"
    }
    # The name defaults to the slug; monitor_configured sets it.
    assert titles == {
        fp("nightly-backup-prod"): "Cron failure: nightly-backup-prod",
        fp(long_slug): f"Cron failure: {long_slug}",
        fp("named"): "Cron failure: Named Job",
    }


# 32 -----------------------------------------------------------------------------------


def test_durations() -> None:
    name = "durations"
    doc = simulate(name)
    s = "dur"
    assert rejected_types(doc) == [
        (line_of(name, "2147483.648"), ["checkin_validation_failed"]),
        (line_of(name, "2024-05-26"), ["checkin_invalid_duration"]),
    ]
    d = {n: cid("b", n) for n in range(21, 26)}
    assert doc["check_ins"] == [
        # int(1.005 * 1000) = int(1004.9999999999999) = 1004 (spec §2.3 step 5).
        ci(s, d[21], "ok", "10:00:00", "10:00:00", None, None, 1004),
        # A sent 0 is a duration (no computing), but Sentry stores it only if truthy.
        ci(s, d[22], "ok", "10:00:10", "10:00:20", "2025-01-01T00:00:00Z", None, None),
        ci(s, d[23], "ok", "10:00:30", "10:00:30", "2025-01-01T00:00:00Z", None, 2_147_483_647),
        # abs(25 days) > 2^31-1 ms: the close is refused, the run stays in progress.
        ci(
            s,
            d[25],
            "in_progress",
            "10:01:00",
            "10:01:00",
            "2025-01-01T00:00:00Z",
            "2024-05-29T10:01:00Z",
            None,
        ),
    ]
    assert doc["environments"] == [
        env(s, "ok", "10:01:00", "2025-01-01T00:00:00Z", "2025-01-01T00:01:00Z")
    ]


# 33 -----------------------------------------------------------------------------------


def test_api_edits_of_max_runtime_and_margin() -> None:
    doc = simulate("edit_runtime_margin")
    rows = doc["check_ins"]
    assert len(rows) == 5
    m10, m20, m30 = (generated_id(r) for r in rows[2:])
    r1 = cid("c", 22)
    assert rows == [
        ci("mg", cid("c", 21), "ok", "10:00:00", "10:00:00", None, None, None),
        # Heartbeat at 10:20 moved timeout_at to 10:50; the edit to 40 minutes at 10:25
        # sets start minute 10:00 + 40 = 10:40, so it times out at the 10:40 tick.
        ci("rt", r1, "timeout", "10:00:30", "10:20:00", None, "10:40:00", None),
        # Margin 10 → 2 at 10:15: latest 10:12 is already past, so tick 10:16 marks 10:10
        # missed; then 10:20 (tick 10:22) and 10:30 (tick 10:32).
        ci("mg", m10, "missed", "10:10:00", "10:10:00", "10:10:00", None, None),
        ci("mg", m20, "missed", "10:20:00", "10:20:00", "10:20:00", None, None),
        ci("mg", m30, "missed", "10:30:00", "10:30:00", "10:30:00", None, None),
    ]
    incidents = {i["monitor_slug"]: i for i in doc["incidents"]}
    inc_m = incident(incidents["mg"]["id"], "mg", m10, "10:10:00")
    inc_r = incident(incidents["rt"]["id"], "rt", r1, "10:00:30")
    assert doc["incidents"] == [inc_m, inc_r]
    assert doc["environments"] == [
        env("mg", "missed", "10:00:00", "10:40:00", "10:42:00", open_incident(inc_m)),
        env("rt", "timeout", "10:00:30", "11:00:00", "11:01:00", open_incident(inc_r)),
    ]
    missed = "A missed check-in was detected"
    assert contract_events(doc) == [
        opened(inc_m),
        occurrence(inc_m, m10, "10:10:00", missed, "10:00:00", "mg"),
        occurrence(inc_m, m20, "10:20:00", missed, "10:00:00", "mg"),
        occurrence(inc_m, m30, "10:30:00", missed, "10:00:00", "mg"),
        opened(inc_r),
        occurrence(inc_r, r1, "10:00:30", "A timeout check-in was detected", None, "rt"),
    ]


# 34 -----------------------------------------------------------------------------------


def test_new_york_spring_forward() -> None:
    doc = simulate("dst_ny_spring")
    rows = doc["check_ins"]
    assert len(rows) == 4
    missed = generated_id(rows[3])
    mar = "2024-03-{}Z".format
    assert rows == [
        ci("ny230", cid("d", 31), "ok", mar("09T07:30:00"), mar("09T07:30:00"), None, None, None),
        ci(
            "nyhourly", cid("d", 32), "ok", mar("10T06:30:00"), mar("10T06:30:00"), None, None, None
        ),
        ci(
            "nyhourly",
            cid("d", 33),
            "ok",
            mar("10T07:00:30"),
            mar("10T07:00:30"),
            mar("10T07:00:00"),
            None,
            None,
        ),
        # 02:30 does not exist on the 10th: due at 03:00 EDT = 07:00Z, missed at 07:01Z.
        ci(
            "ny230",
            missed,
            "missed",
            mar("10T07:00:00"),
            mar("10T07:00:00"),
            mar("10T07:00:00"),
            None,
            None,
        ),
    ]
    (i1,) = (r["id"] for r in doc["incidents"])
    inc = incident(i1, "ny230", missed, mar("10T07:00:00"))
    assert doc["environments"] == [
        env(
            "ny230",
            "missed",
            mar("09T07:30:00"),
            mar("11T06:30:00"),
            mar("11T06:31:00"),
            open_incident(inc),
        ),
        env("nyhourly", "ok", mar("10T07:00:30"), mar("10T08:00:00"), mar("10T08:01:00")),
    ]


# 35 -----------------------------------------------------------------------------------


def test_new_york_fall_back() -> None:
    doc = simulate("dst_ny_fall")
    nov = "2024-11-{}Z".format
    assert [(r["monitor_slug"], r["expected_time"]) for r in doc["check_ins"]] == [
        ("ny130", None),
        ("nyh", None),
        ("nyh", nov("03T05:00:00")),
        ("ny130", nov("03T05:30:00")),
        ("nyh", nov("03T06:00:00")),
    ]
    assert doc["incidents"] == []
    assert doc["environments"] == [
        # The second 01:30 (06:30Z, EST) is not a run: next is the 4th, 01:30 EST.
        env("ny130", "ok", nov("03T05:30:10"), nov("04T06:30:00"), nov("04T06:31:00")),
        # Hourly: 01:00 EDT (05:00Z), 01:00 EST (06:00Z), 02:00 EST (07:00Z).
        env("nyh", "ok", nov("03T06:00:10"), nov("03T07:00:00"), nov("03T07:01:00")),
    ]


# 36 -----------------------------------------------------------------------------------


def test_input_forms() -> None:
    doc = simulate("input_forms")
    assert rejected_types(doc) == [(6, ["invalid_event"])]
    assert doc["check_ins"] == [
        ci("fmt", cid("e", 51), "ok", "10:00:00", "10:00:00", None, None, None),
        # date_added is `received` (10:00:20), not ts; next = 10:00:20 + 1 h, seconds dropped.
        ci("fmt", cid("e", 52), "ok", "10:00:20", "10:00:20", "11:00:00", None, None),
    ]
    assert doc["environments"] == [env("fmt", "ok", "10:00:20", "11:00:00", "11:01:00")]


# 37 -----------------------------------------------------------------------------------


def test_a_failure_reason_over_three_kinds_with_a_repeat() -> None:
    doc = simulate("failure_reason_mix")
    s = "mix4"
    rows = doc["check_ins"]
    assert len(rows) == 5
    m1, m2 = generated_id(rows[1]), generated_id(rows[3])
    e1, p = cid("f", 32), cid("f", 33)
    assert rows == [
        ci(s, cid("f", 31), "ok", "10:00:00", "10:00:00", None, None, None),
        ci(s, m1, "missed", "10:10:00", "10:10:00", "10:10:00", None, None),
        ci(s, e1, "error", "10:12:00", "10:12:00", "10:20:00", None, None),
        ci(s, m2, "missed", "10:20:00", "10:20:00", "10:20:00", None, None),
        ci(s, p, "timeout", "10:22:00", "10:22:00", "10:30:00", "10:27:00", None),
    ]
    (i1,) = (r["id"] for r in doc["incidents"])
    inc = incident(i1, s, m1, "10:10:00")
    assert doc["incidents"] == [inc]
    assert doc["environments"] == [
        env(s, "timeout", "10:22:00", "10:30:00", "10:31:00", open_incident(inc))
    ]
    reason = "2 missed, 1 error and 1 timeout check-ins detected"
    assert contract_events(doc) == [
        opened(inc),
        occurrence(inc, m1, "10:10:00", reason, "10:00:00", s),
        occurrence(inc, e1, "10:12:00", reason, "10:00:00", s),
        occurrence(inc, m2, "10:20:00", reason, "10:00:00", s),
        occurrence(inc, p, "10:22:00", reason, "10:00:00", s),
    ]
