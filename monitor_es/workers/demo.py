"""A demo job for `monitor-es run --demo`: three good runs a minute apart, then silence."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

from monitor_es.domain.events import CheckInReported
from monitor_es.producer import Producer

DEMO_CONFIG = {"schedule_type": "crontab", "schedule": "* * * * *", "max_runtime": 5}


def run_demo(producer: Producer, stop: threading.Event, runs: int = 3) -> None:
    """Reports `runs` short runs of the `demo/every-minute` job, one a minute, then stops."""
    for _ in range(runs):
        check_in_id = str(uuid.uuid4())
        for status in ("in_progress", "ok"):
            producer.append(
                CheckInReported(
                    project="demo",
                    monitor_slug="every-minute",
                    check_in_id=check_in_id,
                    status=status,
                    monitor_config=DEMO_CONFIG,
                    received=datetime.now(UTC),
                )
            )
            if stop.wait(2):
                return
        if stop.wait(58):
            return
