"""`monitor-es simulate FILE [--json]` against its contract (domain.md "Inbound events" and
"`monitor-es simulate FILE --json`"): the input forms it reads, the document it prints,
the summary, exit codes and large files. The command runs as a user runs it, a subprocess;
the two in-process tests cover what a subprocess cannot show (a reducer fault, laziness).
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from monitor_es import cli, replay
from monitor_es.domain.partition import Partition
from monitor_es.replay import fold_scenario, simulate
from monitor_es.scenario import InvalidLine, line_of
from projections.report import build_report

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
SCENARIO_NAMES = sorted(path.stem for path in SCENARIOS.glob("*.jsonl"))
_SCRIPT = Path(sys.executable).with_name("monitor-es")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "monitor_es.cli"]

TOP_LEVEL = ["environments", "check_ins", "incidents", "events", "rejected"]
ENVIRONMENT_FIELDS = {
    "project", "monitor_slug", "environment", "status", "muted", "last_checkin",
    "next_checkin", "next_checkin_latest", "incident",
}  # fmt: skip
ENVIRONMENT_INCIDENT_FIELDS = {"id", "starting_check_in_id", "started_at"}
CHECK_IN_FIELDS = {
    "project", "monitor_slug", "environment", "check_in_id", "status", "date_added",
    "date_updated", "expected_time", "timeout_at", "duration_ms",
}  # fmt: skip
INCIDENT_FIELDS = {
    "id", "project", "monitor_slug", "environment", "fingerprint", "starting_check_in_id",
    "started_at", "resolving_check_in_id", "resolved_at",
}  # fmt: skip
OPENED_FIELDS = {
    "incident_id", "project", "monitor_slug", "environment", "fingerprint",
    "starting_check_in_id", "started_at",
}  # fmt: skip
CONTRACT_EVENT_FIELDS = {
    "incident_opened": OPENED_FIELDS,
    "incident_resolved": OPENED_FIELDS | {"resolving_check_in_id", "resolved_at"},
    "issue_occurrence": {
        "fingerprint",
        "incident_id",
        "failed_check_in_id",
        "issue_title",
        "subtitle",
        "level",
        "detection_time",
        "environment",
    },
    "issue_resolved": {"fingerprint", "incident_id", "update_date"},
}
CHECK_IN_STATUSES = {"in_progress", "ok", "error", "missed", "timeout", "unknown"}
ENVIRONMENT_STATUSES = {"pending", "ok", "missed", "timeout", "failed"}
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
TIME_FIELDS = {
    "last_checkin", "next_checkin", "next_checkin_latest", "started_at", "date_added",
    "date_updated", "expected_time", "timeout_at", "resolved_at", "detection_time",
    "update_date",
}  # fmt: skip
JOB = {"schedule_type": "crontab", "schedule": "0 * * * *"}


# ------------------------------------------------------------------------------- helpers


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Runs `monitor-es ARGS` with no Redis URL from the environment."""
    env = {k: v for k, v in os.environ.items() if k != "MONITOR_ES_REDIS_URL"}
    done = subprocess.run(
        [*CLI, *args], capture_output=True, input=stdin, timeout=60, env=env, check=False
    )
    return subprocess.CompletedProcess(
        done.args,
        done.returncode,
        done.stdout.decode("utf-8", "backslashreplace"),
        done.stderr.decode("utf-8", "backslashreplace"),
    )


def document_of(path: Path) -> dict[str, Any]:
    """The `simulate FILE --json` document; the command must succeed without a word on stderr."""
    done = run_cli("simulate", str(path), "--json")
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def scenario(name: str) -> dict[str, Any]:
    """The document of a scenario file (each file runs once per session; a fresh copy)."""
    document: dict[str, Any] = json.loads(_scenario_output(name))
    return document


@functools.cache
def _scenario_output(name: str) -> str:
    return json.dumps(document_of(SCENARIOS / f"{name}.jsonl"))


def lines_file(tmp_path: Path, *lines: str | dict[str, Any]) -> Path:
    """A scenario file of these lines (dicts are written as JSON)."""
    path = tmp_path / "scenario.jsonl"
    text = [line if isinstance(line, str) else json.dumps(line) for line in lines]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path


