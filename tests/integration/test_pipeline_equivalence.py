"""The Redis pipeline gives the pure fold's result for every scenario, on fakeredis and Redis.

`simulate_on_redis` writes a scenario into the partition logs with explicit ids, runs the
real partition workers with fenced commits and reads state and out streams back; `simulate`
folds the same lines in memory. With one partition the two documents are identical; with
four, events of different monitors may interleave differently, so events, check-ins and
incidents are compared in a canonical order (ids are partition independent by design).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

from monitor_es.codec import decode_out_entry
from monitor_es.domain.partition import Limits
from monitor_es.redis_simulate import PipelineRun, simulate_on_redis
from monitor_es.replay import Simulation, simulate
from monitor_es.scenario import line_of
from monitor_es.store.connection import Client
from monitor_es.store.deployment import require_deployment
from monitor_es.store.log import PartitionStore
from projections.report import build_report

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
SCENARIO_NAMES = sorted(path.stem for path in SCENARIOS.glob("*.jsonl"))


def _lines(name: str) -> list[str]:
    return (SCENARIOS / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()


def _as_json(report: dict[str, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(msgspec.json.encode(report))
    return decoded


def pure_report(lines: list[str], limits: Limits | None = None) -> dict[str, Any]:
    """The `simulate --json` document of the pure fold."""
    result: Simulation = simulate(lines, limits)
    invalid = [(bad.line, bad.message) for bad in result.invalid]
    environments = result.partition.all_environments()
    return _as_json(build_report(environments, result.events, invalid, line_of))


def pipeline_report(run: PipelineRun) -> dict[str, Any]:
    """The same document built from what Redis holds after the pipeline ran."""
    invalid = [(bad.line, bad.message) for bad in run.invalid]
    return _as_json(build_report(run.environments, run.events, invalid, line_of))


def canonical(report: dict[str, Any]) -> dict[str, Any]:
    """The document with monitor interleaving removed: lists in a fixed order."""
    return {
        **report,
        "events": sorted(report["events"], key=lambda e: (e["id"], json.dumps(e, sort_keys=True))),
        "check_ins": sorted(report["check_ins"], key=lambda c: (c["project"], c["check_in_id"])),
        "incidents": sorted(report["incidents"], key=lambda i: i["id"]),
    }


def out_stream_ids(client: Client) -> list[str]:
    """Every derived event id in every partition's out stream."""
    ids: list[str] = []
    for partition in range(require_deployment(client).partitions):
        for _, payload in PartitionStore(client, partition).read_out():
            ids.extend(event.id for event in decode_out_entry(payload))
    return ids


def _param(name: str, *bugs: str) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=bug) for bug in bugs]
    return pytest.param(name, id=name, marks=marks)


def _params(xfails: dict[str, str]) -> list[Any]:
    return [_param(name, *([xfails[name]] if name in xfails else [])) for name in SCENARIO_NAMES]


def test_every_required_scenario_file_is_present() -> None:
    assert len(SCENARIO_NAMES) >= 8
    for name in SCENARIO_NAMES:
        head = _lines(name)[0]
        assert head.startswith("#"), f"{name} needs a comment header saying what it shows"


@pytest.mark.parametrize("name", _params({}))
def test_one_partition_pipeline_equals_the_pure_fold_exactly(client: Client, name: str) -> None:
    lines = _lines(name)
    run = simulate_on_redis(client, lines, partitions=1)
    assert pipeline_report(run) == pure_report(lines)


@pytest.mark.parametrize("name", _params({}))
def test_four_partition_pipeline_equals_the_pure_fold_up_to_interleaving(
    client: Client, name: str
) -> None:
    lines = _lines(name)
    run = simulate_on_redis(client, lines, partitions=4)
    assert canonical(pipeline_report(run)) == canonical(pure_report(lines))


@pytest.mark.parametrize("name", _params({}))
def test_one_partition_out_stream_has_no_duplicate_event_ids(client: Client, name: str) -> None:
    simulate_on_redis(client, _lines(name), partitions=1)
    ids = out_stream_ids(client)
    assert ids, "the scenario derived nothing"
    assert [i for i, n in Counter(ids).items() if n > 1] == []


@pytest.mark.parametrize(
    "name",
    _params({}),
)
def test_four_partition_out_streams_have_no_duplicate_event_ids(client: Client, name: str) -> None:
    simulate_on_redis(client, _lines(name), partitions=4)
    ids = out_stream_ids(client)
    assert ids, "the scenario derived nothing"
    assert [i for i, n in Counter(ids).items() if n > 1] == []


def test_several_monitors_give_work_to_every_one_of_four_partitions(client: Client) -> None:
    simulate_on_redis(client, _lines("many_monitors_and_environments"), partitions=4)
    for partition in range(4):
        store = PartitionStore(client, partition)
        assert store.load_state(), f"partition {partition} holds no state"
        assert store.read_out(), f"partition {partition} derived nothing"


def test_out_streams_hold_exactly_the_pure_folds_events(client: Client) -> None:
    lines = _lines("many_monitors_and_environments")
    simulate_on_redis(client, lines, partitions=4)
    assert sorted(out_stream_ids(client)) == sorted(e.id for e in simulate(lines).events)


def test_occurrences_released_by_one_decision_get_ids_independent_of_partitions(
    client: Client,
) -> None:
    lines = _lines("system_incident_decisions")
    pure = {e.id: e for e in simulate(lines).events}
    run = simulate_on_redis(client, lines, partitions=4)
    piped = {e.id: e for e in run.events}
    assert len(piped) == len(run.events)
    assert piped == pure


def test_a_rejected_broadcast_decision_is_reported_once(client: Client) -> None:
    lines = [
        '{"type": "clock_decision", "ts": "2024-05-01T12:00:30Z",'
        ' "minute": "2024-05-01T12:00:00Z", "decision": "bogus"}'
    ]
    assert len(pure_report(lines)["rejected"]) == 1
    run = simulate_on_redis(client, lines, partitions=4)
    assert pipeline_report(run)["rejected"] == pure_report(lines)["rejected"]
