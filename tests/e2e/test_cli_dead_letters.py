"""`monitor-es dead-letters`: what a real worker set aside, listed by the real command."""

from __future__ import annotations

import base64
import json
import signal
import time
from datetime import UTC, datetime

import pytest
import redis
from test_cli_operator import assert_one_line_failure, run_cli
from test_cli_read import process

from monitor_es.cli_dead_letters import dead_letter_row
from monitor_es.codec import encode_event
from monitor_es.domain.events import CheckInReported
from monitor_es.store import keys
from monitor_es.store.log import DeadLetter

pytestmark = pytest.mark.redis


def test_a_poison_entry_a_worker_set_aside_is_listed_with_its_reason(
    real_client: redis.Redis, redis_server: str
) -> None:
    assert run_cli("init", "--redis-url", redis_server, "--partitions", "2").returncode == 0
    empty = run_cli("dead-letters", "--redis-url", redis_server)
    assert (empty.returncode, empty.stdout) == (0, "")
    assert "0 dead letter(s) in 2 partition(s)" in empty.stderr
    log, dlq = keys.partition_keys(1).log, keys.partition_keys(1).dlq
    poison = real_client.xadd(log, {keys.ENTRY_FIELD: b"\xc1\x00"}).decode()
    with process("worker", "--redis-url", redis_server) as worker:
        deadline = time.monotonic() + 15
        while real_client.xlen(dlq) == 0:
            assert time.monotonic() < deadline, "the worker never dead-lettered the entry"
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=15) == 0

    text = run_cli("dead-letters", "--redis-url", redis_server)
    assert text.returncode == 0, text.stderr
    first, second = text.stdout.splitlines()
    assert first.startswith(f"partition 1: entry {poison} (")
    assert "1 attempt(s): undecodable entry" in first
    assert second.strip() == "2 bytes that are no event"
    assert "1 dead letter(s) in 2 partition(s)" in text.stderr

    as_json = run_cli("dead-letters", "--redis-url", redis_server, "--json")
    (row,) = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert row["partition"] == 1 and row["entry_id"] == poison and row["event"] is None
    assert base64.b64decode(row["payload"]) == b"\xc1\x00"
    ms = int(poison.split("-")[0])
    when = datetime.fromisoformat(row["entry_time"].replace("Z", "+00:00"))
    assert when == datetime.fromtimestamp(ms / 1000, UTC)  # the entry's broker time


def test_an_entry_that_decodes_is_shown_as_its_event() -> None:
    event = CheckInReported(
        project="acme",
        monitor_slug="backup",
        check_in_id="a0000000-0000-4000-8000-000000000001",
        status="ok",
    )
    letter = DeadLetter("1714564800000-0", "reducer failed 3 times: KeyError: 'x'", 3,
                        encode_event(event))  # fmt: skip
    row = dead_letter_row(4, "1714564900000-0", letter)
    assert row["event"]["type"] == "check_in"
    assert (row["event"]["monitor_slug"], row["event"]["status"]) == ("backup", "ok")
    assert row["entry_time"] == "2024-05-01T12:00:00Z"
    assert (row["partition"], row["attempts"]) == (4, 3)


def test_dead_letters_of_a_deployment_never_initialised_stop_with_one_line(
    real_client: redis.Redis, redis_server: str
) -> None:
    done = run_cli("dead-letters", "--redis-url", redis_server)
    assert_one_line_failure(done, 1, "monitor-es init")