def check_in(ts: Any, n: int, status: str = "ok", **fields: Any) -> dict[str, Any]:
    """A check-in of acme/job with the n-th test GUID."""
    return {
        "type": "check_in",
        "ts": ts,
        "project": "acme",
        "monitor_slug": "job",
        "check_in_id": f"e0000000-0000-4000-8000-{n:012d}",
        "status": status,
        **fields,
    }


def line_with(name: str, marker: str) -> int:
    """The 1-based number of the only line of a scenario containing `marker`."""
    lines = (SCENARIOS / f"{name}.jsonl").read_text(encoding="utf-8").split("\n")
    found = [n for n, text in enumerate(lines, start=1) if marker in text]
    assert len(found) == 1, (marker, found)
    return found[0]


def rejected_types(document: dict[str, Any]) -> dict[int, list[str]]:
    return {row["line"]: [e["type"] for e in row["errors"]] for row in document["rejected"]}


def invalid_message(document: dict[str, Any], line: int) -> str:
    (row,) = [row for row in document["rejected"] if row["line"] == line]
    (error,) = row["errors"]
    assert error["type"] == "invalid_event"
    return str(error["message"])


def events_of(document: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in document["events"] if e["type"] == kind]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def all_documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for name in SCENARIO_NAMES:
        yield name, scenario(name)


