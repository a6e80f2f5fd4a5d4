"""The system-incident aggregator: volume counters in, `clock_decision` entries out.

The test plays the clock: it writes every partition's per-minute volume hash (30 days of
history and today's minutes) and its `stream_ms` by hand, then lets `Aggregator.step`
decide. Decisions are broadcast into every partition's log, where the reducers read them
in order, so the effect of an incident (in-progress runs become unknown instead of timing
out) is reproduced exactly by a replay of the log.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from redis.typing import EncodableT

from monitor_es.codec import decode_entry, decode_out_entry
from monitor_es.domain.events import (
    CheckInReported,
    ClockDecided,
    ClockPulsed,
    InboundEvent,
    MarkUnknown,
)
from monitor_es.domain.partition import Limits, Partition
from monitor_es.domain.reducer import fold
from monitor_es.domain.state import CheckInStatus
from monitor_es.domain.time import from_ms, to_ms, trunc_minute
from monitor_es.producer import Producer
from monitor_es.store import keys
from monitor_es.store.connection import Client, as_text
from monitor_es.store.deployment import init_deployment
from monitor_es.store.fenced_writes import FencedWriter
from monitor_es.store.functions import Fenced
from monitor_es.store.keys import partition_for
from monitor_es.store.log import PartitionStore
from monitor_es.workers.aggregator import Aggregator
from monitor_es.workers.drain import drain
from monitor_es.workers.partition import load_partition
from monitor_es.workers.pulser import Pulser

N = 4
DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)
# Partition-local volumes: history averages 26 per partition (104 in all).
HISTORY = 25
NORMAL = 25  # -4 %: normal
DROP_20 = 21  # -19 %: abnormal (<= -10 %)
DROP_40 = 15  # -42 %: incident (<= -30 %)


def _epoch(minute: datetime) -> int:
    return to_ms(minute) // 1000


def base_minute() -> datetime:
    """Twenty minutes ago: decisions broadcast now (broker time) come after it in the logs."""
    return trunc_minute(from_ms(int(time.time() * 1000))) - 20 * MINUTE


def write_volumes(client: Client, today: dict[datetime, int], base: datetime) -> None:
    """30 days of history around `base` and today's volumes, in every partition's hash."""
    pipe = client.pipeline(transaction=False)
    for p in range(N):
        volume = keys.partition_keys(p).volume
        for offset in range(-8, 4):
            minute = base + offset * MINUTE
            for day in range(1, 31):
                pipe.hset(volume, str(_epoch(minute - day * DAY)), HISTORY + day % 3)
        for minute, count in today.items():
            pipe.hset(volume, str(_epoch(minute)), count)
    pipe.execute()


def set_stream_time(client: Client, instant: datetime) -> None:
    """Every partition's stream time (what the reducers' commits record)."""
    for p in range(N):
        client.hset(keys.partition_keys(p).meta, "stream_ms", to_ms(instant))


def decisions_in_log(client: Client, partition: int) -> list[tuple[datetime, str]]:
    """The clock_decision entries of one partition's log, in order."""
    found = []
    for entry_id, payload in PartitionStore(client, partition).read_range():
        event = decode_entry(entry_id, payload).event
        if isinstance(event, ClockDecided):
            found.append((event.minute, event.decision))
    return found


@pytest.fixture
def base(client: Client) -> datetime:
    """An initialised deployment; the minute the scenario's decisions start at."""
    init_deployment(client, N)
    return base_minute()


def test_a_40_percent_drop_is_broadcast_as_an_incident_to_every_partition(
    client: Client, base: datetime
) -> None:
    today = {base - n * MINUTE: NORMAL for n in range(1, 8)}
    today[base] = today[base + MINUTE] = DROP_40
    write_volumes(client, today, base)
    aggregator = Aggregator(client, N)

    set_stream_time(client, base + timedelta(seconds=30))
    assert aggregator.step(1) == [ClockDecided(minute=base, decision="normal")]
    set_stream_time(client, base + MINUTE + timedelta(seconds=30))
    # Tick base+1 is decided from the metric of minute `base`, 42 % below its history.
    assert aggregator.step(1) == [ClockDecided(minute=base + MINUTE, decision="incident")]

    expected = [(base, "normal"), (base + MINUTE, "incident")]
    for p in range(N):
        assert decisions_in_log(client, p) == expected
    stored = client.hgetall(keys.SYSTEM_INCIDENT_LOG)
    assert stored.pop(b"aggregator_fence") == b"1"  # the token it wrote under
    assert {int(k): as_text(v) for k, v in stored.items()} == {
        _epoch(base): "normal",
        _epoch(base + MINUTE): "incident",
    }
    start = client.hget(keys.SYSTEM_INCIDENT_STATE, "incident_start")
    assert start is not None and int(start) == _epoch(base + MINUTE)


