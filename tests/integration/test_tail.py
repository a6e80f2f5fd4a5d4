"""`run`'s console: notable derived events are reported as commits land."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from monitor_es.redis_simulate import simulate_on_redis
from monitor_es.store.connection import Client
from monitor_es.store.deployment import init_deployment
from monitor_es.workers.tail import OutCursor, follow

SCENARIO = Path(__file__).parent.parent / "scenarios" / "missed_with_margin.jsonl"


def test_follow_reports_incidents_and_misses_but_not_check_in_records(client: Client) -> None:
    init_deployment(client, 2)
    lines: list[str] = []
    stop = threading.Event()
    cursor = OutCursor(client, 2)
    tail = threading.Thread(target=follow, args=(cursor, stop, lines.append), daemon=True)
    tail.start()
    time.sleep(0.2)  # let it take its starting point before anything is committed
    simulate_on_redis(client, SCENARIO.read_text().splitlines())
    deadline = time.monotonic() + 10
    while not any(line.startswith("incident_opened") for line in lines):
        assert time.monotonic() < deadline, lines
        time.sleep(0.05)
    stop.set()
    tail.join(timeout=5)
    kinds = {line.split()[0] for line in lines}
    assert {"monitor_created", "mark_missing", "incident_opened", "issue_occurrence"} <= kinds
    assert not kinds & {"check_in_created", "check_in_updated"}
    assert any("A missed check-in was detected" in line for line in lines)