def times_in(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """Every (field, value) of a time field anywhere in a JSON value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from times_in(v, k)
    elif isinstance(value, list):
        for item in value:
            yield from times_in(item, key)
    elif key in TIME_FIELDS or key in {"ts", "at", "received", "tick", "minute"}:
        yield key, value


# =============================================================================== input


def test_every_event_type_and_field_of_the_input_table_is_folded() -> None:
    doc = scenario("contract_inputs")
    assert doc["rejected"] == []
    rows = {(e["monitor_slug"], e["environment"]): e for e in doc["environments"]}
    assert sorted(rows) == [
        ("nightly", "production"),
        ("nightly", "staging"),
        ("weekly", "production"),
    ]
    # monitor_configured with a name; monitor_deleted removes doomed and its environment.
    created = {e["monitor_slug"]: e["name"] for e in events_of(doc, "monitor_created")}
    assert created == {"nightly": "nightly", "weekly": "Weekly report", "doomed": "doomed"}
    assert [e["monitor_slug"] for e in events_of(doc, "monitor_removed")] == ["doomed"]
    # monitor_muted for one environment, and for a whole monitor (no environment).
    assert (rows["nightly", "staging"]["muted"], rows["nightly", "production"]["muted"]) == (
        True,
        False,
    )
    assert rows["weekly", "production"]["muted"] is True
    assert [e["disabled"] for e in events_of(doc, "monitor_disabled_changed")] == [True, False]
    # check_in: environment, duration (seconds), trace_id, received, monitor_config upsert.
    first = events_of(doc, "check_in_created")[0]
    assert first["trace_id"] == "b0000000-0000-4000-8000-000000000001"
    assert first["timeout_at"] == "2024-05-01T12:30:00Z"  # max_runtime 30 from the config
    by_id = {c["check_in_id"]: c for c in doc["check_ins"]}
    assert by_id["c0000000-0000-4000-8000-000000000001"]["duration_ms"] == 30_250
    staging_error = by_id["c0000000-0000-4000-8000-000000000002"]  # sent as 32 upper-case hex
    assert (staging_error["environment"], staging_error["date_added"]) == (
        "staging",
        "2024-05-01T12:04:00Z",  # `received`, not `ts`
    )


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2024-05-01T12:00:30Z", "2024-05-01T12:00:30Z"),
        ("2024-05-01T12:00:30z", "2024-05-01T12:00:30Z"),
        ("2024-05-01T12:00:30+00:00", "2024-05-01T12:00:30Z"),
        ("2024-05-01T14:00:30+02:00", "2024-05-01T12:00:30Z"),
        ("2024-05-01T07:00:30-05:00", "2024-05-01T12:00:30Z"),
        ("2024-05-01T12:00:30.000Z", "2024-05-01T12:00:30Z"),
        ("2024-05-01T12:00:30.25Z", "2024-05-01T12:00:30.250Z"),
        ("2024-05-01T12:00:30.123456789Z", "2024-05-01T12:00:30.123Z"),  # log keeps ms
        (1714564830, "2024-05-01T12:00:30Z"),
        (1714564830.0, "2024-05-01T12:00:30Z"),
        (1714564830.25, "2024-05-01T12:00:30.250Z"),
    ],
)
def test_ts_in_every_accepted_form_dates_the_check_in_at_that_utc_instant(
    tmp_path: Path, ts: Any, expected: str
) -> None:
    doc = document_of(lines_file(tmp_path, check_in(ts, 1, monitor_config=JOB)))
    assert doc["rejected"] == []
    (row,) = doc["check_ins"]
    assert TIME.fullmatch(row["date_added"]), row["date_added"]
    assert instant(row["date_added"]) == instant(expected)
    assert ("." in row["date_added"]) == ("." in expected)  # fractions only when present


def test_blank_and_comment_lines_are_skipped_but_keep_their_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "scenario.jsonl"
    lines = [
        "# a comment",
        "",
        "   ",
        "\t# an indented comment",
        json.dumps(check_in("2024-05-01T12:00:00Z", 1, monitor_config=JOB)),
        "not json",
    ]
    path.write_bytes("\r\n".join(lines).encode() + b"\r\n")  # CRLF, as Windows editors save
    doc = document_of(path)
    assert len(doc["check_ins"]) == 1
    assert rejected_types(doc) == {6: ["invalid_event"]}


def test_invalid_lines_are_invalid_events_with_their_line_numbers_and_the_rest_is_folded() -> None:
    name = "contract_bad_lines"
    doc = scenario(name)
    invalid = {
        line_with(name, '"ts": "2024-05-01T12:00:05Z", "project": "acme",'): "not JSON",
        line_with(name, "an array, not an object"): "object",
        line_with(name, "heartbeat_sent"): "unknown event type 'heartbeat_sent'",
        line_with(name, '"no type"'): "`type`",
        line_with(name, '"no ts"'): "`ts`",
        line_with(name, "yesterday noon"): "`ts` is not an ISO 8601 instant",
        line_with(name, '"ts": -60'): "`ts` must lie between 1970-01-01T00:00:00Z",
        line_with(name, "no check_in_id"): "`check_in_id`",
        line_with(name, "not a time"): "`received`",
        line_with(name, "no config"): "`config`",
        line_with(name, '"muted": "yes"'): "muted",
        line_with(name, "no disabled"): "`disabled`",
        line_with(name, "no monitor_slug"): "`monitor_slug`",
        line_with(name, "panic"): "decision",
    }
    types = rejected_types(doc)
    for line, reason in invalid.items():
        assert types[line] == ["invalid_event"], line
        assert reason in invalid_message(doc, line), (line, invalid_message(doc, line))
    # The good check-ins before, between and after the bad lines all count.
    assert [c["check_in_id"][-2:] for c in doc["check_ins"]] == ["01", "30"]


def test_a_well_formed_event_with_a_bad_value_gets_its_typed_error() -> None:
    name = "contract_bad_lines"
    types = rejected_types(scenario(name))
    assert types[line_with(name, "not-a-guid")] == ["checkin_invalid_guid"]
    assert types[line_with(name, '"done"')] == ["checkin_validation_failed"]
    assert types[line_with(name, '"duration": -1')] == ["checkin_validation_failed"]
    assert types[line_with(name, '"nobody"')] == ["monitor_not_found"]
    assert types[line_with(name, '"status": "error"')] == ["checkin_finished"]
    assert types[line_with(name, "every day")] == ["monitor_invalid_config", "monitor_not_found"]


def test_a_line_whose_ts_goes_back_is_rejected_naming_both_times_and_the_fold_goes_on(
    tmp_path: Path,
) -> None:
    doc = document_of(
        lines_file(
            tmp_path,
            check_in("2024-05-01T12:05:00Z", 1, monitor_config=JOB),
            check_in("2024-05-01T12:04:59Z", 2),
            check_in("2024-05-01T12:06:00Z", 3),
        )
    )
    assert rejected_types(doc) == {2: ["invalid_event"]}
    message = invalid_message(doc, 2)
    assert "2024-05-01T12:04:59Z" in message and "2024-05-01T12:05:00Z" in message
    assert "line 1" in message and "must not decrease" in message
    assert [c["check_in_id"][-1] for c in doc["check_ins"]] == ["1", "3"]


def test_equal_timestamps_are_all_folded_in_file_order(tmp_path: Path) -> None:
    same = "2024-05-01T12:00:10Z"
    doc = document_of(
        lines_file(
            tmp_path,
            check_in(same, 1, monitor_config=JOB),
            check_in(same, 2, environment="b-env"),
            check_in(1714564810, 3, environment="a-env"),  # the same instant as epoch seconds
        )
    )
    assert doc["rejected"] == []
    assert [c["check_in_id"][-1] for c in doc["check_ins"]] == ["1", "2", "3"]
    assert {c["date_added"] for c in doc["check_ins"]} == {same}


def test_received_defaults_to_ts_and_dates_the_check_in_when_given(tmp_path: Path) -> None:
    doc = document_of(
        lines_file(
            tmp_path,
            check_in("2024-05-01T12:00:10Z", 1, monitor_config=JOB),
            check_in("2024-05-01T12:00:20Z", 2, received="2024-05-01T12:00:15Z"),
            check_in("2024-05-01T12:00:30Z", 3, received=None),
        )
    )
    assert [c["date_added"] for c in doc["check_ins"]] == [
        "2024-05-01T12:00:10Z",
        "2024-05-01T12:00:15Z",
        "2024-05-01T12:00:30Z",
    ]


def test_unknown_fields_are_ignored_even_when_named_like_a_time_field(tmp_path: Path) -> None:
    doc = document_of(
        lines_file(tmp_path, check_in(1714564810, 1, monitor_config=JOB, minute="soon", x=[1]))
    )
    assert (doc["rejected"], len(doc["check_ins"])) == ([], 1)


@pytest.mark.parametrize(
    "line",
    [
        {"type": "clock_pulse", "ts": -1},
        {"type": "clock_pulse", "ts": "1969-12-31T23:59:59Z"},
        {"type": "clock_pulse", "ts": 1e20},
        {"type": "clock_pulse", "ts": 10**400},
        {"type": "clock_pulse", "ts": "9999-12-31T23:59:00Z"},
        {"type": "clock_pulse", "ts": "0001-01-01T00:30:00+01:00"},
        {"type": "clock_pulse", "ts": True},
        {"type": "clock_pulse", "ts": None},
        {"type": "clock_pulse", "ts": [2024]},
        {"type": ["check_in"], "ts": 0},
        check_in(1714564810, 9, received=-5),
        check_in(1714564810, 9, received="9999-12-31T23:59:00Z"),
    ],
    ids=lambda line: json.dumps(line)[:60],
)
def test_an_unusable_instant_or_type_is_an_invalid_event_not_a_crash(
    tmp_path: Path, line: dict[str, Any]
) -> None:
    # First, so that it cannot be refused for going back before an earlier line.
    path = lines_file(tmp_path, line, check_in(1714564800, 1, monitor_config=JOB))
    doc = document_of(path)
    assert rejected_types(doc) == {1: ["invalid_event"]}
    assert len(doc["check_ins"]) == 1
    summary = run_cli("simulate", str(path))
    assert (summary.returncode, summary.stderr) == (0, "")


def test_a_line_that_is_not_utf8_is_an_invalid_event_and_the_rest_is_folded(
    tmp_path: Path,
) -> None:
    path = tmp_path / "latin1.jsonl"
    good = json.dumps(check_in(1714564800, 1, monitor_config=JOB)).encode()
    bad = json.dumps(check_in(1714564801, 2, environment="zurich")).encode()
    path.write_bytes(b"\n".join([good, bad.replace(b"zurich", b"z\xfcrich"), good[:-1] + b"}"]))
    doc = document_of(path)
    assert rejected_types(doc) == {2: ["invalid_event"], 3: ["checkin_finished"]}
    assert "UTF-8" in invalid_message(doc, 2)


def test_a_byte_order_mark_before_the_first_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + json.dumps(check_in(1714564800, 1, monitor_config=JOB)).encode()
    )
    doc = document_of(path)
    assert (doc["rejected"], len(doc["check_ins"])) == ([], 1)


def test_a_unicode_line_separator_inside_a_string_does_not_split_the_line(
    tmp_path: Path,
) -> None:
    # U+2028 is legal raw inside a JSON string; only "\n" ends a JSON Lines line.
    doc = document_of(
        lines_file(
            tmp_path,
            check_in(1714564800, 1, monitor_config={**JOB, "timezone": "UTC"}),
            json.dumps(check_in(1714564801, 2, environment="a\u2028b"), ensure_ascii=False),
            "not json",
        )
    )
    assert rejected_types(doc) == {3: ["invalid_event"]}
    assert [c["environment"] for c in doc["check_ins"]] == ["production", "a\u2028b"]


# =============================================================================== output


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_every_document_has_exactly_the_listed_keys_and_row_fields(name: str) -> None:
    doc = scenario(name)
    assert list(doc) == TOP_LEVEL
    for env in doc["environments"]:
        assert set(env) == ENVIRONMENT_FIELDS
        assert env["status"] in ENVIRONMENT_STATUSES
        assert isinstance(env["muted"], bool)
        assert env["incident"] is None or set(env["incident"]) == ENVIRONMENT_INCIDENT_FIELDS
    for row in doc["check_ins"]:
        assert set(row) == CHECK_IN_FIELDS
        assert row["status"] in CHECK_IN_STATUSES
        assert row["duration_ms"] is None or type(row["duration_ms"]) is int
    for row in doc["incidents"]:
        assert set(row) == INCIDENT_FIELDS
        assert isinstance(row["fingerprint"], str)
    for event in doc["events"]:
        assert isinstance(event["type"], str) and event["type"]
    for row in doc["rejected"]:
        assert set(row) == {"line", "errors"}
        assert type(row["line"]) is int and row["line"] >= 1
        assert row["errors"] and all(isinstance(e["type"], str) for e in row["errors"])
    assert [row["line"] for row in doc["rejected"]] == sorted(
        {row["line"] for row in doc["rejected"]}
    )  # by line, one row per line


# domain.md lists each row's and each contract event's fields in this order.
ENVIRONMENT_ORDER = [
    "project", "monitor_slug", "environment", "status", "muted", "last_checkin",
    "next_checkin", "next_checkin_latest", "incident",
]  # fmt: skip
CHECK_IN_ORDER = [
    "project", "monitor_slug", "environment", "check_in_id", "status", "date_added",
    "date_updated", "expected_time", "timeout_at", "duration_ms",
]  # fmt: skip
INCIDENT_ORDER = [
    "id", "project", "monitor_slug", "environment", "fingerprint", "starting_check_in_id",
    "started_at", "resolving_check_in_id", "resolved_at",
]  # fmt: skip
OPENED_ORDER = [
    "incident_id", "project", "monitor_slug", "environment", "fingerprint",
    "starting_check_in_id", "started_at",
]  # fmt: skip
CONTRACT_EVENT_ORDER = {
    "incident_opened": OPENED_ORDER,
    "incident_resolved": [*OPENED_ORDER, "resolving_check_in_id", "resolved_at"],
    "issue_occurrence": [
        "fingerprint", "incident_id", "failed_check_in_id", "issue_title", "subtitle",
        "level", "detection_time", "environment",
    ],
    "issue_resolved": ["fingerprint", "incident_id", "update_date"],
}  # fmt: skip


@pytest.mark.parametrize("name", ["thresholds_3_and_2", "missed_with_margin"])
def test_rows_and_contract_events_keep_the_key_order_domain_md_lists(name: str) -> None:
    """domain.md's `simulate --json` block and its list of the four contract events give
    each object's keys in order: rows exactly so; a contract event starts with `type` and
    `id`, then its listed fields in the listed order, then any others. (Deviation, fixed:
    events put project/monitor_slug/environment before their own fields, so e.g.
    `incident_id` came after `environment` and `environment` before `fingerprint`.)"""
    doc = scenario(name)
    for env in doc["environments"]:
        assert list(env) == ENVIRONMENT_ORDER
        if env["incident"] is not None:
            assert list(env["incident"]) == ["id", "starting_check_in_id", "started_at"]
    assert all(list(row) == CHECK_IN_ORDER for row in doc["check_ins"])
    assert all(list(row) == INCIDENT_ORDER for row in doc["incidents"])
    seen = set()
    for event in doc["events"]:
        order = CONTRACT_EVENT_ORDER.get(event["type"])
        if order is None:
            assert list(event)[:2] == ["type", "id"]
            continue
        seen.add(event["type"])
        assert list(event)[: len(order) + 2] == ["type", "id", *order], event
    assert seen == set(CONTRACT_EVENT_ORDER)


def test_all_six_check_in_statuses_occur_and_no_other() -> None:
    seen = {row["status"] for _, doc in all_documents() for row in doc["check_ins"]}
    assert seen == CHECK_IN_STATUSES


def test_times_are_utc_with_z_and_fractions_only_when_present() -> None:
    checked = 0
    for name, doc in all_documents():
        for field, value in times_in(doc):
            if value is None:
                continue
            assert isinstance(value, str) and TIME.fullmatch(value), (name, field, value)
            fraction = value[19:-1]
            assert fraction == "" or fraction.strip(".0") != "", (name, field, value)
            checked += 1
    assert checked > 1000


def test_environments_are_sorted_by_project_monitor_slug_and_environment(tmp_path: Path) -> None:
    def config(project: str, slug: str, env: str, n: int) -> dict[str, Any]:
        line = check_in(1714564800 + n, n, monitor_config=JOB, environment=env)
        return {**line, "project": project, "monitor_slug": slug}

    doc = document_of(
        lines_file(
            tmp_path,
            config("zeta", "a", "production", 1),
            config("acme", "b", "staging", 2),
            config("acme", "b", "production", 3),
            config("acme", "a", "zz", 4),
            config("acme", "a", "canary", 5),
        )
    )
    keys = [(e["project"], e["monitor_slug"], e["environment"]) for e in doc["environments"]]
    assert keys == [
        ("acme", "a", "canary"),
        ("acme", "a", "zz"),
        ("acme", "b", "production"),
        ("acme", "b", "staging"),
        ("zeta", "a", "production"),
    ]
    # Check-ins stay in creation (file) order, not in the environments' order.
    assert [c["check_in_id"][-1] for c in doc["check_ins"]] == ["1", "2", "3", "4", "5"]


def test_check_ins_and_incidents_are_listed_in_creation_order() -> None:
    doc = scenario("contract_inputs")
    # A deleted monitor takes its check-ins and incidents with it (Sentry's deletion).
    removed = {(e["project"], e["monitor_slug"]) for e in events_of(doc, "monitor_removed")}
    assert removed == {("acme", "doomed")}
    created = [
        e["check_in_id"]
        for e in events_of(doc, "check_in_created")
        if (e["project"], e["monitor_slug"]) not in removed
    ]
    assert len(created) < len(events_of(doc, "check_in_created"))
    assert [c["check_in_id"] for c in doc["check_ins"]] == created
    # The first run was updated (closed ok) after later ones were created: it stays first.
    assert doc["check_ins"][0]["status"] == "ok"
    opened = [e["incident_id"] for e in events_of(doc, "incident_opened")]
    assert [i["id"] for i in doc["incidents"]] == opened
    assert [i["started_at"] for i in doc["incidents"]] == [
        "2024-05-01T12:04:00Z",
        "2024-05-01T13:00:00Z",
        "2024-05-01T13:00:00Z",
    ]


def test_the_four_contract_events_carry_their_listed_fields_matching_the_tables() -> None:
    doc = scenario("contract_inputs")
    incidents = {row["id"]: row for row in doc["incidents"]}
    for kind, fields in CONTRACT_EVENT_FIELDS.items():
        found = events_of(doc, kind)
        assert found, kind
        for event in found:
            assert fields <= set(event), (kind, fields - set(event))
            row = incidents[event["incident_id"]]
            # Fingerprint: a one-item list in events, the string itself in `incidents`.
            assert event["fingerprint"] == [row["fingerprint"]]
            assert event["environment"] == row["environment"]
    (resolved,) = events_of(doc, "incident_resolved")
    row = incidents[resolved["incident_id"]]
    for field in OPENED_FIELDS - {"incident_id", "fingerprint"} | {
        "resolving_check_in_id",
        "resolved_at",
    }:
        assert resolved[field] == row[field], field
    (issue_resolved,) = events_of(doc, "issue_resolved")
    assert issue_resolved["update_date"] == row["resolved_at"] == "2024-05-01T12:05:00Z"
    failed = {e["failed_check_in_id"]: e for e in events_of(doc, "issue_occurrence")}
    error = failed["c0000000-0000-4000-8000-000000000002"]
    assert (error["issue_title"], error["level"], error["detection_time"]) == (
        "Cron failure: nightly",
        "error",
        "2024-05-01T12:04:00Z",
    )
    assert error["subtitle"] == "Your monitor is failing: An error check-in was detected."
    # The muted staging environment gets its incident, but no occurrence for it.
    staging_open = [i for i in doc["incidents"] if i["resolved_at"] is None]
    assert {i["environment"] for i in staging_open} == {"production", "staging"}
    assert {e["environment"] for e in failed.values()} == {"staging", "production"}
    assert len(failed) == 2


def test_rejected_rows_name_the_line_and_the_typed_errors() -> None:
    doc = scenario("contract_bad_lines")
    (row,) = [r for r in doc["rejected"] if r["line"] == line_with("contract_bad_lines", '"done"')]
    assert row == {
        "line": row["line"],
        "errors": [
            {
                "type": "checkin_validation_failed",
                "errors": {"status": ['"done" is not a valid choice.']},
            }
        ],
    }
    assert [e["line"] for e in doc["rejected"]] == sorted(e["line"] for e in doc["rejected"])


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_the_streamed_document_is_the_whole_report_formatted(name: str) -> None:
    lines = (SCENARIOS / f"{name}.jsonl").read_text(encoding="utf-8").split("\n")
    result = simulate(lines)
    report = build_report(
        result.partition.all_environments(),
        result.events,
        [(bad.line, bad.message) for bad in result.invalid],
        line_of,
    )
    expected = msgspec.json.format(msgspec.json.encode(report), indent=2).decode() + "\n"
    done = run_cli("simulate", str(SCENARIOS / f"{name}.jsonl"), "--json")
    assert done.returncode == 0
    assert done.stdout == expected


# ========================================================================= command line


def test_rejected_lines_are_results_so_the_command_exits_0() -> None:
    for args in (["--json"], []):
        done = run_cli("simulate", str(SCENARIOS / "contract_bad_lines.jsonl"), *args)
        assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.parametrize("target", ["missing.jsonl", "."])
def test_a_file_that_cannot_be_read_exits_2_with_a_message_and_no_output(
    tmp_path: Path, target: str
) -> None:
    path = tmp_path / target
    done = run_cli("simulate", str(path), "--json")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"monitor-es: cannot read {path}: ")
    assert "Traceback" not in done.stderr


def test_an_unreachable_redis_exits_2_with_a_message() -> None:
    path = SCENARIOS / "contract_inputs.jsonl"
    done = run_cli("simulate", str(path), "--redis-url", "redis://127.0.0.1:1")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("monitor-es: cannot reach Redis at redis://127.0.0.1:1: ")
    assert "Traceback" not in done.stderr


def test_a_scenario_can_come_from_standard_input() -> None:
    path = SCENARIOS / "contract_inputs.jsonl"
    piped = run_cli("simulate", "-", "--json", stdin=path.read_bytes())
    assert piped.returncode == 0
    assert json.loads(piped.stdout) == scenario("contract_inputs")


def test_the_summary_names_states_counts_and_every_rejection_with_its_reason() -> None:
    name = "contract_bad_lines"
    done = run_cli("simulate", str(SCENARIOS / f"{name}.jsonl"))
    assert (done.returncode, done.stderr) == (0, "")
    out = done.stdout.splitlines()
    assert out[:4] == [
        "1 environment(s)",
        "  acme/job/production: ok, next check-in 2024-05-01T12:20:00Z",
        "2 check-in(s): 2 ok",
        "0 incident(s)",
    ]
    assert "21 rejected line(s)" in out
    back = line_with(name, "2024-05-01T11:59:00Z")
    at = out.index(f"  line {back} rejected: invalid_event")
    assert "is before 2024-05-01T12:00:25Z" in out[at + 1]
    done_line = line_with(name, '"done"')
    at = out.index(f"  line {done_line} rejected: checkin_validation_failed")
    assert '"done\\" is not a valid choice.' in out[at + 1]


def test_the_summary_shows_open_incidents_and_muting() -> None:
    done = run_cli("simulate", str(SCENARIOS / "contract_inputs.jsonl"))
    assert done.returncode == 0
    assert (
        "  acme/nightly/staging: missed, incident open since 2024-05-01T13:00:00Z, muted,"
        " next check-in 2024-05-01T14:00:00Z"
    ) in done.stdout.splitlines()
    assert "  crons:acme/nightly/staging: started 2024-05-01T12:04:00Z, resolved" in done.stdout


def test_the_summary_of_an_empty_file_says_zero_everywhere(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    done = run_cli("simulate", str(path))
    assert done.returncode == 0
    assert done.stdout.splitlines() == [
        "0 environment(s)",
        "0 check-in(s)",
        "0 incident(s)",
        "0 derived event(s)",
        "0 rejected line(s)",
    ]
    empty = json.loads(run_cli("simulate", str(path), "--json").stdout)
    assert empty == {key: [] for key in TOP_LEVEL}


def test_binary_garbage_is_summarised_line_by_line_without_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "garbage.bin"
    noise = bytes(b for b in range(256) if b != ord("\n"))
    path.write_bytes(noise * 8 + b"\n\x00\xff{\n\x1b[31m")
    for args in ([], ["--json"]):
        done = run_cli("simulate", str(path), *args)
        assert (done.returncode, done.stderr) == (0, ""), done.stderr
    rejected = json.loads(done.stdout)["rejected"]
    assert [row["errors"][0]["type"] for row in rejected] == ["invalid_event"] * len(rejected)
    assert [row["line"] for row in rejected] == [1, 2, 3]  # only b"\n" ends a line


def test_a_reader_that_stops_early_gets_no_traceback() -> None:
    path = SCENARIOS / "many_monitors_and_environments.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "MONITOR_ES_REDIS_URL"}
    with subprocess.Popen(
        [*CLI, "simulate", str(path), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline() == b"{\n"
        process.stdout.close()  # like `| head -1`
        stderr = process.stderr.read()
        process.wait(timeout=60)
    assert b"Traceback" not in stderr


def test_a_reducer_failure_exits_1_naming_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # No input makes the reducer raise (it is total); a fault stands in for a future bug.
    def broken(*_: object) -> None:
        raise RuntimeError("boom")

    path = lines_file(tmp_path, "# header", check_in(1714564800, 1, monitor_config=JOB))
    monkeypatch.setattr(replay, "apply", broken)
    assert cli.main(["simulate", str(path), "--json"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"monitor-es: {path}: line 2: the reducer failed: RuntimeError: boom" + (
        " (a bug in monitor-es)\n"
    )


# ========================================================================== large files


def test_a_scenario_is_folded_while_it_is_read() -> None:
    pulled: list[int] = []

    def lines() -> Iterator[str]:
        start = datetime(2024, 5, 1, 12, tzinfo=UTC)
        for n in range(1, 1_000):
            pulled.append(n)
            ts = (start + timedelta(seconds=10 * n)).isoformat()
            yield json.dumps(check_in(ts, n, monitor_config=JOB if n == 1 else None))

    stream = fold_scenario(Partition(), lines())
    first = next(stream)
    assert not isinstance(first, InvalidLine)
    assert pulled == [1]  # the first line's events come before the second line is read


def test_a_large_scenario_folds_in_bounded_memory(tmp_path: Path) -> None:
    # 20,000 check-ins derive about 70,000 events (a 40 MB document); holding them all, as
    # a slurping command does, peaks above 250 MB. Streamed, the state and rows stay small.
    path = tmp_path / "large.jsonl"
    start = datetime(2024, 5, 1, 12, tzinfo=UTC)
    every_minute = {
        "schedule_type": "crontab",
        "schedule": "* * * * *",
        "failure_issue_threshold": 1,
    }
    with path.open("w", encoding="utf-8") as out:
        for n in range(20_000):
            ts = (start + timedelta(seconds=20 * n)).isoformat().replace("+00:00", "Z")
            line = check_in(ts, n, "error" if n % 2 else "ok", monitor_config=every_minute)
            out.write(json.dumps({**line, "monitor_slug": f"job{n % 3}"}) + "\n")
    probe = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    measured = subprocess.run(
        [sys.executable, "-c", probe, *CLI, "simulate", str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    code, peak_kib = (int(part) for part in measured.stdout.split())
    assert code == 0
    assert peak_kib < 150 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"