def test_a_20_percent_drop_is_only_abnormal(client: Client, base: datetime) -> None:
    today = {base - n * MINUTE: NORMAL for n in range(1, 8)}
    today[base] = DROP_20
    write_volumes(client, today, base)
    set_stream_time(client, base + MINUTE)
    aggregator = Aggregator(client, N)
    assert aggregator.step(1) == [ClockDecided(minute=base + MINUTE, decision="abnormal")]
    assert decisions_in_log(client, 0) == [(base + MINUTE, "abnormal")]


def test_ticks_are_decided_once_and_only_when_every_partition_has_passed_them(
    client: Client, base: datetime
) -> None:
    write_volumes(client, {base - n * MINUTE: NORMAL for n in range(0, 8)}, base)
    for p in range(1, N):
        client.hset(keys.partition_keys(p).meta, "stream_ms", to_ms(base + 5 * MINUTE))
    assert Aggregator(client, N).step(1) == []  # partition 0 never reported: wait for it
    assert all(decisions_in_log(client, p) == [] for p in range(N))

    client.hset(keys.partition_keys(0).meta, "stream_ms", to_ms(base))
    assert Aggregator(client, N).step(1) == [ClockDecided(minute=base, decision="normal")]
    set_stream_time(client, base + 3 * MINUTE)
    restarted = Aggregator(client, N)  # a new pulser process continues from the stored tick
    decided = restarted.step(1)
    assert [d.minute for d in decided] == [base + n * MINUTE for n in (1, 2, 3)]
    assert restarted.step(1) == []
    assert len(decisions_in_log(client, 2)) == 4


def test_a_paused_former_aggregator_is_fenced_once_its_successor_has_written(
    client: Client, base: datetime
) -> None:
    # Pulser 1 decides, pauses past its lease; pulser 2 (token 2) takes over and decides.
    # When 1 wakes up, each of its writes is refused: it can neither broadcast a decision
    # computed from what it read before its pause nor move the stored tick.
    today = {base - n * MINUTE: NORMAL for n in range(1, 8)}
    today[base] = today[base + MINUTE] = DROP_40
    write_volumes(client, today, base)
    former, successor = Aggregator(client, N), Aggregator(client, N)
    set_stream_time(client, base + timedelta(seconds=30))
    assert former.step(1) == [ClockDecided(minute=base, decision="normal")]
    set_stream_time(client, base + MINUTE + timedelta(seconds=30))
    assert successor.step(2) == [ClockDecided(minute=base + MINUTE, decision="incident")]
    logs = [decisions_in_log(client, p) for p in range(N)]
    stored = client.hgetall(keys.SYSTEM_INCIDENT_STATE)
    client.hdel(keys.SYSTEM_INCIDENT_STATE, "last_tick")  # so the former one tries to write
    with pytest.raises(Fenced):
        former.step(1)
    client.hset(keys.SYSTEM_INCIDENT_STATE, "last_tick", stored[b"last_tick"])
    assert [decisions_in_log(client, p) for p in range(N)] == logs
    assert client.hgetall(keys.SYSTEM_INCIDENT_STATE) == stored
    # The successor goes on under its own token.
    set_stream_time(client, base + 2 * MINUTE + timedelta(seconds=30))
    assert [d.minute for d in successor.step(2)] == [base + 2 * MINUTE]


def test_a_first_tick_stored_by_a_paused_former_aggregator_is_where_its_successor_starts(
    client: Client, base: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pulser 1 read "no tick stored" at minute `base` and paused; pulser 2 took over later
    # and also read nothing, but pulser 1 woke up and stored its start in between. Storing
    # its own start over it would leave pulser 1's first decisions in some logs only, and
    # the minutes between undecided: the successor goes on from the stored start instead.
    write_volumes(client, {base - n * MINUTE: NORMAL for n in range(-4, 8)}, base)
    set_stream_time(client, base + 2 * MINUTE + timedelta(seconds=30))
    real_hsetnx = FencedWriter.hsetnx

    def former_first(writer: FencedWriter, key: str, field: str, value: EncodableT) -> bool:
        if writer.token == 2:  # between the successor's read and its write...
            FencedWriter(client, N, 1).hset(key, {field: _epoch(base - MINUTE)})
        return real_hsetnx(writer, key, field, value)

    monkeypatch.setattr(FencedWriter, "hsetnx", former_first)
    decided = Aggregator(client, N).step(2)
    assert [d.minute for d in decided] == [base + n * MINUTE for n in range(3)]
    for p in range(N):
        assert [minute for minute, _ in decisions_in_log(client, p)] == [
            base + n * MINUTE for n in range(3)
        ]


def test_writing_a_field_only_if_unset_is_fenced_like_every_aggregator_write(
    client: Client,
) -> None:
    init_deployment(client, N)
    key = keys.SYSTEM_INCIDENT_STATE
    assert FencedWriter(client, N, 3).hsetnx(key, "last_tick", 100) is True
    assert FencedWriter(client, N, 3).hsetnx(key, "last_tick", 200) is False
    assert client.hget(key, "last_tick") == b"100"
    with pytest.raises(Fenced):
        FencedWriter(client, N, 2).hsetnx(key, "other", 1)
    assert client.hget(key, "other") is None


def test_a_pulser_whose_aggregator_is_fenced_gives_the_lease_up(
    client: Client, base: datetime
) -> None:
    write_volumes(client, {base - n * MINUTE: NORMAL for n in range(0, 8)}, base)
    set_stream_time(client, base + timedelta(seconds=30))
    pulser = Pulser(client, N, interval_s=1.0, owner="pulser-a", system_incidents=True)
    assert pulser.tick() and pulser.token == 1
    # A newer pulser wrote to the partitions (its token is 5) while this one held token 1.
    client.hset(keys.partition_keys(0).meta, "aggregator_fence", 5)
    set_stream_time(client, base + MINUTE + timedelta(seconds=30))
    pulser.tick()
    assert pulser.token is None  # it stops deciding and competes for the lease again
    assert decisions_in_log(client, 0) == [(base, "normal")]


def test_reducers_turn_running_check_ins_unknown_at_an_incident_tick(
    client: Client, base: datetime
) -> None:
    config = {"schedule_type": "crontab", "schedule": "0 0 1 1 *", "max_runtime": 60}
    started = base - 3 * MINUTE
    producer = Producer(client, N)
    runs: list[InboundEvent] = [
        CheckInReported(
            project="acme",
            monitor_slug=slug,
            check_in_id=f"{n + 1:032x}",
            status="in_progress",
            monitor_config=config,
        )
        for n, slug in enumerate(("alpha", "gamma"))
    ]
    assert partition_for("acme", "alpha", N) != partition_for("acme", "gamma", N)
    producer.append_all(runs, ids=[f"{to_ms(started)}-1", f"{to_ms(started)}-2"])

    today = {base - n * MINUTE: NORMAL for n in range(1, 8)}
    today[base] = DROP_40
    write_volumes(client, today, base)
    aggregator = Aggregator(client, N)
    set_stream_time(client, base)
    aggregator.step(1)
    set_stream_time(client, base + MINUTE)
    assert aggregator.step(1) == [ClockDecided(minute=base + MINUTE, decision="incident")]
    # The decisions carry broker time (now); a pulse a minute later ticks under them.
    next_tick = trunc_minute(from_ms(int(time.time() * 1000))) + 2 * MINUTE
    producer.append_all([ClockPulsed()], ids=[f"{to_ms(next_tick)}-0"])

    drain(client, N)

    for slug in ("alpha", "gamma"):
        p = partition_for("acme", slug, N)
        store = PartitionStore(client, p)
        state, _ = load_partition(store, Limits())
        (env,) = state.all_environments()
        assert [c.status for c in env.checkins] == [CheckInStatus.UNKNOWN]
        events = [event for _, payload in store.read_out() for event in decode_out_entry(payload)]
        unknown = [e for e in events if isinstance(e, MarkUnknown)]
        assert len(unknown) == 1
        assert unknown[0].monitor_slug == slug
        # The first tick after the incident decision entry (broker time) marks it unknown.
        (decided_at,) = [
            decode_entry(i, payload).ts
            for i, payload in store.read_range()
            if decode_entry(i, payload).event
            == ClockDecided(minute=base + MINUTE, decision="incident")
        ]
        assert unknown[0].ts == trunc_minute(decided_at) + MINUTE
        # Replaying the log (decisions included) reproduces the out stream exactly.
        entries = [decode_entry(i, payload) for i, payload in store.read_range()]
        assert fold(Partition(Limits()), entries) == events
